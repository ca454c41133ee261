#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

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
