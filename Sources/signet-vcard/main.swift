// signet-vcard: inserts Signet's virtual PIV test card into the vpcd reader of
// a running pcscd, for trying `signet readers` and OpenSC without a physical card.
// Usage: signet-vcard [--port N] [--pin CODE] [--seconds N] [--slot 9a|9c|9d|9e --key KEY.pem --cert CERT.pem]...
// (--pin is a throw-away test card's code, not a real access code. The keys
// are test keys in files; a real card's keys never leave it.)
#if canImport(Glibc)
import Glibc
#endif
import SignetCore
import SignetOpenSSL
import SignetVirtualCard

func fail(_ message: String) -> Never {
    Console.error("signet-vcard: \(message)\n")
    exit(2)
}

func readFile(_ path: String) -> [UInt8] {
    guard let bytes = FileIO.readBytes(path, limit: 1 << 20) else { fail("cannot read \(path)") }
    return bytes
}

var port: UInt16 = 35963
var pin = Array("123456".utf8)
var seconds: Int? = nil
var reference: UInt8 = 0x9A
var key: CardKey? = nil
var slots: [VirtualCard.Slot] = []
var guid = Array(repeating: UInt8(0x5A), count: 16)
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port": port = arguments.popFirst().flatMap { UInt16($0) } ?? port
    case "--pin": pin = Array((arguments.popFirst() ?? "123456").utf8)
    case "--seconds": seconds = arguments.popFirst().flatMap { Int($0) }
    case "--serial":
        guard let text = arguments.popFirst(), let byte = UInt8(text, radix: 16) else { fail("--serial takes one hex byte") }
        guid = Array(repeating: byte, count: 16)
    case "--slot":
        guard let text = arguments.popFirst(), let value = UInt8(text, radix: 16), [0x9A, 0x9C, 0x9D, 0x9E].contains(value) else {
            fail("--slot takes 9a, 9c, 9d or 9e")
        }
        reference = value
    case "--key":
        do { key = try CardKey(pem: readFile(arguments.popFirst() ?? "")) } catch { fail("\(error)") }
    case "--cert":
        guard let key else { fail("give --key before --cert") }
        guard let der = (try? CertificateFile.read(readFile(arguments.popFirst() ?? "")))?.certificates.first?.der else {
            fail("the --cert file is not a certificate")
        }
        slots.append(VirtualCard.Slot(reference: reference, key: key, certificate: der))
    default:
        print("usage: signet-vcard [--port N] [--pin CODE] [--seconds N] [--serial HEXBYTE] [--slot 9a|9c|9d|9e --key KEY.pem --cert CERT.pem]...")
        exit(2)
    }
}

let connection = VPCDConnection(card: VirtualCard(pin: pin, slots: slots, guid: guid), port: port)
do {
    try connection.insert()
} catch {
    Console.error("signet-vcard: \(error)\n")
    exit(1)
}
Console.out("virtual card inserted into vpcd on 127.0.0.1:\(port); ATR \(Hex.encode(connection.card.atr, separator: " ", uppercase: true)); \(slots.count) key(s)\n")
if let seconds {
    sleep(UInt32(seconds))
} else {
    while true { pause() }
}
connection.remove()
