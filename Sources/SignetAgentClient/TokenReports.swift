import SignetAgentProtocol
import SignetCore

/// What `signet status`, `signet pin status` and `signet tokens` report of the agent and its tokens: the shapes
/// they print as JSON, and the words for a token's access-code state. Nothing here prints or decides.
public enum TokenReports {
    /// `signet status`: the agent, and each token's lock state.
    public struct Status: Codable, Equatable, Sendable {
        public struct Agent: Codable, Equatable, Sendable {
            public var running: Bool
            public var pid: UInt32?
            public var version: String?
            public var uptimeSeconds: UInt64?
            public var connections: UInt32?
            /// The agent's configuration problems (a file refused because others could write it, a value not taken).
            public var problems: [String]?
        }
        public struct Token: Codable, Equatable, Sendable {
            public var uri: String
            public var label: String
            public var serial: String
            public var software: Bool
            public var present: Bool
            public var unlocked: Bool
            public var failures: UInt32
            public var triesLeft: UInt32
            public var lockedSeconds: UInt32?
            public var tokenCounter: String
            public var ledgerDamage: String?
        }
        public var agent: Agent
        public var tokens: [Token]

        /// No agent running.
        public static let notRunning = Status(agent: Agent(running: false), tokens: [])

        init(agent: Agent, tokens: [Token]) { self.agent = agent; self.tokens = tokens }

        public init(_ status: AgentStatus) {
            agent = Agent(running: true, pid: status.pid, version: status.agentVersion, uptimeSeconds: status.uptimeSeconds,
                          connections: status.connections, problems: status.problems)
            tokens = status.tokens.map {
                Token(uri: $0.uri, label: $0.label, serial: $0.serial, software: $0.software, present: true, unlocked: $0.unlocked,
                      failures: $0.failures, triesLeft: $0.triesLeft, lockedSeconds: $0.lockedSeconds, tokenCounter: $0.tokenCounter,
                      ledgerDamage: $0.ledgerDamage)
            }
        }
    }

    /// Signet's count or lock, and the token's own counter: two indented lines.
    public static func accessState(_ token: TokenEntry) -> [String] {
        let signet = if let damage = token.ledgerDamage {
            "  signet:  ledger damaged (\(damage)); run `signet pin repair-ledger`"
        } else if let seconds = token.lockedSeconds {
            "  signet:  locked for \(DurationText.words(Double(seconds))) after \(token.failures) wrong access codes"
        } else {
            "  signet:  \(token.triesLeft) \(token.triesLeft == 1 ? "try" : "tries") left before a lock"
        }
        return [signet, "  token:   \(token.tokenCounter)"]
    }

    /// `signet tokens`: every token the modules see.
    public struct Listing: Codable, Equatable {
        public var tokens: [Entry]
        public var moduleErrors: [String]

        public init(tokens: [TokenDetail], failures: [ModuleFailure]) {
            self.tokens = tokens.map(Entry.init)
            moduleErrors = failures.map { "\($0.path): \($0.reason)" }
        }
    }

    /// One token of `signet tokens`.
    public struct Entry: Codable, Equatable {
        public struct Module: Codable, Equatable {
            public var name: String
            public var path: String
            public var description: String
            public var manufacturer: String
        }
        public struct CodeState: Codable, Equatable {
            public var countLow: Bool
            public var finalTry: Bool
            public var locked: Bool
            public var toBeChanged: Bool
            public var protectedAuthenticationPath: Bool
            public var minLength: Int?
            public var maxLength: Int?

            init(_ code: CodeFlags) {
                countLow = code.countLow; finalTry = code.finalTry; locked = code.locked; toBeChanged = code.toBeChanged
                protectedAuthenticationPath = code.protectedAuthenticationPath
                minLength = code.minLength.map { Int($0) }; maxLength = code.maxLength.map { Int($0) }
            }

            /// The state in words, as `signet tokens` prints it.
            public var words: String {
                if locked { return "BLOCKED on the token — unblock it with the administrator code or PUK" }
                var parts: [String] = []
                if finalTry { parts.append("final try left on the token") } else if countLow { parts.append("a wrong code was entered recently") }
                if toBeChanged { parts.append("must be changed") }
                if protectedAuthenticationPath { parts.append("entered on the reader's PIN pad") }
                if parts.isEmpty { parts.append("ok") }
                if let minLength, let maxLength { parts.append("\(minLength)–\(maxLength) characters") }
                return parts.joined(separator: "; ")
            }
        }
        public var uri: String
        public var label: String
        public var manufacturer: String
        public var model: String
        public var serial: String
        public var software: Bool
        public var slot: String
        public var module: Module
        public var flags: [String]
        public var userCode: CodeState
        public var soCode: CodeState

        public init(_ token: TokenDetail) {
            let identity = token.entry
            uri = identity.uri; label = identity.label; manufacturer = identity.manufacturer; model = identity.model
            serial = identity.serial; software = identity.software; slot = token.slot
            module = Module(name: token.module.name, path: token.module.path, description: token.module.description,
                            manufacturer: token.module.manufacturer)
            flags = token.flags; userCode = CodeState(token.userCode); soCode = CodeState(token.soCode)
        }
    }

    /// What the running agent loaded, or why that part is missing.
    ///
    /// p11-kit, pcsc-lite and the PKCS#11 modules with what each says about itself (CK_INFO), which the agent
    /// reports because it alone loads them. Nothing here fails: what cannot be found is reported as such. An agent
    /// that is not running is not started: `signet version` is what a person runs when something is wrong, and
    /// starting an agent loads every module (a hanging module would hang the very command meant to describe it).
    public static func agentVersions() -> [String] {
        let client: AgentClient
        do throws(AgentClientError) {
            client = try AgentLauncher.connect(start: false)
        } catch {
            return ["signet-agent: not running, so p11-kit, pcsc-lite and PKCS#11 module versions are unavailable "
                    + "(any command that uses a token starts it, e.g. `signet status`)"]
        }
        let versions: AgentVersions
        do throws(AgentClientError) {
            guard case .versions(let answer) = try client.call(.versions) else {
                return ["signet-agent \(client.agentVersion): unexpected answer to the versions request"]
            }
            versions = answer
        } catch {
            return ["signet-agent \(client.agentVersion): \(error.description)"]
        }
        return versionLines(versions, pid: client.agentPID)
    }

    /// The agent's answer to the versions request, in lines.
    public static func versionLines(_ versions: AgentVersions, pid: UInt32) -> [String] {
        var lines = ["signet-agent: \(versions.agentVersion) (pid \(pid))"]
        lines += versions.libraries.map { "\($0.name): \($0.version)" }
        lines.append("PKCS#11 modules: \(versions.modules.isEmpty ? "none" : "\(versions.modules.count)")")
        for module in versions.modules {
            lines.append("  \(module.name) (\(module.path)): \(module.description) \(module.libraryVersion), "
                         + "by \(module.manufacturer), Cryptoki \(module.cryptokiVersion)")
        }
        for failure in versions.moduleFailures { lines.append("  \(failure.path): could not be loaded (\(failure.reason))") }
        return lines
    }

    /// One object of `signet keys`.
    public struct Object: Codable, Equatable {
        public var uri: String
        public var kind: String
        public var label: String
        public var id: String
        public var keyType: String?
        public var bits: UInt32
        public var usages: [String]

        public init(_ object: ObjectEntry) {
            uri = object.uri; label = object.label; id = Hex.encode(object.id); bits = object.bits; usages = object.usages.names
            kind = switch object.kind {
            case .privateKey: "private-key"
            case .publicKey: "public-key"
            case .certificate: "certificate"
            }
            keyType = object.keyType.map { $0 == .rsa ? "RSA" : "EC" }
        }
    }

    /// Why no one token was chosen, as a sentence for the user.
    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    /// The one token `uri` (a PKCS#11 URI; nil for any) selects among `tokens`: refused when none or more than one does.
    public static func one(of tokens: [TokenEntry], selectedBy uri: String?) throws(Refusal) -> TokenEntry {
        let wanted: PKCS11URI?
        do { wanted = try uri.map { try PKCS11URI(parsing: $0) } } catch { throw Refusal(description: "\(error)") }
        let matching = tokens.filter { entry in wanted?.selects(token: entry.attribute) ?? true }
        guard matching.count == 1, let token = matching.first else {
            throw Refusal(description: matching.isEmpty
                ? "No token is present\(wanted.map { " that matches \($0)" } ?? ""). Insert your token or tap it on the reader."
                : PKCS11URI.ambiguity(uri, tokens: matching.map { "\($0.label) serial \($0.serial)" }))
        }
        return token
    }
}

extension TokenEntry {
    /// The token's URI attributes as `PKCS11URI.selects` asks for them (what the agent reports).
    func attribute(_ name: String) -> String? {
        switch name {
        case "token": label
        case "manufacturer": manufacturer
        case "model": model
        case "serial": serial
        default: nil
        }
    }
}
