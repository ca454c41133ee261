import Synchronization
import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// A request that failed, with the stable code and words for the client.
struct AgentFailure: Error, Sendable {
    var code: AgentErrorCode
    var message: String
    init(_ code: AgentErrorCode, _ message: String) { self.code = code; self.message = message }

    /// Sorts a token error into what a client can act on.
    static func token(_ error: PKCS11Error, label: String) -> AgentFailure {
        switch error {
        case .tokenNotFound(let what): return AgentFailure(.noToken, "No token matches \(what). Run `signet tokens`, or present your token.")
        case .ambiguousToken(let uri, let matches):
            return AgentFailure(.tokenAmbiguous, "\(matches.count) tokens match \(uri) (\(matches.joined(separator: ", "))); name one with its full URI.")
        case .objectNotFound(let what): return AgentFailure(.objectNotFound, "No key or certificate matches \(what) on \(label). Run `signet keys` to list them.")
        case .ambiguousObject(let what): return AgentFailure(.objectAmbiguous, "More than one object matches \(what); add id= or object= to the URI.")
        case .invalidURI(let reason): return AgentFailure(.invalidArgument, "Invalid PKCS#11 URI: \(reason).")
        default: break
        }
        guard let code = error.code else { return AgentFailure(.tokenFailure, "\(label): \(error)") }
        switch code {
        case .tokenNotPresent, .deviceRemoved, .sessionHandleInvalid, .sessionClosed:
            return AgentFailure(.tokenRemoved, "\(label) was removed during the operation. Present it again, then unlock it with `signet unlock`.")
        case .userNotLoggedIn:
            return AgentFailure(.notUnlocked, "\(label) is locked. Unlock it with `signet unlock`.")
        case .mechanismInvalid, .mechanismParamInvalid:
            return AgentFailure(.mechanismInvalid, "\(label) does not support this mechanism or its parameters (\(code)).")
        case .dataInvalid, .dataLenRange, .encryptedDataInvalid, .encryptedDataLenRange:
            return AgentFailure(.dataInvalid, "\(label) refused the input (\(code)): check the digest or ciphertext length for this key.")
        case .keyFunctionNotPermitted, .keyTypeInconsistent:
            return AgentFailure(.keyUsageNotPermitted, "This key may not be used for that operation (\(code)).")
        default:
            return AgentFailure(.tokenFailure, "\(label): \(error)")
        }
    }
}

/// Everything the agent holds for one token. Only `TokenWorker` touches it, under its lock.
struct TokenState: @unchecked Sendable {
    var token: Token
    var session: Session?
    var unlocked = false
    var present = true
    var lastUsed = MonotonicClock.seconds()
    var keyCache: [String: ObjectHandle] = [:]

    /// The session, opened (read-write) on first use.
    mutating func openSession() throws(PKCS11Error) -> Session {
        if let session { return session }
        let opened = try token.openSession(readWrite: true)
        session = opened
        if (try? opened.isLoggedIn()) == true { unlocked = true }
        return opened
    }

    /// Forgets the session after the token went away (its handles are invalid).
    mutating func dropSession() {
        session = nil
        unlocked = false
        keyCache = [:]
    }
}

/// One token's serial worker: every call that reaches this token runs under
/// its lock, so card access is serialised per token while different tokens
/// work in parallel. Callers are the agent's connection threads (never
/// Swift's cooperative pool), so blocking on the lock or the token is fine.
final class TokenWorker: Sendable {
    let identity: String
    private let state: Mutex<TokenState>
    /// When a Signet lock seen by this agent ends (monotonic seconds), to log its end.
    private let lockedUntil = Mutex<Double?>(nil)

    init(token: Token) {
        identity = token.identity
        state = Mutex(TokenState(token: token))
    }

    /// A snapshot of the token (label, URI) without waiting for an operation in progress
    /// longer than needed to copy it.
    var token: Token { state.withLock { $0.token } }
    var label: String { token.info.label }

    /// Runs `body` with exclusive use of the token; maps token errors to failures
    /// and drops the session when the token went away.
    func run<R: Sendable>(_ body: (inout TokenState) throws(PKCS11Error) -> R) throws(AgentFailure) -> R {
        try state.withLock { (state: inout TokenState) throws(AgentFailure) -> R in
            guard state.present else {
                throw AgentFailure(.tokenRemoved, "\(state.token.info.label) is not present. Present it, then unlock it with `signet unlock`.")
            }
            do throws(PKCS11Error) {
                let result = try body(&state)
                state.lastUsed = MonotonicClock.seconds()
                return result
            } catch {
                let failure = AgentFailure.token(error, label: state.token.info.label)
                if failure.code == .tokenRemoved { state.dropSession() }
                if failure.code == .notUnlocked { state.unlocked = false }
                throw failure
            }
        }
    }

    /// Runs `body` only if nothing else holds the token (for housekeeping).
    func runIfIdle(_ body: (inout TokenState) -> Void) {
        state.withLockIfAvailable { body(&$0) }
    }

    /// Called when a rescan sees the token (perhaps in a new slot) or misses it.
    func update(present token: Token?) {
        state.withLock { state in
            if let token {
                if !state.present || token.slotID != state.token.slotID {
                    state.dropSession()
                }
                state.token = token
                state.present = true
            } else if state.present {
                state.present = false
                state.dropSession()
            }
        }
    }

    var isPresent: Bool { state.withLock { $0.present } }

    /// Remembers that the token is locked until `until`.
    func noteLockout(until: Double) { lockedUntil.withLock { $0 = until } }

    /// True once, when a noted lock has run out.
    func lockoutEnded(now: Double) -> Bool {
        lockedUntil.withLock { until in
            guard let end = until, now >= end else { return false }
            until = nil
            return true
        }
    }

    /// The private key, certificate or public key that `uri` names on this token.
    static func find(_ uri: PKCS11URI, defaultType: String, in state: inout TokenState) throws(PKCS11Error) -> ObjectHandle {
        let key = uri.description + "|" + defaultType
        if let cached = state.keyCache[key] { return cached }
        let session = try state.openSession()
        let type = uri.text("type") ?? defaultType
        var template: [Attribute] = []
        switch type {
        case "private": template.append(Attribute(.objectClass, .privateKey))
        case "public": template.append(Attribute(.objectClass, .publicKey))
        case "cert": template.append(Attribute(.objectClass, .certificate))
        default: throw .invalidURI("type=\(type) names no key or certificate")
        }
        if let id = uri.value("id") { template.append(Attribute(.id, bytes: id)) }
        if let label = uri.value("object") { template.append(Attribute(.label, bytes: label)) }
        let found = try session.findObjects(template, limit: 2)
        guard let first = found.first else { throw .objectNotFound(uri.description) }
        guard found.count == 1 else {
            throw .ambiguousObject(uri.description)
        }
        state.keyCache[key] = first
        return first
    }
}
