#if canImport(Glibc)
import Glibc
#endif
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// How a call to the agent failed, as the module's state needs to tell it apart.
package enum AgentLinkError: Error, Equatable {
    /// The agent answered with an error: the connection is still good.
    case agent(AgentErrorCode)
    /// No agent listens (none started); the module may start one (`AgentStart`).
    case notRunning
    /// Anything else: the connection broke, the agent misbehaved, or it is not this user's.
    case lost
}

/// One connection to the agent, used by one caller at a time (the state keeps idle ones in a pool).
package protocol AgentConnection: AnyObject {
    /// The agent process at the other end: a different one after a restart.
    var agentPID: UInt32 { get }
    /// One request and its answer. `timeout` bounds the whole call, interim notices included.
    /// - Throws: `.agent` for the agent's error answer, `.lost` when the connection is no longer usable.
    func call(_ request: AgentRequest, timeout: Double?) throws(AgentLinkError) -> AgentResponse
}

/// Where the module's connections come from: the agent's socket (`SocketAgentLink`), or a stand-in
/// in the library's tests (`SignetPKCS11FrontTests`), which drive `ModuleState` in process.
package protocol AgentLink: Sendable {
    /// A new connection; `start` starts the agent first when none answers.
    /// - Throws: `.notRunning` when none answers and none was started; `.lost` otherwise.
    func connect(start: Bool) throws(AgentLinkError) -> any AgentConnection
}

/// The real link: the agent's Unix socket (`AgentLauncher`), with this host program's screen and
/// terminal sent with each new connection (a `C_Login(NULL)` on it may prompt there).
package struct SocketAgentLink: AgentLink {
    /// The module's own file (the agent is looked for beside it).
    let modulePath: String?

    package init(modulePath: String?) { self.modulePath = modulePath }

    package func connect(start: Bool) throws(AgentLinkError) -> any AgentConnection {
        do throws(AgentClientError) {
            let client = try AgentLauncher.connect(start: start, clientName: "libsignet-pkcs11", besideFile: start ? modulePath : nil,
                                                   environment: CallerEnvironment.current())
            return SocketConnection(client)
        } catch {
            if case .notRunning = error { throw .notRunning }
            throw .lost
        }
    }
}

/// An `AgentClient` as the module uses it.
final class SocketConnection: AgentConnection {
    let client: AgentClient
    init(_ client: AgentClient) { self.client = client }

    var agentPID: UInt32 { client.agentPID }

    func call(_ request: AgentRequest, timeout: Double?) throws(AgentLinkError) -> AgentResponse {
        do throws(AgentClientError) {
            // Interim notices (sent every second while the agent waits) do not extend `timeout`.
            return try client.call(request, timeout: timeout, total: timeout, onNotice: { _, _ in })
        } catch {
            if case .agent(let code, _) = error { throw .agent(code) }
            throw .lost
        }
    }
}

/// When the module may start `signet-agent` itself (docs/pkcs11-module.md, "When the module starts the agent").
package enum AgentStart {
    /// The package's user unit, in systemd's user unit search path (systemd.unit(5)), looked for in this order.
    package static func unitDirectories(configHome: String) -> [String] {
        [configHome + "/systemd/user", "/etc/systemd/user", "/usr/local/lib/systemd/user", "/usr/lib/systemd/user"]
    }

    /// Whether this process may start the agent when none answers:
    /// - not as root (a root `modutil` or `pkcs11-tool` would start a root agent with its state under /root),
    ///   nor in a set-user-ID or set-group-ID program (the agent would get the program's identity);
    /// - not when systemd owns the agent: the package's `signet-agent.socket` is installed (or masked) and a
    ///   systemd user manager serves this runtime directory. systemd then starts the agent on the first
    ///   connection; a socket that does not answer was stopped, disabled or masked by the user, and an agent
    ///   started behind systemd's back would run outside its unit (no journal, no sandbox, not stopped by
    ///   `systemctl --user stop`). As with gpg-agent's and ssh-agent's socket units, the module then shows no
    ///   token instead.
    package static func allowed(uid: uid_t, euid: uid_t, gid: gid_t, egid: gid_t, socketUnitInstalled: Bool, userManagerRunning: Bool) -> Bool {
        guard uid != 0, uid == euid, gid == egid else { return false }
        return !(socketUnitInstalled && userManagerRunning)
    }

    /// `allowed` for this process and its environment.
    package static var allowedHere: Bool {
        let environment = ProcessEnvironment.all()
        let home = environment["HOME"] ?? "/"
        let configHome = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
        let installed = unitDirectories(configHome: configHome).contains { exists($0 + "/signet-agent.socket") }
        // A user manager keeps its private socket in the runtime directory it serves.
        let manager = environment["XDG_RUNTIME_DIR"].map { exists($0 + "/systemd/private") } ?? false
        return allowed(uid: getuid(), euid: geteuid(), gid: getgid(), egid: getegid(), socketUnitInstalled: installed, userManagerRunning: manager)
    }

    /// Whether `path` names anything (a masked unit is a link to /dev/null: it counts).
    private static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}
