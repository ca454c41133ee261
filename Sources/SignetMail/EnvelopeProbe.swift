#if canImport(Glibc)
import Glibc
#endif
import SignetCore
import SignetOpenSSL

/// The top of a message, read to decide whether its outer layer is enveloped data that can be decrypted as it
/// streams in: DER/BER CMS, or `application/pkcs7-mime` in base64 (or binary).
public struct EnvelopeProbe {
    /// What was read (headers and the start of the body); the rest is still in the descriptor.
    public let prefix: [UInt8]
    /// A reader of the enveloped data's encoding (the prefix included), when the outer layer is one.
    public let reader: BERReader?

    /// - Throws: `SignetError` when the message cannot be read.
    public init(fd: Int32) throws(SignetError) {
        var prefix: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var bodyStart: Int?
        while prefix.count < 1 << 20 {
            if let start = bodyStart ?? Self.bodyStart(prefix) {
                bodyStart = start
                if prefix.count >= start + 512 { break }
            }
            let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw SignetError(.failure, "Reading the message failed: \(String(cString: strerror(errno))).") }
            if got == 0 { break }
            prefix += chunk[..<got]
        }
        self.prefix = prefix
        reader = Self.reader(prefix: prefix, bodyStart: bodyStart ?? Self.bodyStart(prefix), fd: fd)
    }

    /// Where the body starts: 0 for DER, after the first empty line for MIME.
    private static func bodyStart(_ bytes: [UInt8]) -> Int? {
        bytes.first == 0x30 ? 0 : CMSMessage.mimeBodyStart(bytes)
    }

    private static func reader(prefix: [UInt8], bodyStart: Int?, fd: Int32) -> BERReader? {
        guard let bodyStart else { return nil }
        if bodyStart == 0 {
            return EnvelopeStream.recognises(prefix) ? BERReader(DescriptorSource(fd: fd, prefix: prefix)) : nil
        }
        let headers = MIMEHeaders(message: prefix)
        guard let type = headers.value("content-type"),
              ["application/pkcs7-mime", "application/x-pkcs7-mime"].contains(MIMEHeaders.mainValue(type)) else { return nil }
        if let smimeType = MIMEHeaders.parameter(type, "smime-type")?.lowercased(),
           !["enveloped-data", "authenveloped-data"].contains(smimeType) { return nil }
        let body = DescriptorSource(fd: fd, prefix: Array(prefix[bodyStart...]))
        let encoding = headers.value("content-transfer-encoding").map { MIMEHeaders.mainValue($0) }
        if encoding == "base64" {
            let sample = Base64DecodingSource(ArraySource(Array(prefix[bodyStart...].prefix(256))))
            var decoded = [UInt8](repeating: 0, count: 192)
            let got = (try? decoded.withUnsafeMutableBytes { try sample.read(into: $0) }) ?? 0
            guard EnvelopeStream.recognises(Array(decoded.prefix(got))) else { return nil }
            return BERReader(Base64DecodingSource(body))
        }
        return EnvelopeStream.recognises(Array(prefix[bodyStart...])) ? BERReader(body) : nil
    }
}
