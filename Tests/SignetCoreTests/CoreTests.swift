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
