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
        #expect(opener.verifiedContentMayBeWritten, "Alice's good signature proves the content")
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
        #expect(!opener.verifiedContentMayBeWritten && !opener.decryptedContentMayBeWritten)
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

    @Test("ChaCha20-Poly1305 authEnveloped data (RFC 8103) is recognised by its identifier and named, and its header read for the nonce, tag and RSA recipient")
    func chachaRecognised() throws {
        let alice = try pki.person("Alice", algorithm: "rsa:2048")
        let message = try CMSBuilder.chacha20Poly1305(content, to: alice)
        guard case .enveloped(let envelope) = MessageOpener.layer(of: message) else { Issue.record("not read as enveloped"); return }
        #expect(envelope.contentCipher == EnvelopedMessage.ContentCipher(name: "ChaCha20-Poly1305", legacy: false, supported: true))
        #expect(try envelope.recipients().map(\.kind) == [.keyTransport])
    }

    @Test("Compressed data (RFC 3274) is unsupported (15), not malformed: this OpenSSL has no zlib")
    func compressed() throws {
        let inner = CMSBuilder.sequence(CMSBuilder.oid(CMSBuilder.data), CMSBuilder.tlv(0xA0, CMSBuilder.octets([0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])))
        let body = CMSBuilder.sequence(CMSBuilder.integer(0), CMSBuilder.algorithm("1.2.840.113549.1.9.16.3.8"), inner)
        let message = CMSBuilder.sequence(CMSBuilder.oid("1.2.840.113549.1.9.16.1.9"), CMSBuilder.tlv(0xA0, body))
        let (opener, _) = try open(message)
        guard case .unreadable(1, .compressed)? = opener.layers.first else { Issue.record("\(opener.layers)"); return }
        #expect(opener.status == .unsupported)
    }

    @Test("Encrypting: the recipients named and always yourself, once; a certificate out of its validity is refused, naming its owner")
    func encryptionRecipients() throws {
        _ = try pki.person("Alice", algorithm: "rsa:2048")
        _ = try pki.person("Bob", algorithm: "rsa:2048")
        let alice = pki.peer.path("Alice.pem"), bob = pki.peer.path("Bob.pem")
        let chosen = try MailCertificates.encryptionRecipients([alice], ownFile: bob)
        #expect(chosen.map(\.emails) == [["alice@example.org"], ["bob@example.org"]])
        #expect(try MailCertificates.encryptionRecipients([bob], ownFile: bob).map(\.emails) == [["bob@example.org"]])
        #expect { try MailCertificates.encryptionRecipients([alice], ownFile: bob, at: Date().addingTimeInterval(30 * 86400)) } throws: { error in
            (error as? SignetError)?.message.contains("The certificate of CN=Alice is expired") == true
        }
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

/// Ed25519 signers (RFC 8419), verified with EVP since OpenSSL 3.0's CMS cannot, and checked independently by
/// python3-cryptography, which reads the message's own encoding of the signed attributes (OpenSSL re-encodes them).
@Suite("Ed25519 signers (RFC 8419)")
struct Ed25519Tests {
    let base: SignerVerdictTests

    init() throws { base = try SignerVerdictTests() }

    /// python3-cryptography's verdict on every Ed25519 signer of a DER SignedData: "good" or "bad" per signer.
    static let pythonCheck = #"""
    import sys, hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    def tlv(b, i):
        tag = b[i]; n = b[i + 1]; i += 2
        if n & 0x80:
            k = n & 0x7F; n = int.from_bytes(b[i:i + k], "big"); i += k
        return tag, i, i + n
    def children(b, start, end):
        out = []
        while start < end:
            tag, s, e = tlv(b, start); out.append((tag, start, s, e)); start = e
        return out
    der = open(sys.argv[1], "rb").read()
    _, s, e = tlv(der, 0)
    (_, _, _, _), (_, _, s0, e0) = children(der, s, e)
    fields = children(der, *tlv(der, s0)[1:])
    content = None
    encap = children(der, fields[2][2], fields[2][3])
    if len(encap) > 1:
        content = der[tlv(der, encap[1][2])[1]:tlv(der, encap[1][2])[2]]
    if len(sys.argv) > 2: content = open(sys.argv[2], "rb").read()
    certs = [x509.load_der_x509_certificate(der[c[1]:c[3]]) for c in children(der, fields[3][2], fields[3][3])] if fields[3][0] == 0xA0 else []
    for tag, st, s, e in children(der, fields[-1][2], fields[-1][3]):
        parts = children(der, s, e)
        sid = der[parts[1][1]:parts[1][3]]
        alg = der[parts[3][1]:parts[3][3]] if parts[3][0] == 0xA0 else None
        sig = parts[-1]; signature = der[sig[2]:sig[3]]
        if b"\x06\x03\x2b\x65\x70" not in der[parts[-2][1]:parts[-2][3]]: continue
        key = next(c.public_key() for c in certs if isinstance(c.public_key(), Ed25519PublicKey) and c.serial_number.to_bytes(32, "big").lstrip(b"\0") in sid)
        try:
            if alg is not None:
                signed = b"\x31" + alg[1:]
                digest = next(der[a[2]:a[3]] for a in children(der, parts[3][2], parts[3][3]) if b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x04" in der[a[1]:a[3]])
                key.verify(signature, signed)
                print("good" if hashlib.sha512(content).digest() in digest else "bad")
            else:
                key.verify(signature, content); print("good")
        except Exception:
            print("bad")
    """#

    func python(_ path: String) throws -> [String] {
        let script = try base.pki.peer.file("check.py", text: Self.pythonCheck)
        return try Run.checked("python3", [script, path]).output.split(separator: "\n").map(String.init)
    }

    @Test("Ed25519 with and without signed attributes, alone and beside an RSA signer, is good; python3-cryptography agrees")
    func good() throws {
        let carlos = try base.pki.person("Carlos", algorithm: "ed25519"), alice = try base.pki.person("Alice", algorithm: "rsa:2048")
        for signedAttributes in [true, false] {
            let message = try CMSBuilder.signed(base.content, signers: [.ed25519(carlos, signedAttributes: signedAttributes), .rsa(alice)])
            let (opener, opened) = try base.open(message)
            let verdicts = try #require(opener.signerVerdicts.first)
            #expect(verdicts.map(\.signature) == [.good, .good], "signed attributes \(signedAttributes)")
            #expect(Set(verdicts.map(\.signatureAlgorithm)) == ["ED25519", "rsaEncryption"], "\(verdicts.map(\.signatureAlgorithm))")
            #expect(verdicts.allSatisfy { $0.chain == .trusted } && opener.status == .success, "\(opener.status)")
            #expect(opened == base.content)
            #expect(try python(try base.pki.peer.file("ed.der", message)) == ["good"])
        }
    }

    @Test("A changed Ed25519 message is a bad content digest with signed attributes and a bad signature without; a damaged signature is bad; python3-cryptography agrees; a truncated one is truncated")
    func tampered() throws {
        let carlos = try base.pki.person("Carlos", algorithm: "ed25519")
        for signedAttributes in [true, false] {
            let message = try CMSBuilder.signed(base.content, signers: [.ed25519(carlos, signedAttributes: signedAttributes)])
            let changed = base.replacing(Array("hello".utf8), with: Array("jello".utf8), in: message)
            let (opener, opened) = try base.open(changed)
            let expected: SignedMessage.SignatureOutcome = signedAttributes ? .badContentDigest : .badSignature("")
            let outcome = try #require(opener.signerVerdicts.first?.first?.signature)
            if signedAttributes { #expect(outcome == expected) } else { guard case .badSignature = outcome else { Issue.record("\(outcome)"); continue } }
            #expect(opener.status == .badSignature && opened == nil)
            #expect(try python(try base.pki.peer.file("changed.der", changed)) == ["bad"])
            var damaged = message
            damaged[damaged.count - 1] ^= 0x01
            guard case .badSignature? = try base.open(damaged).0.signerVerdicts.first?.first?.signature else { Issue.record("damaged signature not bad"); continue }
            #expect(try python(try base.pki.peer.file("damaged.der", damaged)) == ["bad"])
            guard case .unreadable(1, .truncated)? = try base.open(Array(message.dropLast(20))).0.layers.first else { Issue.record("truncated"); continue }
        }
    }
}
