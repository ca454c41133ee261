import Foundation
import SignetCore
import SignetPKCS11
import SignetTestSupport
import Testing

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
let sha256DigestInfoPrefix: [UInt8] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]

func sha256(_ bytes: [UInt8], peer: OpenSSLPeer) throws -> [UInt8] {
    let path = try peer.file("digest-input-\(UUID().uuidString.prefix(6))", bytes)
    let result = try peer.run(["dgst", "-sha256", "-binary", path])
    return Array(result.stdout)
}

@Suite("Keys and operations on SoftHSM2, checked by OpenSSL")
struct OperationTests {
    let fixture = SoftHSMFixture.shared

    @Test("Login with a wrong code is a typed CKR_PIN_INCORRECT error; the right code logs in")
    func login() throws {
        let token = try fixture.makeToken("login")
        let session = try token.openSession()
        let error = #expect(throws: PKCS11Error.self) { try session.login(.user, code: SecretBytes(copying: Array("wrong-code".utf8))) }
        #expect(error?.code == .pinIncorrect)
        #expect(error?.description.contains("access code is wrong") == true)
        #expect(try !session.isLoggedIn())
        try session.login(.user, code: SecretBytes(copying: SoftHSMFixture.userCode))
        #expect(try session.isLoggedIn())
        try session.logout()
        #expect(try !session.isLoggedIn())
    }

    @Test("Generated RSA-2048 keys are sensitive and never extractable; private parts cannot be read")
    func rsaKeyIsSensitive() throws {
        let (_, session) = try fixture.loggedInSession("rsa-attr")
        let (_, privateKey) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x01], label: "mail")
        let values = try session.attributes(privateKey, [.sensitive, .extractable, .isPrivate, .token, .alwaysSensitive, .neverExtractable, .privateExponent, .value, .sign, .decrypt])
        #expect(values[.sensitive]?.ckBool == true)
        #expect(values[.extractable]?.ckBool == false)
        #expect(values[.isPrivate]?.ckBool == true)
        #expect(values[.token]?.ckBool == true)
        #expect(values[.alwaysSensitive]?.ckBool == true)
        #expect(values[.neverExtractable]?.ckBool == true)
        #expect(values[.sign]?.ckBool == true)
        #expect(values[.decrypt]?.ckBool == true)
        #expect(values[.privateExponent] == nil)
        #expect(values[.value] == nil)
    }

    @Test("RSA below 2048 bits is refused before reaching the token")
    func smallRSARefused() throws {
        let (_, session) = try fixture.loggedInSession("rsa-small")
        let error = #expect(throws: PKCS11Error.self) { try session.generateKeyPair(.rsa(bits: 1024), id: [9], label: "weak") }
        #expect(error?.code == .keySizeRange)
        #expect(try session.findObjects([Attribute(.id, bytes: [9])]).isEmpty)
    }

    @Test("RSA-2048 signatures (PKCS#1 v1.5 over DigestInfo, SHA256-RSA, PSS) verify with OpenSSL and are 256 bytes")
    func rsaSignatures() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("rsa-sign")
        let (publicKey, privateKey) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x02], label: "sign")
        let key = try session.publicKey(publicKey)
        #expect(key.bits == 2048)
        let message = Array("Signet signs this message.\r\n".utf8)
        let digest = try sha256(message, peer: peer)

        let v15 = try session.sign(.rsaPKCS, key: privateKey, data: sha256DigestInfoPrefix + digest, expectedLength: key.signatureLength)
        #expect(v15.count == 256)
        #expect(try peer.verify(publicKeyPEM: key.pem, message: message, signature: v15))

        let hashed = try session.sign(.sha256RSAPKCS, key: privateKey, data: message)
        #expect(hashed == v15)  // PKCS#1 v1.5 is deterministic

        let pss = try session.sign(.pss(hash: .sha256), key: privateKey, data: digest, expectedLength: 256)
        #expect(pss.count == 256)
        #expect(try peer.verify(publicKeyPEM: key.pem, message: message, signature: pss,
                                options: ["rsa_padding_mode:pss", "rsa_pss_saltlen:32", "rsa_mgf1_md:sha256"]))

        var tampered = message
        tampered[0] ^= 1
        #expect(try !peer.verify(publicKeyPEM: key.pem, message: tampered, signature: v15))
    }

    @Test("A short output-size guess costs a second C_Sign call, not a wrong signature")
    func bufferTooSmall() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("rsa-small-buffer")
        let (publicKey, privateKey) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x03], label: "small")
        let message = Array("two calls".utf8)
        let signature = try session.sign(.sha256RSAPKCS, key: privateKey, data: message, expectedLength: 16)
        #expect(signature.count == 256)
        #expect(try peer.verify(publicKeyPEM: try session.publicKey(publicKey).pem, message: message, signature: signature))
    }

    @Test("P-256 ECDSA signatures (r‖s, re-encoded as DER) verify with OpenSSL")
    func ecdsaSignature() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("ec-sign")
        let (publicKey, privateKey) = try session.generateKeyPair(.ec(.p256), id: [0x04], label: "ec")
        let key = try session.publicKey(publicKey)
        guard case .ec(let curve, let point) = key else { Issue.record("not an EC key"); return }
        #expect(curve == .p256)
        #expect(point.count == 65 && point[0] == 0x04)
        let message = Array("ECDSA over P-256".utf8)
        let raw = try session.sign(.ecdsa, key: privateKey, data: try sha256(message, peer: peer), expectedLength: key.signatureLength)
        #expect(raw.count == 64)
        #expect(try peer.verify(publicKeyPEM: key.pem, message: message, signature: ECDSASignature.der(fromRaw: raw)))
    }

    @Test("Public keys Signet encodes match what pkcs11-tool (OpenSC) reads from the token")
    func publicKeyMatchesOpenSC() throws {
        let peer = try OpenSSLPeer()
        let (token, session) = try fixture.loggedInSession("spki")
        let (publicKey, _) = try session.generateKeyPair(.ec(.p256), id: [0x05], label: "p256")
        let (rsaPublic, _) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x06], label: "rsa")
        for (id, handle) in [("05", publicKey), ("06", rsaPublic)] {
            let out = peer.path("pkcs11-tool-\(id).der")
            try Run.checked("pkcs11-tool", ["--module", fixture.modulePath, "--token-label", token.info.label,
                                            "--read-object", "--type", "pubkey", "--id", id, "--output-file", out])
            #expect(try peer.read("pkcs11-tool-\(id).der") == (try session.publicKey(handle)).subjectPublicKeyInfoDER)
        }
    }

    @Test("P-384 key pairs generate on the token and sign verifiably")
    func p384() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("ec384")
        let (publicKey, privateKey) = try session.generateKeyPair(.ec(.p384), id: [0x0b], label: "p384")
        let key = try session.publicKey(publicKey)
        #expect(key.bits == 384)
        let message = Array("P-384".utf8)
        let digestPath = try peer.file("m", message)
        let digest = Array(try peer.run(["dgst", "-sha384", "-binary", digestPath]).stdout)
        let raw = try session.sign(.ecdsa, key: privateKey, data: digest, expectedLength: key.signatureLength)
        #expect(raw.count == 96)
        #expect(try peer.verify(publicKeyPEM: key.pem, message: message, signature: ECDSASignature.der(fromRaw: raw), digest: "sha384"))
    }

    @Test("RSA decryption: PKCS#1 v1.5, OAEP SHA-1, and raw RSA, of OpenSSL ciphertexts")
    func rsaDecrypt() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("rsa-decrypt")
        let (publicKey, privateKey) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x07], label: "decrypt")
        let keyPath = try peer.file("pub.pem", text: try session.publicKey(publicKey).pem)
        let secret: [UInt8] = Array(0..<32)
        let input = try peer.file("secret", secret)

        func encrypt(_ name: String, _ options: [String]) throws -> [UInt8] {
            var arguments = ["pkeyutl", "-encrypt", "-pubin", "-inkey", keyPath, "-in", input, "-out", peer.path(name)]
            for option in options { arguments += ["-pkeyopt", option] }
            try Run.checked("openssl", arguments)
            return try peer.read(name)
        }

        let v15 = try encrypt("v15", [])
        #expect(try session.decrypt(.rsaPKCS, key: privateKey, ciphertext: v15) == secret)

        let oaep1 = try encrypt("oaep1", ["rsa_padding_mode:oaep"])
        #expect(try session.decrypt(.oaep(hash: .sha1), key: privateKey, ciphertext: oaep1) == secret)

        // SoftHSM2 2.6 accepts only SHA-1 OAEP without a label; other OAEP
        // variants must come back as a typed error (the agent then falls back
        // to raw RSA, as docs/architecture.md says).
        let label = Array("signet label".utf8)
        let oaep256 = try encrypt("oaep256", ["rsa_padding_mode:oaep", "rsa_oaep_md:sha256", "rsa_mgf1_md:sha256",
                                              "rsa_oaep_label:\(Hex.encode(label))"])
        let refused = #expect(throws: PKCS11Error.self) { try session.decrypt(.oaep(hash: .sha256, label: label), key: privateKey, ciphertext: oaep256) }
        #expect([.argumentsBad, .mechanismParamInvalid].contains(refused?.code))
        let rawOAEP = try session.decrypt(.rsaX509, key: privateKey, ciphertext: oaep256)
        #expect(rawOAEP.count == 256 && rawOAEP[0] == 0x00)

        let raw = try session.decrypt(.rsaX509, key: privateKey, ciphertext: v15)
        #expect(raw.count == 256)
        #expect(Array(raw.prefix(2)) == [0x00, 0x02])
        #expect(Array(raw.suffix(32)) == secret)
    }

    @Test("ECDH derive on the token gives the same secret as OpenSSL on the other side")
    func ecdhDerive() throws {
        let peer = try OpenSSLPeer()
        let (_, session) = try fixture.loggedInSession("ecdh")
        let (publicKey, privateKey) = try session.generateKeyPair(.ec(.p256), id: [0x08], label: "ecdh")
        let tokenKey = try session.publicKey(publicKey)
        let tokenPub = try peer.file("token.pem", text: tokenKey.pem)
        try Run.checked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", peer.path("peer.pem")])
        try Run.checked("openssl", ["pkey", "-in", peer.path("peer.pem"), "-pubout", "-outform", "DER", "-out", peer.path("peer.der")])
        try Run.checked("openssl", ["pkeyutl", "-derive", "-inkey", peer.path("peer.pem"), "-peerkey", tokenPub, "-out", peer.path("z")])
        let peerSPKI = try peer.read("peer.der")
        let peerPoint = Array(peerSPKI.suffix(65))  // the BIT STRING's uncompressed point ends the SPKI
        #expect(peerPoint[0] == 0x04)
        let secret = try session.deriveECDH(key: privateKey, peerPoint: peerPoint)
        #expect(secret == (try peer.read("z")))
        #expect(secret.count == 32)
    }

    @Test("Objects are created, found by class, id and label, and destroyed")
    func objectLifecycle() throws {
        let (_, session) = try fixture.loggedInSession("objects")
        let object = try session.createObject([
            Attribute(.objectClass, .data), Attribute(.token, true), Attribute(.label, text: "note"),
            Attribute(.value, bytes: Array("hello".utf8)),
        ])
        let found = try session.findObjects([Attribute(.objectClass, .data), Attribute(.label, text: "note")])
        #expect(found == [object])
        #expect(try session.attributes(object, [.value])[.value] == Array("hello".utf8))
        try session.destroyObject(object)
        #expect(try session.findObjects([Attribute(.label, text: "note")]).isEmpty)
    }

    @Test("Error paths: wrong mechanism for the key, an absent key, and signing while logged out")
    func errorPaths() throws {
        let (token, session) = try fixture.loggedInSession("errors")
        let (_, rsa) = try session.generateKeyPair(.rsa(bits: 2048), id: [0x0a], label: "rsa")
        let wrongMechanism = #expect(throws: PKCS11Error.self) { try session.sign(.ecdsa, key: rsa, data: Array(repeating: 1, count: 32)) }
        #expect(wrongMechanism?.code != nil && wrongMechanism?.code != .ok)
        let unknown = #expect(throws: PKCS11Error.self) {
            try session.sign(Mechanism(MechanismType(rawValue: 0x8000_5157)), key: rsa, data: [1])
        }
        #expect(unknown?.code == .mechanismInvalid)
        #expect(unknown?.description.contains("does not support this mechanism") == true)

        let absent = #expect(throws: PKCS11Error.self) { try session.sign(.rsaPKCS, key: ObjectHandle(rawValue: 0xdead), data: [1, 2, 3]) }
        #expect([.keyHandleInvalid, .objectHandleInvalid].contains(absent?.code))
        #expect(try session.findObjects([Attribute(.objectClass, .privateKey), Attribute(.id, bytes: [0x77])]).isEmpty)

        try session.logout()
        let other = try token.openSession()
        let privateKeys = try other.findObjects([Attribute(.objectClass, .privateKey)])
        #expect(privateKeys.isEmpty)  // private objects are invisible until login
        let loggedOut = #expect(throws: PKCS11Error.self) { try other.sign(.rsaPKCS, key: rsa, data: [1, 2, 3]) }
        #expect([.userNotLoggedIn, .keyHandleInvalid, .objectHandleInvalid].contains(loggedOut?.code))
    }

    @Test("The user code can be changed, and re-set by the SO with C_InitPIN")
    func changeAndReset() throws {
        let token = try fixture.makeToken("pins")
        let session = try token.openSession(readWrite: true)
        try session.login(.user, code: SecretBytes(copying: SoftHSMFixture.userCode))
        try session.setPIN(old: SecretBytes(copying: SoftHSMFixture.userCode), new: SecretBytes(copying: Array("new-code-1".utf8)))
        try session.logout()
        #expect(throws: PKCS11Error.self) { try session.login(.user, code: SecretBytes(copying: SoftHSMFixture.userCode)) }
        try session.login(.user, code: SecretBytes(copying: Array("new-code-1".utf8)))
        try session.logout()
        try session.login(.securityOfficer, code: SecretBytes(copying: SoftHSMFixture.soCode))
        try session.initPIN(SecretBytes(copying: Array("reset-code".utf8)))
        try session.logout()
        try session.login(.user, code: SecretBytes(copying: Array("reset-code".utf8)))
    }
}
