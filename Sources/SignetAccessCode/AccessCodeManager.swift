#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// The result of an unlock, change or unblock, as a typed value the CLI turns into words.
public enum AccessResult: Sendable, Equatable {
    /// The code was accepted.
    case unlocked
    /// The token was already unlocked in this session; the code was not checked and not counted.
    case alreadyUnlocked
    /// Wrong code; `triesLeft` more before a lock of `lockDuration`.
    case wrongCode(triesLeft: Int, lockDuration: Duration, cardTriesLeft: Int?)
    /// Locked by Signet: `remaining` until `untilWall` (seconds since the epoch), after `failures` wrong codes.
    case locked(remaining: Duration, untilWall: Double, failures: Int)
    /// The token reports its final try; the code was not sent (pass `allowFinalTry` to spend it).
    case cardFinalTry
    /// The token reports the code blocked; it needs the SO code or PUK.
    case cardBlocked
    /// The code's length is outside what the token accepts; not counted.
    case invalidLength(min: Int?, max: Int?)
    /// The token did not get the code (absent, or refused before comparing); not counted.
    case notPresented(String)
    /// The outcome is unknown (the token may have compared the code); counted as a wrong code.
    case failed(String, triesLeft: Int)
    /// The ledger is damaged; nothing was sent.
    case ledgerDamaged(String)

    /// Words a person can act on.
    public func message(role: CodeRole = .user, localTime: (Double) -> String = AccessResult.localClockTime) -> String {
        let what = role == .user ? "access code" : "administrator code"
        switch self {
        case .unlocked: return "Unlocked."
        case .alreadyUnlocked: return "The token is already unlocked."
        case .wrongCode(let left, let duration, let card):
            let cardText = card.map { "; the token itself allows \($0) more" } ?? ""
            return "Wrong \(what). \(left) \(left == 1 ? "try" : "tries") left before the token is locked for \(AccessResult.words(duration))\(cardText)."
        case .locked(let remaining, let until, let failures):
            return "Token locked for \(AccessResult.words(remaining)) (until \(localTime(until))) after \(failures) wrong \(what)s. Try again then, or unblock it with `signet pin unblock`."
        case .cardFinalTry:
            return "The token has one try left before it blocks itself; Signet did not send the code. Check it and try again with --final-try, or unblock it with the administrator code (`signet pin unblock`)."
        case .cardBlocked:
            return "The token has blocked its \(what). Unblock it with the administrator code or PUK: `signet pin unblock`."
        case .invalidLength(let min, let max):
            let range = [min.map { "at least \($0)" }, max.map { "at most \($0)" }].compactMap { $0 }.joined(separator: " and ")
            return "The \(what) must be \(range) characters long for this token. Nothing was sent; no try was used."
        case .notPresented(let reason):
            return "The token did not receive the code (\(reason)). No try was used; present your token and try again."
        case .failed(let reason, let left):
            return "The token did not answer clearly (\(reason)); this counts as a wrong \(what). \(left) \(left == 1 ? "try" : "tries") left."
        case .ledgerDamaged(let reason):
            return "Signet's access-code ledger is damaged (\(reason)), so the token stays locked. Run `signet pin repair-ledger` (the token is then locked for the full lock time), or unblock it with the administrator code (`signet pin unblock`)."
        }
    }

    /// "14 min 32 s", "45 s".
    public static func words(_ duration: Duration) -> String { DurationText.words(duration.seconds) }

    /// HH:MM in local time.
    public static func localClockTime(_ wall: Double) -> String {
        var time = time_t(wall)
        var parts = tm()
        localtime_r(&time, &parts)
        let hour = parts.tm_hour < 10 ? "0\(parts.tm_hour)" : "\(parts.tm_hour)"
        let minute = parts.tm_min < 10 ? "0\(parts.tm_min)" : "\(parts.tm_min)"
        return "\(hour):\(minute)"
    }
}

/// Where an attempt is, for tests that kill the process at each step.
public enum AttemptStep: String, Sendable, CaseIterable {
    /// The ledger was read and checked; nothing recorded yet.
    case checked
    /// The attempt is recorded durably; the code has not been sent.
    case recorded
    /// The token answered; the answer is not yet recorded.
    case presented
}

/// The state of one token's codes, for `signet status`.
public struct AccessStatus: Sendable, Equatable {
    public var failures: Int
    public var triesLeft: Int
    public var lockedRemaining: Duration?
    public var card: CardRetryState
    public var damaged: String?
}

/// Enforces "N wrong codes in a row lock the token for D" in front of every
/// token, durably: each attempt is written to disk before the code goes to
/// the token, so killing the process never yields a free try; restarting it
/// never clears a lock; concurrent attempts are serialised per token (across
/// threads and processes), so at most N codes reach the token before the lock.
///
/// Every method blocks (file locks, fsync, token calls): call it off Swift's
/// cooperative pool, as the agent's token workers do (one thread queue per token, `TokenWorker`).
public final class AccessCodeManager: Sendable {
    public let policy: LockoutPolicy
    public let clock: any AccessClock
    let store: LedgerStore
    private let stepHook: (@Sendable (AttemptStep) -> Void)?

    /// - Parameters:
    ///   - stateDirectory: where the ledger lives (`$XDG_STATE_HOME/signet`).
    ///   - stepHook: called at each step of an attempt; for crash tests only.
    public init(stateDirectory: String = SignetPaths.current.state, policy: LockoutPolicy = .load(),
                clock: any AccessClock = SystemClock(), stepHook: (@Sendable (AttemptStep) -> Void)? = nil) {
        self.policy = policy
        self.clock = clock
        store = LedgerStore(directory: stateDirectory + "/ledger")
        self.stepHook = stepHook
    }

    /// Unlocks `target` with `code` under the lockout rule.
    /// - Parameter allowFinalTry: send the code even when the token reports its final try.
    public func unlock(_ target: any CodeTarget, code: borrowing SecretBytes, role: CodeRole = .user, allowFinalTry: Bool = false) -> AccessResult {
        let count = code.count
        return attempt(target, role: role, codeLength: count, allowFinalTry: allowFinalTry) {
            target.present(role, code: code)
        }
    }

    /// Changes the user code; the old code is counted like an unlock.
    public func changeCode(_ target: any CodeTarget, old: borrowing SecretBytes, new: borrowing SecretBytes, allowFinalTry: Bool = false) -> AccessResult {
        if let refused = lengthRefusal(new.count, target) { return refused }
        let count = old.count
        return attempt(target, role: .user, codeLength: count, allowFinalTry: allowFinalTry) {
            target.changeUserCode(old: old, new: new)
        }
    }

    /// Unblocks the user code with the SO code (counted under the SO's own
    /// record) and sets `newCode`; success clears Signet's user lock too.
    public func unblock(_ target: any CodeTarget, soCode: borrowing SecretBytes, newCode: borrowing SecretBytes, allowFinalTry: Bool = false) -> AccessResult {
        if let refused = lengthRefusal(newCode.count, target) { return refused }
        let count = soCode.count
        return attempt(target, role: .so, codeLength: count, allowFinalTry: allowFinalTry, clearsUserOnSuccess: true) {
            target.unblockUserCode(soCode: soCode, newCode: newCode)
        }
    }

    /// Signet's and the token's view of `role` for `target`, without presenting anything.
    public func status(_ target: any CodeTarget, role: CodeRole = .user) -> AccessStatus {
        let card = target.retryState(role)
        let result: Result<TokenRecord, LedgerDamage>
        do {
            result = try store.withExclusiveAccess(to: target.identity) { $0.read() }
        } catch let damage as LedgerDamage {
            result = .failure(damage)
        } catch {
            result = .failure(LedgerDamage(reason: "\(error)"))
        }
        switch result {
        case .failure(let damage):
            return AccessStatus(failures: policy.maximumFailures, triesLeft: 0, lockedRemaining: policy.lockDuration, card: card, damaged: damage.reason)
        case .success(let record):
            let entry = record[role]
            let remaining = entry.lock.flatMap { lockRemaining($0) }
            return AccessStatus(failures: entry.failures, triesLeft: remaining == nil ? max(0, policy.maximumFailures - entry.failures) : 0,
                                lockedRemaining: remaining, card: card, damaged: nil)
        }
    }

    /// Rewrites a damaged ledger so that every listed token starts a full lock
    /// now: repair never hands out free tries.
    /// - Throws: `LedgerDamage` when the ledger directory cannot be created or a record cannot be written;
    ///   records written before the failure stay written.
    public func repairLedger(tokens: [TokenIdentity]) throws {
        try store.repair(identities: tokens, lock: LockRecord(wallStart: clock.wallSeconds(), bootStart: clock.bootSeconds(), bootID: clock.bootID()))
    }

    // MARK: - The rule

    private func attempt(_ target: any CodeTarget, role: CodeRole, codeLength: Int, allowFinalTry: Bool,
                         clearsUserOnSuccess: Bool = false, present: () -> PresentOutcome) -> AccessResult {
        // 1. Length limits are checked before anything is counted.
        if let refused = lengthRefusal(codeLength, target) { return refused }
        do {
            return try store.withExclusiveAccess(to: target.identity) { ledger -> AccessResult in
                // 2. The ledger, failing closed.
                var record: TokenRecord
                switch ledger.read() {
                case .failure(let damage): return .ledgerDamaged(damage.reason)
                case .success(let value): record = value
                }
                let before = record
                var entry = record[role]

                // 3. Signet's own lock. An attempt left pending by a crash already counts.
                if entry.pending { entry.pending = false }
                if let lock = entry.lock {
                    if let remaining = lockRemaining(lock) {
                        return .locked(remaining: remaining, untilWall: clock.wallSeconds() + remaining.seconds, failures: max(entry.failures, policy.maximumFailures))
                    }
                    // The lock has run out: a fresh set of tries.
                    entry.lock = nil
                    entry.failures = 0
                }
                if entry.failures >= policy.maximumFailures {
                    // Counted failures without a lock (e.g. a crash after the last one): lock now.
                    entry.lock = currentLock()
                    record[role] = entry
                    try ledger.write(record)
                    return .locked(remaining: policy.lockDuration, untilWall: clock.wallSeconds() + policy.lockDuration.seconds, failures: entry.failures)
                }

                // 4. The token's own counter.
                let card = target.retryState(role)
                if card == .blocked { return .cardBlocked }
                if card == .finalTry && !allowFinalTry { return .cardFinalTry }
                stepHook?(.checked)

                // 5. Record the attempt as a failure before the code leaves: a
                //    crash from here on costs a try, never gives one.
                entry.failures += 1
                entry.pending = true
                if entry.failures >= policy.maximumFailures { entry.lock = currentLock() }
                record[role] = entry
                try ledger.write(record)
                stepHook?(.recorded)

                // 6. Present, then resolve.
                let outcome = present()
                stepHook?(.presented)
                entry.pending = false
                let result: AccessResult
                switch outcome {
                case .accepted:
                    entry = CodeRecord()
                    if clearsUserOnSuccess { record.user = CodeRecord() }
                    result = .unlocked
                case .alreadyLoggedIn:
                    entry = before[role]
                    entry.pending = false
                    result = .alreadyUnlocked
                case .notPresented(let reason):
                    entry = before[role]
                    entry.pending = false
                    result = .notPresented(reason)
                case .blocked:
                    result = .cardBlocked
                case .rejected, .ambiguous:
                    if entry.lock != nil {
                        result = .locked(remaining: policy.lockDuration, untilWall: clock.wallSeconds() + policy.lockDuration.seconds, failures: entry.failures)
                    } else {
                        let left = policy.maximumFailures - entry.failures
                        if case .ambiguous(let reason) = outcome {
                            result = .failed(reason, triesLeft: left)
                        } else {
                            let cardLeft = target.retryState(role).cardTriesLeft
                            result = .wrongCode(triesLeft: left, lockDuration: policy.lockDuration, cardTriesLeft: cardLeft)
                        }
                    }
                }
                record[role] = entry
                try ledger.write(record)
                return result
            }
        } catch let damage as LedgerDamage {
            return .ledgerDamaged(damage.reason)
        } catch {
            return .ledgerDamaged("\(error)")
        }
    }

    /// `.invalidLength` when a code of `count` bytes is empty or outside the token's limits.
    private func lengthRefusal(_ count: Int, _ target: any CodeTarget) -> AccessResult? {
        let limits = target.codeLengthLimits
        let tooShort = count == 0 || limits.min.map { count < $0 } ?? false
        let tooLong = limits.max.map { count > $0 } ?? false
        return tooShort || tooLong ? .invalidLength(min: limits.min, max: limits.max) : nil
    }

    private func currentLock() -> LockRecord {
        LockRecord(wallStart: clock.wallSeconds(), bootStart: clock.bootSeconds(), bootID: clock.bootID())
    }

    /// Time left on `lock`, or `nil` when it has run out.
    ///
    /// Within the boot the lock started in, elapsed time comes from the boot
    /// clock, so setting the wall clock forward does not shorten it and setting
    /// it back does not lengthen it. After a reboot only the wall clock is left;
    /// time that seems to run backwards counts as none, so a lock is never
    /// longer than the policy's duration.
    func lockRemaining(_ lock: LockRecord) -> Duration? {
        let elapsed = lock.bootID == clock.bootID() ? clock.bootSeconds() - lock.bootStart : clock.wallSeconds() - lock.wallStart
        let remaining = policy.lockDuration.seconds - max(0, elapsed)
        guard remaining > 0 else { return nil }
        return .milliseconds(Int64((remaining * 1000).rounded(.up)))
    }
}
