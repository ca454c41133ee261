#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// One slot: a token the agent reported since `C_Initialize`. It stays when the token goes
/// (a slot without a token, as for a card taken out of its reader).
struct Slot {
    let id: CK_SLOT_ID
    /// What the agent said of the token last; `present` tells whether it is there now.
    var entry: TokenEntry
    var present: Bool
    /// The objects, read once per `changes` and unlock state of the token.
    var objects: [ModuleObject]? {
        didSet { byHandle = Dictionary((objects ?? []).map { ($0.handle, $0) }) { first, _ in first } }
    }
    /// The same objects by handle (every attribute read looks one up), kept with `objects`.
    private(set) var byHandle: [CK_OBJECT_HANDLE: ModuleObject] = [:]
    var objectsKey: (changes: UInt32, unlocked: Bool)?
}

/// A session: the module's own (the agent has none); it dies with the agent connection generation.
struct ModuleSession {
    let slot: CK_SLOT_ID
    let flags: CK_FLAGS
    /// The agent process the session was opened against: one that restarted ends every session.
    let generation: UInt64
    var find: (results: [CK_OBJECT_HANDLE], position: Int)?
    var sign: SignOperation?
    var decrypt: DecryptOperation?
}

/// The module's state after `C_Initialize`: slots, sessions, object cache and the idle agent
/// connections. Every field is under `lock`, which is never held across socket I/O.
final class ModuleState: @unchecked Sendable {
    /// The process that called `C_Initialize`: a forked child must call it again, on its own connections.
    let pid = getpid()
    let modulePath: String?

    struct Inner {
        var slots: [CK_SLOT_ID: Slot] = [:]
        /// When the token list was last read (monotonic seconds).
        var listedAt: Double = -1
        var sessions: [CK_SESSION_HANDLE: ModuleSession] = [:]
        var nextSession: CK_SESSION_HANDLE = 1
        var idle: [AgentClient] = []
        /// The agent process the current sessions belong to, and a counter that moves when it changes.
        var agentPID: UInt32?
        var generation: UInt64 = 1
        /// Object handles by "slot|uri": stable for the life of the module, across refreshes and agent restarts.
        var handles: [String: CK_OBJECT_HANDLE] = [:]
        var nextHandle: CK_OBJECT_HANDLE = 1
        /// Session objects (derived keys), by handle.
        var sessionObjects: [CK_OBJECT_HANDLE: ModuleObject] = [:]
        /// Slots this process logged out of (`C_Logout`). The unlock is the agent's and shared: a program
        /// is logged in while the agent holds the token unlocked, unless it logged out, which ends only its own use.
        var loggedOut: Set<CK_SLOT_ID> = []
        /// Presence last reported by `C_WaitForSlotEvent`.
        var reportedPresence: [CK_SLOT_ID: Bool] = [:]
        /// When the agent was last started from here (at most one attempt in `startInterval`).
        var startedAt: Double = -1000
    }
    let lock = BlockingLock(Inner())

    /// How long a token listing answers slot, token and session info before it is read again.
    static let listingLifetime = 0.5
    /// Idle connections kept for the next calls (one per concurrent caller, up to this).
    static let idleLimit = 16
    static let startInterval = 30.0
    /// Seconds an operation may take at the agent (it waits for an absent token up to its own limit), interim
    /// notices included: each call's `timeout` bounds the whole call, not the wait for each frame.
    static let operationTimeout = 150.0
    /// Seconds a whole object listing may take, every page included.
    static let listingTimeout = 60.0

    init() {
        modulePath = csignet_module_path().map { String(cString: $0) }
    }

    // MARK: Agent calls

    /// Whether this process may start `signet-agent` when none answers: not as root (a root `modutil` or
    /// `pkcs11-tool` would start a root agent with its state under /root), and not in a set-user-ID or
    /// set-group-ID program (the agent would run with the program's identity, in the caller's environment).
    /// Such a process finds the user's running agent or none (docs/pkcs11-module.md, "When the module starts the agent").
    static var mayStartAgent: Bool { getuid() != 0 && getuid() == geteuid() && getgid() == getegid() }

    /// One request to the agent on an idle connection (or a new one), with no lock held.
    func call(_ request: AgentRequest, timeout: Double? = ModuleState.operationTimeout) throws(ModuleError) -> AgentResponse {
        let client = try connection()
        do throws(AgentClientError) {
            // `timeout` bounds the whole call: interim notices (sent every second while the agent waits) do not extend it.
            let response = try client.call(request, timeout: timeout, total: timeout, onNotice: { _, _ in })
            release(client)
            return response
        } catch {
            switch error {
            case .agent(let code, _):
                release(client)
                throw ModuleError(ErrorMapping.rv(code))
            case .connection, .protocolViolation, .notRunning, .startFailed, .notYourAgent:
                agentLost()
                throw ModuleError(CKR_DEVICE_REMOVED)
            }
        }
    }

    private func connection() throws(ModuleError) -> AgentClient {
        if let client = lock.withLock({ $0.idle.popLast() }) { return client }
        let start = ModuleState.mayStartAgent && lock.withLock { inner -> Bool in
            let now = MonotonicClock.seconds()
            guard now - inner.startedAt > ModuleState.startInterval else { return false }
            return true
        }
        let client: AgentClient
        do throws(AgentClientError) {
            // The host program's screen and terminal go with each new connection: a `C_Login(NULL)` on it may prompt.
            client = try AgentLauncher.connect(start: false, clientName: "libsignet-pkcs11", environment: CallerEnvironment.current())
        } catch {
            guard start, case .notRunning = error else { throw ModuleError(CKR_DEVICE_REMOVED) }
            lock.withLock { $0.startedAt = MonotonicClock.seconds() }
            do throws(AgentClientError) {
                client = try AgentLauncher.connect(start: true, clientName: "libsignet-pkcs11", besideFile: modulePath,
                                                   environment: CallerEnvironment.current())
            } catch {
                throw ModuleError(CKR_DEVICE_REMOVED)
            }
        }
        lock.withLock { inner in
            if let known = inner.agentPID, known != client.agentPID { ModuleState.endGeneration(&inner) }
            inner.agentPID = client.agentPID
        }
        return client
    }

    private func release(_ client: AgentClient) {
        lock.withLock { inner in
            // A connection to an agent that is no longer the current one goes (it closes when released).
            if inner.idle.count < ModuleState.idleLimit, client.agentPID == inner.agentPID { inner.idle.append(client) }
        }
    }

    /// The agent went away: its sessions are gone, and its tokens with it until it answers again.
    private func agentLost() {
        lock.withLock { inner in
            ModuleState.endGeneration(&inner)
            inner.agentPID = nil
            for id in inner.slots.keys { inner.slots[id]?.present = false }
        }
    }

    /// Ends every session (they then answer `CKR_SESSION_HANDLE_INVALID`) and forgets what was read.
    private static func endGeneration(_ inner: inout Inner) {
        inner.generation &+= 1
        inner.sessions.removeAll()
        inner.sessionObjects.removeAll()
        inner.idle.removeAll()
        inner.loggedOut.removeAll()
        inner.listedAt = -1
        for id in inner.slots.keys { inner.slots[id]?.objects = nil }
    }

    // MARK: Tokens and slots

    /// Reads the token list again when the last listing is older than `listingLifetime` (or `force`).
    /// With the agent unreachable, every slot shows no token.
    func refreshTokens(force: Bool = false) {
        let due = lock.withLock { force || MonotonicClock.seconds() - $0.listedAt > ModuleState.listingLifetime }
        guard due else { return }
        let entries: [TokenEntry]
        do throws(ModuleError) {
            guard case .tokens(let listed) = try call(.listTokens, timeout: 20) else { return }
            entries = listed
        } catch {
            lock.withLock { $0.listedAt = MonotonicClock.seconds() }
            return
        }
        lock.withLock { inner in
            var seen: Set<CK_SLOT_ID> = []
            for entry in entries {
                let id = inner.slots.values.first { Slots.sameToken($0.entry, entry) }?.id
                    ?? Slots.slotID(for: entry) { inner.slots[$0] != nil }
                seen.insert(id)
                if !entry.unlocked { inner.loggedOut.remove(id) }  // locked at the agent: the next unlock counts for all again
                if var slot = inner.slots[id] {
                    slot.entry = entry
                    if !slot.present { slot.objects = nil }
                    slot.present = true
                    inner.slots[id] = slot
                } else {
                    inner.slots[id] = Slot(id: id, entry: entry, present: true)
                }
            }
            for id in inner.slots.keys where !seen.contains(id) {
                if inner.slots[id]?.present == true {
                    // Taken out: its sessions end, as a card's do.
                    inner.slots[id]?.present = false
                    inner.slots[id]?.objects = nil
                    for (handle, session) in inner.sessions where session.slot == id { inner.sessions[handle] = nil }
                    inner.loggedOut.remove(id)
                }
            }
            inner.listedAt = MonotonicClock.seconds()
        }
    }

    /// The slot's objects, listed from the agent when the token changed since they were read.
    func objects(_ slotID: CK_SLOT_ID) throws(ModuleError) -> [ModuleObject] {
        let (entry, cached) = try lock.withLock { (inner) throws(ModuleError) -> (TokenEntry, [ModuleObject]?) in
            guard let slot = inner.slots[slotID], slot.present else { throw ModuleError(CKR_DEVICE_REMOVED) }
            let fresh = slot.objectsKey.map { $0.changes == slot.entry.changes && $0.unlocked == slot.entry.unlocked } ?? false
            return (slot.entry, fresh ? slot.objects : nil)
        }
        if let cached { return cached }
        // Bounded in pages and in time (ObjectPaging): an agent whose `next` never ends fails the call, never loops the host.
        var (entries, values) = try ObjectPaging.collect(seconds: ModuleState.listingTimeout, fetch: { (from) throws(ModuleError) -> ObjectPage in
            guard case .objectPage(let page) = try call(.listObjectPage(token: entry.uri, start: from, certificateValues: true), timeout: 60)
            else { throw ModuleError(CKR_DEVICE_ERROR) }
            return page
        }, failing: { _ in ModuleError(CKR_DEVICE_ERROR) })
        // A certificate too large to share a page came without its value: read it alone.
        for index in entries.indices where entries[index].kind == .certificate && values[index].isEmpty {
            if case .certificate(let der)? = try? call(.getCertificate(object: entries[index].uri), timeout: 20) { values[index] = der }
        }
        return lock.withLock { inner in
            func handle(_ key: String) -> CK_OBJECT_HANDLE {
                let full = "\(slotID)|\(key)"
                if let known = inner.handles[full] { return known }
                let new = inner.nextHandle
                inner.nextHandle += 1
                inner.handles[full] = new
                return new
            }
            let built = [ObjectBuilder.profile(handle: handle("profile"))] + ObjectBuilder.objects(entries, values: values, handle: handle)
            inner.slots[slotID]?.objects = built
            inner.slots[slotID]?.objectsKey = (entry.changes, entry.unlocked)
            return built
        }
    }

    /// The object `handle` names in `session`'s slot (a token object, or one of the session's keys).
    func object(_ handle: CK_OBJECT_HANDLE, session: CK_SESSION_HANDLE) throws(ModuleError) -> ModuleObject {
        let slot = try lock.withLock { (inner) throws(ModuleError) -> CK_SLOT_ID in
            guard let found = inner.sessions[session] else { throw ModuleError(CKR_SESSION_HANDLE_INVALID) }
            return found.slot
        }
        if let own = lock.withLock({ $0.sessionObjects[handle] }) { return own }
        _ = try objects(slot)  // listed again if the token changed
        guard let found = lock.withLock({ $0.slots[slot]?.byHandle[handle] }) else { throw ModuleError(CKR_OBJECT_HANDLE_INVALID) }
        return found
    }

    // MARK: Sessions

    /// The session, when it is still valid.
    func session(_ handle: CK_SESSION_HANDLE) throws(ModuleError) -> ModuleSession {
        try lock.withLock { (inner) throws(ModuleError) -> ModuleSession in
            guard let session = inner.sessions[handle], session.generation == inner.generation else {
                throw ModuleError(CKR_SESSION_HANDLE_INVALID)
            }
            return session
        }
    }

    func updateSession(_ handle: CK_SESSION_HANDLE, _ body: (inout ModuleSession) -> Void) throws(ModuleError) {
        try lock.withLock { (inner) throws(ModuleError) in
            guard var session = inner.sessions[handle] else { throw ModuleError(CKR_SESSION_HANDLE_INVALID) }
            body(&session)
            inner.sessions[handle] = session
        }
    }

    /// Whether this process may use `slot`'s private keys now: the agent holds the token unlocked,
    /// and this process has not logged out of it.
    func loggedIn(_ slot: CK_SLOT_ID) -> Bool {
        lock.withLock { inner in (inner.slots[slot]?.entry.unlocked ?? false) && !inner.loggedOut.contains(slot) }
    }

    /// The agent said the token is locked: believe it at once (another program locked it, or the idle lock).
    func noteLocked(_ slot: CK_SLOT_ID) {
        lock.withLock { inner in
            inner.slots[slot]?.entry.unlocked = false
            inner.loggedOut.remove(slot)
        }
    }
}

/// The one module state, created by `C_Initialize`, dropped by `C_Finalize`.
enum Module {
    private static let current = BlockingLock<ModuleState?>(nil)

    /// Registered once, at the first `C_Initialize`: in the child of a `fork`, the lock around `current` is
    /// made free again. Another thread of the parent may have held it at the fork (every call takes it), and
    /// the child, which has only the forking thread, then waited on it for ever in its first call. The
    /// parent's state stays in `current`; its pid tells the child it is not its own (`state`, `initialize`).
    /// glibc unregisters the handler when the library is unloaded.
    private static let forkHandler: Void = {
        pthread_atfork(nil, nil, { Module.current.reinitializeInForkedChild() })
    }()

    /// The state, when `C_Initialize` was called in this process.
    static var state: ModuleState? {
        current.withLock { state in
            guard let state, state.pid == getpid() else { return nil }
            return state
        }
    }

    static func initialize() -> CK_RV {
        _ = forkHandler
        return current.withLock { state in
            // A forked child inherits its parent's state: it starts afresh, and never writes on the
            // parent's connections (they are left open, not closed: closing sends nothing, but another
            // thread of the parent may have been using one when the process forked).
            if let existing = state, existing.pid == getpid() { return CKR_CRYPTOKI_ALREADY_INITIALIZED }
            if let inherited = state { ModuleState.abandoned.append(inherited) }
            state = ModuleState()
            return CKR_OK
        }
    }

    static func finalize() -> CK_RV {
        current.withLock { state in
            guard let existing = state, existing.pid == getpid() else { return CKR_CRYPTOKI_NOT_INITIALIZED }
            state = nil
            return CKR_OK
        }
    }
}

extension ModuleState {
    /// States inherited across `fork`: kept, never used (see `Module.initialize`).
    nonisolated(unsafe) static var abandoned: [ModuleState] = []
}
