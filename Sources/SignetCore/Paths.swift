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
/// - runtime (`$XDG_RUNTIME_DIR/signet`): the agent's socket.
public struct SignetPaths: Sendable, Equatable {
    public var data: String
    public var state: String
    public var config: String
    public var runtime: String

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
            runtime = "/tmp/signet-\(getuid())"
        }
    }

    /// Paths for this process's environment.
    public static var current: SignetPaths {
        var environment: [String: String] = [:]
        for name in ["HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"] {
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
