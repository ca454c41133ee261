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
    let started = MonotonicClock.seconds()
    let stopping = Atomic<Bool>(false)
    let connectionCount: @Sendable () -> Int
    /// The prompt running for each token (by identity): a second request for the same token waits for its outcome.
    let prompts = Mutex<[String: Gate<Result<AccessOutcome, AgentFailure>>]>([:])
    /// Asks the person to confirm a key use that a `confirm` rule names (the pinentry prompt).
    let confirmer: any Confirming
    let confirmations = Confirmations()
    let recentUses = RecentUses()
    let notifier: Notifier
    /// The session bus for notifications when the client sent none in `clientEnvironment`: the agent's own.
    let sessionBus: String?

    /// One prompt per screen or terminal at a time, for the unlock prompts and the confirmer's.
    let promptQueue: PromptQueue

    init(audit: AuditLog, settings: AgentSettings, confirmer: any Confirming = NoConfirmer(), promptQueue: PromptQueue = PromptQueue(),
         notifier: Notifier = Notifier(), sessionBus: String? = Notifier.sessionBus(ProcessEnvironment.all()),
         connectionCount: @escaping @Sendable () -> Int) {
        self.audit = audit
        self.promptQueue = promptQueue
        self.settings = Mutex(settings)
        accessManager = Mutex(AccessCodeManager(stateDirectory: settings.paths.state, policy: settings.lockoutPolicy))
        self.confirmer = confirmer
        self.notifier = notifier
        self.sessionBus = sessionBus
        self.connectionCount = connectionCount
    }

    var currentSettings: AgentSettings { settings.withLock { $0 } }
    var manager: AccessCodeManager { accessManager.withLock { $0 } }

    /// Applies reloaded settings.
    func reload(_ new: AgentSettings) {
        settings.withLock { $0 = new }
        confirmations.clear()
        accessManager.withLock { $0 = AccessCodeManager(stateDirectory: new.paths.state, policy: new.lockoutPolicy) }
    }

    /// One reload at a time, so a SIGHUP and a `reload` request cannot apply their files out of order.
    private let reloading = Mutex<Void>(())

    /// Reads the configuration, the lockout policy and the client rules again from where they were read
    /// before (SIGHUP, and the `reload` request) and puts them in force; returns them once they are.
    @discardableResult
    func reloadConfiguration() -> AgentSettings {
        reloading.withLock { _ in
            let current = currentSettings
            let new = AgentSettings.load(paths: current.paths, systemDirectory: current.systemDirectory)
            reload(new)
            return new
        }
    }

    /// The groups that handle requests, one file each.
    static let groups: [any RequestGroup.Type] = [AccessRequests.self, KeyOperations.self, ObjectRequests.self, AdminRequests.self, PolicyRequests.self]

    /// The group that handles each kind of request: one exhaustive switch with no `default`, so a new
    /// request kind does not compile until it is routed. That the group's `route` then takes it is
    /// checked for every kind by `RequestGroupTests` (with a sample of each, fields and all).
    static func group(for kind: AgentRequest.Kind) -> any RequestGroup.Type {
        switch kind {
        case .unlock, .unlockAsking, .clientEnvironment, .lock, .changeCode, .unblock, .repairLedger:
            AccessRequests.self
        case .sign, .decrypt, .derive:
            KeyOperations.self
        case .listObjectPage, .getCertificate, .generateKeyPair, .storeCertificate, .deleteObject, .importKey:
            ObjectRequests.self
        case .hello, .status, .listTokens, .tokenDetails, .listReaders, .versions, .initSoftwareToken, .reload, .shutdown:
            AdminRequests.self
        case .policy:
            PolicyRequests.self
        }
    }

    /// Handles one request. `notify` sends an interim message (present your token).
    /// A request that fails is recorded under its group's audit action, if it has one.
    func handle(_ request: AgentRequest, peer: PeerProcess, connection: ConnectionCache = ConnectionCache(),
                notify: (AgentResponse) -> Void) -> AgentResponse {
        let start = MonotonicClock.seconds()
        let group = Self.group(for: request.messageKind)
        guard let route = group.route(request) else {
            // Only when `group(for:)` and the group's own switch disagree, which `RequestGroupTests` catches.
            return .error(.internalError, message: "This agent routes \(request.name) requests to \(group), which does not take them.")
        }
        let answer = answer(request, route: route, peer: peer, start: start, connection: connection, notify: notify)
        assert(request.messageKind.mayBeAnswered(by: answer.messageKind), "\(request.name) answered with \(answer.messageKind.name)")
        return answer
    }

    private func answer(_ request: AgentRequest, route: Route, peer: PeerProcess, start: Double, connection: ConnectionCache,
                        notify: (AgentResponse) -> Void) -> AgentResponse {
        return withoutActuallyEscaping(notify) { notify in
            let context = RequestContext(agent: self, peer: peer, start: start, cache: connection, notify: { notify(Self.safe($0)) })
            do throws(AgentFailure) {
                try refuseWhileConfigurationRefused(request)
                return Self.safe(try route.run(context))
            } catch {
                if let action = route.action, !error.audited {
                    record(action, result: "error:\(error.code)", peer: peer, start: start, token: route.token, key: route.key, detail: error.message)
                }
                return Self.safe(.error(error.code, message: error.message))
            }
        }
    }

    /// `response` with every message in words made one line safe for a terminal (`Console.safe`).
    ///
    /// Messages carry text Signet did not write — token labels and URIs, key labels, program paths —
    /// and the command line prints them as they come. Escaping them here, where every answer and
    /// notice leaves, covers each message whichever request group built it: a token labelled
    /// "i⏎Layer 1: good signature" shows as `i\nLayer 1: good signature`, on one line. The agent's
    /// own messages are one line each, so nothing of Signet's is lost; escaping twice changes nothing.
    static func safe(_ response: AgentResponse) -> AgentResponse {
        switch response {
        case .error(let code, let message): return .error(code, message: Console.safe(message))
        case .notice(let kind, let message): return .notice(kind, message: Console.safe(message))
        case .ok(let message): return .ok(message: Console.safe(message))
        case .access(var outcome):
            outcome.message = Console.safe(outcome.message)
            return .access(outcome)
        default: return response
        }
    }

    // MARK: Helpers

    /// Throws for the requests a configuration that others could have written might have steered (a pinentry
    /// that is asked for the code, a module that sees it, the lockout, the keys) while such a file is refused.
    /// Listing, status, lock, the rules and shutdown still work, so the person can see why and fix it.
    func refuseWhileConfigurationRefused(_ request: AgentRequest) throws(AgentFailure) {
        let refusals = currentSettings.refusals
        guard !refusals.isEmpty else { return }
        switch request {
        case .hello, .status, .listTokens, .listObjectPage, .getCertificate, .lock, .tokenDetails, .listReaders, .versions,
             .clientEnvironment, .policy, .shutdown, .reload:
            return
        case .unlock, .unlockAsking, .sign, .decrypt, .derive, .generateKeyPair, .storeCertificate, .deleteObject, .importKey, .changeCode,
             .unblock, .initSoftwareToken, .repairLedger:
            throw AgentFailure(.deniedByPolicy, SignetConfig.refusalAdvice(refusals))
        }
    }

    /// The token `uri` selects; when none is present, asks the client to present it and waits.
    func awaitToken(_ uri: PKCS11URI?, notify: (AgentResponse) -> Void) throws(AgentFailure) -> TokenWorker {
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

    func requireUnlocked(_ state: inout TokenState) throws(PKCS11Error) {
        _ = try state.openSession()
        guard state.unlocked else { throw .call(operation: "the token is locked", code: .userNotLoggedIn) }
    }

    func tokenEntries() -> [TokenEntry] {
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

    func entry(_ worker: TokenWorker, _ manager: AccessCodeManager) throws(AgentFailure) -> TokenEntry {
        try worker.run(use: false) { (state) throws(PKCS11Error) -> TokenEntry in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let status = manager.status(target)
                return TokenEntry(
                    uri: state.token.uri.description, label: state.token.info.label, manufacturer: state.token.info.manufacturer,
                    model: state.token.info.model, serial: state.token.info.serialNumber, software: state.token.isSoftware,
                    unlocked: state.unlocked, failures: UInt32(status.failures), triesLeft: UInt32(status.triesLeft),
                    lockedSeconds: status.lockedRemaining.map { UInt32($0.seconds.rounded(.up)) },
                    tokenCounter: status.card.words, ledgerDamage: status.damaged, changes: state.changes,
                    cardCounter: status.card.wire)
        }
    }

    // MARK: Audit

    /// Writes one audit line: what was done, to which token and key, for whom, how long it took.
    func record(_ action: AuditAction, result: String, peer: PeerProcess?, start: Double, token: String? = nil, key: String? = nil,
                detail: String? = nil, decision: String? = nil, rule: String? = nil) {
        audit.record(AuditEvent(action: action.rawValue, result: result, token: token, key: key, peer: peer,
                                durationMilliseconds: (MonotonicClock.seconds() - start) * 1000, detail: detail, decision: decision, rule: rule))
    }
}

/// Per-connection memory: parsed URIs, so a client signing with the same key
/// again does not pay for parsing its URI again. Used by one thread only.
/// Bounded: URIs of at most `maximumURIBytes`, at most 64 of them and `maximumBytes` of text in all
/// (30 connections caching 64 URIs of 64 KiB each once held 257 MB).
final class ConnectionCache {
    private var uris: [String: PKCS11URI] = [:]
    private var bytes = 0
    /// Where this connection's client can be asked (its `clientEnvironment`, checked); nowhere until it says.
    var environment = ClientEnvironment.none

    /// Longest URI accepted. The URIs `signet keys` prints are a few hundred bytes; token labels are 32.
    static let maximumURIBytes = 2048
    /// URI text kept per connection.
    static let maximumBytes = 16 << 10

    func uri(_ text: String) throws(AgentFailure) -> PKCS11URI {
        if let known = uris[text] { return known }
        let length = text.utf8.count
        guard length <= Self.maximumURIBytes else {
            throw AgentFailure(.invalidArgument, "The PKCS#11 URI is \(length) bytes, longer than the \(Self.maximumURIBytes) Signet accepts; "
                + "use the URI `signet keys` or `signet tokens` shows.")
        }
        do throws(PKCS11URI.ParseError) {
            let parsed = try PKCS11URI(parsing: text)
            if uris.count >= 64 || bytes + length > Self.maximumBytes { uris.removeAll(); bytes = 0 }
            uris[text] = parsed
            bytes += length
            return parsed
        } catch {
            throw AgentFailure(.invalidArgument, error.description)
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

    /// The token's own counter as the protocol carries it. A card that counts its tries says one left
    /// (`63C1`) as its final try and none as blocked, whatever words it came in.
    var wire: CardCounter {
        switch self {
        case .unknown: .notReported
        case .triesLeft(let n?) where n <= 0: .blocked
        case .triesLeft(1?): .finalTry
        case .triesLeft(let n): .ok(triesLeft: n.map { UInt32(clamping: $0) })
        case .countLow: .countLow
        case .finalTry: .finalTry
        case .blocked: .blocked
        }
    }
}
