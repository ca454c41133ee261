import Foundation
import SignetAgentClient
import SignetCore
@testable import SignetMail
import SignetOpenSSL
import SignetTestSupport
import Testing

/// Verdicts per signer and per layer, compared as values, for messages made here: by libcrypto directly
/// (`CMSBuilder`: several signers, algorithms Signet does not know) and by OpenSSL's `cms` tool (RSA-PSS,
/// P-256, PEM, detached DER, KEK recipients). In process: no agent may be asked (`refusingAgent`).
@Suite("Verdicts per signer")
struct SignerVerdictTests {
    let pki: TestPKI
    let content = Array("Content-Type: text/plain\r\n\r\nhello from the verdict tests\r\n".utf8)

    init() throws { pki = try TestPKI() }

    var policy: TrustPolicy {
        var policy = TrustPolicy()
        policy.trust = [pki.root]
        return policy
    }

    /// Opens `bytes` in process; an encrypted layer that reached for the agent fails the test.
    func open(_ bytes: [UInt8]) throws -> (MessageOpener, [UInt8]?) {
        let opener = try MessageOpener(options: policy, topLevel: bytes)
        opener.connectAgent = {
            Issue.record("the agent (and so the token) was asked for")
            throw SignetError(.failure, "no agent in this test")
        }
        let content = try opener.open(bytes)
        return (opener, content)
    }

    func outcomes(_ opener: MessageOpener) -> [[SignedMessage.SignatureOutcome]] { opener.signerVerdicts.map { $0.map(\.signature) } }

    @Test("One signer with an algorithm Signet cannot check does not hide a good one: good, then unsupported and named (15), and the content comes out")
    func unsupportedBesideGood() throws {
        let alice = try pki.person("Alice", algorithm: "rsa:2048"), bob = try pki.person("Bob", algorithm: "rsa:2048")
        var unknown = CMSBuilder.Signer.rsa(bob)
        unknown.signatureAlgorithm = "1.3.6.1.4.1.55555.1.1"
        let message = try CMSBuilder.signed(content, signers: [.rsa(alice), unknown])
        let (opener, opened) = try open(message)
        let verdicts = try #require(opener.signerVerdicts.first)
        #expect(verdicts.count == 2)
        #expect(verdicts[0].signature == .good && verdicts[0].chain == .trusted && verdicts[0].status == .success)
        guard case .unsupportedAlgorithm(let name) = verdicts[1].signature else { Issue.record("\(verdicts[1].signature)"); return }
        #expect(name.contains("1.3.6.1.4.1.55555.1.1"), "\(name)")
        #expect(verdicts[1].chain == nil, "a signature that was not checked is not judged further")
        #expect(opener.status == .unsupported)
        #expect(opened == content)
    }

    @Test("A signer whose certificate the message lacks is named by issuer and serial (14); the other signer is good")
    func missingCertificateNamed() throws {
        let alice = try pki.person("Alice", algorithm: "rsa:2048"), bob = try pki.person("Bob", algorithm: "ec")
        var absent = CMSBuilder.Signer.rsa(bob)
        absent.signatureAlgorithm = "1.2.840.10045.4.3.2"  // ecdsa-with-SHA256
        absent.parameters = nil
        absent.includeCertificate = false
        let message = try CMSBuilder.signed(content, signers: [.rsa(alice), absent])
        let (opener, _) = try open(message)
        // SignerInfos are a DER SET OF: sorted by their encoding, not in the order given.
        let verdicts = try #require(opener.signerVerdicts.first)
        #expect(verdicts.map(\.signature).sorted { "\($0)" < "\($1)" } == [.good, .signerCertificateMissing])
        let missing = try #require(verdicts.first { $0.signature == .signerCertificateMissing })
        let serial = try Run.checked("openssl", ["x509", "-in", pki.peer.path("Bob.pem"), "-noout", "-serial"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
        #expect(missing.identifier == .issuerAndSerial(issuer: "CN=Verdict Test Root", serial: serial))
        #expect(missing.certificate == nil && verdicts.first { $0.signature == .good }?.certificate?.emails == ["alice@example.org"])
        #expect(opener.status == .untrusted)
    }

    @Test("Content changed after signing is a bad content digest for every signer (13); a damaged signature is a bad signature and leaves the other signer good")
    func changedAndDamaged() throws {
        let alice = try pki.person("Alice", algorithm: "rsa:2048"), bob = try pki.person("Bob", algorithm: "rsa:2048")
        let message = try CMSBuilder.signed(content, signers: [.rsa(alice), .rsa(bob, digest: "SHA512")])
        #expect(outcomes(try open(message).0) == [[.good, .good]])
        let changed = replacing(Array("hello".utf8), with: Array("jello".utf8), in: message)
        let (opener, opened) = try open(changed)
        #expect(outcomes(opener) == [[.badContentDigest, .badContentDigest]])
        #expect(opener.status == .badSignature && opened == nil)
        // The last bytes of the message are the signature of the SignerInfo sorted last.
        var damaged = message
        damaged[damaged.count - 1] ^= 0x01
        let damagedOutcomes = try #require(outcomes(try open(damaged).0).first)
        #expect(damagedOutcomes.filter { $0 == .good }.count == 1)
        #expect(damagedOutcomes.contains { if case .badSignature = $0 { true } else { false } }, "\(damagedOutcomes)")
    }

    @Test("Two signers by OpenSSL's cms tool (RSA-PSS and P-256), detached in multipart/signed and opaque: each is good")
    func opensslTwoSigners() throws {
        _ = try pki.person("Alice", algorithm: "rsa:2048")
        _ = try pki.person("Carol", algorithm: "ec")
        let input = try pki.peer.file("content.txt", content)
        for form in [[], ["-nodetach"]] {
            let out = pki.peer.path("two.eml")
            try Run.checked("openssl", ["cms", "-sign", "-in", input, "-binary", "-out", out,
                                        "-signer", pki.peer.path("Alice.pem"), "-inkey", pki.peer.path("Alice.key"), "-keyopt", "rsa_padding_mode:pss",
                                        "-signer", pki.peer.path("Carol.pem"), "-inkey", pki.peer.path("Carol.key")] + form)
            let (opener, opened) = try open(try pki.peer.read("two.eml"))
            let verdicts = try #require(opener.signerVerdicts.first)
            #expect(verdicts.map(\.signature) == [.good, .good], "\(form)")
            #expect(Set(verdicts.map(\.signatureAlgorithm)) == ["RSASSA-PSS", "ecdsa-with-SHA256"], "\(verdicts.map(\.signatureAlgorithm))")
            #expect(opener.status == .success && opened == content)
        }
    }

    @Test("A detached signature read without its content says so (10), PEM CMS (BEGIN CMS, BEGIN PKCS7) is read, a truncated DER file is truncated")
    func smallHonestErrors() throws {
        _ = try pki.person("Alice", algorithm: "rsa:2048")
        let input = try pki.peer.file("content.txt", content)
        let signer = ["-signer", pki.peer.path("Alice.pem"), "-inkey", pki.peer.path("Alice.key")]
        try Run.checked("openssl", ["cms", "-sign", "-binary", "-in", input, "-outform", "DER", "-out", pki.peer.path("detached.p7s")] + signer)
        let (detached, _) = try open(try pki.peer.read("detached.p7s"))
        guard case .unreadable(1, .detachedSignatureWithoutContent)? = detached.layers.first else { Issue.record("\(detached.layers)"); return }
        #expect(detached.status == .malformed)

        try Run.checked("openssl", ["cms", "-sign", "-nodetach", "-binary", "-in", input, "-outform", "PEM", "-out", pki.peer.path("cms.pem")] + signer)
        try Run.checked("openssl", ["smime", "-sign", "-nodetach", "-binary", "-in", input, "-outform", "PEM", "-out", pki.peer.path("pkcs7.pem")] + signer)
        for name in ["cms.pem", "pkcs7.pem"] {
            let pem = try pki.peer.read(name)
            #expect(String(decoding: pem.prefix(22), as: UTF8.self).hasPrefix(name == "cms.pem" ? "-----BEGIN CMS-----" : "-----BEGIN PKCS7-----"))
            let (opener, opened) = try open(pem)
            #expect(outcomes(opener) == [[.good]], "\(name)")
            #expect(opened == content)
        }

        try Run.checked("openssl", ["cms", "-sign", "-nodetach", "-binary", "-in", input, "-outform", "DER", "-out", pki.peer.path("opaque.der")] + signer)
        let whole = try pki.peer.read("opaque.der")
        for cut in [whole.count / 3, whole.count - 10] {
            let (opener, _) = try open(Array(whole.prefix(cut)))
            guard case .unreadable(1, .truncated)? = opener.layers.first else { Issue.record("cut at \(cut): \(opener.layers)"); continue }
        }
    }

    @Test("Messages for a shared key (KEKRecipientInfo) or a password name their recipients by kind and key id, and are not for you without asking the token (11)")
    func kekAndPasswordRecipients() throws {
        let input = try pki.peer.file("content.txt", content)
        try Run.checked("openssl", ["cms", "-encrypt", "-aes256", "-in", input, "-outform", "DER", "-out", pki.peer.path("kek.der"),
                                    "-secretkey", String(repeating: "0f", count: 32), "-secretkeyid", "c0ffee01"])
        let (kek, _) = try open(try pki.peer.read("kek.der"))
        guard case .encrypted(1, let layer)? = kek.layers.first else { Issue.record("\(kek.layers)"); return }
        #expect(layer.recipients.map(\.kind) == [.keyEncryptionKey])
        #expect(layer.recipients.first?.keyIdentifier == [0xC0, 0xFF, 0xEE, 0x01])
        #expect(layer.recipients.first?.description.contains("key identifier c0ffee01") == true, "\(layer.recipients)")
        guard case .notForYou = layer.outcome else { Issue.record("\(layer.outcome)"); return }
        #expect(kek.status == .notForYou)

        try Run.checked("openssl", ["cms", "-encrypt", "-aes256", "-in", input, "-outform", "DER", "-out", pki.peer.path("pwri.der"), "-pwri_password", "correct horse"])
        let (password, _) = try open(try pki.peer.read("pwri.der"))
        guard case .encrypted(1, let pwri)? = password.layers.first else { Issue.record("\(password.layers)"); return }
        #expect(pwri.recipients.map(\.kind) == [.password])
        #expect(password.status == .notForYou)
    }

    @Test("ChaCha20-Poly1305 authEnveloped data (RFC 8103) is an unsupported content cipher, found before the token is used (15)")
    func chachaBeforeToken() throws {
        let alice = try pki.person("Alice", algorithm: "rsa:2048")
        let message = try CMSBuilder.chacha20Poly1305(content, to: alice)
        let (opener, opened) = try open(message)
        guard case .encrypted(1, let layer)? = opener.layers.first else { Issue.record("\(opener.layers)"); return }
        #expect(layer.cipher == EnvelopedMessage.ContentCipher(name: "ChaCha20-Poly1305", legacy: false, supported: false))
        guard case .unsupportedCipher("ChaCha20-Poly1305") = layer.outcome else { Issue.record("\(layer.outcome)"); return }
        #expect(opener.status == .unsupported && opened == nil)
    }

    func replacing(_ needle: [UInt8], with replacement: [UInt8], in haystack: [UInt8]) -> [UInt8] {
        var bytes = haystack
        for start in 0...(bytes.count - needle.count) where Array(bytes[start..<(start + needle.count)]) == needle {
            bytes.replaceSubrange(start..<(start + needle.count), with: replacement)
            return bytes
        }
        return bytes
    }
}
