#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// Answers requests: resolves tokens and keys, runs the operation on the
/// token's worker, and records what was done in the audit log.
/// Never returns private key material or an access code.
final class RequestHandler: Sendable {
    /// Set once the token modules are loaded; requests that need tokens wait for it,
    /// so the socket answers (hello, handshake) while a slow module still initialises.
    private let registryGate = Gate<TokenRegistry>()

    var registry: TokenRegistry { registryGate.wait }

    /// Makes the tokens available to requests.
    func install(_ registry: TokenRegistry) { registryGate.open(registry) }

    let audit: AuditLog
    private let settings: Mutex<AgentSettings>
    private let accessManager: Mutex<AccessCodeManager>
    private let started = MonotonicClock.seconds()
    let stopping = Atomic<Bool>(false)
    let connectionCount: @Sendable () -> Int

    init(audit: AuditLog, settings: AgentSettings, connectionCount: @escaping @Sendable () -> Int) {
        self.audit = audit
        self.settings = Mutex(settings)
        accessManager = Mutex(AccessCodeManager(stateDirectory: settings.paths.state, policy: settings.lockoutPolicy))
        self.connectionCount = connectionCount
    }

    var currentSettings: AgentSettings { settings.withLock { $0 } }
    var manager: AccessCodeManager { accessManager.withLock { $0 } }

    /// Applies reloaded settings (SIGHUP).
    func reload(_ new: AgentSettings) {
        settings.withLock { $0 = new }
        accessManager.withLock { $0 = AccessCodeManager(stateDirectory: new.paths.state, policy: new.lockoutPolicy) }
    }

    /// Handles one request. `notify` sends an interim message (present your token).
    func handle(_ request: AgentRequest, peer: PeerProcess, connection: ConnectionCache = ConnectionCache(),
                notify: (AgentResponse) -> Void) -> AgentResponse {
        let start = MonotonicClock.seconds()
        do throws(AgentFailure) {
            return try dispatch(request, peer: peer, start: start, cache: connection, notify: notify)
        } catch {
            if let action = AuditAction(request) {
                record(action, result: "error:\(error.code)", peer: peer, start: start, request: request, detail: error.message)
            }
            return .error(error.code, message: error.message)
        }
    }

    private func dispatch(_ request: AgentRequest, peer: PeerProcess, start: Double, cache: ConnectionCache,
                          notify: (AgentResponse) -> Void) throws(AgentFailure) -> AgentResponse {
        func parse(_ text: String) throws(AgentFailure) -> PKCS11URI { try cache.uri(text) }
        switch request {
        case .hello:
            throw AgentFailure(.malformedFrame, "hello may be sent only once, first")
        case .status:
            return .status(AgentStatus(agentVersion: AgentMain.version, pid: UInt32(getpid()),
                                       uptimeSeconds: UInt64(MonotonicClock.seconds() - started),
                                       connections: UInt32(connectionCount()), tokens: tokenEntries()))
        case .listTokens:
            return .tokens(tokenEntries())
        case .listObjects(let token):
            // With no token known yet, one just inserted may be binding: rescan now rather than answer "none".
            let workers = try token.map { (text) throws(AgentFailure) in [try registry.resolve(try parse(text))] }
                ?? (registry.presentWorkers.isEmpty ? registry.refresh() : registry.presentWorkers)
            var objects: [ObjectEntry] = []
            for worker in workers { objects += try worker.run(use: false) { (state) throws(PKCS11Error) in try ObjectListing.list(&state) } }
            return .objects(objects)
        case .getCertificate(let object):
            let uri = try parse(object)
            let worker = try registry.resolve(uri)
            let der = try worker.run(use: false) { (state) throws(PKCS11Error) -> [UInt8] in
                try TokenWorker.withObject(uri, defaultType: "cert", in: &state) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    guard let value = try state.openSession().attributes(handle, [.value])[.value] else { throw .objectNotFound(object) }
                    return value
                }
            }
            return .certificate(der: der)
        case .unlock(let token, let code, let finalTry):
            let worker = try awaitToken(token.map(parse), notify: notify)
            let (result, wasLocked) = try worker.run { (state) throws(PKCS11Error) -> (AccessResult, Bool) in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let wasLocked = manager.status(target).lockedRemaining != nil
                let result = code.use { manager.unlock(target, code: $0, allowFinalTry: finalTry) }
                if result == .unlocked || result == .alreadyUnlocked { state.unlocked = true }
                return (result, wasLocked)
            }
            recordAccess("unlock", result, wasLocked: wasLocked, worker: worker, peer: peer, start: start)
            return .access(AccessOutcome(result))
        case .lock(let token):
            let workers = try token.map { (text) throws(AgentFailure) in [try registry.resolve(try parse(text))] } ?? registry.presentWorkers
            for worker in workers {
                let wasUnlocked = try worker.run(use: false) { (state) throws(PKCS11Error) -> Bool in state.logOut() }
                if wasUnlocked { record(.lock, result: "ok", peer: peer, start: start, token: worker.uriText) }
            }
            return .ok(message: workers.isEmpty ? "No token is present." : "Locked.")
        case .sign(let key, let mechanism, let data):
            let uri = try parse(key)
            let worker = try awaitToken(uri, notify: notify)
            let signature = try worker.run { (state) throws(PKCS11Error) -> [UInt8] in
                try requireUnlocked(&state)
                return try TokenWorker.withObject(uri, defaultType: "private", in: &state) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    let length = try signatureLength(handle, in: &state)
                    let raw = try state.openSession().sign(try mechanism.pkcs11(), key: handle, data: data, expectedLength: length ?? 512)
                    return length.map { RSASignatures.exactLength(raw, modulusBytes: $0) } ?? raw
                }
            }
            record(.sign, result: "ok", peer: peer, start: start, token: worker.uriText, key: key)
            return .signature(signature)
        case .decrypt(let key, let mechanism, let ciphertext):
            let uri = try parse(key)
            let worker = try awaitToken(uri, notify: notify)
            let plaintext = try worker.run { (state) throws(PKCS11Error) -> [UInt8] in
                try requireUnlocked(&state)
                return try TokenWorker.withObject(uri, defaultType: "private", in: &state) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    try state.openSession().decrypt(try mechanism.pkcs11(), key: handle, ciphertext: ciphertext)
                }
            }
            record(.decrypt, result: "ok", peer: peer, start: start, token: worker.uriText, key: key)
            return .plaintext(plaintext)
        case .derive(let key, let kdf, let sharedData, let peerPoint):
            let uri = try parse(key)
            let worker = try awaitToken(uri, notify: notify)
            let secret = try worker.run { (state) throws(PKCS11Error) -> [UInt8] in
                try requireUnlocked(&state)
                return try TokenWorker.withObject(uri, defaultType: "private", in: &state) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                    try state.openSession().deriveECDH(key: handle, peerPoint: peerPoint, kdf: ECKDF(rawValue: UInt(kdf)), sharedData: sharedData)
                }
            }
            record(.derive, result: "ok", peer: peer, start: start, token: worker.uriText, key: key)
            return .derived(secret)
        case .generateKeyPair(let token, let keyType, let bits, let curveName, let id, let label):
            let spec: KeySpec
            switch keyType {
            case .rsa:
                guard bits >= UInt32(KeySpec.minimumRSABits), bits <= 8192 else {
                    throw AgentFailure(.invalidArgument, "RSA keys must be 2048 to 8192 bits; \(bits) was asked.")
                }
                spec = .rsa(bits: Int(bits))
            case .ec:
                guard let curve = NamedCurve(rawValue: curveName) else {
                    throw AgentFailure(.invalidArgument, "Unknown curve \"\(curveName)\"; use P-256, P-384 or P-521.")
                }
                spec = .ec(curve)
            }
            guard !id.isEmpty, id.count <= 64 else { throw AgentFailure(.invalidArgument, "A key id must be 1 to 64 bytes.") }
            let worker = try registry.resolve(try token.map(parse))
            let (publicURI, privateURI, spki) = try worker.run { (state) throws(PKCS11Error) -> (String, String, [UInt8]) in
                try requireUnlocked(&state)
                let session = try state.openSession()
                if !(try session.findObjects([Attribute(.id, bytes: id)], limit: 1)).isEmpty {
                    throw .call(operation: "generate: an object with this id already exists", code: .templateInconsistent)
                }
                let (publicKey, _) = try session.generateKeyPair(spec, id: id, label: label)
                state.objectsChanged()
                let spki = try session.publicKey(publicKey).subjectPublicKeyInfoDER
                let base = state.token.uri.setting("id", id).setting("object", Array(label.utf8))
                return (base.setting("type", Array("public".utf8)).description, base.setting("type", Array("private".utf8)).description, spki)
            }
            record(.keyGenerated, result: "ok", peer: peer, start: start, token: worker.uriText, key: privateURI)
            return .keyPair(publicKey: publicURI, privateKey: privateURI, subjectPublicKeyInfo: spki)
        case .storeCertificate(let token, let der, let id, let label):
            let names = try CertificateNames(der: der)
            let worker = try registry.resolve(try token.map(parse))
            let uri = try worker.run { (state) throws(PKCS11Error) -> String in
                try requireUnlocked(&state)
                _ = try state.openSession().createObject([
                    Attribute(.objectClass, .certificate), Attribute(.certificateType, ulong: 0 /* CKC_X_509 */),
                    Attribute(.token, true), Attribute(.isPrivate, false), Attribute(.modifiable, true),
                    Attribute(.id, bytes: id), Attribute(.label, text: label), Attribute(.value, bytes: der),
                    Attribute(.subject, bytes: names.subject), Attribute(.issuer, bytes: names.issuer),
                    Attribute(.serialNumber, bytes: names.serialNumber),
                ])
                state.objectsChanged()
                return state.token.uri.setting("id", id).setting("object", Array(label.utf8)).setting("type", Array("cert".utf8)).description
            }
            record(.certificateStored, result: "ok", peer: peer, start: start, token: worker.uriText, key: uri)
            return .stored(object: uri)
        case .deleteObject(let object):
            let uri = try parse(object)
            guard uri.text("type") != nil, uri.value("id") != nil || uri.value("object") != nil else {
                throw AgentFailure(.invalidArgument, "Name the object to delete with type= and id= or object= (see `signet keys`).")
            }
            let worker = try registry.resolve(uri)
            try worker.run { (state) throws(PKCS11Error) in
                try requireUnlocked(&state)
                try TokenWorker.withObject(uri, defaultType: "cert", in: &state) { (handle, state) throws(PKCS11Error) in
                    try state.openSession().destroyObject(handle)
                }
                state.objectsChanged()
            }
            record(.objectDeleted, result: "ok", peer: peer, start: start, token: worker.uriText, key: object)
            return .ok(message: "Deleted.")
        case .importKey(let token, let key, let id, let label):
            let worker = try registry.resolve(try token.map(parse))
            let uri = try worker.run { (state) throws(PKCS11Error) -> String in
                try requireUnlocked(&state)
                let session = try state.openSession()
                if !(try session.findObjects([Attribute(.id, bytes: id)], limit: 1)).isEmpty {
                    throw .call(operation: "import: an object with this id already exists", code: .templateInconsistent)
                }
                try KeyImport.create(key, id: id, label: label, session: session)
                state.objectsChanged()
                return state.token.uri.setting("id", id).setting("object", Array(label.utf8)).setting("type", Array("private".utf8)).description
            }
            record(.keyImported, result: "ok", peer: peer, start: start, token: worker.uriText, key: uri)
            return .stored(object: uri)
        case .changeCode(let token, let old, let new, let finalTry):
            let worker = try awaitToken(token.map(parse), notify: notify)
            let (result, wasLocked) = try worker.run { (state) throws(PKCS11Error) -> (AccessResult, Bool) in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let wasLocked = manager.status(target).lockedRemaining != nil
                return (old.use { old in new.use { new in manager.changeCode(target, old: old, new: new, allowFinalTry: finalTry) } }, wasLocked)
            }
            recordAccess("pin-changed", result, wasLocked: wasLocked, worker: worker, peer: peer, start: start)
            return .access(AccessOutcome(result))
        case .unblock(let token, let soCode, let newCode, let finalTry):
            let worker = try awaitToken(token.map(parse), notify: notify)
            let (result, wasLocked) = try worker.run { (state) throws(PKCS11Error) -> (AccessResult, Bool) in
                // The administrator logs in on the same token: the user must be logged out first.
                state.logOut()
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let wasLocked = manager.status(target, role: .so).lockedRemaining != nil
                return (soCode.use { so in newCode.use { new in manager.unblock(target, soCode: so, newCode: new, allowFinalTry: finalTry) } }, wasLocked)
            }
            recordAccess("pin-unblocked", result, wasLocked: wasLocked, worker: worker, peer: peer, start: start, role: .so)
            return .access(AccessOutcome(result, role: .so))
        case .initSoftwareToken(let label, let userCode, let soCode):
            guard !label.isEmpty, label.utf8.count <= 32 else { throw AgentFailure(.invalidArgument, "A token label is 1 to 32 bytes.") }
            let context = registry.context
            let outcome: Result<Token, SoftwareTokens.Failure> = userCode.use { user in
                soCode.use { so in
                    do throws(SoftwareTokens.Failure) {
                        return .success(try SoftwareTokens.create(in: context, label: label, userCode: user, soCode: so))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            let created: Token
            switch outcome {
            case .success(let token): created = token
            case .failure(.softHSMMissing): throw AgentFailure(.unsupported, SoftwareTokens.Failure.softHSMMissing.description)
            case .failure(let error): throw AgentFailure(.tokenFailure, error.description)
            }
            registry.refresh()
            record(.softwareTokenCreated, result: "ok", peer: peer, start: start, token: created.uri.description)
            return .stored(object: created.uri.description)
        case .shutdown:
            record(.agentStop, result: "ok", peer: peer, start: start, detail: "shutdown request")
            return .ok(message: "The agent is stopping.")
        }
    }

    // MARK: Helpers

    /// The token `uri` selects; when none is present, asks the client to present it and waits.
    private func awaitToken(_ uri: PKCS11URI?, notify: (AgentResponse) -> Void) throws(AgentFailure) -> TokenWorker {
        do throws(AgentFailure) {
            return try registry.resolve(uri)
        } catch where error.code == .noToken {
            if let uri, !registry.mayAppear(uri) {
                let names = registry.known.names
                throw AgentFailure(.noToken, "No token you have used matches \(uri). "
                    + (names.isEmpty ? "No token has been seen yet: insert yours and run `signet tokens`."
                                     : "Known tokens: \(names.prefix(8).joined(separator: ", ")). Check the URI with `signet tokens`, or insert the token and try again."))
            }
            let wait = currentSettings.presenceWait
            let what = uri.map { $0.text("token").map { "\"\($0)\"" } ?? $0.description } ?? "your token"
            notify(.notice(.presentToken, message: "Present \(what): insert it or tap it on the reader (waiting \(Int(wait)) s)."))
            let deadline = MonotonicClock.seconds() + wait
            while MonotonicClock.seconds() < deadline, !stopping.load(ordering: .relaxed) {
                usleep(200_000)
                registry.refresh()
                if let worker = try? registry.resolve(uri) { return worker }
            }
            if stopping.load(ordering: .relaxed) { throw AgentFailure(.shuttingDown, "The agent is stopping; try again once it has restarted.") }
            throw AgentFailure(.tokenAbsent, "\(what.prefix(1).uppercased() + what.dropFirst()) was not presented within \(Int(wait)) s. Present it and try again.")
        }
    }

    private func requireUnlocked(_ state: inout TokenState) throws(PKCS11Error) {
        _ = try state.openSession()
        guard state.unlocked else { throw .call(operation: "the token is locked", code: .userNotLoggedIn) }
    }

    /// The RSA modulus length in bytes for `handle` (cached), or nil for EC keys.
    private func signatureLength(_ handle: ObjectHandle, in state: inout TokenState) throws(PKCS11Error) -> Int? {
        if let cached = state.objects.signatureLength(handle) { return cached }
        let values = try state.openSession().attributes(handle, [.keyType, .modulus])
        let length = values[.keyType]?.ckULong == KeyType.rsa.rawValue ? values[.modulus].map { $0.count } : nil
        state.remember(signatureLength: length, for: handle)
        return length
    }

    private func tokenEntries() -> [TokenEntry] {
        let manager = self.manager
        // The housekeeping thread rescans slots every second: listing does not wait for a
        // rescan (a module probing an unknown card can take seconds).
        var gone = false
        defer { if gone { registry.refresh() } }  // a token found gone: the next request must know it at once
        return registry.presentWorkers.compactMap { worker in
            do throws(AgentFailure) {
                return try entry(worker, manager)
            } catch {
                if error.code == .tokenRemoved { gone = true }
                return nil
            }
        }
    }

    private func entry(_ worker: TokenWorker, _ manager: AccessCodeManager) throws(AgentFailure) -> TokenEntry {
        try worker.run(use: false) { (state) throws(PKCS11Error) -> TokenEntry in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let status = manager.status(target)
                return TokenEntry(
                    uri: state.token.uri.description, label: state.token.info.label, manufacturer: state.token.info.manufacturer,
                    model: state.token.info.model, serial: state.token.info.serialNumber, software: state.token.isSoftware,
                    unlocked: state.unlocked, failures: UInt32(status.failures), triesLeft: UInt32(status.triesLeft),
                    lockedSeconds: status.lockedRemaining.map { UInt32($0.seconds.rounded(.up)) },
                    tokenCounter: status.card.words, ledgerDamage: status.damaged)
        }
    }

    // MARK: Audit

    private func recordAccess(_ action: String, _ result: AccessResult, wasLocked: Bool, worker: TokenWorker, peer: PeerProcess,
                              start: Double, role: CodeRole = .user) {
        let token = worker.uriText
        let outcome = AccessOutcome(result, role: role)
        let name: String = switch outcome.kind {
        case .unlocked: "ok"
        case .alreadyUnlocked: "already-unlocked"
        case .wrongCode: "wrong-code"
        case .locked: wasLocked ? "refused-locked" : "wrong-code"
        case .cardFinalTry: "card-final-try"
        case .cardBlocked: "card-blocked"
        case .invalidLength: "invalid-length"
        case .notPresented: "not-presented"
        case .failed: "failed"
        case .ledgerDamaged: "ledger-damaged"
        }
        audit.record(AuditEvent(action: action, result: name, token: token, peer: peer,
                                durationMilliseconds: (MonotonicClock.seconds() - start) * 1000))
        // The attempt that used the last try starts a lock.
        if case .locked(let remaining, _, let failures) = result {
            if !wasLocked {
                audit.record(AuditEvent(action: AuditAction.lockoutStart.rawValue, result: "locked", token: token, peer: peer,
                                        detail: "locked for \(AccessResult.words(remaining)) after \(failures) wrong codes"))
            }
            worker.noteLockout(until: MonotonicClock.seconds() + remaining.seconds)
        }
    }

    func record(_ action: AuditAction, result: String, peer: PeerProcess?, start: Double, token: String? = nil, key: String? = nil,
                request: AgentRequest? = nil, detail: String? = nil) {
        var token = token, key = key
        if let request, token == nil, key == nil { (token, key) = AuditAction.subjects(of: request) }
        audit.record(AuditEvent(action: action.rawValue, result: result, token: token, key: key, peer: peer,
                                durationMilliseconds: (MonotonicClock.seconds() - start) * 1000, detail: detail))
    }
}

/// Per-connection memory: parsed URIs, so a client signing with the same key
/// again does not pay for parsing its URI again. Used by one thread only.
final class ConnectionCache {
    private var uris: [String: PKCS11URI] = [:]

    func uri(_ text: String) throws(AgentFailure) -> PKCS11URI {
        if let known = uris[text] { return known }
        do throws(PKCS11URI.ParseError) {
            let parsed = try PKCS11URI(parsing: text)
            if uris.count >= 64 { uris.removeAll() }
            uris[text] = parsed
            return parsed
        } catch {
            throw AgentFailure(.invalidArgument, error.description)
        }
    }
}

/// The actions the audit log names.
enum AuditAction: String {
    case unlock, lock, sign, decrypt, derive
    case keyGenerated = "key-generated"
    case certificateStored = "certificate-stored"
    case objectDeleted = "object-deleted"
    case keyImported = "key-imported"
    case pinChanged = "pin-changed"
    case pinUnblocked = "pin-unblocked"
    case softwareTokenCreated = "software-token-created"
    case connectionRefused = "connection-refused"
    case agentStart = "agent-start"
    case agentStop = "agent-stop"
    case lockoutStart = "lockout-start"
    case lockoutEnd = "lockout-end"

    /// The action a failed request is recorded under (reads are not recorded).
    init?(_ request: AgentRequest) {
        switch request {
        case .unlock: self = .unlock
        case .lock: self = .lock
        case .sign: self = .sign
        case .decrypt: self = .decrypt
        case .derive: self = .derive
        case .generateKeyPair: self = .keyGenerated
        case .storeCertificate: self = .certificateStored
        case .deleteObject: self = .objectDeleted
        case .importKey: self = .keyImported
        case .changeCode: self = .pinChanged
        case .unblock: self = .pinUnblocked
        case .initSoftwareToken: self = .softwareTokenCreated
        case .hello, .status, .listTokens, .listObjects, .getCertificate, .shutdown: return nil
        }
    }

    /// Token and key named by a request (URIs only; never codes or data).
    static func subjects(of request: AgentRequest) -> (String?, String?) {
        switch request {
        case .unlock(let token, _, _), .lock(let token), .changeCode(let token, _, _, _), .unblock(let token, _, _, _),
             .generateKeyPair(let token, _, _, _, _, _), .storeCertificate(let token, _, _, _), .importKey(let token, _, _, _):
            return (token, nil)
        case .sign(let key, _, _), .decrypt(let key, _, _), .derive(let key, _, _, _), .deleteObject(let key), .getCertificate(let key):
            return (nil, key)
        case .initSoftwareToken(let label, _, _):
            return ("token=\(label)", nil)
        case .hello, .status, .listTokens, .listObjects, .shutdown:
            return (nil, nil)
        }
    }
}

extension AccessOutcome {
    /// The wire form of an access-code result, with its words.
    init(_ result: AccessResult, role: CodeRole = .user) {
        let message = result.message(role: role)
        switch result {
        case .unlocked: self.init(kind: .unlocked, message: message)
        case .alreadyUnlocked: self.init(kind: .alreadyUnlocked, message: message)
        case .wrongCode(let left, _, _): self.init(kind: .wrongCode, triesLeft: UInt32(left), message: message)
        case .locked(let remaining, _, _): self.init(kind: .locked, triesLeft: 0, lockedSeconds: UInt32(remaining.seconds.rounded(.up)), message: message)
        case .cardFinalTry: self.init(kind: .cardFinalTry, message: message)
        case .cardBlocked: self.init(kind: .cardBlocked, message: message)
        case .invalidLength: self.init(kind: .invalidLength, message: message)
        case .notPresented: self.init(kind: .notPresented, message: message)
        case .failed(_, let left): self.init(kind: .failed, triesLeft: UInt32(left), message: message)
        case .ledgerDamaged: self.init(kind: .ledgerDamaged, message: message)
        }
    }
}

extension CardRetryState {
    /// The token's own counter in words.
    var words: String {
        switch self {
        case .unknown: "not reported"
        case .triesLeft(let n): n.map { "\($0) tries left" } ?? "ok"
        case .countLow: "a wrong code was entered recently"
        case .finalTry: "final try"
        case .blocked: "blocked"
        }
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
