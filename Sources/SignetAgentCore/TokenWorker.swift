#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension PKCS11URI {
    /// The object part, as a short cache key (cheaper than the full percent-encoded text).
    var cacheKey: String {
        "\(text("type") ?? "")|\(value("id").map { Hex.encode($0) } ?? "")|\(text("object") ?? "")"
    }
}

/// What the agent has read from a token and keeps to avoid reading it again:
/// object handles by URI and RSA signature lengths by handle. All of it belongs
/// to the session and login state it was read under (PKCS#11 handles of private
/// objects die at `C_Logout`, every handle dies with its session, and an object
/// created or destroyed changes what a URI names), so `TokenState` clears it
/// whenever that state changes; nothing else may keep a handle.
struct ObjectCache {
    private var handles: [String: ObjectHandle] = [:]
    private var lengths: [ObjectHandle: Int?] = [:]
    /// Bounds the cache for a client naming many distinct objects.
    private static let limit = 256

    func handle(_ key: String) -> ObjectHandle? { handles[key] }
    mutating func remember(_ handle: ObjectHandle, for key: String) {
        if handles.count >= ObjectCache.limit { handles.removeAll() }
        handles[key] = handle
    }

    /// The cached RSA modulus length for `handle`: nil when not read yet, `.some(nil)` for non-RSA keys.
    func signatureLength(_ handle: ObjectHandle) -> Int?? { lengths[handle] }
    mutating func remember(signatureLength: Int?, for handle: ObjectHandle) {
        if lengths.count >= ObjectCache.limit { lengths.removeAll() }
        lengths[handle] = signatureLength
    }

    mutating func clear() {
        handles.removeAll()
        lengths.removeAll()
    }
}

/// Everything the agent holds for one token. Only `TokenWorker` touches it, under its lock.
struct TokenState: @unchecked Sendable {
    var token: Token
    /// Changing the session (opened, dropped) forgets every handle read through the old one.
    var session: Session? { didSet { if session !== oldValue { objects.clear() } } }
    /// Logging in or out forgets every handle: private objects' handles die at `C_Logout`,
    /// and a lookup made while logged out never saw them.
    var unlocked = false { didSet { if unlocked != oldValue { objects.clear() } } }
    var present = true
    var lastUsed = MonotonicClock.seconds()
    /// Handles and lengths valid for the current session and login state only.
    private(set) var objects = ObjectCache()

    init(token: Token) { self.token = token }

    /// The session, opened (read-write) on first use.
    mutating func openSession() throws(PKCS11Error) -> Session {
        if let session { return session }
        let opened = try token.openSession(readWrite: true)
        session = opened
        if (try? opened.isLoggedIn()) == true { unlocked = true }
        return opened
    }

    /// Logs the user out if logged in; returns whether it was.
    @discardableResult
    mutating func logOut() -> Bool {
        defer { unlocked = false }
        if unlocked, let session { try? session.logout() }
        return unlocked
    }

    /// Forgets the session after the token went away (its handles are invalid).
    mutating func dropSession() {
        session = nil
        unlocked = false
    }

    /// Objects were created or destroyed on the token: what a URI names may have changed.
    mutating func objectsChanged() { objects.clear() }

    /// Counts what `TokenEntry.changes` reports: objects written or deleted, the token presented again.
    private(set) var changes: UInt32 = 0
    /// A key or certificate was written or deleted (or the token came back): cached handles go, and
    /// clients that cache the objects see `changes` move.
    mutating func contentChanged() {
        changes &+= 1
        objects.clear()
    }

    mutating func remember(_ handle: ObjectHandle, for key: String) { objects.remember(handle, for: key) }
    mutating func remember(signatureLength: Int?, for handle: ObjectHandle) { objects.remember(signatureLength: signatureLength, for: handle) }
}

/// One token's serial worker: every call that reaches this token runs under
/// its lock, so card access is serialised per token while different tokens
/// work in parallel. Callers are the agent's connection threads (never
/// Swift's cooperative pool), so blocking on the lock or the token is fine.
final class TokenWorker: Sendable {
    let identity: String
    private let state: BlockingLock<TokenState>
    /// Readable without waiting for an operation in progress.
    private let presentFlag = Atomic<Bool>(true)
    private let snapshot: Mutex<(token: Token, uri: String)>
    /// When a Signet lock seen by this agent ends (monotonic seconds), to log its end.
    private let lockedUntil = Mutex<Double?>(nil)

    private let queue: TokenQueue

    init(token: Token) {
        identity = token.identity
        let state = BlockingLock(TokenState(token: token))
        self.state = state
        snapshot = Mutex((token, token.uri.description))
        queue = TokenQueue(state: state)
    }

    /// The token (label, URI), without waiting for an operation in progress.
    var token: Token { snapshot.withLock { $0.token } }
    /// The token's URI text (for the audit log), kept rather than rebuilt per request.
    var uriText: String { snapshot.withLock { $0.uri } }
    var label: String { token.info.label }

    /// Runs `body` with exclusive use of the token; maps token errors to failures
    /// and drops the session when the token went away.
    ///
    /// When the token is free and nothing waits, `body` runs at once on the
    /// calling thread (no hand-off, the lowest latency for one client). When it
    /// is busy, the request joins the token's queue, which the token's own
    /// thread drains back to back, so under load the token never waits for a
    /// waiting thread to be woken between two operations.
    /// - Parameter use: whether this counts as using the token for the idle lock (key operations,
    ///   unlocking, writing); listings, status and lock do not, so a program that polls `status`
    ///   never keeps a token unlocked.
    func run<R: Sendable>(use: Bool = true, _ body: (inout TokenState) throws(PKCS11Error) -> R) throws(AgentFailure) -> R {
        let guarded = { (state: inout TokenState) -> Result<R, AgentFailure> in
            guard state.present else {
                return .failure(AgentFailure(.tokenRemoved, "\(state.token.info.label) is not present. Present it, then unlock it with `signet unlock`."))
            }
            do throws(PKCS11Error) {
                let result = try ModuleWatch.shared.watching(.request(token: state.token.info.label)) { () throws(PKCS11Error) in try body(&state) }
                if use { state.lastUsed = MonotonicClock.seconds() }
                return .success(result)
            } catch {
                var failure = AgentFailure.token(error, label: state.token.info.label)
                if failure.code == .tokenFailure && state.token.slot.flags.contains(.removableDevice) && TokenWorker.wentAway(state.token) {
                    // Card modules report a card pulled mid-operation as whatever failed first
                    // (OpenSC: CKR_GENERAL_ERROR); the slot says what happened.
                    failure = AgentFailure.removed(label: state.token.info.label)
                }
                if failure.code == .tokenRemoved { state.dropSession() }
                if failure.code == .notUnlocked { state.unlocked = false }
                return .failure(failure)
            }
        }
        if !queue.hasWaiting, let result = state.withLockIfAvailable(guarded) { return try result.get() }
        return try withoutActuallyEscaping(guarded) { escapable in
            let box = ResultBox<R>()
            queue.submit { state in box.result = escapable(&state) }
            return box.result!
        }.get()
    }

    /// Whether a removable token's slot is empty now, or becomes so within a second
    /// (pcscd notices a pulled card at its next poll, a few hundred milliseconds later).
    static func wentAway(_ token: Token) -> Bool {
        let deadline = MonotonicClock.seconds() + 1
        repeat {
            if !token.isStillPresent { return true }
            usleep(100_000)
        } while MonotonicClock.seconds() < deadline
        return false
    }

    /// Runs `body` only if nothing else holds the token (for housekeeping).
    func runIfIdle(_ body: (inout TokenState) -> Void) {
        _ = state.withLockIfAvailable { body(&$0) }
    }

    /// Called when a rescan sees the token (perhaps in a new slot) or misses it.
    func update(present token: Token?) {
        state.withLock { state in
            if let token {
                if !state.present || token.slotID != state.token.slotID {
                    state.dropSession()
                    state.contentChanged()  // presented again: perhaps another card, or the same one written elsewhere
                }
                let changed = token.info != state.token.info || !state.present
                // A token re-initialised in place (new label, objects gone) keeps its slot: forget what was read.
                if token.info.label != state.token.info.label { state.contentChanged() }
                state.token = token
                state.present = true
                if changed { snapshot.withLock { $0 = (token, token.uri.description) } }
            } else if state.present {
                state.present = false
                state.dropSession()
            }
            presentFlag.store(state.present, ordering: .releasing)
        }
    }

    var isPresent: Bool { presentFlag.load(ordering: .acquiring) }

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

    /// Runs `body` with the handle of the object `uri` names. A handle taken from the
    /// cache that the token no longer knows (`CKR_OBJECT_HANDLE_INVALID`,
    /// `CKR_KEY_HANDLE_INVALID`: a session or login change the agent did not see) is
    /// looked up once more, and the operation retried once; the user never sees it.
    static func withObject<R>(_ uri: PKCS11URI, defaultType: String, in state: inout TokenState,
                              _ body: (ObjectHandle, inout TokenState) throws(PKCS11Error) -> R) throws(PKCS11Error) -> R {
        let key = cacheKey(uri, defaultType)
        let cached = state.objects.handle(key)
        let handle: ObjectHandle
        if let cached { handle = cached } else { handle = try find(uri, defaultType: defaultType, in: &state) }
        do throws(PKCS11Error) {
            return try body(handle, &state)
        } catch {
            guard cached != nil, error.code == .objectHandleInvalid || error.code == .keyHandleInvalid else { throw error }
            state.objectsChanged()
            let fresh = try find(uri, defaultType: defaultType, in: &state)
            return try body(fresh, &state)
        }
    }

    private static func cacheKey(_ uri: PKCS11URI, _ defaultType: String) -> String { uri.cacheKey + "|" + defaultType }

    /// The private key, certificate or public key that `uri` names on this token (from the cache when known).
    static func find(_ uri: PKCS11URI, defaultType: String, in state: inout TokenState) throws(PKCS11Error) -> ObjectHandle {
        let key = cacheKey(uri, defaultType)
        if let cached = state.objects.handle(key) { return cached }
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
        state.remember(first, for: key)
        return first
    }
}

/// Where a queued job leaves its result for the thread that waits for it.
private final class ResultBox<R>: @unchecked Sendable {
    var result: Result<R, AgentFailure>?
}

/// A token's serial queue and the thread that drains it. Jobs are closures
/// whose submitters block until they ran, so they may borrow the submitter's
/// stack; each is run with the token's state lock held.
final class TokenQueue: @unchecked Sendable {
    private final class Job {
        /// Released as soon as it has run: it may borrow the submitter's stack.
        var work: ((inout TokenState) -> Void)?
        let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        init(_ work: @escaping (inout TokenState) -> Void) {
            self.work = work
            sem_init(done, 0, 0)
        }
        deinit {
            sem_destroy(done)
            done.deallocate()
        }
    }

    private let state: BlockingLock<TokenState>
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [Job] = []
    private var head = 0
    private let waiting = Atomic<Int>(0)

    init(state: BlockingLock<TokenState>) {
        self.state = state
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        DetachedThread.start { [self] in drain() }
    }

    /// Whether jobs wait (then a new request queues behind them rather than overtaking).
    var hasWaiting: Bool { waiting.load(ordering: .relaxed) > 0 }

    /// Runs `work` on the token's thread and returns when it has run.
    func submit(_ work: @escaping (inout TokenState) -> Void) {
        let job = Job(work)
        pthread_mutex_lock(mutex)
        jobs.append(job)
        waiting.add(1, ordering: .relaxed)
        pthread_cond_signal(wake)
        pthread_mutex_unlock(mutex)
        System.retrying { sem_wait(job.done) }
    }

    private func next() -> Job? {
        guard head < jobs.count else {
            jobs.removeAll(keepingCapacity: true)
            head = 0
            return nil
        }
        defer { head += 1 }
        return jobs[head]
    }

    private func drain() {
        while true {
            pthread_mutex_lock(mutex)
            while head >= jobs.count { pthread_cond_wait(wake, mutex) }
            pthread_mutex_unlock(mutex)
            // Hold the token for as long as jobs keep coming: no gap between operations.
            state.withLock { tokenState in
                while true {
                    pthread_mutex_lock(mutex)
                    let job = next()
                    pthread_mutex_unlock(mutex)
                    guard let job else { break }
                    job.work?(&tokenState)
                    job.work = nil
                    waiting.subtract(1, ordering: .relaxed)
                    sem_post(job.done)
                }
            }
        }
    }
}
