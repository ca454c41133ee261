#if canImport(Glibc)
import Glibc
#endif
import CSignetAgent
import Logging
import Synchronization
import SignetAccessCode
import SignetCore
import SignetPKCS11

/// `signet-agent`'s entry point: sets up the socket (or takes systemd's),
/// loads the token modules, serves clients, and stops cleanly on SIGTERM or
/// SIGINT (logging every token out). SIGHUP (and the `reload` request) re-reads the configuration.
public enum AgentMain {
    public static let version = SignetVersion.string

    /// Runs until SIGTERM or SIGINT; returns the process exit status.
    public static func run(arguments: [String] = CommandLine.arguments) -> Int32 {
        if arguments.contains("--version") {
            Console.out("signet-agent \(version)\n")
            return 0
        }
        if arguments.contains("--help") || arguments.contains("-h") {
            Console.out("""
            usage: signet-agent

            Serves Signet's agent protocol on $XDG_RUNTIME_DIR/signet/agent.sock (or on the
            socket systemd passes). `signet` starts it when needed. SIGTERM/SIGINT stop it;
            SIGHUP (or `signet agent reload`) re-reads ~/.config/signet/config, the policy
            and the client rules. Logs go to standard error;
            set SIGNET_LOG_LEVEL=debug for more.

            """)
            return 0
        }
        closeInheritedDescriptors()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessEnvironment.value("SIGNET_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        let logger = Logger(label: "signet-agent")
        // Codes pass through the agent and unlocked sessions live in it: other processes of this user
        // may not trace it or read its memory, and a crash leaves no core image (nothing of it on disk).
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        if setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore) != 0 || csignetagent_set_undumpable() != 0 {
            logger.warning("could not make the agent undumpable: \(String(cString: strerror(errno)))")
        }

        // Signals are taken synchronously with sigwait on the main thread; every
        // other thread inherits the blocked mask. SIGPIPE is ignored: a client that
        // leaves mid-answer is an error on that connection only.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        let paths = SignetPaths.current
        var settings = AgentSettings.load(paths: paths)
        for problem in settings.problems { logger.warning("configuration: \(problem)") }
        let socket: AgentSocket
        do {
            socket = try AgentSocket.open(settings: settings)
        } catch {
            logger.error("\(error.description)")
            Console.error("signet-agent: \(error.description)")
            return 1
        }

        // Serve at once (hello, handshake) while the token modules load: a module that
        // probes an unknown card can take seconds, and clients should not time out meanwhile.
        let audit = AuditLog(directory: paths.state)
        let counter = ConnectionCounter()
        // The confirmer reads `pinentry-program` from the handler's settings, which SIGHUP replaces.
        let reference = HandlerReference()
        let promptQueue = PromptQueue(onWait: { logger.info("\(Console.safe($0))") })
        let handler = RequestHandler(audit: audit, settings: settings,
                                     confirmer: PinentryConfirmer(program: { reference.handler?.currentSettings.pinentryProgram }, queue: promptQueue),
                                     promptQueue: promptQueue, connectionCount: { counter.count() })
        reference.handler = handler
        let server = AgentServer(listener: socket.fd, handler: handler, logger: logger) { kill(getpid(), SIGTERM) }
        counter.server = server
        // Recorded before the first request can be: with a slow module, requests are served (and audited)
        // while the modules load.
        audit.record(AuditEvent(action: AuditAction.agentStart.rawValue, result: "ok", detail: "version \(version), pid \(getpid())"))
        server.start()

        if SoftwareTokens.installedModulePath() != nil { try? SoftwareTokens.ensureConfiguration(paths: paths) }
        let context: PKCS11Context
        do throws(PKCS11Error) {
            context = try PKCS11Context(configuration: .resolved())
        } catch {
            logger.error("cannot load token modules: \(error)")
            Console.error("signet-agent: cannot load token modules: \(error)")
            server.stop()
            socket.remove()
            return 1
        }
        for failure in context.failures { logger.warning("module \(failure.path) not loaded: \(failure.reason)") }
        for skip in context.skipped { logger.info("module \(skip.path) skipped: \(skip.reason)") }
        let registry = TokenRegistry(context: context, stateDirectory: paths.state)
        handler.install(registry)
        Housekeeping(handler: handler, logger: logger).start()
        Watchdog(handler: handler, socketPath: socket.path) { message in
            logger.critical("\(message)")
            Console.error("signet-agent: \(message)")
        }.start()

        // Like gpg-agent: an agent whose socket file was removed or replaced can never be reached
        // again (ten such orphans were found on one machine), so it logs the tokens out and stops.
        let socketLost = Atomic<Bool>(false)
        if !socket.fromSystemd {
            DetachedThread.start { [socket] in
                while !handler.stopping.load(ordering: .relaxed) {
                    usleep(UInt32(min(handler.currentSettings.socketCheck, 3600) * 1_000_000))
                    if !socket.isStillOurs {
                        socketLost.store(true, ordering: .sequentiallyConsistent)
                        kill(getpid(), SIGTERM)
                        return
                    }
                }
            }
        }

        logger.info("signet-agent \(version) listening", metadata: [
            "pid": "\(getpid())", "socket": "\(socket.path)", "systemd": "\(socket.fromSystemd)",
            "tokens": "\(registry.presentWorkers.count)",
        ])
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                // systemd's ExecReload sends it; `signet agent reload` asks with the `reload` request, which answers once done.
                settings = handler.reloadConfiguration()
                for problem in settings.problems { logger.warning("configuration: \(problem)") }
                logger.info("SIGHUP: configuration reloaded", metadata: [
                    "idle-lock": "\(settings.idleLock)", "presence-wait": "\(settings.presenceWait)",
                    "max-failures": "\(settings.lockoutPolicy.maximumFailures)",
                ])
                continue
            }
            let lost = socketLost.load(ordering: .sequentiallyConsistent)
            if lost {
                logger.warning("the socket \(socket.path) was removed or replaced: no client can reach this agent; stopping")
            } else {
                logger.info("signal \(received) received: stopping")
            }
            handler.stopping.store(true, ordering: .sequentiallyConsistent)
            server.stop()
            socket.remove()
            var locked = 0
            for worker in registry.presentWorkers {
                let wasUnlocked = (try? worker.run(use: false) { (state) throws(PKCS11Error) -> Bool in state.logOut() }) ?? false
                if wasUnlocked { locked += 1 }
            }
            let reason = lost ? "socket \(socket.path) removed or replaced" : "signal \(received)"
            audit.record(AuditEvent(action: AuditAction.agentStop.rawValue, result: "ok", detail: "\(reason); \(locked) token(s) logged out"))
            logger.info("signet-agent stopped")
            return 0
        }
    }
}

/// Closes descriptors inherited from whoever started the agent (a `--code-fd`
/// pipe, a test's output pipe), keeping only the standard three and systemd's sockets.
private func closeInheritedDescriptors() {
    let systemd = ProcessEnvironment.value("LISTEN_PID") == String(getpid())
        ? Int32(ProcessEnvironment.value("LISTEN_FDS") ?? "0") ?? 0 : 0
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    let highest = Int32(min(limit.rlim_cur, 65536))
    var fd = AgentSocket.firstSystemdFD + systemd
    while fd < highest {
        close(fd)
        fd += 1
    }
}

/// Late-bound connection count for status (the server is created after the handler).
final class ConnectionCounter: @unchecked Sendable {
    weak var server: AgentServer?
    func count() -> Int { server?.connectionCount ?? 0 }
}

/// Once a second: logs out tokens idle past the idle-lock time, notes when a
/// lockout has run out, and rescans slots so inserted and removed tokens are
/// seen (a removed token loses its session and its unlocked state).
struct Housekeeping: Sendable {
    let handler: RequestHandler
    let logger: Logger

    func start() {
        DetachedThread.start { [self] in
            while !handler.stopping.load(ordering: .relaxed) {
                sleep(1)
                tick()
            }
        }
    }

    private func tick() {
        let idle = handler.currentSettings.idleLock
        let now = MonotonicClock.seconds()
        handler.registry.refresh()
        for worker in handler.registry.presentWorkers {
            if idle > 0 {
                var loggedOut = false
                worker.runIfIdle { state in
                    guard state.unlocked, now - state.lastUsed >= idle else { return }
                    loggedOut = state.logOut()
                }
                if loggedOut {
                    logger.info("\(worker.label): locked after \(Int(idle)) s unused")
                    handler.record(.lock, result: "ok", peer: nil, start: now, token: worker.uriText, detail: "idle for \(Int(idle)) s")
                }
            }
            if worker.lockoutEnded(now: now) {
                handler.record(.lockoutEnd, result: "ok", peer: nil, start: now, token: worker.uriText)
            }
        }
    }
}
