#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// One slot: a token the agent reported since `C_Initialize`. It stays when the token goes
/// (a slot without a token, as for a card taken out of its reader).
package struct Slot {
    package let id: CK_SLOT_ID
    /// What the agent said of the token last; `present` tells whether it is there now.
    package var entry: TokenEntry
    package var present: Bool
    /// The objects, read once per `changes` and unlock state of the token.
    var objects: [ModuleObject]? {
        didSet { byHandle = Dictionary((objects ?? []).map { ($0.handle, $0) }) { first, _ in first } }
    }
    /// The same objects by handle (every attribute read looks one up), kept with `objects`.
    private(set) var byHandle: [CK_OBJECT_HANDLE: ModuleObject] = [:]
    var objectsKey: (changes: UInt32, unlocked: Bool)?

    init(id: CK_SLOT_ID, entry: TokenEntry, present: Bool) {
        self.id = id
        self.entry = entry
        self.present = present
    }
}

/// A session: the module's own (the agent has none); it dies with the agent connection generation.
package struct ModuleSession {
    package let slot: CK_SLOT_ID
    package let flags: CK_FLAGS
    /// The agent process the session was opened against: one that restarted ends every session.
    let generation: UInt64
    package var find: (results: [CK_OBJECT_HANDLE], position: Int)?
    package var sign: SignOperation?
    package var decrypt: DecryptOperation?
}

/// The module's state after `C_Initialize`: the agent link (a pool of idle connections, the agent's
/// generation), the slot table, sessions, and the object cache and index. Every field is under `lock`,
/// which is never held across a call to the agent. The shell's entry points (SignetPKCS11Module) check
/// their arguments and call these methods; the library's tests drive it in process over a stand-in link.
package final class ModuleState: @unchecked Sendable {
    /// The process that called `C_Initialize`: a forked child must call it again, on its own connections.
    package let pid = getpid()
    let link: any AgentLink
    /// Whether this process may start the agent when none answers (`AgentStart.allowedHere`).
    let mayStartAgent: Bool

    struct Inner {
        var slots: [CK_SLOT_ID: Slot] = [:]
        /// When the token list was last read (monotonic seconds).
        var listedAt: Double = -1
        var sessions: [CK_SESSION_HANDLE: ModuleSession] = [:]
        var nextSession: CK_SESSION_HANDLE = 1
        var idle: [any AgentConnection] = []
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
    package static let listingLifetime = 0.5
    /// Idle connections kept for the next calls (one per concurrent caller, up to this).
    static let idleLimit = 16
    static let startInterval = 30.0
    /// Seconds an operation may take at the agent (it waits for an absent token up to its own limit), interim
    /// notices included: each call's `timeout` bounds the whole call, not the wait for each frame.
    package static let operationTimeout = 150.0
    /// Seconds a whole object listing may take, every page included.
    package static let listingTimeout = 60.0

    /// - Parameters:
    ///   - link: where connections come from (`SocketAgentLink` in the module).
    ///   - mayStartAgent: whether to start the agent when none answers (`AgentStart.allowedHere` in the module).
    package init(link: any AgentLink, mayStartAgent: Bool) {
        self.link = link
        self.mayStartAgent = mayStartAgent
    }

    // MARK: Agent calls

    /// One request to the agent on an idle connection (or a new one), with no lock held.
    /// - Throws: the agent's error as its `CK_RV` (`ErrorMapping`); `CKR_DEVICE_REMOVED` when the agent
    ///   cannot be reached or the connection broke (its sessions then end).
    package func call(_ request: AgentRequest, timeout: Double? = ModuleState.operationTimeout) throws(ModuleError) -> AgentResponse {
        let connection = try connection()
        do throws(AgentLinkError) {
            let response = try connection.call(request, timeout: timeout)
            release(connection)
            return response
        } catch {
            if case .agent(let code) = error {
                release(connection)
                throw ModuleError(ErrorMapping.rv(code))
            }
            agentLost()
            throw ModuleError(CKR_DEVICE_REMOVED)
        }
    }

    private func connection() throws(ModuleError) -> any AgentConnection {
        if let idle = lock.withLock({ $0.idle.popLast() }) { return idle }
        let start = mayStartAgent && lock.withLock { MonotonicClock.seconds() - $0.startedAt > ModuleState.startInterval }
        let connection: any AgentConnection
        do throws(AgentLinkError) {
            connection = try link.connect(start: false)
        } catch {
            guard start, error == .notRunning else { throw ModuleError(CKR_DEVICE_REMOVED) }
            lock.withLock { $0.startedAt = MonotonicClock.seconds() }
            do throws(AgentLinkError) {
                connection = try link.connect(start: true)
            } catch {
                throw ModuleError(CKR_DEVICE_REMOVED)
            }
        }
        lock.withLock { inner in
            if let known = inner.agentPID, known != connection.agentPID { ModuleState.endGeneration(&inner) }
            inner.agentPID = connection.agentPID
        }
        return connection
    }

    private func release(_ connection: any AgentConnection) {
        lock.withLock { inner in
            // A connection to an agent that is no longer the current one goes (it closes when released).
            if inner.idle.count < ModuleState.idleLimit, connection.agentPID == inner.agentPID { inner.idle.append(connection) }
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
    package func refreshTokens(force: Bool = false) {
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

    /// The slot `id` names. A slot id the module would list is accepted before any listing was asked
    /// for (slot ids are stable across processes): an id not in the table reads the token list first.
    /// - Throws: `CKR_SLOT_ID_INVALID` for an id that names no token the agent reports or reported.
    package func slot(_ id: CK_SLOT_ID) throws(ModuleError) -> Slot {
        if let known = lock.withLock({ $0.slots[id] }) { return known }
        refreshTokens()
        guard let listed = lock.withLock({ $0.slots[id] }) else { throw ModuleError(CKR_SLOT_ID_INVALID) }
        return listed
    }

    /// The slot ids, in order: every slot, or those with a token present.
    package func slotIDs(tokenPresent: Bool) -> [CK_SLOT_ID] {
        lock.withLock { inner in inner.slots.values.filter { !tokenPresent || $0.present }.map(\.id).sorted() }
    }

    /// The slot `id` names in the table as it is (no listing), with its sessions and read-write sessions.
    /// - Throws: `CKR_SLOT_ID_INVALID`; `CKR_TOKEN_NOT_PRESENT` for a slot whose token is gone.
    package func token(_ id: CK_SLOT_ID) throws(ModuleError) -> (entry: TokenEntry, sessions: Int, rwSessions: Int) {
        try lock.withLock { (inner) throws(ModuleError) -> (TokenEntry, Int, Int) in
            guard let slot = inner.slots[id] else { throw ModuleError(CKR_SLOT_ID_INVALID) }
            guard slot.present else { throw ModuleError(CKR_TOKEN_NOT_PRESENT) }
            let sessions = inner.sessions.values.filter { $0.slot == id }
            return (slot.entry, sessions.count, sessions.filter { $0.flags & CKF_RW_SESSION != 0 }.count)
        }
    }

    /// The first slot whose presence changed since it was last reported (`C_WaitForSlotEvent`), or nil.
    /// A slot present from the start is no event.
    package func nextSlotEvent() -> CK_SLOT_ID? {
        lock.withLock { inner -> CK_SLOT_ID? in
            for id in inner.slots.keys.sorted() {
                let present = inner.slots[id]!.present
                if inner.reportedPresence[id] != present {
                    let first = inner.reportedPresence[id] == nil
                    inner.reportedPresence[id] = present
                    if !(first && present) { return id }
                }
            }
            return nil
        }
    }

    // MARK: Objects

    /// The slot's objects, listed from the agent when the token changed since they were read.
    /// - Throws: `CKR_DEVICE_REMOVED` for a slot without its token; `CKR_DEVICE_ERROR` for a listing the
    ///   agent does not complete properly (bounded in pages and time by `ObjectPaging`), or the agent's error.
    package func objects(_ slotID: CK_SLOT_ID) throws(ModuleError) -> [ModuleObject] {
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
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`, or what `objects` throws.
    package func object(_ handle: CK_OBJECT_HANDLE, session: CK_SESSION_HANDLE) throws(ModuleError) -> ModuleObject {
        let slot = try lock.withLock { (inner) throws(ModuleError) -> CK_SLOT_ID in
            guard let found = inner.sessions[session] else { throw ModuleError(CKR_SESSION_HANDLE_INVALID) }
            return found.slot
        }
        if let own = lock.withLock({ $0.sessionObjects[handle] }) { return own }
        _ = try objects(slot)  // listed again if the token changed
        guard let found = lock.withLock({ $0.slots[slot]?.byHandle[handle] }) else { throw ModuleError(CKR_OBJECT_HANDLE_INVALID) }
        return found
    }

    /// The key `handle` names for an operation in `session`, with this program logged in for a private key.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`; `CKR_KEY_HANDLE_INVALID` for a handle that names no object
    ///   (the functions that take a key answer that, not `CKR_OBJECT_HANDLE_INVALID`); `CKR_USER_NOT_LOGGED_IN`.
    package func operationKey(_ handle: CK_OBJECT_HANDLE, session: CK_SESSION_HANDLE) throws(ModuleError) -> (ModuleSession, ModuleObject) {
        let found = try self.session(session)
        let object: ModuleObject
        do throws(ModuleError) {
            object = try self.object(handle, session: session)
        } catch {
            throw error.rv == CKR_OBJECT_HANDLE_INVALID ? ModuleError(CKR_KEY_HANDLE_INVALID) : error
        }
        if object.objectClass == CKO_PRIVATE_KEY, !loggedIn(found.slot) {
            refreshTokens()
            guard loggedIn(found.slot) else { throw ModuleError(CKR_USER_NOT_LOGGED_IN) }
        }
        return (found, object)
    }

    /// Starts a search in `session`: the token's objects and the session's own keys that match `wanted`.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`, `CKR_OPERATION_ACTIVE`, or what `objects` throws.
    package func findInit(_ session: CK_SESSION_HANDLE, wanted: [(CK_ATTRIBUTE_TYPE, [UInt8])]) throws(ModuleError) {
        let found = try self.session(session)
        guard found.find == nil else { throw ModuleError(CKR_OPERATION_ACTIVE) }
        let tokenObjects = try objects(found.slot)
        let own = lock.withLock { inner in inner.sessionObjects.values.filter { $0.session == session } }
        let results = (tokenObjects + own).filter { $0.matches(wanted) }.map(\.handle)
        try updateSession(session) { $0.find = (results, 0) }
    }

    /// The next handles of the search in `session`, up to `limit`.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`; `CKR_OPERATION_NOT_INITIALIZED` without a search.
    package func findNext(_ session: CK_SESSION_HANDLE, limit: Int) throws(ModuleError) -> ArraySlice<CK_OBJECT_HANDLE> {
        var next: ArraySlice<CK_OBJECT_HANDLE> = []
        var searching = false
        try updateSession(session) { found in
            guard var find = found.find else { return }
            searching = true
            let end = find.position + min(limit, find.results.count - find.position)
            next = find.results[find.position..<end]
            find.position = end
            found.find = find
        }
        guard searching else { throw ModuleError(CKR_OPERATION_NOT_INITIALIZED) }
        return next
    }

    /// Ends the search in `session`.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`; `CKR_OPERATION_NOT_INITIALIZED` without a search.
    package func findFinal(_ session: CK_SESSION_HANDLE) throws(ModuleError) {
        guard try self.session(session).find != nil else { throw ModuleError(CKR_OPERATION_NOT_INITIALIZED) }
        try updateSession(session) { $0.find = nil }
    }

    /// Destroys one of the session keys this module derived; token objects are deleted with `signet`.
    /// - Throws: `CKR_ACTION_PROHIBITED` for a token object's handle, `CKR_OBJECT_HANDLE_INVALID` for no object's.
    package func destroySessionObject(_ object: CK_OBJECT_HANDLE) throws(ModuleError) {
        try lock.withLock { (inner) throws(ModuleError) in
            if inner.sessionObjects.removeValue(forKey: object) != nil { return }
            throw ModuleError(inner.handles.values.contains(object) ? CKR_ACTION_PROHIBITED : CKR_OBJECT_HANDLE_INVALID)
        }
    }

    /// Keeps a session key (a derived one) for `session`, and gives it a handle.
    package func addSessionObject(session: CK_SESSION_HANDLE, _ make: (CK_OBJECT_HANDLE) -> ModuleObject) -> CK_OBJECT_HANDLE {
        lock.withLock { inner in
            let handle = inner.nextHandle
            inner.nextHandle += 1
            inner.sessionObjects[handle] = make(handle)
            return handle
        }
    }

    // MARK: Sessions

    /// Opens a session on slot `id`.
    /// - Throws: `CKR_SLOT_ID_INVALID`; `CKR_TOKEN_NOT_PRESENT` when its token is gone.
    package func openSession(_ id: CK_SLOT_ID, flags: CK_FLAGS) throws(ModuleError) -> CK_SESSION_HANDLE {
        try lock.withLock { (inner) throws(ModuleError) -> CK_SESSION_HANDLE in
            guard let slot = inner.slots[id] else { throw ModuleError(CKR_SLOT_ID_INVALID) }
            guard slot.present else { throw ModuleError(CKR_TOKEN_NOT_PRESENT) }
            let handle = inner.nextSession
            inner.nextSession += 1
            inner.sessions[handle] = ModuleSession(slot: id, flags: flags, generation: inner.generation)
            return handle
        }
    }

    /// Closes `session` and drops its keys.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`.
    package func closeSession(_ session: CK_SESSION_HANDLE) throws(ModuleError) {
        try lock.withLock { (inner) throws(ModuleError) in
            guard inner.sessions.removeValue(forKey: session) != nil else { throw ModuleError(CKR_SESSION_HANDLE_INVALID) }
            inner.sessionObjects = inner.sessionObjects.filter { $0.value.session != session }
        }
    }

    /// Closes every session on slot `id`.
    package func closeAllSessions(_ id: CK_SLOT_ID) {
        lock.withLock { inner in
            let closing = Set(inner.sessions.filter { $0.value.slot == id }.keys)
            for handle in closing { inner.sessions[handle] = nil }
            inner.sessionObjects = inner.sessionObjects.filter { !closing.contains($0.value.session ?? 0) }
        }
    }

    /// The session, when it is still valid.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID` for a closed, stale (agent restarted) or never opened one.
    package func session(_ handle: CK_SESSION_HANDLE) throws(ModuleError) -> ModuleSession {
        try lock.withLock { (inner) throws(ModuleError) -> ModuleSession in
            guard let session = inner.sessions[handle], session.generation == inner.generation else {
                throw ModuleError(CKR_SESSION_HANDLE_INVALID)
            }
            return session
        }
    }

    package func updateSession(_ handle: CK_SESSION_HANDLE, _ body: (inout ModuleSession) -> Void) throws(ModuleError) {
        try lock.withLock { (inner) throws(ModuleError) in
            guard var session = inner.sessions[handle] else { throw ModuleError(CKR_SESSION_HANDLE_INVALID) }
            body(&session)
            inner.sessions[handle] = session
        }
    }

    // MARK: Login

    /// Whether this process may use `slot`'s private keys now: the agent holds the token unlocked,
    /// and this process has not logged out of it.
    package func loggedIn(_ slot: CK_SLOT_ID) -> Bool {
        lock.withLock { inner in (inner.slots[slot]?.entry.unlocked ?? false) && !inner.loggedOut.contains(slot) }
    }

    /// The agent said the token is locked: believe it at once (another program locked it, or the idle lock).
    package func noteLocked(_ slot: CK_SLOT_ID) {
        lock.withLock { inner in
            inner.slots[slot]?.entry.unlocked = false
            inner.loggedOut.remove(slot)
        }
    }

    /// Logs this program in to `session`'s token: with the `length` bytes at `code` (checked and copied
    /// only when the agent is asked), or, without a code, by the agent asking the person (the protected path).
    /// A token the agent holds unlocked already counts, and the code is not checked.
    /// - Returns: the `CK_RV` of the outcome (`ErrorMapping.rv(_: AccessOutcome.Kind)`).
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_REMOVED`, `CKR_PIN_LEN_RANGE`, or the agent's error.
    package func logIn(_ session: CK_SESSION_HANDLE, code: UnsafeRawPointer?, length: CK_ULONG) throws(ModuleError) -> CK_RV {
        let found = try self.session(session)
        refreshTokens(force: true)
        let entry = try lock.withLock { (inner) throws(ModuleError) -> TokenEntry in
            guard let slot = inner.slots[found.slot], slot.present else { throw ModuleError(CKR_DEVICE_REMOVED) }
            return slot.entry
        }
        if entry.unlocked {
            // Unlocked at the agent (by `signet unlock`, or another program): this program is logged in, and
            // CKR_OK rather than CKR_USER_ALREADY_LOGGED_IN (on which pkcs11-tool gives up). A code given now
            // is not checked, as `signet unlock` does not check it on an unlocked token: any program of this
            // user could use the unlocked token through the agent anyway.
            lock.withLock { _ = $0.loggedOut.remove(found.slot) }
            return CKR_OK
        }
        // Without a code, the protected path (Thunderbird, Firefox): the agent asks the person itself, through
        // pinentry on the screen or terminal this program's environment names (sent with each connection). A
        // person may take a while, for up to three codes: the agent bounds each question (`pinentry-timeout-seconds`).
        let request: AgentRequest
        if let start = code {
            guard length > 0, length <= CK_ULONG(SecretBytes.maximumCount) else { throw ModuleError(CKR_PIN_LEN_RANGE) }
            request = .unlock(token: entry.uri, code: SharedSecret(copying: UnsafeRawBufferPointer(start: start, count: Int(length))), finalTry: false)
        } else {
            request = .unlockAsking(token: entry.uri)
        }
        guard case .access(let outcome) = try call(request, timeout: code == nil ? 900 : 60) else { return CKR_DEVICE_ERROR }
        refreshTokens(force: true)
        let rv = ErrorMapping.rv(outcome.kind)
        if rv == CKR_OK { lock.withLock { _ = $0.loggedOut.remove(found.slot) } }
        return rv
    }

    /// This program stops using `session`'s token; the agent keeps it unlocked for the others that share it.
    /// - Throws: `CKR_SESSION_HANDLE_INVALID`; `CKR_USER_NOT_LOGGED_IN`.
    package func logOut(_ session: CK_SESSION_HANDLE) throws(ModuleError) {
        let found = try self.session(session)
        guard loggedIn(found.slot) else { throw ModuleError(CKR_USER_NOT_LOGGED_IN) }
        lock.withLock { _ = $0.loggedOut.insert(found.slot) }
    }

    // MARK: Operations at the agent

    /// One private-key request for `slot`'s token: a "not logged in" answer is believed at once (`noteLocked`).
    package func keyCall(_ request: AgentRequest, slot: CK_SLOT_ID) throws(ModuleError) -> AgentResponse {
        do throws(ModuleError) {
            return try call(request)
        } catch {
            if error.rv == CKR_USER_NOT_LOGGED_IN { noteLocked(slot) }
            throw error
        }
    }
}

/// The one module state, created by `C_Initialize`, dropped by `C_Finalize`, and the fork handling.
package enum Module {
    private static let current = BlockingLock<ModuleState?>(nil)

    /// Registered once, at the first `C_Initialize`: in the child of a `fork`, the lock around `current` is
    /// made free again. Another thread of the parent may have held it at the fork (every call takes it), and
    /// the child, which has only the forking thread, then waited on it for ever in its first call. The
    /// parent's state stays in `current`; its pid tells the child it is not its own (`state`, `initialize`).
    /// glibc unregisters the handler when the library is unloaded.
    private static let forkHandler: Void = {
        pthread_atfork(nil, nil, { Module.current.reinitializeInForkedChild() })
    }()

    /// States inherited across `fork`: kept, never used (see `initialize`).
    nonisolated(unsafe) private static var abandoned: [ModuleState] = []

    /// The state, when `C_Initialize` was called in this process.
    package static var state: ModuleState? {
        current.withLock { state in
            guard let state, state.pid == getpid() else { return nil }
            return state
        }
    }

    /// `C_Initialize`: a new state from `make`.
    /// - Returns: `CKR_OK`, or `CKR_CRYPTOKI_ALREADY_INITIALIZED` when this process has one.
    package static func initialize(_ make: () -> ModuleState) -> CK_RV {
        _ = forkHandler
        return current.withLock { state in
            // A forked child inherits its parent's state: it starts afresh, and never writes on the
            // parent's connections (they are left open, not closed: closing sends nothing, but another
            // thread of the parent may have been using one when the process forked).
            if let existing = state, existing.pid == getpid() { return CKR_CRYPTOKI_ALREADY_INITIALIZED }
            if let inherited = state { abandoned.append(inherited) }
            state = make()
            return CKR_OK
        }
    }

    /// `C_Finalize`.
    /// - Returns: `CKR_OK`, or `CKR_CRYPTOKI_NOT_INITIALIZED` when this process has no state.
    package static func finalize() -> CK_RV {
        current.withLock { state in
            guard let existing = state, existing.pid == getpid() else { return CKR_CRYPTOKI_NOT_INITIALIZED }
            state = nil
            return CKR_OK
        }
    }
}
