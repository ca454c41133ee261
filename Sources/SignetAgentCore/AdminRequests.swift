#if canImport(Glibc)
import Glibc
#endif
import Logging
import SignetAgentProtocol
import SignetCore
import SignetPCSC
import SignetPKCS11

extension AuditAction {
    static let softwareTokenCreated = AuditAction(rawValue: "software-token-created")
}

/// The agent itself and what it loaded: status, token listings, the token layers'
/// details for `signet tokens`, `signet readers` and `signet version`, creating a
/// software token, reloading the configuration, and shutdown. Only creating a token writes anything.
enum AdminRequests: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        switch request {
        case .hello:
            Route { (_) throws(AgentFailure) in throw AgentFailure(.malformedFrame, "hello may be sent only once, first") }
        case .status:
            Route { (context) throws(AgentFailure) in
                .status(AgentStatus(agentVersion: AgentMain.version, pid: UInt32(getpid()),
                                    uptimeSeconds: UInt64(MonotonicClock.seconds() - context.agent.started),
                                    connections: UInt32(context.agent.connectionCount()), tokens: context.agent.tokenEntries(),
                                    problems: context.agent.currentSettings.problems))
            }
        case .listTokens:
            Route { (context) throws(AgentFailure) in .tokens(context.agent.tokenEntries()) }
        case .tokenDetails:
            Route { (context) throws(AgentFailure) in
                // A fresh scan: the token flags (final try, locked) are what the module says now.
                let manager = context.manager
                let tokens = context.registry.refresh().compactMap { worker in
                    (try? context.agent.entry(worker, manager)).map { TokenDetail($0, worker.token) }
                }
                return .tokenDetails(tokens, moduleFailures: context.registry.context.failures.map { ModuleFailure(path: $0.path, reason: $0.reason) })
            }
        case .listReaders:
            Route { (_) throws(AgentFailure) in
                do throws(PCSCError) {
                    return .readers(try PCSCContext().readerStatuses().map(ReaderEntry.init))
                } catch {
                    throw AgentFailure(.unsupported, "PC/SC: \(error.description)")
                }
            }
        case .versions:
            Route { (_) throws(AgentFailure) in
                // The modules as the configuration names them now (one added since the agent started is
                // listed, or its failure is): a second, short-lived load of each. p11-kit manages modules,
                // so this one's C_Initialize and C_Finalize do not touch the agent's own sessions.
                var modules: [ModuleEntry] = [], failures: [ModuleFailure] = []
                do throws(PKCS11Error) {
                    let pkcs11 = try ModuleWatch.shared.watching(.scan) { () throws(PKCS11Error) in try PKCS11Context(configuration: .resolved()) }
                    modules = pkcs11.modules.map(ModuleEntry.init)
                    failures = pkcs11.failures.map { ModuleFailure(path: $0.path, reason: $0.reason) }
                } catch {
                    failures = [ModuleFailure(path: "PKCS#11 modules", reason: error.description)]
                }
                return .versions(AgentVersions(
                    agentVersion: AgentMain.version,
                    libraries: [
                        .init(name: "p11-kit", version: LibraryVersions.library("p11_kit_modules_load", package: "libp11-kit")),
                        .init(name: "pcsc-lite", version: LibraryVersions.library("SCardEstablishContext", package: "libpcsclite")
                            + "; built with \(PCSCContext.headerVersion)"),
                    ],
                    modules: modules, moduleFailures: failures))
            }
        case .initSoftwareToken(let label, let userCode, let soCode):
            Route(.softwareTokenCreated, token: "token=\(label)") { (context) throws(AgentFailure) in
                guard !label.isEmpty, label.utf8.count <= 32 else { throw AgentFailure(.invalidArgument, "A token label is 1 to 32 bytes.") }
                let pkcs11 = context.registry.context
                let outcome: Result<Token, SoftwareTokens.Failure> = userCode.use { user in
                    soCode.use { so in
                        do throws(SoftwareTokens.Failure) {
                            return .success(try SoftwareTokens.create(in: pkcs11, label: label, userCode: user, soCode: so))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                let created: Token
                switch outcome {
                case .success(let token): created = token
                case .failure(.softHSMMissing): throw AgentFailure(.unsupported, SoftwareTokens.Failure.softHSMMissing.description)
                case .failure(let error): throw AgentFailure(.tokenFailure, error.description)
                }
                context.registry.refresh()
                context.record(.softwareTokenCreated, token: created.uri.description)
                return .stored(object: created.uri.description)
            }
        case .reload:
            Route { (context) throws(AgentFailure) in
                // Answered only after `reloadConfiguration` has put the new settings in force: a client that has the
                // answer may rely on them (the next request is checked against the new rules).
                let settings = context.agent.reloadConfiguration()
                let logger = Logger(label: "signet-agent")
                for problem in settings.problems { logger.warning("configuration: \(problem)") }
                logger.info("reload request: configuration reloaded", metadata: [
                    "idle-lock": "\(settings.idleLock)", "presence-wait": "\(settings.presenceWait)",
                    "max-failures": "\(settings.lockoutPolicy.maximumFailures)", "refused-files": "\(settings.refusals.count)",
                ])
                return .reloaded(ReloadReport(settings: settings.inForce.map { ReloadReport.Setting(name: $0.name, value: $0.value) },
                                              clientRules: UInt32(settings.clients.rules.count), refusals: settings.refusals,
                                              problems: settings.problems))
            }
        case .shutdown:
            Route { (context) throws(AgentFailure) in
                context.record(.agentStop, detail: "shutdown request")
                return .ok(message: "The agent is stopping.")
            }
        default:
            nil
        }
    }
}

extension ModuleEntry {
    /// A loaded module as the protocol carries it.
    init(_ module: PKCS11Module) {
        let info = module.info
        self.init(name: module.name, path: module.path, description: info.libraryDescription, libraryVersion: info.libraryVersion,
                  manufacturer: info.manufacturer, cryptokiVersion: info.cryptokiVersion)
    }
}

extension TokenDetail {
    /// A token as its module describes it (no login), with the agent's `entry` for it.
    init(_ entry: TokenEntry, _ token: Token) {
        let flags = token.info.flags
        let minimum = token.info.minPinLength.map { UInt32($0) }, maximum = token.info.maxPinLength.map { UInt32($0) }
        self.init(
            entry: entry, slot: token.slot.description, module: ModuleEntry(token.module),
            flags: flags.names,
            userCode: CodeFlags(countLow: flags.contains(.userPinCountLow), finalTry: flags.contains(.userPinFinalTry),
                                locked: flags.contains(.userPinLocked), toBeChanged: flags.contains(.userPinToBeChanged),
                                protectedAuthenticationPath: flags.contains(.protectedAuthenticationPath), minLength: minimum, maxLength: maximum),
            soCode: CodeFlags(countLow: flags.contains(.soPinCountLow), finalTry: flags.contains(.soPinFinalTry),
                              locked: flags.contains(.soPinLocked), toBeChanged: flags.contains(.soPinToBeChanged),
                              protectedAuthenticationPath: flags.contains(.protectedAuthenticationPath), minLength: minimum, maxLength: maximum))
    }
}

extension ReaderEntry {
    /// A reader as PC/SC reports it.
    init(_ status: ReaderStatus) {
        self.init(name: status.name, cardPresent: status.cardPresent, state: status.state.words, atr: status.atr,
                  transport: status.transport.rawValue)
    }
}
