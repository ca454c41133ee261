#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore

/// The agent's settings, from `/etc/signet/config` and `$XDG_CONFIG_HOME/signet/config`
/// (`key = value` lines), re-read on SIGHUP. A file others could have written is not read (`ProtectedFile`):
/// the agent then runs, so that `signet status` can say why, but refuses what the file could have
/// steered (unlocking, key use, writing to tokens) rather than run with settings other than the user's.
public struct AgentSettings: Sendable {
    public var paths: SignetPaths
    /// The administrator's directory the settings were read from (`/etc/signet`; another in tests), read again on reload.
    public var systemDirectory = "/etc/signet"
    public var lockoutPolicy: LockoutPolicy
    /// An unlocked token unused for this long is logged out (`idle-lock-minutes`, default 15; 0: never).
    public var idleLock: Double
    /// How long a request for an absent token waits for it (`presence-wait-seconds`, default 30).
    public var presenceWait: Double
    /// Connections served at once (`max-connections`, default 512); more are refused with an error.
    public var maximumConnections: Int
    /// A connection with no request for this long is closed (`connection-idle-seconds`, default 600).
    public var connectionIdle: Double
    /// A frame must arrive whole within this time once begun (`request-seconds`, default 10).
    public var requestTimeout: Double
    /// A token module call running longer than this means the module hangs; the agent then stops
    /// so that a fresh one can start (`module-timeout-seconds`, default 180 — on-card RSA key
    /// generation takes a minute or more on slow cards; 0: never).
    public var moduleTimeout: Double
    /// How often the agent checks that its socket file is still its own (`socket-check-seconds`,
    /// default 10); an agent whose socket was removed or replaced cannot be reached, so it stops.
    public var socketCheck: Double
    /// The pinentry the agent asks through (`pinentry-program = PATH`); nil: the first installed that fits
    /// the client's screen or terminal (`Prompting.program`).
    public var pinentryProgram: String?
    /// Seconds a person has to answer each prompt (`pinentry-timeout-seconds`, default 60); the pinentry is
    /// told (`SETTIMEOUT`) and killed when it outlives this by 2 s.
    public var pinentryTimeout: Double
    /// The per-client rules from `/etc/signet/clients` and `$XDG_CONFIG_HOME/signet/clients` (`docs/clients.md`).
    var clients: ClientPolicy = .none
    /// The key operations that send a desktop notification (`notify = sign,decrypt`; none by default).
    var notify: Set<KeyOperation> = []
    /// Uses of one key by one program within this many seconds make one notification (`notify-seconds`, default 10).
    public var notifyWindow: Double = 10
    /// How long a `confirm` rule's prompt waits for an answer (`confirm-seconds`, default 60).
    public var confirmTimeout: Double = 60
    /// Configuration and policy files that were not read because others could have written them
    /// (`ProtectedFile`), each problem naming the file or directory. While there are any, the agent refuses
    /// to unlock tokens, use keys or write to tokens (`RequestHandler.refuseWhileConfigurationRefused`).
    public var refusals: [String] = []
    /// Values refused while loading (not numbers, `inf`, out of range), each naming its file and
    /// line and what is used instead; the agent logs them. Configuration never stops or crashes it.
    public var problems: [String] = []

    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet") -> AgentSettings {
        let config = SignetConfig.load(paths: paths, systemDirectory: systemDirectory)
        var problems: [String] = []
        // The ranges are wide (a day, a week, a year) yet keep every value convertible to the integers
        // and poll timeouts it ends up in: `max-connections = 1e300` once trapped converting to Int.
        func number(_ key: String, _ fallback: Double, in range: ClosedRange<Double>) -> Double {
            do throws(SignetConfig.BadValue) {
                return try config.number(key, in: range) ?? fallback
            } catch {
                problems.append("\(error); using \(fallback == fallback.rounded() ? String(Int(fallback)) : String(fallback))")
                return fallback
            }
        }
        // `allow-uid` once let other users connect, but they never could: the socket lives in your private
        // runtime directory (0700) and is itself 0600. The agent serves your uid only; the key is refused.
        for origin in config.origins(of: "allow-uid") {
            problems.append("\(origin): allow-uid is not supported: the agent serves only your own uid (its socket is in your private "
                            + "runtime directory, which other users cannot reach); remove the line")
        }
        var refusals = config.refusals
        var settings = AgentSettings(
            paths: paths,
            lockoutPolicy: .load(paths: paths, systemDirectory: systemDirectory, problems: &problems, refusals: &refusals),
            idleLock: number("idle-lock-minutes", 15, in: 0...525_600) * 60,
            presenceWait: number("presence-wait-seconds", 30, in: 0...86_400),
            maximumConnections: Int(number("max-connections", 512, in: 1...65_536)),
            connectionIdle: number("connection-idle-seconds", 600, in: 1...604_800),
            requestTimeout: number("request-seconds", 10, in: 0.1...3600),
            moduleTimeout: number("module-timeout-seconds", 180, in: 0...86_400),
            socketCheck: number("socket-check-seconds", 10, in: 0.1...3600),
            pinentryProgram: nil,
            pinentryTimeout: number("pinentry-timeout-seconds", 60, in: 1...3600)
        )
        settings.systemDirectory = systemDirectory
        if let program = config.value("pinentry-program") {
            if program.hasPrefix("/") && access(program, X_OK) == 0 {
                settings.pinentryProgram = program
            } else {
                let origin = config.origins(of: "pinentry-program").last ?? "pinentry-program"
                problems.append("\(origin): pinentry-program = \(program) is not an executable absolute path; choosing a pinentry by the client's screen or terminal")
            }
        }
        settings.confirmTimeout = number("confirm-seconds", 60, in: 1...3600)
        settings.notifyWindow = number("notify-seconds", 10, in: 1...3600)
        for (index, value) in config.values("notify").enumerated() {
            let origin = config.origins(of: "notify")[index]
            var operations: Set<KeyOperation> = []
            for word in value.split(separator: ",").map({ $0.trimmingSpaces() }) where !word.isEmpty && word != "none" {
                if let operation = KeyOperation(rawValue: String(word)) { operations.insert(operation) } else {
                    problems.append("\(origin): notify = \(value): \"\(word)\" is not sign, decrypt or derive; it is ignored")
                }
            }
            settings.notify = operations  // the last line wins, like other keys
        }
        // The administrator's rules; SIGNET_ADMIN_CLIENTS names another file for tests. A user who can set the
        // agent's environment can as well run an agent of their own: the rules guard against mistakes, not against them.
        let administrator = ProcessEnvironment.value("SIGNET_ADMIN_CLIENTS").flatMap { $0.hasPrefix("/") ? $0 : nil } ?? systemDirectory + "/clients"
        settings.clients = ClientPolicy.load(administrator: administrator, user: paths.config + "/clients")
        for problem in settings.clients.problems {
            problems.append("\(problem); every key use is denied until the file is fixed (then `signet agent reload`)")
        }
        settings.refusals = refusals
        for refusal in refusals {
            problems.append("\(refusal); nothing in the file is obeyed, and the agent refuses to unlock tokens or use keys until it is fixed "
                            + "(then `signet agent reload`)")
        }
        settings.problems = problems
        return settings
    }

    /// The settings in force, named as in the configuration file, for the answer to `reload`.
    var inForce: [(name: String, value: String)] {
        func number(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }
        return [
            ("idle-lock-minutes", number(idleLock / 60)), ("presence-wait-seconds", number(presenceWait)),
            ("max-failures", String(lockoutPolicy.maximumFailures)), ("lock-minutes", number(Double(lockoutPolicy.lockDuration.components.seconds) / 60)),
            ("max-connections", String(maximumConnections)), ("connection-idle-seconds", number(connectionIdle)),
            ("request-seconds", number(requestTimeout)), ("module-timeout-seconds", number(moduleTimeout)),
            ("socket-check-seconds", number(socketCheck)), ("pinentry-program", pinentryProgram ?? "(chosen by the client's screen or terminal)"),
            ("pinentry-timeout-seconds", number(pinentryTimeout)), ("confirm-seconds", number(confirmTimeout)),
            ("notify", notify.isEmpty ? "none" : notify.map(\.rawValue).sorted().joined(separator: ",")), ("notify-seconds", number(notifyWindow)),
        ]
    }

    /// The socket path: `$XDG_RUNTIME_DIR/signet/agent.sock`.
    public var socketPath: String { paths.agentSocket }
}
