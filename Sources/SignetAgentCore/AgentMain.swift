#if canImport(Glibc)
import Glibc
#endif
import Logging
import SignetCore

/// `signet-agent`'s entry point.
///
/// For now the agent starts, logs, and stops cleanly on SIGTERM or SIGINT
/// (SIGHUP is acknowledged); the socket, the token actors and the
/// access-code manager come with the agent issue.
public enum AgentMain {
    public static let version = "0.1.0"

    /// Runs until SIGTERM or SIGINT; returns the process exit status.
    public static func run(arguments: [String] = CommandLine.arguments) -> Int32 {
        if arguments.contains("--version") {
            Console.out("signet-agent \(version)\n")
            return 0
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessEnvironment.value("SIGNET_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        let logger = Logger(label: "signet-agent")

        // Handle signals synchronously with sigwait: no async-signal-safety
        // concerns, and the main thread simply waits for the next one.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let paths = SignetPaths.current
        logger.info("signet-agent \(version) started", metadata: ["pid": "\(getpid())", "uid": "\(getuid())", "runtime": "\(paths.runtime)"])
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            switch received {
            case SIGHUP:
                logger.info("SIGHUP received: configuration reloaded (nothing to reload yet)")
            default:
                logger.info("signal \(received) received: stopping")
                logger.info("signet-agent stopped")
                return 0
            }
        }
    }
}
