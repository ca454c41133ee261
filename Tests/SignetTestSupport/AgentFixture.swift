import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// A real `signet-agent` process for one test: its own HOME and XDG
/// directories, its own SoftHSM2 token directory, and only that module
/// (through the counting wrapper when asked), so tests never share state.
public final class AgentFixture: @unchecked Sendable {
    public let home: URL
    public let environment: [String: String]
    public let paths: SignetPaths
    /// The wrapper's log of codes presented to tokens (when `countingCodes`).
    public let wrapperLog: String
    public private(set) var pid: pid_t = 0

    public var socketPath: String { paths.agentSocket }
    public var auditLogPath: String { paths.state + "/audit.log" }
    public var agentLogPath: String { home.appendingPathComponent("agent-stderr.log").path }
    public static var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }
    public static var agentBinary: String { TestPaths.binaries.appendingPathComponent("signet-agent").path }

    /// - Parameters:
    ///   - config: extra lines for `$XDG_CONFIG_HOME/signet/config`.
    ///   - countingCodes: load SoftHSM2 through the test wrapper that logs every code presented.
    ///   - extraEnvironment: more variables for the agent and the CLI (e.g. the wrapper's failure switches).
    public init(config: String = "", countingCodes: Bool = false, extraEnvironment: [String: String] = [:]) throws {
        home = try TestPaths.temporaryDirectory("signet-agent-home")
        let softhsm = home.appendingPathComponent("softhsm")
        try FileManager.default.createDirectory(at: softhsm.appendingPathComponent("tokens"), withIntermediateDirectories: true)
        let softhsmConfig = softhsm.appendingPathComponent("softhsm2.conf").path
        try "directories.tokendir = \(softhsm.path)/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            .write(toFile: softhsmConfig, atomically: true, encoding: .utf8)
        guard let softhsmModule = SoftwareTokens.installedModulePath() else { throw TestFailure("SoftHSM2 is not installed") }
        wrapperLog = home.appendingPathComponent("codes.log").path
        let module = countingCodes ? TestPaths.binaries.appendingPathComponent("libSignetTestPKCS11Wrapper.so").path : softhsmModule

        var env = TestPaths.userEnvironment(home: home)
        env["SOFTHSM2_CONF"] = softhsmConfig
        env["SIGNET_WRAPPED_MODULE"] = softhsmModule
        env["SIGNET_WRAPPER_LOG"] = wrapperLog
        env["SIGNET_AGENT"] = AgentFixture.agentBinary
        env["SIGNET_PKCS11_MODULE"] = nil
        env.merge(extraEnvironment) { $1 }
        environment = env
        paths = SignetPaths(environment: env)
        try FileManager.default.createDirectory(atPath: paths.config, withIntermediateDirectories: true)
        try "p11-kit-modules = no\npkcs11-module = \(module)\n\(config)\n".write(toFile: paths.config + "/config", atomically: true, encoding: .utf8)
    }

    deinit { stop() }

    /// Starts the agent and waits until it answers.
    public func start() throws {
        pid = try AgentFixture.spawn(AgentFixture.agentBinary, [], environment: environment, log: agentLogPath)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if (try? AgentClient(socketPath: socketPath, clientName: "test")) != nil { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw TestFailure("signet-agent exited at start: \(agentLog)")
            }
            usleep(20_000)
        }
        throw TestFailure("signet-agent did not answer within 20 s: \(agentLog)")
    }

    /// Starts `executable` with standard input from /dev/null and its output appended to `log` (0600); returns its pid.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String], log: String) throws -> pid_t {
        // SignetCore's Subprocess: no signal blocked in the child (the test runner's threads block some), so it
        // starts as it would from a shell; nothing reaped here (`wait`/`kill` below do that).
        do {
            return try Subprocess(executable, arguments: arguments, environment: environment.map { "\($0.key)=\($0.value)" },
                                  standardInput: .null, standardOutput: .appending(to: log, mode: 0o600),
                                  standardError: .standardOutput).pid
        } catch {
            throw TestFailure("could not start \(executable): \(error.reason)")
        }
    }

    /// Stops the agent with SIGTERM and waits for it; an agent that the CLI started in its
    /// place (after this one exited) is asked to shut down through the socket.
    public func stop() {
        if pid > 0 {
            kill(pid, SIGTERM)
            wait(timeout: 10)
        }
        if FileManager.default.fileExists(atPath: socketPath), let client = try? AgentClient(socketPath: socketPath, clientName: "test") {
            _ = try? client.call(.shutdown, timeout: 10)
        }
    }

    /// Kills the agent with SIGKILL (no clean-up), as a crash would.
    public func kill9() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        wait(timeout: 10)
    }

    /// True while the agent process has not exited.
    public var isRunning: Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    private func wait(timeout: Double) {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) != 0 { pid = 0; return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        pid = 0
    }

    public var agentLog: String { (try? String(contentsOfFile: agentLogPath, encoding: .utf8)) ?? "" }
    public var auditLog: String { (try? String(contentsOfFile: auditLogPath, encoding: .utf8)) ?? "" }

    /// Audit entries as dictionaries.
    public var auditEntries: [[String: Any]] {
        auditLog.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// A connected, greeted client.
    public func client() throws -> AgentClient { try AgentClient(socketPath: socketPath, clientName: "test") }

    /// Runs the `signet` CLI in this fixture's environment.
    /// - Parameter onStandardError: called with everything written to standard error so far, as it grows.
    @discardableResult
    public func signet(_ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120,
                       onStandardError: ((Data) -> Void)? = nil) throws -> Run.Result {
        try Run.command(AgentFixture.signet, arguments, stdin: stdin.map { Data($0.utf8) }, environment: environment, timeout: timeout,
                        onStandardError: onStandardError)
    }

    /// Runs `signet` under GNU time, which writes its peak resident memory (KiB) as the last line of `peakFile`.
    public func signet(_ arguments: [String], measuringPeakMemoryTo peakFile: String) throws -> Run.Result {
        try Run.command("/usr/bin/time", ["-f", "%M", "-o", peakFile, AgentFixture.signet] + arguments, environment: environment)
    }

    /// Asks the agent to read its configuration, policy and client rules again (the `reload` request); returns
    /// its answer, which comes once they are in force, so the next request is served under them.
    @discardableResult
    public func reload() throws -> ReloadReport {
        let response = try client().call(.reload)
        guard case .reloaded(let report) = response else { throw TestFailure("reload answered \(response)") }
        return report
    }

    /// Creates a software token through the agent; returns its URI.
    @discardableResult
    public func makeToken(_ label: String, code: String = "123456", soCode: String = "so-code-12") throws -> String {
        let result = try signet(["token", "init", "--software", "--label", label, "--code-fd", "0", "--so-code-fd", "0"], stdin: "\(code)\n\(soCode)\n")
        guard result.status == 0, let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("URI: ") }) else {
            throw TestFailure("token init failed: \(result.errors)")
        }
        return String(line.dropFirst(5))
    }

    /// Unlocks through the protocol with `code`.
    public func unlock(_ client: AgentClient, token: String?, code: String) throws -> AccessOutcome {
        let response = try client.call(.unlock(token: token, code: SharedSecret(SecretBytes(copying: Array(code.utf8))), finalTry: false))
        guard case .access(let outcome) = response else { throw TestFailure("unlock answered \(response)") }
        return outcome
    }
}
