import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension AuditAction {
    static let unlock = AuditAction(rawValue: "unlock")
    static let pinChanged = AuditAction(rawValue: "pin-changed")
    static let pinUnblocked = AuditAction(rawValue: "pin-unblocked")
    static let ledgerRepaired = AuditAction(rawValue: "ledger-repaired")
}

/// Access codes: unlock, lock, change, unblock, and repairing the ledger. Every
/// code goes through the access-code manager's lockout rule, on the token's worker.
/// Ledger repair is here rather than with the admin requests because it is the
/// lockout rule's own state: it must run where the rule runs, in this process.
enum AccessRequests: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        switch request {
        case .unlock(let token, let code, let finalTry):
            Route(.unlock, token: token) { (context) throws(AgentFailure) in
                try attempt(.unlock, token, context) { (target, manager, state) in
                    let result = code.use { manager.unlock(target, code: $0, allowFinalTry: finalTry) }
                    if result == .unlocked || result == .alreadyUnlocked { state.unlocked = true }
                    return result
                }
            }
        case .lock(let token):
            Route(.lock, token: token) { (context) throws(AgentFailure) in
                let workers = try token.map { (text) throws(AgentFailure) in [try context.resolve(text)] } ?? context.registry.presentWorkers
                for worker in workers {
                    let wasUnlocked = try worker.run(use: false) { (state) throws(PKCS11Error) -> Bool in state.logOut() }
                    if wasUnlocked { context.record(.lock, token: worker.uriText) }
                }
                return .ok(message: workers.isEmpty ? "No token is present." : "Locked.")
            }
        case .changeCode(let token, let old, let new, let finalTry):
            Route(.pinChanged, token: token) { (context) throws(AgentFailure) in
                try attempt(.pinChanged, token, context) { (target, manager, _) in
                    old.use { old in new.use { new in manager.changeCode(target, old: old, new: new, allowFinalTry: finalTry) } }
                }
            }
        case .unblock(let token, let soCode, let newCode, let finalTry):
            Route(.pinUnblocked, token: token) { (context) throws(AgentFailure) in
                try attempt(.pinUnblocked, token, context, role: .so) { (target, manager, _) in
                    soCode.use { so in newCode.use { new in manager.unblock(target, soCode: so, newCode: new, allowFinalTry: finalTry) } }
                }
            }
        case .repairLedger(let token):
            Route(.ledgerRepaired, token: token) { (context) throws(AgentFailure) in
                let worker = try context.resolve(token)
                let manager = context.manager
                // On the token's worker, so no code is tried on this token while its ledger is rewritten.
                let repaired = try worker.run(use: false) { (state) throws(PKCS11Error) -> Result<Void, AgentFailure> in
                    let identity = PKCS11CodeTarget(token: state.token, session: try state.openSession()).identity
                    do {
                        try manager.repairLedger(tokens: [identity])
                        return .success(())
                    } catch {
                        return .failure(AgentFailure(.tokenFailure, "Could not repair the ledger: \(error)"))
                    }
                }
                try repaired.get()
                context.record(.ledgerRepaired, token: worker.uriText)
                return .ok(message: "The ledger was rebuilt. \(worker.label) is locked for \(AccessResult.words(manager.policy.lockDuration)); "
                    + "after that you have \(manager.policy.maximumFailures) tries.")
            }
        default:
            nil
        }
    }

    /// One code attempt: waits for the token, runs `present` on its worker with the manager,
    /// records the outcome under `action`, and answers it. For the administrator code the
    /// user is logged out first (both log in on the same token).
    private static func attempt(_ action: AuditAction, _ token: String?, _ context: RequestContext, role: CodeRole = .user,
                                _ present: (PKCS11CodeTarget, AccessCodeManager, inout TokenState) -> AccessResult)
        throws(AgentFailure) -> AgentResponse {
        let worker = try context.awaitToken(token)
        let manager = context.manager
        let (result, wasLocked) = try worker.run { (state) throws(PKCS11Error) -> (AccessResult, Bool) in
            if role == .so { state.logOut() }
            let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
            let wasLocked = manager.status(target, role: role).lockedRemaining != nil
            return (present(target, manager, &state), wasLocked)
        }
        recordAccess(action, result, wasLocked: wasLocked, worker: worker, context, role: role)
        return .access(AccessOutcome(result, role: role))
    }

    /// Records an access-code attempt in words, and the lock it started, if any.
    private static func recordAccess(_ action: AuditAction, _ result: AccessResult, wasLocked: Bool, worker: TokenWorker,
                                     _ context: RequestContext, role: CodeRole = .user) {
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
        context.record(action, result: name, token: token)
        // The attempt that used the last try starts a lock.
        if case .locked(let remaining, _, let failures) = result {
            if !wasLocked {
                context.agent.audit.record(AuditEvent(action: AuditAction.lockoutStart.rawValue, result: "locked", token: token, peer: context.peer,
                                                      detail: "locked for \(AccessResult.words(remaining)) after \(failures) wrong codes"))
            }
            worker.noteLockout(until: MonotonicClock.seconds() + remaining.seconds)
        }
    }
}
