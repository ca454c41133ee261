#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Finds a running agent, or starts one: `signet` starts the agent when none
/// is running, as `gpg` starts `gpg-agent`.
public enum AgentLauncher {
    /// The agent's socket for `paths`.
    public static func socketPath(_ paths: SignetPaths = .current) -> String { paths.agentSocket }

    /// A connected client; starts the agent first when none answers and `start` is set.
    /// - Parameter besideFile: a file the agent executable may sit beside (the PKCS#11 module's
    ///   own path: in a mail program, this process's executable is not Signet's).
    /// - Parameter environment: sent behind the hello (`CallerEnvironment.current()`), for the prompts the agent may make.
    /// - Throws: `AgentClientError`; `.notYourAgent` at once, on the first connect or any retry while a started agent
    ///   comes up, when the socket's directory or its listener is another user's: no agent is started over it and
    ///   nothing is sent to it.
    public static func connect(paths: SignetPaths = .current, start: Bool = true, clientName: String = "signet",
                               besideFile: String? = nil, environment: [(String, String)]? = nil) throws(AgentClientError) -> AgentClient {
        let path = socketPath(paths)
        do throws(AgentClientError) {
            return try AgentClient(socketPath: path, clientName: clientName, environment: environment)
        } catch {
            guard start, case .notRunning = error else { throw error }
        }
        try launch(paths: paths, besideFile: besideFile)
        let deadline = MonotonicClock.seconds() + 10
        var lastError = AgentClientError.notRunning(path)
        while MonotonicClock.seconds() < deadline {
            do throws(AgentClientError) {
                return try AgentClient(socketPath: path, clientName: clientName, environment: environment)
            } catch {
                lastError = error
                guard case .notRunning = error else { throw error }
            }
            usleep(20_000)
        }
        throw .startFailed("it did not answer within 10 s (\(lastError)); see \(paths.state)/agent.log")
    }

    /// The agent executable: `$SIGNET_AGENT`, else `signet-agent` beside `besideFile` (when given), or
    /// beside this program, else on `$PATH`.
    public static func executable(besideFile: String? = nil) -> String? {
        if let explicit = ProcessEnvironment.value("SIGNET_AGENT") { return explicit }
        func sibling(of file: String) -> String? {
            guard let slash = file.lastIndex(of: "/") else { return nil }
            let candidate = String(file[...slash]) + "signet-agent"
            return access(candidate, X_OK) == 0 ? candidate : nil
        }
        if let besideFile, let found = sibling(of: besideFile) { return found }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0, let found = sibling(of: String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)) {
            return found
        }
        for directory in (ProcessEnvironment.value("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/signet-agent"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Starts the agent in its own session, detached from this terminal, with
    /// standard input from /dev/null and its log in `$XDG_STATE_HOME/signet/agent.log`.
    static func launch(paths: SignetPaths, besideFile: String? = nil) throws(AgentClientError) {
        guard let path = executable(besideFile: besideFile) else { throw .startFailed("signet-agent is not installed beside signet or on PATH") }
        if let note = paths.runtimeNote { Console.error("Note: \(note)") }
        _ = FileIO.makeDirectories(paths.state)
        let log = paths.state + "/agent.log"
        // Its own session: the agent is not killed with this terminal's process group. Not waited for: it outlives us.
        do throws(SystemError) {
            _ = try Subprocess(path, standardInput: .null, standardOutput: .appending(to: log, mode: 0o600),
                               standardError: .standardOutput, group: .session)
        } catch {
            throw .startFailed("\(path): \(error.reason)")
        }
    }
}
