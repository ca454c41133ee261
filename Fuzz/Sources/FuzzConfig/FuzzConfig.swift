// The configuration parser (`key = value` files), the lockout policy read from it, and the
// agent's settings loaded from it as a file (/etc/signet/config's place, in a directory of
// the fuzzer's own).
#if canImport(Glibc)
import Glibc
#endif
import FuzzDriver
import SignetAccessCode
import SignetAgentCore
import SignetCore

private let directory = temporaryDirectory("/tmp/signet-fuzz-config-XXXXXX")
/// The user's configuration directory, where the fuzzed bytes are written as well.
private let paths = SignetPaths(environment: ["HOME": directory + "/home"])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    let config = SignetConfig(parsing: text, file: "fuzz")
    for key in ["max-failures", "lock-minutes", "idle-lock-minutes", "presence-wait-seconds", "max-connections",
                "connection-idle-seconds", "request-seconds", "module-timeout-seconds", "socket-check-seconds"] {
        _ = try? config.number(key, in: 0...525_600)
        _ = try? config.integer(key, in: 1...1000)
        _ = config.values(key)
    }
    var problems: [String] = []
    for onlyStricter in [true, false] {
        let policy = LockoutPolicy.standard.applying(config, onlyStricter: onlyStricter, problems: &problems)
        precondition(policy.maximumFailures >= 1 && policy.lockDuration >= .zero, "a configuration made a policy that never locks: \(policy)")
        if onlyStricter {
            precondition(policy.maximumFailures <= LockoutPolicy.standard.maximumFailures
                         && policy.lockDuration >= LockoutPolicy.standard.lockDuration, "a user's configuration loosened the policy: \(policy)")
        }
    }

    // The same bytes as the administrator's and the user's config and policy files, read by the agent's loader
    // (the administrator's are read only when root owns them, so the user's are written too: ProtectedFile).
    _ = FileIO.makeDirectories(paths.config, mode: 0o700)
    for name in ["config", "policy"] {
        for place in [directory, paths.config] {
            let file = open(place + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            precondition(file >= 0, "cannot write \(place)/\(name)")
            if size > 0 { precondition(write(file, data, size) == size) }
            close(file)
        }
    }
    let settings = AgentSettings.load(paths: paths, systemDirectory: directory)
    _ = settings.problems.count
    precondition(settings.maximumConnections >= 1 && settings.requestTimeout > 0, "settings out of range: \(settings.maximumConnections), \(settings.requestTimeout)")
    return 0
}

@main
enum Main {
    static func main() { runFuzzer(fuzzConfig) }
}
