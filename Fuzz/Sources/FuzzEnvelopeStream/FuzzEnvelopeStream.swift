// The streamed reader of CMS enveloped and authEnveloped data (`signet decrypt` of a large
// message), over raw BER and over base64 text, up to the header it hands OpenSSL.
import FuzzDriver
import SignetCore
import SignetOpenSSL

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelopeStream(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = EnvelopeStream.recognises(bytes)
    read(ArraySource(bytes))
    read(Base64DecodingSource(ArraySource(bytes)))
    return 0
}

private func read(_ source: ByteSource) {
    guard let stream = try? EnvelopeStream(BERReader(source)) else { return }
    var buffer = [UInt8](repeating: 0, count: 4096)
    do {
        while try buffer.withUnsafeMutableBytes({ try stream.readContent(into: $0) }) > 0 {}
        try stream.finish()
    } catch {
        return
    }
    _ = stream.mac
    _ = stream.trailing.count
    _ = try? EnvelopedMessage(detachedHeader: stream.header())
}

@main
enum Main {
    static func main() { runFuzzer(fuzzEnvelopeStream) }
}
