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
    func handle(_ request: AgentRequest, peer: PeerProcess, connection: ConnectionState = ConnectionState(),
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

    private func answer(_ request: AgentRequest, route: Route, peer: PeerProcess, start: Double, connection: ConnectionState,
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

    func requireUnlocked(_ state: inout TokenState) throws(PKCS11Error) {
        _ = try state.openSession()
        guard state.unlocked else { throw .call(operation: "the token is locked", code: .userNotLoggedIn) }
    }

    // MARK: Audit

    /// Writes one audit line: what was done, to which token and key, for whom, how long it took.
    func record(_ action: AuditAction, result: String, peer: PeerProcess?, start: Double, token: String? = nil, key: String? = nil,
                detail: String? = nil, decision: String? = nil, rule: String? = nil) {
        audit.record(AuditEvent(action: action.rawValue, result: result, token: token, key: key, peer: peer,
                                durationMilliseconds: (MonotonicClock.seconds() - start) * 1000, detail: detail, decision: decision, rule: rule))
    }
}
