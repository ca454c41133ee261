#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where Signet keeps its files, following the XDG base directory specification.
///
/// - data (`$XDG_DATA_HOME/signet`, default `~/.local/share/signet`): software tokens, trust store;
/// - state (`$XDG_STATE_HOME/signet`, default `~/.local/state/signet`): access-code ledger, audit log;
/// - config (`$XDG_CONFIG_HOME/signet`, default `~/.config/signet`): the user's configuration;
/// - runtime (`$XDG_RUNTIME_DIR/signet`): the agent's socket. Without `XDG_RUNTIME_DIR`,
///   `${TMPDIR:-/tmp}/signet-<uid>` when it does not exist yet or is a directory of ours that only we
///   can use; otherwise (another user made it, to block the agent, or it is a symlink)
///   `${XDG_CACHE_HOME:-~/.cache}/signet/run`, as gpg-agent falls back to a directory in the user's home
///   (`~/.gnupg`) when `/run/user/<uid>` is missing. The agent and its clients decide alike, so they agree.
public struct SignetPaths: Sendable, Equatable {
    public var data: String
    public var state: String
    public var config: String
    public var runtime: String
    /// Why `runtime` is not the usual directory, for a message to the user; nil when it is.
    public var runtimeNote: String?

    /// Paths for an explicit environment (tests pass their own).
    public init(environment: [String: String]) {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? SignetPaths.passwdHome() ?? "/"
        func base(_ key: String, _ fallback: String) -> String {
            if let value = environment[key], value.hasPrefix("/") { return value }
            return home + "/" + fallback
        }
        data = base("XDG_DATA_HOME", ".local/share") + "/signet"
        state = base("XDG_STATE_HOME", ".local/state") + "/signet"
        config = base("XDG_CONFIG_HOME", ".config") + "/signet"
        if let runtimeDir = environment["XDG_RUNTIME_DIR"], runtimeDir.hasPrefix("/") {
            runtime = runtimeDir + "/signet"
        } else {
            let temporary = environment["TMPDIR"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
            let shared = temporary + "/signet-\(getuid())"
            if let problem = SignetPaths.notPrivate(shared) {
                runtime = base("XDG_CACHE_HOME", ".cache") + "/signet/run"
                runtimeNote = "\(shared) \(problem), so it is not used (another user may have made it to block your agent); "
                    + "the agent's socket is in \(runtime) instead. Set XDG_RUNTIME_DIR (a systemd login session does), or remove \(shared)."
            } else {
                runtime = shared
            }
        }
    }

    /// Why the shared fallback directory `path` may not hold the socket, or nil when it is absent (the agent
    /// makes it, 0700) or is a real directory of this user's that no one else can use. Checked with lstat.
    static func notPrivate(_ path: String) -> String? { privateDirectoryProblem(path) }

    /// Why `path` is not a directory that only this user can use, or nil when it is one or does not exist:
    /// it is a symbolic link or not a directory, belongs to another uid, or has group or other permission
    /// bits. Checked with lstat, so a link is never followed. The agent's clients check the socket's
    /// directory with it at every connect (`AgentClient`); the fallback runtime directory is chosen with it.
    public static func privateDirectoryProblem(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return errno == ENOENT ? nil : "cannot be checked (\(System.describe(errno)))" }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: break
        case S_IFLNK: return "is a symbolic link"
        default: return "is not a directory"
        }
        if info.st_uid != getuid() { return "belongs to uid \(info.st_uid), not to you (uid \(getuid()))" }
        if info.st_mode & 0o077 != 0 { return "is open to other users (mode \(String(info.st_mode & 0o7777, radix: 8)))" }
        return nil
    }

    /// Paths for this process's environment.
    public static var current: SignetPaths {
        var environment: [String: String] = [:]
        for name in ["HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "TMPDIR"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return SignetPaths(environment: environment)
    }

    /// Directory of the SoftHSM2 software tokens Signet creates.
    public var softwareTokenDirectory: String { data + "/softhsm/tokens" }
    /// The agent's socket, `$XDG_RUNTIME_DIR/signet/agent.sock`.
    public var agentSocket: String { runtime + "/agent.sock" }
    /// The running agent's pid, beside its socket.
    public var agentPIDFile: String { runtime + "/agent.pid" }

    /// SoftHSM2 configuration file that points at `softwareTokenDirectory`.
    public var softwareTokenConfig: String { data + "/softhsm/softhsm2.conf" }

    private static func passwdHome() -> String? {
        guard let entry = getpwuid(getuid()), let dir = entry.pointee.pw_dir else { return nil }
        return String(cString: dir)
    }
}

/// The process environment as a dictionary (without Foundation).
public enum ProcessEnvironment {
    /// Every `NAME=value` pair of `environ`.
    public static func all() -> [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let pair = String(cString: entry)
            if let eq = pair.firstIndex(of: "=") {
                result[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            cursor += 1
        }
        return result
    }

    /// One variable, or `nil` when unset or empty.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}
