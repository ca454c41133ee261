#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore

/// An answer to `Prompting.confirm`.
public enum ConfirmAnswer: Sendable, Equatable {
    case allow, allowFor5Minutes, deny, cancelled, timedOut, nowhereToAsk
    /// Not shown: another prompt held the client's screen or terminal until the deadline (the words say which).
    case timedOutWaiting(String)
    /// Not shown: the screen or terminal the client named is not the caller's any more (the reasons).
    case placeRefused(String)
}

/// What a `confirm` rule asks the person: which program wants to do what with which key on which token.
///
/// The program's path, the key's label and the token's label are text Signet did not write; they reach
/// the prompt only through `description`, each made safe with `Console.safe`, so that a program path
/// holding a newline and U+202E cannot add a line ("Signet: verified mail program …") or reorder one.
/// (Assuan's own `%XX` escaping comes after, in `PinentrySession.line`.)
public struct ConfirmQuestion: Sendable, Equatable {
    public var program: String
    public var pid: Int32
    public var operation: String
    public var key: String
    public var token: String

    public init(program: String, pid: Int32, operation: String, key: String, token: String) {
        self.program = program; self.pid = pid; self.operation = operation; self.key = key; self.token = token
    }

    /// The prompt's words, every foreign part escaped.
    public var description: String {
        "\(Console.safe(program)) (pid \(pid)) wants to \(Console.safe(operation)) with the key \"\(Console.safe(key))\" on \(Console.safe(token))."
    }
}

/// Asking the person through pinentry: which program, and the words of the prompts.
public enum Prompting {
    /// What the agent answers when a client named no screen or terminal it may use.
    public static let nowhereMessage = "No screen or terminal to ask for the access code — run `signet unlock`"

    /// The button labels of a confirm prompt, each with its own accelerator (pinentry's `_` marks the letter):
    /// pinentry-tty offers `[ad5]`, pinentry-gtk2 takes Alt+A, Alt+5, Alt+D, pinentry-curses shows them
    /// without the mark. Each answer has its own key, so a one-time Allow can be chosen on a terminal and a
    /// key never grants more than the button it names.
    static let allowLabel = "_Allow once", allowFor5MinutesLabel = "Allow for _5 minutes", denyLabel = "_Deny"

    /// The pinentry for `environment`: `configured` (`pinentry-program`) when set; else the first installed of
    /// pinentry-gnome3, pinentry-gtk2 (Debian's `pinentry-gtk-2`) and pinentry-qt when a display is known,
    /// then pinentry-tty and pinentry-curses when a terminal is; nil when there is nowhere to ask. A terminal
    /// pinentry is never chosen without a terminal (it would fall back to one it has not been given).
    public static func program(configured: String?, for environment: ClientEnvironment,
                               search: [String] = ["/usr/bin", "/usr/local/bin", "/bin"]) -> String? {
        guard environment.hasScreen || environment.tty != nil else { return nil }
        if let configured { return configured }
        func installed(_ names: [String]) -> String? {
            for name in names {
                for directory in search where access("\(directory)/\(name)", X_OK) == 0 { return "\(directory)/\(name)" }
            }
            return nil
        }
        if environment.hasScreen, let gui = installed(["pinentry-gnome3", "pinentry-gtk2", "pinentry-gtk-2", "pinentry-qt"]) { return gui }
        if environment.tty != nil, let text = installed(["pinentry-tty", "pinentry-curses"]) { return text }
        return nil
    }

    /// Why a prompt was not started.
    enum NotShown: Error {
        /// Nowhere to ask: the client named no place, or none passed the check made now (the reasons).
        case nowhere([String])
        /// Another prompt held the client's places until the deadline.
        case waited(PromptQueue.Waited)
    }

    /// Everything before a pinentry starts: the turn at every place `environment` names (waiting until
    /// `deadline`, monotonic seconds), then those places checked again for `caller` as it is now
    /// (`PromptPlaces.recheck`), then the pinentry for what passed. The caller holds the turn for as long as
    /// its pinentry runs and ends it after.
    static func begin(for environment: ClientEnvironment, caller: PeerProcess, configured: String?, queue: PromptQueue,
                      until deadline: Double) throws(NotShown) -> (turn: PromptQueue.Turn, program: String, environment: ClientEnvironment) {
        guard program(configured: configured, for: environment) != nil else { throw .nowhere(environment.refused) }
        let turn: PromptQueue.Turn
        do throws(PromptQueue.Waited) {
            turn = try queue.turn(at: environment.places, for: caller.program, until: deadline)
        } catch {
            throw .waited(error)
        }
        let (checked, refused) = PromptPlaces.recheck(environment, caller: caller)
        guard let program = program(configured: configured, for: checked) else {
            turn.end()
            throw .nowhere(refused)
        }
        return (turn, program, checked)
    }

    /// Starts `program` for `environment` and sets what every prompt sets: the terminal, `SETTIMEOUT`, the title.
    static func open(_ program: String, for environment: ClientEnvironment, timeout: Double, title: String) throws(PinentryFailure) -> PinentrySession {
        let session = try PinentrySession(program: program, environment: environment.pinentryVariables, timeout: timeout)
        do throws(PinentryFailure) {
            if let tty = environment.tty {
                try session.set("OPTION", "ttyname=\(tty)", optional: true)
                try session.set("OPTION", "ttytype=\(environment.term ?? "dumb")", optional: true)
            }
            try session.set("SETTIMEOUT", String(Int(timeout.rounded(.up))), optional: true)
            try session.set("SETTITLE", title)
            return session
        } catch {
            session.end()
            throw error
        }
    }

    /// Asks the person to allow one use (the per-client policy's "confirm" rule): a pinentry `CONFIRM` on the
    /// client's screen or terminal showing `question`, with three buttons. "Allow once" is OK and grants one use;
    /// "Deny" is the cancel button, and Escape or a closed window answer the same. "Allow for 5 minutes" is the
    /// not-OK button (`ERR` 114), which pinentry also answers when it could not show the question, so it grants
    /// nothing by itself: a second prompt asks for the 5 minutes with only OK and Deny, and only its OK grants
    /// them. `.deny` is returned for every answer that is not an OK. The prompt waits for its turn
    /// at the client's screen or terminal (`PromptQueue`: one prompt per place); `.timedOutWaiting` when its
    /// turn did not come within `timeout` seconds, and then nothing is shown. Once shown, the person has
    /// `timeout` seconds: `.timedOut` after (the pinentry is then killed). `.placeRefused` when the places the
    /// client named are no longer the caller's (checked as the pinentry is about to start), `.nowhereToAsk`
    /// when the client named none (answered at once), `.cancelled` when the pinentry failed or died. It blocks
    /// for as long as the person takes: call it on a connection thread, never on Swift's cooperative pool, and
    /// never while holding a token's worker.
    static func confirm(_ question: ConfirmQuestion, for environment: ClientEnvironment, caller: PeerProcess, queue: PromptQueue,
                               timeout: Double, program configured: String? = nil) -> ConfirmAnswer {
        let started: (turn: PromptQueue.Turn, program: String, environment: ClientEnvironment)
        do throws(NotShown) {
            started = try begin(for: environment, caller: caller, configured: configured, queue: queue, until: MonotonicClock.seconds() + timeout)
        } catch {
            switch error {
            case .nowhere(let reasons): return reasons.isEmpty || environment.places.isEmpty ? .nowhereToAsk : .placeRefused(reasons.joined(separator: "; "))
            case .waited(let waited): return .timedOutWaiting("waited \(Int(waited.seconds.rounded())) s behind \(waited.words); not shown")
            }
        }
        defer { started.turn.end() }
        let title = "Signet: \(Console.safe(question.program)) asks"
        do throws(PinentryFailure) {
            let first = try open(started.program, for: started.environment, timeout: timeout, title: title)
            defer { first.end() }
            try first.set("SETDESC", question.description)
            try first.set("SETOK", allowLabel)
            try first.set("SETNOTOK", allowFor5MinutesLabel, optional: true)
            try first.set("SETCANCEL", denyLabel)
            if try first.confirm() { return .allow }
            first.end()
            // "Not confirmed" is the 5-minute button, but also what pinentry says when it could not show the
            // question at all (pinentry-tty on a terminal it cannot open). Only an OK grants: the wider grant is
            // asked once more, with its own OK and Deny, and anything but that OK denies.
            let again = try open(started.program, for: started.environment, timeout: timeout, title: title)
            defer { again.end() }
            try again.set("SETDESC", question.description + "\n\n" + "Allow this program to \(Console.safe(question.operation)) with this key, "
                          + "without asking, for the next 5 minutes?")
            try again.set("SETOK", allowFor5MinutesLabel)
            try again.set("SETCANCEL", denyLabel)
            return try again.confirm() ? .allowFor5Minutes : .deny
        } catch {
            switch error {
            case .cancelled: return .deny
            case .timedOut: return .timedOut
            case .noTerminal: return .nowhereToAsk
            case .failed: return .cancelled
            }
        }
    }

    // MARK: Words

    /// "15-minute lock"-style words for a lock of `duration`.
    static func lockWords(_ duration: Duration, adjective: Bool) -> String {
        let seconds = Int(duration.seconds.rounded())
        if seconds % 60 == 0 {
            let minutes = seconds / 60
            return adjective ? "\(minutes)-minute" : "\(minutes) minute\(minutes == 1 ? "" : "s")"
        }
        return DurationText.words(duration.seconds)
    }

    /// The description of an unlock prompt.
    static func unlockDescription(label: String, serial: String, program: String, pid: Int32, key: String?, operation: String?,
                                  triesLeft: Int, policy: LockoutPolicy) -> String {
        let serialText = serial.isEmpty ? "" : " (serial \(serial))"
        let caller = program.isEmpty ? "a program" : program
        var purpose = ""
        if let operation, let key { purpose = " to \(operation) with the key \"\(key)\"" }
        else if let key { purpose = " to use the key \"\(key)\"" }
        else if let operation { purpose = " to \(operation)" }
        let lock = lockWords(policy.lockDuration, adjective: true)
        let tries = "\(triesLeft) of \(policy.maximumFailures) \(policy.maximumFailures == 1 ? "try" : "tries") left before a \(lock) lock"
        return Console.safe("Unlock the token \"\(label)\"\(serialText)") + "\n"
            + Console.safe("for \(caller) (pid \(pid))\(purpose).") + "\n\n" + tries + "."
    }

    /// The `SETERROR` after a wrong code.
    static func wrongCodeError(triesLeft: Int, policy: LockoutPolicy) -> String {
        "Wrong access code — \(triesLeft) \(triesLeft == 1 ? "try" : "tries") left before the token is locked for "
            + lockWords(policy.lockDuration, adjective: false)
    }

    /// The `MESSAGE` while the token is locked.
    static func lockedMessage(remaining: Duration, untilWall: Double, failures: Int) -> String {
        "Locked for \(AccessResult.words(remaining)) (until \(AccessResult.localClockTime(untilWall))) after \(failures) wrong access codes"
    }
}
