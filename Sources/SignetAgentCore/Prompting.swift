#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore

/// Where a client can be asked: what it sent in `clientEnvironment`, checked. The agent serves its own
/// uid only, and each place is checked to belong to the caller: the tty and the Wayland socket (in the
/// agent's `XDG_RUNTIME_DIR`, or an absolute path) and the `XAUTHORITY` file must be the caller's
/// (`lstat`: no symlink followed), and so must the D-Bus session bus, a `unix:path=` socket (`SessionBus`);
/// `DISPLAY` and `TERM` must look like what they are.
/// An entry that fails a check is dropped, with the reason in `refused`.
public struct ClientEnvironment: Sendable, Equatable {
    public var display: String?
    public var waylandDisplay: String?
    public var xauthority: String?
    public var dbusAddress: String?
    public var tty: String?
    public var term: String?
    /// The agent's runtime directory, where a relative `WAYLAND_DISPLAY` is found.
    public var runtimeDirectory: String?
    /// Entries that were dropped, each with why (names and reasons only).
    public var refused: [String] = []

    /// Nowhere to ask: the client sent nothing.
    public static let none = ClientEnvironment()

    public init(display: String? = nil, waylandDisplay: String? = nil, xauthority: String? = nil, dbusAddress: String? = nil,
                tty: String? = nil, term: String? = nil, runtimeDirectory: String? = nil) {
        self.display = display; self.waylandDisplay = waylandDisplay; self.xauthority = xauthority
        self.dbusAddress = dbusAddress; self.tty = tty; self.term = term; self.runtimeDirectory = runtimeDirectory
    }

    /// Checks `entries` for a client of `uid`.
    public init(entries: [(String, String)], uid: uid_t, runtimeDirectory: String? = ProcessEnvironment.value("XDG_RUNTIME_DIR")) {
        self.runtimeDirectory = runtimeDirectory
        for (name, value) in entries {
            if let reason = check(name, value, uid: uid) {
                refused.append("\(Console.safe(String(name.prefix(40)))): \(reason)")
                continue
            }
            switch name {
            case "DISPLAY": display = value
            case "WAYLAND_DISPLAY": waylandDisplay = value
            case "XAUTHORITY": xauthority = value
            case "DBUS_SESSION_BUS_ADDRESS": dbusAddress = value
            case "tty": tty = value
            case "TERM": term = value
            default: break
            }
        }
    }

    /// A display the GUI pinentries can use.
    public var hasScreen: Bool { display != nil || waylandDisplay != nil }

    /// The environment a pinentry gets: these variables, `PATH` and `LANG` from the agent, nothing else.
    var pinentryVariables: [String] {
        var variables = ["PATH=\(ProcessEnvironment.value("PATH") ?? "/usr/local/bin:/usr/bin:/bin")"]
        if let lang = ProcessEnvironment.value("LANG") { variables.append("LANG=\(lang)") }
        if let term { variables.append("TERM=\(term)") }
        if let display { variables.append("DISPLAY=\(display)") }
        if let waylandDisplay {
            variables.append("WAYLAND_DISPLAY=\(waylandDisplay)")
            // Where a relative WAYLAND_DISPLAY is: the socket checked was there.
            if let runtimeDirectory { variables.append("XDG_RUNTIME_DIR=\(runtimeDirectory)") }
        }
        if let xauthority { variables.append("XAUTHORITY=\(xauthority)") }
        if let dbusAddress { variables.append("DBUS_SESSION_BUS_ADDRESS=\(dbusAddress)") }
        return variables
    }

    /// Why `value` is not acceptable for `name`, or nil.
    private func check(_ name: String, _ value: String, uid: uid_t) -> String? {
        guard !value.isEmpty, value.utf8.count <= 512 else { return "empty or longer than 512 bytes" }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return "has control characters" }
        func owned(_ path: String, _ type: mode_t, _ what: String) -> String? {
            var info = stat()
            guard lstat(path, &info) == 0 else { return "\(what) \(path) does not exist" }
            guard info.st_mode & S_IFMT == type else { return "\(path) is not a \(what)" }
            guard info.st_uid == uid else { return "\(what) \(path) belongs to uid \(info.st_uid), not the caller's \(uid)" }
            return nil
        }
        func only(_ allowed: String) -> Bool { value.unicodeScalars.allSatisfy { $0.isASCII && (allowed.unicodeScalars.contains($0) || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)) } }
        switch name {
        case "tty":
            guard value.hasPrefix("/dev/"), !value.contains("/../"), !value.hasSuffix("/..") else { return "not a terminal under /dev" }
            return owned(value, S_IFCHR, "terminal")
        case "WAYLAND_DISPLAY":
            guard !value.contains("..") else { return "has .." }
            if value.hasPrefix("/") { return owned(value, S_IFSOCK, "Wayland socket") }
            guard let runtimeDirectory, !value.contains("/") else { return "no runtime directory to find it in" }
            return owned(runtimeDirectory + "/" + value, S_IFSOCK, "Wayland socket")
        case "XAUTHORITY":
            guard value.hasPrefix("/") else { return "not an absolute path" }
            return owned(value, S_IFREG, "file")
        case "DISPLAY":
            return only(".:-_/") && value.contains(":") ? nil : "not an X display name"
        case "TERM":
            return only(".-_+") && value.utf8.count <= 64 ? nil : "not a terminal type"
        case "DBUS_SESSION_BUS_ADDRESS":
            return SessionBus.problem(value, uid: uid)  // a unix:path= socket of the caller's only (issue 24 #6)
        default:
            return "not used by Signet"
        }
    }
}

/// An answer to `Prompting.confirm`.
public enum ConfirmAnswer: Sendable, Equatable {
    case allow, allowFor5Minutes, deny, cancelled, timedOut, nowhereToAsk
}

/// Asking the person through pinentry: which program, and the words of the prompts.
public enum Prompting {
    /// What the agent answers when a client named no screen or terminal it may use.
    public static let nowhereMessage = "No screen or terminal to ask for the access code — run `signet unlock`"

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
    /// client's screen or terminal showing `text`, with three buttons. "Allow" is OK, "Allow for 5 minutes" the
    /// not-OK button (`ERR` 114), and "Deny" the cancel button, so that Escape, a closed window and anything
    /// unclear never grant anything; `.deny` is returned for all three. `.timedOut` when nobody answered within
    /// `timeout` seconds (the pinentry is then killed), `.nowhereToAsk` when the client named no usable screen or
    /// terminal (answered at once), `.cancelled` when the pinentry failed or died. It blocks for as long as the
    /// person takes: call it on a connection thread, never on Swift's cooperative pool, and never while
    /// holding a token's worker.
    public static func confirm(_ text: String, for environment: ClientEnvironment, timeout: Double,
                               program configured: String? = nil) -> ConfirmAnswer {
        guard let program = program(configured: configured, for: environment) else { return .nowhereToAsk }
        do throws(PinentryFailure) {
            let session = try open(program, for: environment, timeout: timeout, title: "Signet")
            defer { session.end() }
            try session.set("SETDESC", text)
            try session.set("SETOK", "Allow")
            try session.set("SETNOTOK", "Allow for 5 minutes", optional: true)
            try session.set("SETCANCEL", "Deny")
            return try session.confirm() ? .allow : .allowFor5Minutes
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
