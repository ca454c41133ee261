import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension AuditAction {
    static let sign = AuditAction(rawValue: "sign")
    static let decrypt = AuditAction(rawValue: "decrypt")
    static let derive = AuditAction(rawValue: "derive")
}

/// The private-key operations: sign, decrypt, derive. Each waits for an absent
/// token, needs it unlocked, and returns only the operation's result.
enum KeyOperations: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        switch request {
        case .sign(let key, let mechanism, let data):
            Route(.sign, key: key) { (context) throws(AgentFailure) in
                .signature(try withPrivateKey(key, .sign, .sign, context) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    let length = try signatureLength(handle, in: &state)
                    let raw = try state.openSession().sign(try mechanism.pkcs11(), key: handle, data: data, expectedLength: length ?? 512)
                    return length.map { RSASignatures.exactLength(raw, modulusBytes: $0) } ?? raw
                })
            }
        case .decrypt(let key, let mechanism, let ciphertext):
            Route(.decrypt, key: key) { (context) throws(AgentFailure) in
                .plaintext(try withPrivateKey(key, .decrypt, .decrypt, context) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    try decrypt(ciphertext, mechanism: mechanism, key: handle, in: &state)
                })
            }
        case .derive(let key, let kdf, let sharedData, let peerPoint):
            Route(.derive, key: key) { (context) throws(AgentFailure) in
                .derived(try withPrivateKey(key, .derive, .derive, context) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    try state.openSession().deriveECDH(key: handle, peerPoint: peerPoint, kdf: ECKDF(rawValue: UInt(kdf)), sharedData: sharedData)
                })
            }
        default:
            nil
        }
    }

    /// Runs `body` with the private key `key` names, on its unlocked token (waiting for the
    /// token when absent), once the `clients` rules let the caller use it for `operation`; records
    /// `action` (with the rule's decision) when it succeeds, and notifies when `notify` asks.
    private static func withPrivateKey(_ key: String, _ operation: KeyOperation, _ action: AuditAction, _ context: RequestContext,
                                       _ body: (ObjectHandle, inout TokenState) throws(PKCS11Error) -> [UInt8]) throws(AgentFailure) -> [UInt8] {
        let uri = try context.parse(key)
        let worker = try context.agent.awaitToken(uri, notify: context.notify)
        let agent = context.agent
        let verdict = try ClientGuard.check(operation, action, key: key, uri: uri, worker: worker, context)
        let result = try worker.run { (state) throws(PKCS11Error) -> [UInt8] in
            try agent.requireUnlocked(&state)
            return try TokenWorker.withObject(uri, defaultType: "private", in: &state, body)
        }
        agent.record(action, result: "ok", peer: context.peer, start: context.start, token: worker.uriText, key: key, detail: verdict.detail,
                     decision: verdict.decision?.word, rule: verdict.rule)
        agent.recentUses.note(context.peer, key: verdict.keyName, operation: operation, decision: verdict.decision ?? .allowed)
        let settings = agent.currentSettings
        if settings.notify.contains(operation) {
            agent.notifier.used(program: context.peer.program, pid: context.peer.pid, key: verdict.keyName, operation: operation,
                                bus: NotificationBus(client: context.cache.environment.dbusAddress, uid: context.peer.uid, own: agent.sessionBus),
                                window: settings.notifyWindow)
        }
        return result
    }

    /// Decrypts an RSA ciphertext. A ciphertext that is not the modulus long, or that the token could not
    /// decrypt, is the input's fault, not the token's: it answers `CKR_ENCRYPTED_DATA_LEN_RANGE` or
    /// `CKR_ENCRYPTED_DATA_INVALID` (the client's data-invalid), and the audit log says so.
    private static func decrypt(_ ciphertext: [UInt8], mechanism: WireMechanism, key handle: ObjectHandle,
                                in state: inout TokenState) throws(PKCS11Error) -> [UInt8] {
        if let length = try signatureLength(handle, in: &state), ciphertext.count != length {
            throw .call(operation: "C_Decrypt (a ciphertext of \(ciphertext.count) bytes for a key of \(length))", code: .encryptedDataLenRange)
        }
        do throws(PKCS11Error) {
            return try state.openSession().decrypt(try mechanism.pkcs11(), key: handle, ciphertext: ciphertext)
        } catch {
            // SoftHSM2 answers CKR_GENERAL_ERROR when the padding is wrong (its AsymDecrypt); a token still
            // there that answered so for this ciphertext refused the ciphertext.
            guard error.code == .generalError, state.token.isStillPresent else { throw error }
            throw .call(operation: "C_Decrypt (the token could not decrypt it: bad padding, or not encrypted to this key)",
                        code: .encryptedDataInvalid)
        }
    }

    /// The RSA modulus length in bytes for `handle` (cached), or nil for EC keys.
    private static func signatureLength(_ handle: ObjectHandle, in state: inout TokenState) throws(PKCS11Error) -> Int? {
        if let cached = state.objects.signatureLength(handle) { return cached }
        let values = try state.openSession().attributes(handle, [.keyType, .modulus])
        let length = values[.keyType]?.ckULong == KeyType.rsa.rawValue ? values[.modulus].map { $0.count } : nil
        state.remember(signatureLength: length, for: handle)
        return length
    }
}

extension WireMechanism {
    /// The PKCS#11 mechanism, with OAEP or PSS parameters when the type needs them.
    func pkcs11() throws(PKCS11Error) -> Mechanism {
        let mechanismType = MechanismType(rawValue: UInt(type))
        switch mechanismType {
        case .rsaPKCSOAEP:
            let hashType = MechanismType(rawValue: UInt(hash == 0 ? UInt64(MechanismType.sha1.rawValue) : hash))
            return Mechanism(mechanismType, .oaep(hash: hashType, mgf: mgf == 0 ? MGF.matching(hashType) : MGF(rawValue: UInt(mgf)), label: label))
        case .rsaPKCSPSS, .sha256RSAPKCSPSS, .sha384RSAPKCSPSS, .sha512RSAPKCSPSS:
            guard hash != 0 else { throw .call(operation: "PSS needs a hash", code: .mechanismParamInvalid) }
            let hashType = MechanismType(rawValue: UInt(hash))
            return Mechanism(mechanismType, .pss(hash: hashType, mgf: mgf == 0 ? MGF.matching(hashType) : MGF(rawValue: UInt(mgf)),
                                                 saltLength: Int(saltLength)))
        default:
            return Mechanism(mechanismType)
        }
    }
}

/// RSA signatures are exactly the modulus length: a token that drops leading
/// zero bytes gets them back (OpenSSL rejects a short signature).
enum RSASignatures {
    static func exactLength(_ signature: [UInt8], modulusBytes: Int) -> [UInt8] {
        if signature.count < modulusBytes { return [UInt8](repeating: 0, count: modulusBytes - signature.count) + signature }
        if signature.count > modulusBytes, signature.prefix(signature.count - modulusBytes).allSatisfy({ $0 == 0 }) {
            return Array(signature.suffix(modulusBytes))
        }
        return signature
    }
}
