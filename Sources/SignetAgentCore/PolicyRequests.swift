#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// The per-client policy: the `policy` request (what `signet policy` lists), and the check every
/// key operation passes before its key is used (`ClientGuard`). Rules: `ClientPolicy`; format: `docs/clients.md`.
enum PolicyRequests: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        guard case .policy = request else { return nil }
        return Route { (context) throws(AgentFailure) in
            .policy(context.agent.currentSettings.clients.report(recent: context.agent.recentUses.list))
        }
    }
}

/// How a key use was let through, for its audit line.
struct PolicyVerdict {
    /// `allowed` or `confirmed`; nil when no rule applied (the default allows).
    var decision: PolicyReport.Decision?
    /// The rule, `FILE:LINE`.
    var rule: String?
    /// The key as a person names it: its label when known.
    var keyName: String
    var detail: String?
}

/// Applies the `clients` rules to one key operation, before the key is used.
enum ClientGuard {
    /// How long "Allow for 5 minutes" lasts.
    static let allowFor = 300.0

    /// Decides whether the connection's program may use `key` for `operation`, asking the person when a
    /// `confirm` rule says so (never while holding the token). Denials are audited here, under `action`.
    /// - Throws: `.deniedByPolicy` (a rule, a refused file, or "Deny" at the prompt), `.notConfirmed`
    ///   (the prompt was cancelled, timed out or could not be shown), and what reading the key's label throws.
    static func check(_ operation: KeyOperation, _ action: AuditAction, key: String, uri: PKCS11URI, worker: TokenWorker,
                      _ context: RequestContext) throws(AgentFailure) -> PolicyVerdict {
        let agent = context.agent
        let settings = agent.currentSettings
        let policy = settings.clients
        let peer = context.peer
        var verdict = PolicyVerdict(decision: nil, rule: nil, keyName: uri.text("object") ?? key)
        guard !policy.isDefault else { return verdict }
        var facts: KeyFacts?
        if policy.needsKeyFacts(peer, operation) {
            facts = try worker.run { (state) throws(PKCS11Error) -> KeyFacts in
                try agent.requireUnlocked(&state)
                return try TokenWorker.withObject(uri, defaultType: "private", in: &state) { (handle, state) throws(PKCS11Error) -> KeyFacts in
                    let values = try state.openSession().attributes(handle, [.label, .id])
                    return KeyFacts(token: state.token, label: values[.label].map { String(decoding: $0, as: UTF8.self) }, id: values[.id])
                }
            }
            if let label = facts?.label, !label.isEmpty { verdict.keyName = label }
        }
        let decision = policy.decide(peer, operation, facts)
        verdict.rule = decision.rule?.origin
        let what = "\(peer.program) (pid \(peer.pid)) may not \(operation.rawValue) with the key \"\(verdict.keyName)\""
        func refuse(_ code: AgentErrorCode, _ outcome: PolicyReport.Decision, _ message: String, detail: String? = nil) -> AgentFailure {
            agent.record(action, result: outcome.word, peer: peer, start: context.start, token: worker.uriText, key: key,
                         detail: detail ?? decision.refusal, decision: outcome.word, rule: verdict.rule)
            agent.recentUses.note(peer, key: verdict.keyName, operation: operation, decision: outcome)
            var failure = AgentFailure(code, "signet: " + message)
            failure.audited = true
            return failure
        }
        switch decision.action {
        case .allow:
            if decision.rule != nil { verdict.decision = .allowed }
            return verdict
        case .deny:
            if let refusal = decision.refusal {
                throw refuse(.deniedByPolicy, .denied, "\(what): the client rules are refused (\(refusal)). Every key use is denied until "
                             + "the file is fixed; then reload the agent (`kill -HUP` it, or `signet agent stop`). `signet policy` lists the problems.")
            }
            throw refuse(.deniedByPolicy, .denied, "\(what) (rule at \(verdict.rule ?? "?")). Change the rule to allow it; `signet policy` lists the rules.")
        case .confirm:
            let remembered = agent.confirmations.identity(peer, token: worker.uriText, key: facts.map { Hex.encode($0.id ?? []) } ?? uri.description)
            if agent.confirmations.allowed(remembered) {
                verdict.decision = .confirmed
                verdict.detail = "allowed for 5 minutes at an earlier prompt"
                return verdict
            }
            let question = ConfirmQuestion(program: peer.program, pid: peer.pid, operation: operation.rawValue, key: verdict.keyName, token: worker.label)
            switch agent.confirmer.confirm(question, connection: context.cache, peer: peer, timeout: settings.confirmTimeout) {
            case .allow:
                verdict.decision = .confirmed
                return verdict
            case .allowFor5Minutes:
                agent.confirmations.allow(remembered, for: allowFor)
                verdict.decision = .confirmed
                verdict.detail = "allowed for 5 minutes"
                return verdict
            case .deny:
                throw refuse(.deniedByPolicy, .denied, "\(what): it was refused at the prompt (rule at \(verdict.rule ?? "?")).")
            case .cancelled:
                throw refuse(.notConfirmed, .promptCancelled, "\(what): the prompt was cancelled (rule at \(verdict.rule ?? "?") asks to confirm each use).")
            case .timedOut:
                throw refuse(.notConfirmed, .promptTimedOut, "\(what): no answer at the prompt within \(Int(settings.confirmTimeout)) s "
                             + "(rule at \(verdict.rule ?? "?") asks to confirm each use). Try again and answer it.")
            case .timedOutWaiting(let why):
                throw refuse(.notConfirmed, .promptTimedOut, "\(what): no answer within \(Int(settings.confirmTimeout)) s — the prompt waited for "
                             + "another one on the same screen or terminal and was not shown (rule at \(verdict.rule ?? "?") asks to confirm each use). "
                             + "Answer the prompt that is shown, then try again.", detail: why)
            case .placeRefused(let why):
                throw refuse(.notConfirmed, .promptRefused, "\(what) without a yes: Signet did not prompt, because the screen or terminal "
                             + "this program named is no longer its own (\(why)). Run it again from your own terminal or desktop session.", detail: why)
            case .nowhereToAsk:
                throw refuse(.notConfirmed, .nowhereToAsk, "\(what) without a yes, and there is no screen or terminal to ask on (rule at "
                             + "\(verdict.rule ?? "?") asks to confirm each use). Run it from your desktop session, or allow it in that rule.")
            }
        }
    }
}

/// "Allow for 5 minutes" answers, per program (executable and script) and key.
final class Confirmations: Sendable {
    private let until = Mutex<[String: Double]>([:])

    func identity(_ peer: PeerProcess, token: String, key: String) -> String {
        [peer.executable, peer.script ?? "", token, key].joined(separator: "\u{0}")
    }

    func allowed(_ identity: String) -> Bool {
        let now = MonotonicClock.seconds()
        return until.withLock { ($0[identity] ?? 0) > now }
    }

    func allow(_ identity: String, for seconds: Double) {
        let now = MonotonicClock.seconds()
        until.withLock { entries in
            if entries.count >= 256 { entries = entries.filter { $0.value > now } }
            entries[identity] = now + seconds
        }
    }

    /// Forgets every answer (the rules were reloaded).
    func clear() { until.withLock { $0.removeAll() } }
}

/// The programs that used keys recently, for `signet policy`: one entry per program, key, operation
/// and decision, the latest first, at most `limit`.
final class RecentUses: Sendable {
    static let limit = 64
    private let entries = Mutex<[PolicyReport.Use]>([])

    func note(_ peer: PeerProcess, key: String, operation: KeyOperation, decision: PolicyReport.Decision) {
        let time = AuditLog.timestamp()
        let program = peer.program
        entries.withLock { entries in
            var count: UInt32 = 1
            if let index = entries.firstIndex(where: {
                $0.program == program && $0.key == key && $0.operation == operation.rawValue && $0.verdict == decision
            }) {
                count = entries[index].count &+ 1
                entries.remove(at: index)
            }
            entries.insert(PolicyReport.Use(program: program, pid: UInt32(bitPattern: peer.pid), key: key, operation: operation.rawValue,
                                            verdict: decision, time: time, count: count), at: 0)
            if entries.count > RecentUses.limit { entries.removeLast() }
        }
    }

    var list: [PolicyReport.Use] { entries.withLock { $0 } }
}
