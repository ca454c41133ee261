import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
@testable import SignetMail
import SignetOpenSSL
import SignetTestSupport
import Testing

/// Verdicts of opening Thunderbird's signed corpus (Tests/testdata/thunderbird-smime, see its README),
/// in process: no agent, no binary, nothing printed.
@Suite("Verdicts of opening a signed message")
struct VerdictTests {
    static let smime = TestPaths.testData.appendingPathComponent("thunderbird-smime/smime")
    /// Before the corpus certificates expire (2031-01-26); the corpus was signed on 2026-01-26.
    static let pinned = "2026-02-01T00:00:00Z"

    static func message(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: smime.appendingPathComponent(name)))
    }

    static func policy(trustingTestCA: Bool = true, allowSHA1: Bool = false) -> TrustPolicy {
        var policy = TrustPolicy()
        policy.at = pinned
        policy.allowSHA1 = allowSHA1
        if trustingTestCA { policy.trust = [smime.appendingPathComponent("TestCA.pem").path] }
        return policy
    }

    static func open(_ bytes: [UInt8], _ policy: TrustPolicy = policy()) throws -> MessageOpener {
        let opener = try MessageOpener(options: policy, topLevel: bytes)
        _ = try opener.open(bytes)
        return opener
    }

    @Test("A good signature from a signer whose root is trusted is good, and its signer is kept only to be remembered later")
    func goodSignature() throws {
        let opener = try Self.open(try Self.message("alice.dsig.SHA256.multipart.eml"))
        #expect(opener.status == .success)
        let signer = try #require(opener.signerVerdicts.first?.first)
        #expect(signer.signature == .good && signer.chain == .trusted && signer.from == .matches("alice@example.com"))
        #expect(signer.digest == "SHA256" && signer.signingTime == Dates.parse("2026-01-26T14:40:10Z"))
        #expect(opener.trustedSigners.map(\.emails) == [["alice@example.com"]])
    }

    @Test("verify wants a signature and decrypt an encryption: a plain message and a signed-only one get their own messages")
    func layerVerdicts() throws {
        let plain = try Self.open(Array("Content-Type: text/plain\r\n\r\nhello\r\n".utf8))
        #expect(throws: SignetError.self) { try plain.requireSigned(opened: true) }
        do { try plain.requireSigned(opened: true) } catch { #expect(error.code == .malformed && error.message.contains("not a signed S/MIME message")) }
        #expect(throws: SignetError.self) { try plain.requireEncrypted() }
        do { try plain.requireEncrypted() } catch { #expect(error.code == .malformed && error.message.contains("not an S/MIME encrypted message")) }
        let signed = try Self.open(try Self.message("alice.dsig.SHA256.multipart.eml"))
        try signed.requireSigned(opened: true)
        #expect(throws: SignetError.self) { try signed.requireEncrypted() }
        do { try signed.requireEncrypted() } catch { #expect(error.message.contains("signed but not encrypted")) }
        #expect(!signed.noteUncheckedInnerLayer(size: MessageOpener.maximumSize))
        #expect(signed.noteUncheckedInnerLayer(size: MessageOpener.maximumSize + 1))
        guard case .unchecked(2, MessageOpener.maximumSize + 1)? = signed.layers.last else { Issue.record("\(signed.layers)"); return }
        #expect(signed.status == .untrusted)
    }

    @Test("A good signature from a signer whose root is not trusted is untrusted (14)")
    func untrustedSigner() throws {
        let opener = try Self.open(try Self.message("alice.dsig.SHA256.multipart.eml"), Self.policy(trustingTestCA: false))
        #expect(opener.status == .untrusted)
        #expect(opener.trustedSigners.isEmpty)
    }

    @Test("A message changed after signing has a bad signature (13)")
    func tampered() throws {
        let opener = try Self.open(try Self.message("alice.dsig.SHA256.multipart.bad.eml"))
        #expect(opener.status == .badSignature)
        // Its signed attributes verify: what changed is the content, whose digest is not the one signed.
        #expect(opener.signerVerdicts.map { $0.map(\.signature) } == [[.badContentDigest]])
    }

    @Test("A From: that is not an address of the signer's certificate is a header mismatch (16)")
    func fromMismatch() throws {
        let text = String(decoding: try Self.message("alice.dsig.SHA256.multipart.eml"), as: UTF8.self)
        #expect(text.contains("From: Alice@example.com"))
        let forged = text.replacingOccurrences(of: "From: Alice@example.com", with: "From: Mallory <mallory@example.com>")
        let opener = try Self.open(Array(forged.utf8))
        #expect(opener.status == .headerMismatch)
    }

    @Test("A SHA-1 signature is refused (15) unless SHA-1 is allowed")
    func sha1Refused() throws {
        let bytes = try Self.message("alice.sig.SHA1.opaque.eml")
        let refused = try Self.open(bytes)
        #expect(refused.status == .unsupported)
        // verify does not show content only a refused signature vouches for; decrypt writes it, with exit 15.
        #expect(!refused.verifiedContentMayBeWritten && refused.decryptedContentMayBeWritten)
        #expect(try Self.open(bytes, Self.policy(allowSHA1: true)).status == .success)
    }
}

extension MessageOpener {
    /// Each signed layer's signer verdicts, outermost first.
    var signerVerdicts: [[SignerVerdict]] {
        layers.compactMap { if case .signed(_, let layer) = $0 { layer.signers } else { nil } }
    }
}

@Suite("Certificate choice")
struct CertificateChoiceTests {
    static func alice() throws -> Certificate {
        // The signer's certificate as verifying finds it.
        try #require(try VerdictTests.open(try VerdictTests.message("alice.sig.SHA256.opaque.eml")).trustedSigners.first)
    }

    static func installed(_ certificate: Certificate, withKey: Bool) -> Inventory.Installed {
        let spki = certificate.subjectPublicKeyInfo
        let entry = ObjectEntry(uri: "pkcs11:token=T;id=%01;type=cert", kind: .certificate, label: "c", id: [1], keyType: nil, bits: 0, usages: [])
        let key = ObjectEntry(uri: "pkcs11:token=T;id=%01;type=private", kind: .privateKey, label: "k", id: [1], keyType: nil, bits: 2048,
                              usages: [.sign], publicKeyInfo: spki)
        return Inventory.Installed(entry: entry, certificate: certificate, publicKeyInfo: spki, privateKey: withKey ? key : nil)
    }

    @Test("A current mail certificate whose key is present is chosen for signing; one without its key is not")
    func chooseSigning() throws {
        let alice = try Self.alice()
        let at = Dates.parse(VerdictTests.pinned)!
        let chosen = CertificateChoice.choose(.signing, from: [Self.installed(alice, withKey: true)], config: SignetConfig(), at: at)
        #expect(chosen?.certificate.sha256 == alice.sha256)
        #expect(CertificateChoice.choose(.signing, from: [Self.installed(alice, withKey: false)], config: SignetConfig(), at: at) == nil)
        #expect(CertificateChoice.choose(.signing, from: [Self.installed(alice, withKey: true)], email: "bob@example.com",
                                         config: SignetConfig(), at: at) == nil)
    }

    @Test("Terminal controls in a certificate's addresses are escaped in the explanation itself, whoever prints it")
    func hostileAddressIsEscaped() throws {
        let peer = try OpenSSLPeer()
        // OpenSSL escapes controls in the subject it prints; the addresses of subjectAltName come as they are.
        let made = try peer.run(["req", "-x509", "-utf8", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                 "-subj", "/CN=Evil", "-addext", "subjectAltName=email:evil@example.org\u{1B}[2KVerification successful",
                                 "-keyout", peer.path("k.pem"), "-out", peer.path("c.pem")])
        try #require(made.status == 0, "\(made.errors)")
        let evil = try #require(try readCertificateFile(peer.path("c.pem")).certificates.first)
        try #require(evil.emails.contains { $0.unicodeScalars.contains("\u{1B}") }, "\(evil.emails)")
        let text = try #require(CertificateChoice.explanation(.signing, installed: [Self.installed(evil, withKey: true)],
                                                             email: "bob@example.com", config: SignetConfig()))
        #expect(!text.unicodeScalars.contains("\u{1B}"), "\(text.debugDescription)")
        #expect(text.contains("\\e[2kverification"), "\(text.debugDescription)")  // addresses are kept lowercased
    }

    @Test("A CA certificate does not fit, and the explanation says so and what to do")
    func caRefused() throws {
        let ca = try #require(try readCertificateFile(VerdictTests.smime.appendingPathComponent("TestCA.pem").path).certificates.first)
        let at = Dates.parse(VerdictTests.pinned)!
        #expect(CertificateChoice.reasons(ca, .signing, at: at).contains { $0.contains("CA certificate") })
        let text = try #require(CertificateChoice.explanation(.signing, installed: [Self.installed(ca, withKey: true)], config: SignetConfig(), at: at))
        #expect(text.contains("No certificate on your tokens can sign mail") && text.contains("signet cert import"))
    }
}

@Suite("Errors a person can act on")
struct SignetErrorTests {
    @Test("An agent failure keeps the agent's message and cause, and its code becomes the named exit status")
    func agentErrorBecomesStatus() {
        let error = SignetError(AgentClientError.agent(.notUnlocked, "The token is locked; run `signet unlock`."))
        #expect(error.code == .notUnlocked && error.exitCode == 6)
        #expect(error.message == "The token is locked; run `signet unlock`.")
        #expect(error.cause is AgentClientError)
        #expect(ExitStatus(AgentErrorCode.tokenRemoved) == .tokenAbsent && ExitStatus(AgentErrorCode.tokenFailure) == .tokenFailed)
        #expect(ExitStatus(nil) == .failure)
    }

    @Test("The worse of two verdicts wins: malformed over bad signature over untrusted over a header mismatch")
    func worse() {
        #expect(ExitStatus.worse(.headerMismatch, .untrusted) == .untrusted)
        #expect(ExitStatus.worse(.badSignature, .untrusted) == .badSignature)
        #expect(ExitStatus.worse(.success, .headerMismatch) == .headerMismatch)
        #expect(ExitStatus.worse(.malformed, .notForYou) == .malformed)
    }

    @Test("A file that cannot be read is a SignetError naming the file")
    func unreadableFile() {
        #expect { try readCertificateFile("/nonexistent/ca.pem") } throws: { error in
            (error as? SignetError)?.message == "Cannot read /nonexistent/ca.pem."
        }
    }
}
