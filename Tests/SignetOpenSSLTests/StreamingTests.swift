import SignetCore
import SignetOpenSSL
import Testing

@Suite("MIME canonicalisation")
struct MIMECanonicalizerTests {
    func canonical(_ text: String) -> String { String(decoding: MIMECanonicalizer.canonicalize(Array(text.utf8)), as: UTF8.self) }

    @Test("Bare LF gains a CR; CRLF, lone CR and a last line without newline are kept")
    func text() {
        #expect(canonical("Content-Type: text/plain\n\na\nb\r\nc\rd\ne") == "Content-Type: text/plain\r\n\r\na\r\nb\r\nc\rd\r\ne")
    }

    @Test("A binary part is copied byte for byte; the multipart structure around it is canonicalised")
    func binaryPart() {
        let input = "Content-Type: multipart/mixed; boundary=\"x y\"\n\n--x y\nContent-Transfer-Encoding: binary\n\n\u{1}\n\n\r\n--x y--\nafter\n"
        #expect(canonical(input) == "Content-Type: multipart/mixed; boundary=\"x y\"\r\n\r\n--x y\r\nContent-Transfer-Encoding: binary\r\n\r\n\u{1}\n\n\r\n--x y--\r\nafter\r\n")
    }

    @Test("Feeding in pieces (down to single bytes) and very long lines give the same result as one piece")
    func pieces() {
        let long = String(repeating: "z", count: MIMECanonicalizer.maximumLine * 2 + 3)
        let input = Array("Subject: x\n\nshort\n\(long)\r\nend\n".utf8)
        let whole = MIMECanonicalizer.canonicalize(input)
        #expect(whole == Array("Subject: x\r\n\r\nshort\r\n\(long)\r\nend\r\n".utf8))
        for size in [1, 7, 4096, 65536] {
            #expect(fed(input, size: size) == whole, "piece size \(size)")
        }
    }
}

extension MIMECanonicalizerTests {
    /// `input` fed in pieces of `size` bytes.
    func fed(_ input: [UInt8], size: Int) -> [UInt8] {
        var canonicalizer = MIMECanonicalizer()
        var output: [UInt8] = []
        var start = 0
        while start < input.count {
            let end = min(input.count, start + size)
            input[start..<end].withUnsafeBufferPointer { canonicalizer.feed($0, into: &output) }
            start = end
        }
        canonicalizer.finish(into: &output)
        return output
    }

    @Test("Body lines copied in runs give what the line-by-line path gives: CRLF kept, bare LF mended, delimiters and binary parts honoured")
    func runs() {
        // Single bytes never hold a whole line, so they take the line-by-line path; larger pieces take the runs.
        let text = "Content-Type: multipart/mixed; boundary=\"b\"\n\npreamble\r\n--not the boundary\n-x\r\n\n"
            + "--b\r\nContent-Type: text/plain\r\n\nline one\r\nline two\n\r\n\nlone\rCR\r\n--b-- not closing\n"
            + "--b\nContent-Transfer-Encoding: binary\n\n\u{0}\n\r\n\n--bx\n\r\r\n"
            + "--b--\r\nepilogue\nlast"
        let input = Array(text.utf8)
        let expected = fed(input, size: 1)
        #expect(expected == Array(("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--not the boundary\r\n-x\r\n\r\n"
            + "--b\r\nContent-Type: text/plain\r\n\r\nline one\r\nline two\r\n\r\n\r\nlone\rCR\r\n--b-- not closing\r\n"
            + "--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\u{0}\n\r\n\n--bx\n\r\r\n"
            + "--b--\r\nepilogue\r\nlast").utf8))
        for size in [2, 3, 5, 16, 64, input.count] {
            #expect(fed(input, size: size) == expected, "piece size \(size)")
        }
    }
}

@Suite("Streamed CMS enveloped data")
struct EnvelopeStreamTests {
    static let envelopedType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03]
    static let version: [UInt8] = [0x02, 0x01, 0x00]
    static let recipients: [UInt8] = [0x31, 0x03, 0x02, 0x01, 0x07]
    static let dataType: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01]
    static let algorithm: [UInt8] = [0x30, 0x0B, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A]

    /// Everything `stream` passes on as content.
    func content(_ stream: EnvelopeStream) throws -> [UInt8] {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 7)  // small, so pieces cross reads
        while true {
            let got = try buffer.withUnsafeMutableBytes { try stream.readContent(into: $0) }
            if got == 0 { return all }
            all += buffer[..<got]
        }
    }

    @Test("NSS-style BER (indefinite lengths, content in pieces, a nested piece) streams the content and gives a DER header without it")
    func indefinite() throws {
        let pieces: [UInt8] = [0x04, 0x03, 1, 2, 3] + [0x24, 0x80, 0x04, 0x02, 4, 5, 0x00, 0x00] + [0x04, 0x00] + [0x04, 0x01, 6]
        let encoding: [UInt8] = [0x30, 0x80] + Self.envelopedType + [0xA0, 0x80, 0x30, 0x80] + Self.version + Self.recipients
            + [0x30, 0x80] + Self.dataType + Self.algorithm + [0xA0, 0x80] + pieces + [0x00, 0x00] + [0x00, 0x00]
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        let stream = try EnvelopeStream(BERReader(ArraySource(encoding)))
        #expect(stream.kind == .enveloped)
        #expect(try content(stream) == [1, 2, 3, 4, 5, 6])
        try stream.finish()
        let expected = DER.tlv(0x30, Self.envelopedType + DER.tlv(0xA0, DER.tlv(0x30, Self.version + Self.recipients
            + DER.tlv(0x30, Self.dataType + Self.algorithm))))
        #expect(stream.header() == expected)
    }

    @Test("DER with the content as one primitive value, in base64 with line breaks; truncation and a missing content are errors")
    func definite() throws {
        let payload = [UInt8](repeating: 0xAB, count: 300)
        let inner = Self.version + Self.recipients + DER.tlv(0x30, Self.dataType + Self.algorithm + DER.tlv(0x80, payload))
        let encoding = DER.tlv(0x30, Self.envelopedType + DER.tlv(0xA0, DER.tlv(0x30, inner)))
        #expect(EnvelopeStream.recognises(encoding))
        #expect(!EnvelopeStream.recognises([0x30, 0x03, 0x02, 0x01, 0x00]))
        var text: [UInt8] = []
        for (index, char) in base64(encoding).enumerated() { text += index % 64 == 63 ? [char, 0x0D, 0x0A] : [char] }
        let stream = try EnvelopeStream(BERReader(Base64DecodingSource(ArraySource(text))))
        #expect(try content(stream) == payload)
        try stream.finish()
        let truncated = try EnvelopeStream(BERReader(ArraySource(Array(encoding.prefix(encoding.count - 10)))))
        #expect(throws: StreamError.truncated) { try content(truncated) }
        let detached = DER.tlv(0x30, Self.envelopedType + DER.tlv(0xA0, DER.tlv(0x30, Self.version + Self.recipients
            + DER.tlv(0x30, Self.dataType + Self.algorithm))))
        #expect(throws: StreamError.self) { try EnvelopeStream(BERReader(ArraySource(detached))) }
        var scratch = [UInt8](repeating: 0, count: 8)
        #expect(throws: StreamError.self) { try scratch.withUnsafeMutableBytes { try Base64DecodingSource(ArraySource(Array("MII*".utf8))).read(into: $0) } }
    }

    private func base64(_ bytes: [UInt8]) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)]) + [0, 0]
            let value = UInt32(chunk[0]) << 16 | UInt32(chunk[1]) << 8 | UInt32(chunk[2])
            let count = min(3, bytes.count - index)
            for position in 0..<4 { out.append(position <= count ? alphabet[Int(value >> (18 - 6 * position) & 63)] : UInt8(ascii: "=")) }
            index += 3
        }
        return out
    }
}
