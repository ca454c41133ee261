import CSignetPKCS11Front
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPKCS11Front
import Testing

/// A stand-in for the agent link, in process. A TEST DOUBLE, and the only one here: it exists so that the
/// module's state can be driven through answers a real agent never gives (a page that never advances, a
/// listing without end) and through restarts, without sockets or timing. The module's suites under
/// SignetModuleTests drive the same code through a real agent and a hostile stand-in on its socket.
final class FakeLink: AgentLink, @unchecked Sendable {
    struct State {
        var tokens: [TokenEntry] = []
        /// The page that starts at each index.
        var page: (UInt32) -> ObjectPage = { _ in ObjectPage(objects: [], values: [], next: nil) }
        /// The agent process: a restart changes it, and the connections to the old one break.
        var pid: UInt32 = 100
        var running = true
        var pagesServed = 0
        var connects = 0
    }
    let state = BlockingLock(State())

    func connect(start: Bool) throws(AgentLinkError) -> any AgentConnection {
        try state.withLock { (s) throws(AgentLinkError) -> any AgentConnection in
            guard s.running else { throw .notRunning }
            s.connects += 1
            return FakeConnection(link: self, pid: s.pid)
        }
    }

    /// The agent restarts: a new process, and every connection to the old one breaks.
    func restart() { state.withLock { $0.pid += 1 } }
}

final class FakeConnection: AgentConnection {
    let link: FakeLink
    let agentPID: UInt32
    init(link: FakeLink, pid: UInt32) { self.link = link; self.agentPID = pid }

    func call(_ request: AgentRequest, timeout: Double?) throws(AgentLinkError) -> AgentResponse {
        try link.state.withLock { (s) throws(AgentLinkError) -> AgentResponse in
            guard s.running, s.pid == agentPID else { throw .lost }
            switch request {
            case .listTokens: return .tokens(s.tokens)
            case .listObjectPage(_, let start, _):
                s.pagesServed += 1
                // A safety net for the test itself: code whose bound is broken ends here instead of running for ever.
                guard s.pagesServed < 20_000 else { return .objectPage(ObjectPage(objects: [], values: [], next: nil)) }
                return .objectPage(s.page(start))
            default: throw .agent(.invalidArgument)
            }
        }
    }
}

@Suite("The module's state over a stand-in agent link")
struct ModuleStateTests {
    /// A P-256 public key (SubjectPublicKeyInfo, DER), made with `openssl ecparam -genkey -name prime256v1`
    /// and `openssl ec -pubout -outform DER`: objects need a public half the module can read to be shown.
    static let spki = hex("3059301306072a8648ce3d020106082a8648ce3d03010703420004039cb933134f3d15750b3d9deddae46a6f6bb7c8"
        + "4590b93ac6efbfe98b1c282bc3baed35bb750c93820180c7ed1b386653b59a06621d767b8bf96218d539da3e")

    static func token(_ serial: String, label: String = "Token", unlocked: Bool = false, failures: UInt32 = 0, triesLeft: UInt32 = 3,
                      lockedSeconds: UInt32? = nil, card: CardCounter = .notReported) -> TokenEntry {
        TokenEntry(uri: "pkcs11:serial=\(serial)", label: label, manufacturer: "Signet", model: "Test", serial: serial, software: true,
                   unlocked: unlocked, failures: failures, triesLeft: triesLeft, lockedSeconds: lockedSeconds, tokenCounter: "",
                   ledgerDamage: nil, cardCounter: card)
    }

    static func key(_ n: UInt32) -> ObjectEntry {
        ObjectEntry(uri: "pkcs11:object=k\(n)", kind: .publicKey, label: "k\(n)", id: [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF)], keyType: .ec,
                    bits: 256, usages: [.verify], publicKeyInfo: spki)
    }

    /// A state over `link` that never starts an agent, with one listing read, and the one slot's id.
    static func listed(_ link: FakeLink) throws -> (ModuleState, CK_SLOT_ID) {
        let state = ModuleState(link: link, mayStartAgent: false)
        state.refreshTokens(force: true)
        let ids = state.slotIDs(tokenPresent: true)
        try #require(ids.count == 1)
        return (state, ids[0])
    }

    // MARK: Object paging

    @Test("A listing of several pages comes together: every object once, each with its own handle")
    func severalPages() throws {
        let link = FakeLink()
        link.state.withLock { s in
            s.tokens = [ModuleStateTests.token("1")]
            // Three pages of two keys: next 2, 4, then the end.
            s.page = { start in
                ObjectPage(objects: [ModuleStateTests.key(start), ModuleStateTests.key(start + 1)], values: [], next: start < 4 ? start + 2 : nil)
            }
        }
        let (state, slot) = try ModuleStateTests.listed(link)
        let objects = try state.objects(slot)
        #expect(link.state.withLock { $0.pagesServed } == 3)
        let keys = objects.filter { $0.objectClass == CKO_PUBLIC_KEY }
        #expect(keys.map(\.uri) == (0..<6).map { "pkcs11:object=k\($0)" })
        #expect(Set(objects.map(\.handle)).count == objects.count)
        // Read again with nothing changed: from the cache, no page asked.
        _ = try state.objects(slot)
        #expect(link.state.withLock { $0.pagesServed } == 3)
    }

    @Test("A page whose next never advances fails the listing with CKR_DEVICE_ERROR at once, not a loop")
    func pageThatNeverAdvances() throws {
        let link = FakeLink()
        link.state.withLock { s in
            s.tokens = [ModuleStateTests.token("1")]
            s.page = { start in ObjectPage(objects: [ModuleStateTests.key(start)], values: [], next: start) }  // the same page again
        }
        let (state, slot) = try ModuleStateTests.listed(link)
        #expect(throws: ModuleError(CKR_DEVICE_ERROR)) { try state.objects(slot) }
        #expect(link.state.withLock { $0.pagesServed } == 1)
        // A next that goes back is no progress either.
        link.state.withLock { s in
            s.pagesServed = 0
            s.page = { start in ObjectPage(objects: [ModuleStateTests.key(start)], values: [], next: start == 0 ? 3 : 1) }
        }
        #expect(throws: ModuleError(CKR_DEVICE_ERROR)) { try state.objects(slot) }
        #expect(link.state.withLock { $0.pagesServed } == 2)
        // The state is not broken by it: a proper listing afterwards works.
        link.state.withLock { s in s.page = { _ in ObjectPage(objects: [ModuleStateTests.key(7)], values: [], next: nil) } }
        #expect(try state.objects(slot).contains { $0.uri == "pkcs11:object=k7" })
    }

    @Test("An endless next (always one further) stops at the page limit with CKR_DEVICE_ERROR")
    func endlessNext() throws {
        let link = FakeLink()
        link.state.withLock { s in
            s.tokens = [ModuleStateTests.token("1")]
            s.page = { start in ObjectPage(objects: [ModuleStateTests.key(start)], values: [], next: start + 1) }
        }
        let (state, slot) = try ModuleStateTests.listed(link)
        #expect(throws: ModuleError(CKR_DEVICE_ERROR)) { try state.objects(slot) }
        #expect(link.state.withLock { $0.pagesServed } == ObjectPaging.pageLimit)
    }

    // MARK: Slot ids

    @Test("Slot ids stay the same across refreshes, a label change, a new listing order, another process and an agent restart")
    func slotIDsStable() throws {
        let link = FakeLink()
        link.state.withLock { $0.tokens = [ModuleStateTests.token("A"), ModuleStateTests.token("B")] }
        let state = ModuleState(link: link, mayStartAgent: false)
        state.refreshTokens(force: true)
        let first = state.slotIDs(tokenPresent: true)
        #expect(first.count == 2)

        // Listed again, in the other order and with a new label.
        link.state.withLock { $0.tokens = [ModuleStateTests.token("B", label: "Renamed"), ModuleStateTests.token("A")] }
        state.refreshTokens(force: true)
        #expect(state.slotIDs(tokenPresent: true) == first)

        // Another process (a new state) gives the same ids.
        let other = ModuleState(link: link, mayStartAgent: false)
        other.refreshTokens(force: true)
        #expect(other.slotIDs(tokenPresent: true) == first)

        // The agent restarts: the first call finds the old connection broken and shows no token; its sessions end;
        // the next listing finds the tokens again in the same slots.
        let session = try state.openSession(first[0], flags: CKF_SERIAL_SESSION)
        link.restart()
        state.refreshTokens(force: true)
        #expect(state.slotIDs(tokenPresent: true).isEmpty)
        #expect(state.slotIDs(tokenPresent: false) == first)
        #expect(throws: ModuleError(CKR_SESSION_HANDLE_INVALID)) { try state.session(session) }
        state.refreshTokens(force: true)
        #expect(state.slotIDs(tokenPresent: true) == first)
        #expect(link.state.withLock { $0.connects } == 3)  // one for each state, one after the restart
    }

    @Test("A slot id listed by another process is accepted before this one reads any listing, and after its token goes")
    func listedSlotAccepted() throws {
        let link = FakeLink()
        link.state.withLock { $0.tokens = [ModuleStateTests.token("A")] }
        let (_, id) = try ModuleStateTests.listed(link)

        // A fresh state (a program that called C_Initialize and goes straight to C_GetMechanismList,
        // C_GetMechanismInfo, C_CloseAllSessions or C_OpenSession with an id it remembers).
        let fresh = ModuleState(link: link, mayStartAgent: false)
        #expect(try fresh.slot(id).id == id)
        #expect(try fresh.token(id).entry.serial == "A")
        let session = try fresh.openSession(id, flags: CKF_SERIAL_SESSION)
        fresh.closeAllSessions(id)
        #expect(throws: ModuleError(CKR_SESSION_HANDLE_INVALID)) { try fresh.session(session) }

        // An id nothing ever listed is refused.
        #expect(throws: ModuleError(CKR_SLOT_ID_INVALID)) { try fresh.slot(id ^ 2) }

        // The token goes: the slot stays (as a reader without its card), with no token in it.
        link.state.withLock { $0.tokens = [] }
        fresh.refreshTokens(force: true)
        #expect(try fresh.slot(id).present == false)
        #expect(throws: ModuleError(CKR_TOKEN_NOT_PRESENT)) { try fresh.token(id) }
        #expect(throws: ModuleError(CKR_TOKEN_NOT_PRESENT)) { try fresh.openSession(id, flags: CKF_SERIAL_SESSION) }
    }

    // MARK: Token flags from the link's answers

    @Test("The token's flags follow each listing: a wrong code, the final try, Signet's lock, the card blocked, unlocked")
    func flagsFollowListings() throws {
        let link = FakeLink()
        link.state.withLock { $0.tokens = [ModuleStateTests.token("A")] }
        let (state, id) = try ModuleStateTests.listed(link)
        func flags(after entry: TokenEntry) throws -> CK_FLAGS {
            link.state.withLock { $0.tokens = [entry] }
            state.refreshTokens(force: true)
            return Slots.tokenFlags(try state.token(id).entry, hostCanPrompt: false)
        }
        let pin: CK_FLAGS = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED
        #expect(try flags(after: ModuleStateTests.token("A")) & pin == 0)
        #expect(try flags(after: ModuleStateTests.token("A", failures: 1, triesLeft: 2)) & pin == CKF_USER_PIN_COUNT_LOW)
        #expect(try flags(after: ModuleStateTests.token("A", failures: 2, triesLeft: 1)) & pin == CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)
        #expect(try flags(after: ModuleStateTests.token("A", failures: 3, triesLeft: 0, lockedSeconds: 60)) & pin
                == CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED)
        #expect(try flags(after: ModuleStateTests.token("A", card: .finalTry)) & pin == CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)
        #expect(try flags(after: ModuleStateTests.token("A", card: .blocked)) & pin == CKF_USER_PIN_LOCKED)
        // Unlocked at the agent: this program is logged in, until the agent says otherwise.
        _ = try flags(after: ModuleStateTests.token("A", unlocked: true))
        #expect(state.loggedIn(id))
        state.noteLocked(id)
        #expect(!state.loggedIn(id))
    }

    // MARK: When the module starts the agent

    @Test("The agent is started only by an ordinary user's process, and not where systemd's socket unit owns it")
    func startPolicy() {
        #expect(AgentStart.allowed(uid: 1000, euid: 1000, gid: 1000, egid: 1000, socketUnitInstalled: false, userManagerRunning: true))
        #expect(AgentStart.allowed(uid: 1000, euid: 1000, gid: 1000, egid: 1000, socketUnitInstalled: true, userManagerRunning: false))
        #expect(!AgentStart.allowed(uid: 1000, euid: 1000, gid: 1000, egid: 1000, socketUnitInstalled: true, userManagerRunning: true))
        #expect(!AgentStart.allowed(uid: 0, euid: 0, gid: 0, egid: 0, socketUnitInstalled: false, userManagerRunning: false))
        #expect(!AgentStart.allowed(uid: 1000, euid: 0, gid: 1000, egid: 1000, socketUnitInstalled: false, userManagerRunning: false))
        #expect(!AgentStart.allowed(uid: 1000, euid: 1000, gid: 1000, egid: 5, socketUnitInstalled: false, userManagerRunning: false))
    }

    @Test("With the agent down, a state that may start it asks the link to start it once, and one that may not never does")
    func startsOnlyWhenAllowed() throws {
        final class Recording: AgentLink, @unchecked Sendable {
            let starts = BlockingLock(0)
            func connect(start: Bool) throws(AgentLinkError) -> any AgentConnection {
                if start { starts.withLock { $0 += 1 } }
                throw .notRunning
            }
        }
        let link = Recording()
        let allowed = ModuleState(link: link, mayStartAgent: true)
        allowed.refreshTokens(force: true)
        allowed.refreshTokens(force: true)  // within the 30 s interval: no second start
        #expect(link.starts.withLock { $0 } == 1)
        #expect(allowed.slotIDs(tokenPresent: false).isEmpty)
        let refused = ModuleState(link: link, mayStartAgent: false)
        refused.refreshTokens(force: true)
        #expect(link.starts.withLock { $0 } == 1)
    }
}
