import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPKCS11
import SignetTestSupport
import Testing

/// PKCS#11 numbers used on the wire.
enum CKM {
    static let rsaPKCS: UInt64 = 0x1
    static let rsaX509: UInt64 = 0x3
    static let sha256RSAPKCS: UInt64 = 0x40
    static let rsaOAEP: UInt64 = 0x9
    static let rsaPSS: UInt64 = 0xD
    static let ecdsa: UInt64 = 0x1041
    static let sha1: UInt64 = 0x220
    static let sha256: UInt64 = 0x250
}

/// A token with an unlocked RSA-2048 and P-256 key, made through the agent.
struct UnlockedToken {
    let agent: AgentFixture
    let client: AgentClient
    let token: String
    let rsa: (privateKey: String, publicPEM: String)
    let ec: (privateKey: String, publicPEM: String)

    init(_ label: String, config: String = "", countingCodes: Bool = false, extraEnvironment: [String: String] = [:]) throws {
        agent = try AgentFixture(config: config, countingCodes: countingCodes, extraEnvironment: extraEnvironment)
        try agent.start()
        token = try agent.makeToken(label)
        client = try agent.client()
        let outcome = try agent.unlock(client, token: token, code: "123456")
        guard outcome.kind == .unlocked else { throw TestFailure("unlock: \(outcome.message)") }
        rsa = try UnlockedToken.generate(client, token, .rsa, bits: 2048, curve: "", id: 1, label: "rsa")
        ec = try UnlockedToken.generate(client, token, .ec, bits: 0, curve: "P-256", id: 2, label: "ec")
    }

    static func generate(_ client: AgentClient, _ token: String, _ type: WireKeyType, bits: UInt32, curve: String, id: UInt8, label: String) throws -> (String, String) {
        let response = try client.call(.generateKeyPair(token: token, keyType: type, bits: bits, curve: curve, id: [id], label: label))
        guard case .keyPair(_, let privateKey, let spki) = response else { throw TestFailure("generate answered \(response)") }
        return (privateKey, PEM.encode(spki, label: "PUBLIC KEY"))
    }
}

func sha256(_ data: [UInt8], _ peer: OpenSSLPeer) throws -> [UInt8] {
    let path = try peer.file("digest-input-\(UUID().uuidString.prefix(6))", data)
    let result = try Run.checked("openssl", ["dgst", "-sha256", "-binary", path])
    return Array(result.stdout)
}

@Suite("signet-agent requests", .serialized)
struct AgentRequestTests {
    @Test("Hello, status and list-tokens answer with the agent and the token")
    func statusAndTokens() throws {
        let agent = try AgentFixture()
        try agent.start()
        let uri = try agent.makeToken("Listed")
        let client = try agent.client()
        #expect(client.agentVersion == SignetVersion.string)
        guard case .status(let status) = try client.call(.status) else { Issue.record("no status"); return }
        #expect(status.pid == UInt32(agent.pid))
        #expect(status.tokens.map(\.uri) == [uri])
        #expect(status.tokens.first?.software == true)
        #expect(status.tokens.first?.triesLeft == 3)
        guard case .tokens(let tokens) = try client.call(.listTokens) else { Issue.record("no tokens"); return }
        #expect(tokens.map(\.label) == ["Listed"])
    }

    @Test("RSA and ECDSA signatures from the agent verify with OpenSSL")
    func signatures() throws {
        let setup = try UnlockedToken("Signer")
        let peer = try OpenSSLPeer()
        let message = Array("Signet signs this mail digest".utf8)
        let digest = try sha256(message, peer)

        guard case .signature(let hashed) = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.sha256RSAPKCS), data: message)) else {
            Issue.record("no signature"); return
        }
        #expect(try peer.verify(publicKeyPEM: setup.rsa.publicPEM, message: message, signature: hashed))

        let digestInfo: [UInt8] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20] + digest
        guard case .signature(let pkcs1) = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.rsaPKCS), data: digestInfo)) else {
            Issue.record("no signature"); return
        }
        #expect(pkcs1 == hashed, "PKCS#1 v1.5 is deterministic: the DigestInfo path gives the same signature")

        let pss = WireMechanism(type: CKM.rsaPSS, hash: CKM.sha256, mgf: 2, saltLength: 32)
        guard case .signature(let pssSignature) = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: pss, data: digest)) else {
            Issue.record("no signature"); return
        }
        #expect(try peer.verify(publicKeyPEM: setup.rsa.publicPEM, message: message, signature: pssSignature,
                                options: ["rsa_padding_mode:pss", "rsa_pss_saltlen:32"]))

        guard case .signature(let raw) = try setup.client.call(.sign(key: setup.ec.privateKey, mechanism: WireMechanism(type: CKM.ecdsa), data: digest)) else {
            Issue.record("no signature"); return
        }
        #expect(raw.count == 64)
        #expect(try peer.verify(publicKeyPEM: setup.ec.publicPEM, message: message, signature: ECDSASignature.der(fromRaw: raw)))
    }

    @Test("1000 RSA signatures are each exactly 256 bytes; those starting with a zero byte verify with OpenSSL")
    func exactLength() throws {
        let setup = try UnlockedToken("Lengths")
        let peer = try OpenSSLPeer()
        var leadingZero: [(message: [UInt8], signature: [UInt8])] = []
        for index in 0..<1000 {
            let message = Array("message \(index)".utf8)
            guard case .signature(let signature) = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.sha256RSAPKCS), data: message)) else {
                Issue.record("no signature"); return
            }
            #expect(signature.count == 256, "signature \(index) is \(signature.count) bytes")
            if signature.first == 0 || index < 3 { leadingZero.append((message, signature)) }
        }
        for (message, signature) in leadingZero {
            #expect(try peer.verify(publicKeyPEM: setup.rsa.publicPEM, message: message, signature: signature))
        }
    }

    @Test("Decrypt (PKCS#1 v1.5 and OAEP) recovers what OpenSSL encrypted; ECDH matches OpenSSL's derivation")
    func decryptAndDerive() throws {
        let setup = try UnlockedToken("Decrypter")
        let peer = try OpenSSLPeer()
        let key = try peer.file("rsa.pem", text: setup.rsa.publicPEM)
        let secret = try peer.file("secret", Array("a 32-byte content-encryption key".utf8))
        try Run.checked("openssl", ["pkeyutl", "-encrypt", "-pubin", "-inkey", key, "-in", secret, "-out", peer.path("v15.bin")])
        try Run.checked("openssl", ["pkeyutl", "-encrypt", "-pubin", "-inkey", key, "-in", secret, "-out", peer.path("oaep.bin"),
                                    "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1"])
        guard case .plaintext(let v15) = try setup.client.call(.decrypt(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.rsaPKCS), ciphertext: try peer.read("v15.bin"))) else {
            Issue.record("no plaintext"); return
        }
        #expect(v15 == Array("a 32-byte content-encryption key".utf8))
        let oaep = WireMechanism(type: CKM.rsaOAEP, hash: CKM.sha1, mgf: 1)
        guard case .plaintext(let oaepPlain) = try setup.client.call(.decrypt(key: setup.rsa.privateKey, mechanism: oaep, ciphertext: try peer.read("oaep.bin"))) else {
            Issue.record("no plaintext"); return
        }
        #expect(oaepPlain == Array("a 32-byte content-encryption key".utf8))
        guard case .plaintext(let raw) = try setup.client.call(.decrypt(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.rsaX509), ciphertext: try peer.read("v15.bin"))) else {
            Issue.record("no plaintext"); return
        }
        #expect(raw.count == 256 && raw[0] == 0 && raw[1] == 2, "raw RSA returns the padded block for the client to unpad")

        try Run.checked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", peer.path("peer.pem")])
        try Run.checked("openssl", ["pkey", "-in", peer.path("peer.pem"), "-pubout", "-outform", "DER", "-out", peer.path("peer.der")])
        let peerPoint = Array(try peer.read("peer.der").suffix(65))
        guard case .derived(let derived) = try setup.client.call(.derive(key: setup.ec.privateKey, kdf: 1, sharedData: [], peerPoint: peerPoint)) else {
            Issue.record("no secret"); return
        }
        let tokenKey = try peer.file("token-ec.pem", text: setup.ec.publicPEM)
        try Run.checked("openssl", ["pkeyutl", "-derive", "-inkey", peer.path("peer.pem"), "-peerkey", tokenKey, "-out", peer.path("shared.bin")])
        #expect(derived == (try peer.read("shared.bin")))
    }

    @Test("Keys list with URIs, types, sizes and usages; a stored certificate comes back byte for byte and can be deleted")
    func objectsAndCertificates() throws {
        let setup = try UnlockedToken("Objects")
        guard case .objectPage(let page) = try setup.client.call(.listObjectPage(token: setup.token, start: 0, certificateValues: false)), case let objects = page.objects else { Issue.record("no objects"); return }
        let privateKeys = objects.filter { $0.kind == .privateKey }
        #expect(privateKeys.count == 2)
        #expect(privateKeys.contains { $0.keyType == .rsa && $0.bits == 2048 && $0.usages.contains(.sign) && $0.usages.contains(.decrypt) })
        #expect(privateKeys.contains { $0.keyType == .ec && $0.bits == 256 && $0.usages.contains(.derive) })
        #expect(privateKeys.map(\.uri).contains(setup.rsa.privateKey))

        let peer = try OpenSSLPeer()
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("k.pem"), "-subj",
                                    "/C=CA/ST=ON/O=Signet Test/CN=12345", "-days", "30", "-outform", "DER", "-out", peer.path("c.der")])
        let der = try peer.read("c.der")
        guard case .stored(let certificateURI) = try setup.client.call(.storeCertificate(token: setup.token, der: der, id: [1], label: "rsa")) else {
            Issue.record("not stored"); return
        }
        guard case .certificate(let back) = try setup.client.call(.getCertificate(object: certificateURI)) else { Issue.record("no certificate"); return }
        #expect(back == der)
        guard case .objectPage(let page) = try setup.client.call(.listObjectPage(token: setup.token, start: 0, certificateValues: false)), case let after = page.objects else { Issue.record("no objects"); return }
        let certificate = try #require(after.first { $0.kind == .certificate })
        let subjectText = try Run.checked("openssl", ["x509", "-inform", "DER", "-in", peer.path("c.der"), "-noout", "-subject", "-nameopt", "RFC2253"]).output
        #expect(subjectText.contains("CN=12345"))
        #expect(!certificate.subject.isEmpty)

        #expect(throws: AgentClientError.self) { try setup.client.call(.storeCertificate(token: setup.token, der: [0x30, 0x03, 0x01, 0x01, 0xFF], id: [1], label: "bad")) }
        #expect(throws: AgentClientError.self) { try setup.client.call(.deleteObject(object: setup.token)) }
        _ = try setup.client.call(.deleteObject(object: certificateURI))
        do {
            _ = try setup.client.call(.getCertificate(object: certificateURI))
            Issue.record("the certificate is still there")
        } catch {
            #expect(error.code == .objectNotFound)
        }
    }

    @Test("An RSA key imported from OpenSSL's key file signs, and the signature verifies with OpenSSL's public key")
    func importKey() throws {
        let setup = try UnlockedToken("Importer")
        let peer = try OpenSSLPeer()
        try Run.checked("openssl", ["genrsa", "-traditional", "-out", peer.path("imported.pem"), "2048"])
        try Run.checked("openssl", ["rsa", "-in", peer.path("imported.pem"), "-traditional", "-outform", "DER", "-out", peer.path("imported.der")])
        try Run.checked("openssl", ["rsa", "-in", peer.path("imported.pem"), "-pubout", "-out", peer.path("imported-pub.pem")])
        // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }
        var rest = try DER.readTLV(try peer.read("imported.der")[...], tag: 0x30).contents
        var integers: [[UInt8]] = []
        while !rest.isEmpty {
            let (value, next) = try DER.readTLV(rest, tag: 0x02)
            integers.append(Array(value.drop { $0 == 0 }))
            rest = next
        }
        #expect(integers.count == 9)
        func secret(_ bytes: [UInt8]) -> SharedSecret { SharedSecret(SecretBytes(copying: bytes)) }
        let components: [ImportedKey.Component] = [.modulus, .publicExponent, .privateExponent, .prime1, .prime2, .exponent1, .exponent2, .coefficient]
        let key = ImportedKey(keyType: .rsa, components: zip(components, integers.dropFirst()).map { ($0.0, secret($0.1)) })
        guard case .stored(let uri) = try setup.client.call(.importKey(token: setup.token, key: key, id: [9], label: "imported")) else {
            Issue.record("not imported"); return
        }
        let message = Array("imported key signs".utf8)
        guard case .signature(let signature) = try setup.client.call(.sign(key: uri, mechanism: WireMechanism(type: CKM.sha256RSAPKCS), data: message)) else {
            Issue.record("no signature"); return
        }
        let publicPEM = try String(contentsOfFile: peer.path("imported-pub.pem"), encoding: .utf8)
        #expect(try peer.verify(publicKeyPEM: publicPEM, message: message, signature: signature))
        guard case .objectPage(let page) = try setup.client.call(.listObjectPage(token: setup.token, start: 0, certificateValues: false)), case let objects = page.objects else { Issue.record("no objects"); return }
        #expect(objects.contains { $0.uri == uri && $0.kind == .privateKey })
    }

    @Test("Locked tokens refuse signing with not-unlocked; lock and unlock round-trip; codes change and unblock")
    func lockUnlockChange() throws {
        let setup = try UnlockedToken("Locker")
        guard case .ok = try setup.client.call(.lock(token: setup.token)) else { Issue.record("lock"); return }
        do {
            _ = try setup.client.call(.sign(key: setup.ec.privateKey, mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: 1, count: 32)))
            Issue.record("signed while locked")
        } catch {
            #expect(error.code == .notUnlocked)
            #expect(error.description.contains("signet unlock"))
        }
        func code(_ text: String) -> SharedSecret { SharedSecret(SecretBytes(copying: Array(text.utf8))) }
        guard case .access(let changed) = try setup.client.call(.changeCode(token: setup.token, old: code("123456"), new: code("654321"), finalTry: false)) else {
            Issue.record("change"); return
        }
        #expect(changed.kind == .unlocked)
        #expect(try setup.agent.unlock(setup.client, token: setup.token, code: "123456").kind == .wrongCode)
        guard case .access(let unblocked) = try setup.client.call(.unblock(token: setup.token, soCode: code("so-code-12"), newCode: code("111111"), finalTry: false)) else {
            Issue.record("unblock"); return
        }
        #expect(unblocked.kind == .unlocked, "\(unblocked.message)")
        #expect(try setup.agent.unlock(setup.client, token: setup.token, code: "111111").kind == .unlocked)
        guard case .signature = try setup.client.call(.sign(key: setup.ec.privateKey, mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: 1, count: 32))) else {
            Issue.record("sign after unlock"); return
        }
    }

    @Test("Requests are pipelined: many sent at once are all answered, in order, with their ids")
    func pipelining() throws {
        let setup = try UnlockedToken("Pipeline")
        var ids: [UInt32] = []
        for index in 0..<50 {
            ids.append(try setup.client.send(.sign(key: setup.ec.privateKey, mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: UInt8(index), count: 32))))
        }
        var answered: [UInt32] = []
        for _ in 0..<50 {
            let (id, response) = try setup.client.receive(timeout: 30)
            guard case .signature = response else { Issue.record("answer \(response)"); return }
            answered.append(id)
        }
        #expect(answered == ids)
    }

    @Test("An unlocked token is locked again after the idle time, even while a program polls its status; a signature counts as use")
    func idleLock() throws {
        let setup = try UnlockedToken("Idle", config: "idle-lock-minutes = 0.03")
        // Signing every 0.5 s for 3 s keeps it unlocked past the 1.8 s idle time.
        for _ in 0..<6 {
            usleep(500_000)
            guard case .signature = try setup.client.call(.sign(key: setup.ec.privateKey, mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: 7, count: 32))) else {
                Issue.record("a signature in use was refused"); return
            }
        }
        // Polling status every 20 ms (as a panel applet might) is not use: the lock comes all the same.
        let started = Date()
        var unlocked = true
        while unlocked && Date().timeIntervalSince(started) < 6 {
            guard case .tokens(let tokens) = try setup.client.call(.listTokens) else { Issue.record("tokens"); return }
            unlocked = tokens.first?.unlocked ?? true
            usleep(20_000)
        }
        #expect(!unlocked, "still unlocked after 6 s of status polls with a 1.8 s idle lock")
        #expect(setup.agent.auditEntries.contains { $0["action"] as? String == "lock" && ($0["detail"] as? String ?? "").contains("idle") })
    }
}
