import Foundation
import SignetAgentProtocol
import SignetOpenSSL
import SignetTestSupport
import Testing

/// `signet decrypt` against messages written by Thunderbird (NSS) and OpenSSL, with the
/// recipients' keys imported onto a SoftHSM2 token; `openssl cms -decrypt` with the original keys is the oracle.
@Suite("signet decrypt", .serialized)
final class DecryptTests {
    let agent: AgentFixture
    let peer: OpenSSLPeer
    static let code = "decrypt-1234"
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime")

    init() throws {
        agent = try AgentFixture()
        peer = try OpenSSLPeer()
        _ = try agent.makeToken("Mail", code: Self.code)
        for p12 in ["smime/Bob.p12", "smime-interop/Fran.p12", "smime-interop/Fran-ec.p12"] {
            let imported = try agent.signet(["import", Self.smime.appendingPathComponent(p12).path, "--password-fd", "0", "--code-fd", "0"],
                                            stdin: "nss\n\(Self.code)\n")
            guard imported.status == 0 else { throw TestFailure("import \(p12): \(imported.errors)") }
        }
    }

    deinit { _ = try? agent.signet(["agent", "stop"]) }

    /// The plaintext OpenSSL gets with the key from `p12`.
    func oracle(_ message: String, p12: String) throws -> Data {
        let path = Self.smime.appendingPathComponent(p12).path
        try Run.checked("openssl", ["pkcs12", "-in", path, "-passin", "pass:nss", "-nodes", "-legacy", "-out", peer.path("oracle.pem")])
        return try Run.checked("openssl", ["cms", "-decrypt", "-in", message, "-inkey", peer.path("oracle.pem"), "-binary"]).stdout
    }

    @Test("Messages from Thunderbird and OpenSSL decrypt to OpenSSL's bytes: RSA v1.5, OAEP (SHA-1, SHA-256, label), ECDH P-384", arguments: [
        ("smime/alice.env.eml", "smime/Bob.p12"),
        ("smime-interop/fran-oaep_ossl.env", "smime-interop/Fran.p12"),
        ("smime-interop/fran-oaep-label_ossl.env", "smime-interop/Fran.p12"),
        ("smime-interop/fran-oaep-sha256hash_ossl.env", "smime-interop/Fran.p12"),
        ("smime-interop/fran-oaep-sha256hash-sha256mgf_ossl.env", "smime-interop/Fran.p12"),
        ("smime-interop/fran-ec_ossl-aes128-sha256.env", "smime-interop/Fran-ec.p12"),
        ("smime-interop/fran-ec_ossl-aes256-sha512.env", "smime-interop/Fran-ec.p12"),
    ])
    func corpus(_ message: String, _ p12: String) throws {
        let path = Self.smime.appendingPathComponent(message).path
        _ = try agent.signet(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        let decrypted = try agent.signet(["decrypt", "--in", path])
        #expect(decrypted.status == 0, "\(decrypted.errors)")
        let expected = try oracle(path, p12: p12)
        #expect(!expected.isEmpty)
        #expect(decrypted.stdout == expected)
    }

    @Test("ChaCha20-Poly1305 (RFC 8103) built with libcrypto decrypts with the token's key, as DER (streamed), S/MIME and PEM (in memory); a changed tag or ciphertext and a truncated copy leave no plaintext")
    func chacha20Poly1305() throws {
        _ = try agent.signet(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("smime/Bob.p12").path, "-passin", "pass:nss", "-nodes", "-legacy",
                                    "-nocerts", "-out", peer.path("bob.key")])
        try Run.checked("openssl", ["pkcs12", "-in", Self.smime.appendingPathComponent("smime/Bob.p12").path, "-passin", "pass:nss", "-nokeys", "-clcerts",
                                    "-legacy", "-out", peer.path("bob.pem")])
        let bob = try CMSBuilder.Identity(key: peer.path("bob.key"), certificate: peer.path("bob.pem"))
        let content = Array("Content-Type: text/plain\r\n\r\nChaCha20-Poly1305 for Bob \u{2014} \(String(repeating: "x", count: 40000))\r\n".utf8)
        let message = try CMSBuilder.chacha20Poly1305(content, to: bob)
        let base64 = Data(message).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let forms = [
            ("der", message),
            ("smime", Array("MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n\(base64)\r\n".utf8)),
            ("pem", Array("-----BEGIN CMS-----\n\(base64)\n-----END CMS-----\n".utf8)),
        ]
        for (name, bytes) in forms {
            let result = try agent.signet(["decrypt", "--in", try peer.file("chacha.\(name)", bytes)])
            #expect(result.status == 0, "\(name): \(result.errors)")
            #expect(Array(result.stdout) == content, "\(name)")
            #expect(result.errors.contains("encrypted (ChaCha20-Poly1305) to"), "\(name): \(result.errors)")
        }
        let out = peer.path("chacha-plain.txt")
        var changedTag = message
        changedTag[changedTag.count - 1] ^= 0x01
        for (name, bytes) in [("tag", changedTag), ("ciphertext", try CMSBuilder.chacha20Poly1305(content, to: bob, tamper: true))] {
            let result = try agent.signet(["decrypt", "--in", try peer.file("changed.der", bytes), "-o", out])
            #expect(result.status == 12 && result.errors.contains("authentication tag is wrong"), "\(name): \(result.status) \(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: out), "\(name): plaintext written")
        }
        let cut = try agent.signet(["decrypt", "--in", try peer.file("cut.der", Array(message.prefix(message.count / 2))), "-o", out])
        #expect(cut.status == 12 && cut.errors.contains("truncated"), "\(cut.status) \(cut.errors)")
        #expect(!FileManager.default.fileExists(atPath: out))
        // OpenSSL's AES-GCM with a changed tag, as PEM: decrypted in memory by OpenSSL's CMS, and as damaged (12) as streamed.
        try Run.checked("openssl", ["cms", "-encrypt", "-aes-256-gcm", "-binary", "-in", try peer.file("gcm.txt", content), "-outform", "DER",
                                    "-out", peer.path("gcm.der"), peer.path("bob.pem")])
        var gcm = try peer.read("gcm.der")
        gcm[gcm.count - 1] ^= 0x01
        let pem = "-----BEGIN CMS-----\n" + Data(gcm).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]) + "\n-----END CMS-----\n"
        let changedGCM = try agent.signet(["decrypt", "--in", try peer.file("gcm.pem", text: pem), "-o", out])
        #expect(changedGCM.status == 12 && changedGCM.errors.contains("authentication tag is wrong"), "\(changedGCM.status) \(changedGCM.errors)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("Garbage, a message for someone else, a tampered message and a locked token each get their own exit status, and no output file")
    func failures() throws {
        _ = try agent.signet(["unlock", "--code-fd", "0"], stdin: "\(Self.code)\n")
        let out = peer.path("plain.txt")
        func decrypt(_ input: String) throws -> Int32 {
            let result = try agent.signet(["decrypt", "--in", input, "-o", out])
            #expect(!FileManager.default.fileExists(atPath: out), "output written for a failed decryption: \(result.errors)")
            #expect(!result.errors.isEmpty)
            return result.status
        }
        #expect(try decrypt(try peer.file("garbage", (0..<500).map { _ in UInt8.random(in: 0...255) })) == 10)
        #expect(try decrypt(Self.smime.appendingPathComponent("smime/TestCA.pem").path) == 10)

        // Encrypted by OpenSSL to a certificate that is on no token.
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("other.key"), "-out", peer.path("other.pem"),
                                    "-subj", "/CN=Someone Else", "-days", "2"])
        let plain = try peer.file("note.txt", text: "Content-Type: text/plain\r\n\r\nhello\r\n")
        try Run.checked("openssl", ["cms", "-encrypt", "-aes256", "-in", plain, "-out", peer.path("other.eml"), peer.path("other.pem")])
        #expect(try decrypt(peer.path("other.eml")) == 11)

        // Thunderbird's message to Bob with its RSA key-transport block altered: the token refuses to unwrap it.
        // (Altering CBC content instead is not detectable: S/MIME encryption without a signature has no integrity.)
        let original = try String(contentsOf: Self.smime.appendingPathComponent("smime/alice.env.eml"), encoding: .utf8)
        let (headers, body) = try #require(original.range(of: "\r\n\r\n").map { (original[..<$0.upperBound], original[$0.upperBound...]) })
        var der = try #require(Data(base64Encoded: String(body), options: .ignoreUnknownCharacters))
        let marker: [UInt8] = [0x04, 0x82, 0x01, 0x00]  // OCTET STRING of 256 bytes: the encrypted key
        let bytes = [UInt8](der)
        let start = try #require((0..<(bytes.count - 4)).first { Array(bytes[$0..<$0 + 4]) == marker })
        der[der.startIndex + start + 4 + 128] ^= 0xFF
        let tampered = try peer.file("tampered.eml", text: String(headers) + der.base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n")
        #expect(try decrypt(tampered) == 12)

        _ = try agent.signet(["lock"])
        #expect(try decrypt(Self.smime.appendingPathComponent("smime/alice.env.eml").path) == 6)
    }

    @Test("A refused key transport decides even when OpenSSL's random stand-in key passes the padding check (1 in 256; 2000 tries)")
    func refusedKeyNeverDecrypts() throws {
        _ = try agent.signet(["lock"])
        let client = try agent.client()
        guard case .objectPage(let page) = try client.call(.listObjectPage(token: nil, start: 0, certificateValues: false)), case let objects = page.objects else { throw TestFailure("no listing") }
        var bob: (Certificate, String, [UInt8])?
        for entry in objects where entry.kind == .certificate {
            guard case .certificate(let der) = try client.call(.getCertificate(object: entry.uri)) else { continue }
            let certificate = try Certificate(der: der)
            guard certificate.subject.contains("CN=Bob"),
                  let publicKey = objects.first(where: { $0.kind == .publicKey && $0.publicKeyInfo == certificate.subjectPublicKeyInfo }) else { continue }
            bob = (certificate, publicKey.uri.replacingOccurrences(of: "type=public", with: "type=private"), publicKey.publicKeyInfo)
        }
        let (certificate, keyURI, spki) = try #require(bob)
        let key = try AgentKey(client: client, uri: keyURI, subjectPublicKeyInfo: spki, onNotice: { _ in })
        let message = Array(try Data(contentsOf: Self.smime.appendingPathComponent("smime/alice.env.eml")))
        var opened = 0
        for _ in 0..<2000 {
            // Parsed afresh each time: OpenSSL keeps the content key it used in the structure.
            if (try? EnvelopedMessage(message).decrypt(certificate: certificate, key: key)) != nil { opened += 1 }
        }
        #expect(opened == 0, "garbage passed off as the message \(opened) times")
        #expect(key.lastFailure?.code == .notUnlocked)
    }
}

/// A token that fails while decrypting is the token's problem, with its own exit status;
/// only a damaged message is called damaged. The test wrapper module makes SoftHSM2 fail
/// (`fail-decrypt`) and stands in for pulling it (`absent`), which SoftHSM2 cannot do.
@Suite("signet decrypt: token failures", .serialized)
final class DecryptTokenFailureTests {
    static let code = "decrypt-1234"
    let agent: AgentFixture
    let flags: String
    let message = DecryptTests.smime.appendingPathComponent("smime/alice.env.eml").path

    init() throws {
        flags = try TestPaths.temporaryDirectory("signet-decrypt-flags").path
        agent = try AgentFixture(config: "presence-wait-seconds = 0.5", countingCodes: true, extraEnvironment: ["SIGNET_WRAPPER_FLAGS_DIR": flags])
        _ = try agent.makeToken("Mail", code: Self.code)
        let imported = try agent.signet(["import", DecryptTests.smime.appendingPathComponent("smime/Bob.p12").path, "--password-fd", "0", "--code-fd", "0"],
                                        stdin: "nss\n\(Self.code)\n")
        guard imported.status == 0 else { throw TestFailure("import: \(imported.errors)") }
    }

    deinit { _ = try? agent.signet(["agent", "stop"]) }

    @Test("A failing token exits 7 and a pulled one 5, both blaming the token, never \"damaged\" (12); then it decrypts again")
    func tokenFailuresBlameTheToken() throws {
        #expect(try agent.signet(["decrypt", "--in", message, "--code-fd", "0"], stdin: "\(Self.code)\n").status == 0)

        _ = FileManager.default.createFile(atPath: flags + "/fail-decrypt", contents: Data())
        let failing = try agent.signet(["decrypt", "--in", message])
        #expect(failing.status == 7, "\(failing.errors)")
        #expect(failing.errors.contains("the token could not decrypt"), "\(failing.errors)")
        #expect(failing.errors.contains("The message is not at fault"), "\(failing.errors)")
        #expect(!failing.errors.lowercased().contains("damaged"), "\(failing.errors)")
        #expect(failing.stdout.isEmpty)
        try FileManager.default.removeItem(atPath: flags + "/fail-decrypt")

        _ = FileManager.default.createFile(atPath: flags + "/absent", contents: Data())
        let pulled = try agent.signet(["decrypt", "--in", message])
        #expect(pulled.status == 5, "\(pulled.errors)")
        #expect(pulled.errors.contains("not presented") || pulled.errors.contains("removed"), "\(pulled.errors)")
        #expect(!pulled.errors.lowercased().contains("damaged"), "\(pulled.errors)")
        try FileManager.default.removeItem(atPath: flags + "/absent")

        // Back (once the agent's rescan lists it again), it must be unlocked again (a returned card always is locked), then it decrypts.
        #expect(eventually(timeout: .seconds(10)) {
            if case .tokens(let tokens)? = try? agent.client().call(.listTokens) { !tokens.isEmpty } else { false }
        }, "the agent did not list the token again")
        let back = try agent.signet(["decrypt", "--in", message, "--code-fd", "0"], stdin: "\(Self.code)\n")
        #expect(back.status == 0, "\(back.errors)")
        #expect(back.errors.contains("Unlocked."), "the returned token had to be unlocked again: \(back.errors)")
    }
}
