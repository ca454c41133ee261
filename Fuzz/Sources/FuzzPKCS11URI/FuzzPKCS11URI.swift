// The PKCS#11 URI parser (RFC 7512), in SignetCore where the agent and the CLI both reach it.
import FuzzDriver
import SignetCore

/// Parses the input as a URI; what parses must print as text that parses back to the same URI.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPKCS11URI(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let uri = try? PKCS11URI(parsing: text) else { return 0 }
    let printed = uri.description
    guard let again = try? PKCS11URI(parsing: printed) else { fatalError("\(printed) (printed from a parsed URI) does not parse") }
    precondition(again == uri && again.description == printed, "\(printed) does not print the same after parsing")
    for (name, _) in uri.path { _ = uri.text(name) }
    _ = uri.removing("id").setting("object", [0, 0xff, 0x25]).description
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzPKCS11URI) }
}
