import SignetCore
import Testing

@Suite("Secret buffers")
struct SecretBytesTests {
    @Test("Bytes are kept exactly: case, spaces and non-ASCII are not altered")
    func exactBytes() {
        let typed = Array("Pa ss-É1".utf8)
        let secret = SecretBytes(copying: typed)
        let count = secret.count
        let stored = secret.withUnsafeBytes { Array($0) }
        #expect(count == typed.count)
        #expect(stored == typed)
    }

    @Test("Clearing zeroes the storage and empties the secret")
    func clear() {
        var secret = SecretBytes(copying: Array("123456".utf8))
        secret.clear()
        let count = secret.count
        #expect(count == 0)
    }

    @Test("Backspace removes the last byte; appending beyond capacity is refused")
    func editing() {
        var secret = SecretBytes(capacity: 3)
        let appended = secret.append(1) && secret.append(2) && secret.append(3)
        let overflow = secret.append(4)
        #expect(appended)
        #expect(!overflow)
        secret.removeLast()
        let stored = secret.withUnsafeBytes { Array($0) }
        #expect(stored == [1, 2])
    }

    @Test("Comparison is by content and length")
    func equality() {
        let same = SecretBytes(copying: [1, 2, 3]).constantTimeEquals(SecretBytes(copying: [1, 2, 3]))
        let different = SecretBytes(copying: [1, 2, 3]).constantTimeEquals(SecretBytes(copying: [1, 2, 4]))
        let longer = SecretBytes(copying: [1, 2]).constantTimeEquals(SecretBytes(copying: [1, 2, 0]))
        #expect(same)
        #expect(!different)
        #expect(!longer)
    }

    @Test("wipe overwrites memory with zeros")
    func wipe() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB)
        SecretBytes.wipe(buffer)
        #expect(buffer.allSatisfy { $0 == 0 })
    }
}

@Suite("Encodings")
struct EncodingTests {
    @Test("Hex round-trips and rejects bad input")
    func hex() {
        #expect(Hex.encode([0x00, 0xAB, 0xff]) == "00abff")
        #expect(Hex.encode([0x3B, 0x8A], separator: " ", uppercase: true) == "3B 8A")
        #expect(Hex.decode("00:ab FF") == [0x00, 0xAB, 0xFF])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test("DER integers are minimal and non-negative")
    func integers() {
        #expect(DER.unsignedInteger([0x00, 0x00, 0x7F]) == [0x02, 0x01, 0x7F])
        #expect(DER.unsignedInteger([0x80]) == [0x02, 0x02, 0x00, 0x80])
        #expect(DER.unsignedInteger([]) == [0x02, 0x01, 0x00])
    }

    @Test("DER lengths use the long form past 127 bytes")
    func lengths() {
        let long = DER.tlv(0x04, [UInt8](repeating: 1, count: 300))
        #expect(Array(long.prefix(4)) == [0x04, 0x82, 0x01, 0x2C])
    }

    @Test("Object identifiers encode their arcs in base 128")
    func oid() {
        #expect(DER.objectIdentifier([1, 2, 840, 10045, 3, 1, 7]) == [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07])
    }

    @Test("readTLV rejects truncated and mistagged input")
    func readTLV() throws {
        #expect(throws: DER.ParseError.truncated) { try DER.readTLV([0x04, 0x05, 0x01][...], tag: 0x04) }
        #expect(throws: DER.ParseError.unexpectedTag(expected: 0x04, found: 0x30)) { try DER.readTLV([0x30, 0x00][...], tag: 0x04) }
        let (contents, rest) = try DER.readTLV([0x04, 0x01, 0x09, 0xFF][...], tag: 0x04)
        #expect(Array(contents) == [0x09] && Array(rest) == [0xFF])
    }

    @Test("Base64 and PEM match RFC 4648 and RFC 7468")
    func base64() {
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode(Array("fooba".utf8)) == "Zm9vYmE=")
        #expect(Base64.encode(Array("foob".utf8)) == "Zm9vYg==")
        let pem = PEM.encode([UInt8](repeating: 0, count: 60), label: "TEST")
        let lines = pem.split(separator: "\n")
        #expect(lines.first == "-----BEGIN TEST-----" && lines.last == "-----END TEST-----")
        #expect(lines[1].count == 64 && lines[2].count == 16)
    }
}

@Suite("Configuration and paths")
struct ConfigTests {
    @Test("key = value lines, comments and repeats")
    func parse() {
        let config = SignetConfig(parsing: """
        # comment
        pkcs11-module = /usr/lib/a.so
          pkcs11-module=/usr/lib/b.so
        not a setting
        p11-kit-modules = no
        """)
        #expect(config.values("pkcs11-module") == ["/usr/lib/a.so", "/usr/lib/b.so"])
        #expect(config.value("p11-kit-modules") == "no")
        #expect(config.value("missing") == nil)
    }

    @Test("XDG variables decide the directories; relative ones are ignored")
    func paths() {
        let paths = SignetPaths(environment: ["HOME": "/home/a", "XDG_DATA_HOME": "/d", "XDG_STATE_HOME": "relative", "XDG_RUNTIME_DIR": "/run/user/1000"])
        #expect(paths.data == "/d/signet")
        #expect(paths.state == "/home/a/.local/state/signet")
        #expect(paths.config == "/home/a/.config/signet")
        #expect(paths.runtime == "/run/user/1000/signet")
        #expect(paths.softwareTokenConfig == "/d/signet/softhsm/softhsm2.conf")
    }
}

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
            var canonicalizer = MIMECanonicalizer()
            var output: [UInt8] = []
            var start = 0
            while start < input.count {
                let end = min(input.count, start + size)
                input[start..<end].withUnsafeBufferPointer { canonicalizer.feed($0, into: &output) }
                start = end
            }
            canonicalizer.finish(into: &output)
            #expect(output == whole, "piece size \(size)")
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
