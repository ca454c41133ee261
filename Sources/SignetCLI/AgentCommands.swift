#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetMail

/// The CLI's way to the agent: connect (starting it when needed) and turn
/// failures into `SignetError`s, whose codes are the exit statuses.
enum Agent {
    /// Exit status for an agent error (see `ExitStatus.init(_:)`).
    static func exitCode(_ code: AgentErrorCode?) -> Int32 { ExitStatus(code).rawValue }

    /// - Throws: `SignetError` when the agent cannot be reached or started.
    static func connect(start: Bool = true) throws(SignetError) -> AgentClient {
        try AgentConnection.open(start: start)
    }

    /// One request (connecting first when no client is given).
    /// - Throws: `SignetError` with the agent's message and the status its code means.
    static func call(_ request: AgentRequest, client: AgentClient? = nil) throws(SignetError) -> AgentResponse {
        if let client { return try client.request(request) }
        return try connect().request(request)
    }

    /// Prints an access-code outcome; throws the exit status for failures
    /// (`wrongCode`, `locked`, `tokenRefuses`, else `failure`).
    static func finish(_ response: AgentResponse, success: String) throws(SignetError) {
        guard case .access(let outcome) = response else { throw SignetError.unexpectedAnswer }
        switch outcome.kind {
        case .unlocked: print(success)
        case .alreadyUnlocked: print(Console.safe(outcome.message))
        case .wrongCode: throw SignetError(.wrongCode, Console.safe(outcome.message))
        case .locked: throw SignetError(.locked, Console.safe(outcome.message))
        case .cardFinalTry, .cardBlocked: throw SignetError(.tokenRefuses, Console.safe(outcome.message))
        default: throw SignetError(.failure, Console.safe(outcome.message))
        }
    }
}

/// `--code-fd` for the commands that use a key (sign, decrypt, verify): the access code is asked
/// for only when the token turns out to be locked, as gpg-agent asks for a card's PIN.
struct UnlockOptions: ParsableArguments {
    @Option(name: .customLong("code-fd"), help: "If the token is locked, read its access code (one line) from this descriptor instead of the terminal.")
    var codeFD: Int32?
}

extension Agent {
    /// For `AgentKey`'s `onLocked`: asks for the access code (on the terminal, or from
    /// `codeFD`) and unlocks the token holding `keyURI`. Messages go to standard error
    /// (standard output may carry the message). False when there is no way to ask, or
    /// the token did not unlock (the reason is printed).
    static func unlocker(client: AgentClient, keyURI: String, codeFD: Int32?) -> () -> Bool {
        return {
            Console.error("The token holding the key is locked.")
            let code: SharedSecret
            do {
                code = SharedSecret(try AccessCodeInput.obtain(fd: codeFD, prompt: "Access code: "))
            } catch {
                Console.error("Cannot unlock it: \(error).")
                return false
            }
            do throws(AgentClientError) {
                guard case .access(let outcome) = try client.call(.unlock(token: keyURI, code: code, finalTry: false)) else { return false }
                guard outcome.kind == .unlocked || outcome.kind == .alreadyUnlocked else {
                    Console.error(Console.safe(outcome.message))
                    return false
                }
                Console.error("Unlocked.")
                return true
            } catch {
                Console.error(Console.safe(error.description))
                return false
            }
        }
    }
}

/// `signet unlock`.
struct UnlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock",
        abstract: "Unlock a token with its access code (asked on the terminal without echo, or by the agent through pinentry).",
        discussion: """
        With --pinentry, or when there is no terminal and no --code-fd, the agent asks for the code itself through \
        pinentry: in a window when DISPLAY or WAYLAND_DISPLAY is set, else on this terminal (pinentry-tty or -curses). \
        The agent keeps the token unlocked until `signet lock`, 15 minutes without use, the token being \
        removed, or the agent stopping. Three wrong codes in a row lock the token for 15 minutes. \
        Exit status: 0 unlocked, 2 wrong code, 3 locked, 4 the token refuses, 5 the token was not presented (all statuses: docs/exit-status.md).
        """
    )
    @Option(name: .long, help: "The token's PKCS#11 URI (see `signet status`); needed when more than one token is present.")
    var token: String?
    @Option(name: .customLong("code-fd"), help: "Read the access code (one line) from this file descriptor instead of the terminal.")
    var codeFD: Int32?
    @Flag(name: .customLong("final-try"), help: "Send the code even if the token reports its final try.")
    var finalTry = false
    @Flag(name: .long, help: "Have the agent ask for the code through pinentry (a window, or this terminal).")
    var pinentry = false

    func validate() throws {
        if pinentry && codeFD != nil { throw ValidationError("--pinentry and --code-fd exclude each other.") }
        if pinentry && finalTry { throw ValidationError("--final-try needs the code on the terminal or --code-fd.") }
    }

    func run() throws {
        let client = try Agent.connect()
        if pinentry { return try Agent.finish(try Agent.call(.unlockAsking(token: token), client: client), success: "Unlocked.") }
        let code: SharedSecret
        do {
            code = SharedSecret(try AccessCodeInput.obtain(fd: codeFD, prompt: "Access code: "))
        } catch AccessCodeInput.Failure.noTerminal {
            // No terminal (started from a desktop launcher, a mail program): the agent asks in a window, or says why it cannot.
            return try Agent.finish(try Agent.call(.unlockAsking(token: token), client: client), success: "Unlocked.")
        } catch {
            throw CLIError(description: error.description)
        }
        try Agent.finish(try Agent.call(.unlock(token: token, code: code, finalTry: finalTry), client: client), success: "Unlocked.")
    }
}

/// `signet lock`.
struct LockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lock", abstract: "Lock a token (every token when none is named).")
    @Option(name: .long, help: "The token's PKCS#11 URI; all tokens when omitted.")
    var token: String?

    func run() throws {
        guard let client = try? AgentLauncher.connect(start: false) else {
            print("No agent is running, so no token is unlocked.")
            return
        }
        if case .ok(let message) = try Agent.call(.lock(token: token), client: client) { print(Console.safe(message)) }
    }
}

/// `signet status`.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the agent and, per token: present, locked or unlocked, tries left, any lock, the token's own counter."
    )
    @OptionGroup var output: OutputOptions
    @Flag(name: .customLong("no-start"), help: "Do not start the agent when it is not running.")
    var noStart = false

    func run() throws {
        let client: AgentClient
        do throws(AgentClientError) {
            client = try AgentLauncher.connect(start: !noStart)
        } catch {
            if case .notRunning = error {
                if output.json { return try JSONOutput.print(TokenReports.Status.notRunning) }
                print("Agent: not running (`signet agent start` or any other command starts it).")
                return
            }
            throw SignetError(error)
        }
        guard case .status(let status) = try Agent.call(.status, client: client) else { throw SignetError.unexpectedAnswer }
        let report = TokenReports.Status(status)
        if output.json { return try JSONOutput.print(report) }
        print("Agent: running (pid \(status.pid), version \(status.agentVersion), up \(DurationText.words(Double(status.uptimeSeconds))), \(status.connections) connection\(status.connections == 1 ? "" : "s"))")
        for problem in status.problems { print(Console.safe("  configuration: \(problem)")) }
        if status.tokens.isEmpty {
            print("No token is present. Insert your token or tap it on the reader; to try Signet without one, "
                  + "run `signet token init --software --label NAME`.")
        }
        for token in status.tokens {
            print(Console.safe("\(token.label)\(token.software ? "  [SOFTWARE TOKEN]" : "")"))
            print(Console.safe("  URI:     \(token.uri)"))
            print("  state:   \(token.unlocked ? "unlocked" : "locked (`signet unlock`)")")
            for line in TokenReports.accessState(token) { print(line) }
        }
    }
}

/// `signet keys`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List keys and certificates with their PKCS#11 URIs (private keys appear once the token is unlocked)."
    )
    @Option(name: .long, help: "Only this token (PKCS#11 URI).")
    var token: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        let objects = try Inventory.listObjects(client: try Agent.connect(), token: token, certificateValues: false).entries
        let entries = objects.map(TokenReports.Object.init)
        if output.json { return try JSONOutput.print(entries) }
        if entries.isEmpty { print("No keys or certificates are visible. Unlock the token to see private keys (`signet unlock`).") }
        for entry in entries {
            let size = entry.keyType.map { " \($0)-\(entry.bits)" } ?? ""
            print(Console.safe("\(entry.kind)\(size)  \(entry.label)  id \(entry.id)\(entry.usages.isEmpty ? "" : "  [\(entry.usages.joined(separator: ", "))]")"))
            print(Console.safe("  \(entry.uri)"))
        }
    }
}

/// `signet agent start|stop`.
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Start or stop signet-agent (other commands start it when needed).",
        subcommands: [Start.self, Stop.self, Reload.self]
    )

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reload",
            abstract: "Make the running agent read its configuration, policy and client rules again, and show what it loaded.",
            discussion: """
            Returns once the agent has put the files in force. A file someone else could write is refused, with
            the reason, and this command then exits with status 1: the agent refuses to unlock tokens or use keys
            until the file is fixed and reloaded.
            """)
        func run() throws {
            guard let client = try? AgentLauncher.connect(start: false) else {
                print("signet-agent is not running; it reads the files when it starts.")
                return
            }
            let answer = Result { () throws(SignetError) in try Agent.call(.reload, client: client) }
            if case .failure(let error) = answer, (error.cause as? AgentClientError)?.code == .unknownRequest {
                // An agent from before the `reload` request: SIGHUP makes it read the files, but says nothing of when.
                guard kill(pid_t(client.agentPID), SIGHUP) == 0 else {
                    throw CLIError(description: "cannot signal signet-agent (pid \(client.agentPID)): \(String(cString: strerror(errno)))")
                }
                print("signet-agent (pid \(client.agentPID)) is older than this signet and was sent SIGHUP; `signet status` shows what it read.")
                return
            }
            guard case .reloaded(let report) = try answer.get() else { throw SignetError.unexpectedAnswer }
            print("signet-agent (pid \(client.agentPID)) reloaded its configuration; now in force:")
            for setting in report.settings { print(Console.safe("  \(setting.name) = \(setting.value)")) }
            print("  client rules: \(report.clientRules) (`signet policy` lists them)")
            let others = report.problems.filter { problem in !report.refusals.contains { problem.hasPrefix($0) } }
            for problem in others { print(Console.safe("Problem: \(problem)")) }
            guard report.refusals.isEmpty else {
                throw CLIError(description: Console.safe(SignetConfig.refusalAdvice(report.refusals)))
            }
        }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Start the agent if it is not running.")
        func run() throws {
            let client = try Agent.connect()
            print("signet-agent \(client.agentVersion) is running (pid \(client.agentPID)).")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the agent; every token is logged out.")
        func run() throws {
            guard let client = try? AgentLauncher.connect(start: false) else {
                print("signet-agent is not running.")
                return
            }
            let pid = client.agentPID
            _ = try Agent.call(.shutdown, client: client)
            // Wait until the socket is gone so a following start does not race the old agent.
            for _ in 0..<100 where (try? AgentLauncher.connect(start: false)) != nil { usleep(50_000) }
            print("signet-agent (pid \(pid)) stopped.")
        }
    }
}

