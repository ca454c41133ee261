// The MIME canonicaliser (what signing and verifying hash) and the header reader.
import FuzzDriver
import SignetOpenSSL

/// Canonicalises the input whole and streamed in pieces whose sizes come from the input's
/// first byte: both must give the same bytes, which must be canonical (idempotent).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMIME(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    let whole = MIMECanonicalizer.canonicalize(Array(input))
    var streamed: [UInt8] = []
    var canonicalizer = MIMECanonicalizer()
    let piece = size > 0 ? Int(input[0] % 61) + 1 : 1
    var offset = 0
    while offset < size {
        let end = min(offset + piece, size)
        canonicalizer.feed(UnsafeBufferPointer(rebasing: input[offset..<end]), into: &streamed)
        offset = end
    }
    canonicalizer.finish(into: &streamed)
    precondition(streamed == whole, "streamed canonicalisation differs from the one-shot result")
    precondition(MIMECanonicalizer.canonicalize(whole) == whole, "canonicalising canonical text changed it")

    let headers = MIMEHeaders(message: Array(input))
    for (name, value) in headers.fields {
        _ = headers.value(name)
        _ = MIMEHeaders.mainValue(value)
        _ = MIMEHeaders.parameter(value, "boundary")
        _ = MIMEHeaders.parameter(value, "protocol")
    }
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzMIME) }
}
