import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension AuditAction {
    static let unlock = AuditAction(rawValue: "unlock")
    static let pinChanged = AuditAction(rawValue: "pin-changed")
    static let pinUnblocked = AuditAction(rawValue: "pin-unblocked")
    static let ledgerRepaired = AuditAction(rawValue: "ledger-repaired")
    static let clientEnvironment = AuditAction(rawValue: "client-environment")
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
        case .unlockAsking(let token):
            Route(.unlock, token: token) { (context) throws(AgentFailure) in try unlockAsking(token, context) }
        case .clientEnvironment(let entries):
            Route { (context) throws(AgentFailure) in
                // Where to ask this connection's client for codes (and, with a client policy, for permission).
                guard entries.count <= ClientEnvironmentLimits.entries else {
                    throw AgentFailure(.invalidArgument, "A client environment has at most \(ClientEnvironmentLimits.entries) entries, not \(entries.count).")
                }
                if let long = entries.first(where: { $0.0.utf8.count + $0.1.utf8.count > ClientEnvironmentLimits.bytes }) {
                    throw AgentFailure(.invalidArgument, "The client environment entry \(Console.safe(String(long.0.prefix(40)))) is longer than \(ClientEnvironmentLimits.bytes) bytes.")
                }
                let environment = ClientEnvironment(entries: entries, uid: context.peer.uid)
                context.cache.environment = environment
                return .ok(message: environment.refused.isEmpty ? "" : "Not used: " + environment.refused.joined(separator: "; "))
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

    /// `unlockAsking`: asks the person for the code through pinentry and unlocks with it, asking again in the
    /// same pinentry after a wrong code, and showing the lock (no `GETPIN`) while the token is locked. One
    /// prompt per token: a request that comes while one runs waits for its outcome and answers the same.
    private static func unlockAsking(_ token: String?, _ context: RequestContext) throws(AgentFailure) -> AgentResponse {
        let worker = try context.awaitToken(token)
        let settings = context.agent.currentSettings
        let environment = context.cache.environment
        guard Prompting.program(configured: settings.pinentryProgram, for: environment) != nil else {
            context.record(.unlock, result: "nowhere-to-ask", token: worker.uriText,
                           detail: environment.refused.isEmpty ? nil : "refused: " + environment.refused.joined(separator: "; "))
            return .access(AccessOutcome(kind: .nowhereToAsk, message: Prompting.nowhereMessage))
        }
        let (gate, first) = context.agent.prompts.withLock { (running: inout [String: Gate<Result<AccessOutcome, AgentFailure>>]) in
            if let gate = running[worker.identity] { return (gate, false) }
            let gate = Gate<Result<AccessOutcome, AgentFailure>>()
            running[worker.identity] = gate
            return (gate, true)
        }
        guard first else { return .access(try gate.wait.get()) }
        var result: Result<AccessOutcome, AgentFailure> = .failure(AgentFailure(.internalError, "the prompt ended without an outcome"))
        defer {
            context.agent.prompts.withLock { _ = $0.removeValue(forKey: worker.identity) }
            gate.open(result)
        }
        do throws(AgentFailure) {
            result = .success(try prompt(worker, configured: settings.pinentryProgram, environment: environment, timeout: settings.pinentryTimeout,
                                         key: try token.map { (text) throws(AgentFailure) in try context.parse(text) }.flatMap { $0.text("object") },
                                         context))
        } catch {
            result = .failure(error)
        }
        return .access(try result.get())
    }

    /// The prompt itself: at most one `GETPIN` per try the lockout rule leaves, and a few more for codes of
    /// a length the token refuses (which are not counted). It waits (up to `timeout`) for its turn at the
    /// client's screen or terminal, whose places are checked again for the caller as the pinentry starts
    /// (`Prompting.begin`), and holds the turn until the pinentry ends.
    private static func prompt(_ worker: TokenWorker, configured: String?, environment: ClientEnvironment, timeout: Double, key: String?,
                               _ context: RequestContext) throws(AgentFailure) -> AccessOutcome {
        let manager = context.manager
        let policy = manager.policy
        func status() throws(AgentFailure) -> (AccessStatus, Bool) {
            try worker.run(use: false) { (state) throws(PKCS11Error) -> (AccessStatus, Bool) in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                return (manager.status(target), state.unlocked)
            }
        }
        var (current, unlocked) = try status()
        if unlocked { return AccessOutcome(.alreadyUnlocked) }
        let info = worker.token.info
        let started: (turn: PromptQueue.Turn, program: String, environment: ClientEnvironment)
        do throws(Prompting.NotShown) {
            started = try Prompting.begin(for: environment, caller: context.peer, configured: configured, queue: context.agent.promptQueue,
                                          until: MonotonicClock.seconds() + timeout)
        } catch {
            switch error {
            case .nowhere(let reasons):
                context.record(.unlock, result: "prompt-refused", token: worker.uriText, detail: reasons.joined(separator: "; "))
                return AccessOutcome(kind: .nowhereToAsk, message: "Signet did not prompt: the screen or terminal this program named is no longer "
                                     + "its own (\(reasons.joined(separator: "; "))); no try was used. Run `signet unlock` from your own terminal.")
            case .waited(let waited):
                let why = "waited \(Int(waited.seconds.rounded())) s behind \(waited.words); not shown"
                context.record(.unlock, result: "prompt-timed-out", token: worker.uriText, detail: why)
                return AccessOutcome(kind: .timedOut, message: "Not asked: \(waited.words) held your screen or terminal for "
                                     + "\(Int(waited.seconds.rounded())) s; no try was used. Answer that prompt, then try again.")
            }
        }
        defer { started.turn.end() }
        // Another prompt may have unlocked it while this one waited for its turn.
        (current, unlocked) = try status()
        if unlocked { return AccessOutcome(.alreadyUnlocked) }
        let program = started.program
        func ended(_ failure: PinentryFailure) -> AccessOutcome {
            let (kind, name, message): (AccessOutcome.Kind, String, String) = switch failure {
            case .cancelled: (.cancelled, "prompt-cancelled", "Cancelled; no try was used.")
            case .timedOut: (.timedOut, "prompt-timed-out", "Nobody answered the prompt within \(Int(timeout)) s; no try was used.")
            case .noTerminal(let why): (.nowhereToAsk, "nowhere-to-ask", "\(Prompting.nowhereMessage) (\(program): \(why))")
            case .failed(let why): (.cancelled, "prompt-failed", "The prompt failed (\(why)); no try was used.")
            }
            context.record(.unlock, result: name, token: worker.uriText, detail: program)
            return AccessOutcome(kind: kind, message: message)
        }
        let session: PinentrySession
        do throws(PinentryFailure) {
            session = try Prompting.open(program, for: started.environment, timeout: timeout, title: "Signet: unlock \(Console.safe(info.label))")
        } catch {
            return ended(error)
        }
        defer { session.end() }
        var error: String?
        do {
            for _ in 0..<(policy.maximumFailures + 3) {
                if let damage = current.damaged {
                    let result = AccessResult.ledgerDamaged(damage)
                    try session.set("SETDESC", result.message())
                    try session.message()
                    return AccessOutcome(result)
                }
                if let remaining = current.lockedRemaining {
                    // Locked: no code is asked for, the lock is shown.
                    let result = AccessResult.locked(remaining: remaining, untilWall: manager.clock.wallSeconds() + remaining.seconds,
                                                     failures: max(current.failures, policy.maximumFailures))
                    context.record(.unlock, result: "refused-locked", token: worker.uriText)
                    try show(result, session)
                    return AccessOutcome(result)
                }
                try session.set("SETDESC", Prompting.unlockDescription(
                    label: info.label, serial: info.serialNumber, program: context.peer.executable, pid: context.peer.pid, key: key,
                    operation: nil, triesLeft: current.triesLeft, policy: policy))
                try session.set("SETPROMPT", "Access code:")
                try session.set("SETOK", "Unlock", optional: true)
                try session.set("SETCANCEL", "Cancel", optional: true)
                if let error { try session.set("SETERROR", error) }
                let code = try session.getPin()
                let (result, wasLocked) = try worker.run { (state) throws(PKCS11Error) -> (AccessResult, Bool) in
                    let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                    let wasLocked = manager.status(target).lockedRemaining != nil
                    let result = manager.unlock(target, code: code)
                    if result == .unlocked || result == .alreadyUnlocked { state.unlocked = true }
                    return (result, wasLocked)
                }
                recordAccess(.unlock, result, wasLocked: wasLocked, worker: worker, context)
                switch result {
                case .unlocked, .alreadyUnlocked:
                    return AccessOutcome(result)
                case .wrongCode(let left, _, _):
                    error = Prompting.wrongCodeError(triesLeft: left, policy: policy)
                case .failed(let reason, let left):
                    error = "The token did not answer clearly (\(reason)); this counts as a wrong code — \(left) \(left == 1 ? "try" : "tries") left"
                case .invalidLength:
                    error = result.message()  // not counted: ask again
                case .locked:
                    try show(result, session)
                    return AccessOutcome(result)
                case .cardFinalTry, .cardBlocked, .notPresented, .ledgerDamaged:
                    try session.set("SETDESC", result.message())
                    try session.message()
                    return AccessOutcome(result)
                }
                (current, unlocked) = try status()
                if unlocked { return AccessOutcome(.alreadyUnlocked) }
            }
            return AccessOutcome(kind: .cancelled, message: "Too many codes the token could not take; no further try was used.")
        } catch let failure as PinentryFailure {
            return ended(failure)
        } catch let failure as AgentFailure {
            throw failure
        } catch {
            throw AgentFailure(.internalError, "\(error)")
        }
    }

    /// Shows a lock in words (`MESSAGE`, no `GETPIN`).
    private static func show(_ locked: AccessResult, _ session: PinentrySession) throws(PinentryFailure) {
        guard case .locked(let remaining, let until, let failures) = locked else { return }
        try session.set("SETDESC", Prompting.lockedMessage(remaining: remaining, untilWall: until, failures: failures))
        try session.message()
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
        case .cancelled: "prompt-cancelled"
        case .timedOut: "prompt-timed-out"
        case .nowhereToAsk: "nowhere-to-ask"
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
