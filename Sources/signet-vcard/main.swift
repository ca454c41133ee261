// signet-vcard: inserts Signet's virtual test card into the vpcd reader of a
// running pcscd, for trying `signet readers` without a physical card.
// Usage: signet-vcard [--port N] [--pin CODE] [--seconds N]
// (--pin is a throw-away test card's code, not a real access code.)
#if canImport(Glibc)
import Glibc
#endif
import SignetCore
import SignetVirtualCard

var port: UInt16 = 35963
var pin = Array("123456".utf8)
var seconds: Int? = nil
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port": port = arguments.popFirst().flatMap { UInt16($0) } ?? port
    case "--pin": pin = Array((arguments.popFirst() ?? "123456").utf8)
    case "--seconds": seconds = arguments.popFirst().flatMap { Int($0) }
    default:
        print("usage: signet-vcard [--port N] [--pin CODE] [--seconds N]")
        exit(2)
    }
}

let connection = VPCDConnection(card: VirtualCard(pin: pin), port: port)
do {
    try connection.insert()
} catch {
    Console.error("signet-vcard: \(error)")
    exit(1)
}
Console.out("virtual card inserted into vpcd on 127.0.0.1:\(port); ATR \(Hex.encode(connection.card.atr, separator: " ", uppercase: true))\n")
if let seconds {
    sleep(UInt32(seconds))
} else {
    while true { pause() }
}
connection.remove()

