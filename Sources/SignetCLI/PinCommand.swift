import ArgumentParser
import SignetAccessCode
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// `signet pin …`: the access-code manager from the command line.
///
/// Status, change and unblock go through the agent, which alone holds token
/// sessions; `repair-ledger` rewrites the ledger file and reads the token's
/// identity itself. Every code goes through the same ledger and lockout rule.
struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Access-code state, change, unblock, and ledger repair.",
        discussion: "Three wrong codes in a row lock a token for 15 minutes (an administrator may set other values in /etc/signet/policy).",
        subcommands: [Status.self, Change.self, Unblock.self, RepairLedger.self]
    )

    struct TokenOption: ParsableArguments {
        @Option(name: .long, help: "The token's PKCS#11 URI (see `signet tokens`); needed when more than one token is present.")
        var token: String?

        /// The token the option selects, with a read-write session on it.
        func target() throws -> (PKCS11Context, PKCS11CodeTarget) {
            SoftwareTokens.prepareEnvironment()
            do {
                let context = try PKCS11Context()
                let selected: Token
                if let token {
                    selected = try context.token(matching: try PKCS11URI(parsing: token))
                } else {
                    let all = context.tokens()
                    guard all.count == 1, let only = all.first else {
                        throw CLIError(description: all.isEmpty
                            ? "No token is present. Insert your token or tap it on the reader."
                            : "\(all.count) tokens are present; choose one with --token URI (see `signet tokens`).")
                    }
                    selected = only
                }
                return (context, PKCS11CodeTarget(token: selected, session: try selected.openSession(readWrite: true)))
            } catch let error as PKCS11Error {
                throw CLIError(description: error.description)
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show tries left, any lock, and the token's own counter.")
        @OptionGroup var selection: TokenOption
        @OptionGroup var output: OutputOptions

        struct Entry: Codable {
            var token: String
            var uri: String
            var failures: UInt32
            var triesLeft: UInt32
            var lockedSeconds: UInt32?
            var tokenCounter: String
            var ledgerDamage: String?
        }

        func run() throws {
            guard case .tokens(let tokens) = try Agent.call(.listTokens) else { throw CLIError(description: "unexpected answer from the agent").reported() }
            let wanted = try selection.token.map { try PKCS11URI(parsing: $0) }
            let matching = tokens.filter { entry in wanted?.selects(token: entry.attribute) ?? true }
            guard matching.count == 1, let token = matching.first else {
                throw CLIError(description: matching.isEmpty
                    ? "No token is present\(wanted.map { " that matches \($0)" } ?? ""). Insert your token or tap it on the reader."
                    : "\(matching.count) tokens are present; choose one with --token URI (see `signet status`).").reported()
            }
            let entry = Entry(token: token.label, uri: token.uri, failures: token.failures, triesLeft: token.triesLeft,
                              lockedSeconds: token.lockedSeconds, tokenCounter: token.tokenCounter, ledgerDamage: token.ledgerDamage)
            if output.json { return try JSONOutput.print(entry) }
            print("\(entry.token)\(token.software ? "  [SOFTWARE TOKEN]" : "")")
            token.printAccessState()
        }
    }

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "change", abstract: "Change the access code (the new one is asked twice).")
        @OptionGroup var selection: TokenOption
        @Option(name: .customLong("code-fd"), help: "Read the current code from this file descriptor.")
        var codeFD: Int32?
        @Option(name: .customLong("new-code-fd"), help: "Read the new code from this file descriptor.")
        var newCodeFD: Int32?
        @Flag(name: .customLong("final-try"), help: "Send the code even if the token reports its final try.")
        var finalTry = false

        func run() throws {
            let client = try Agent.connect()
            let request: AgentRequest
            do {
                let old = try AccessCodeInput.obtain(fd: codeFD, prompt: "Current access code: ")
                let new = try AccessCodeInput.obtainNew(fd: newCodeFD, prompt: "New access code: ", again: "Type it again: ")
                request = .changeCode(token: selection.token, old: SharedSecret(old), new: SharedSecret(new), finalTry: finalTry)
            } catch {
                throw CLIError(description: error.description)
            }
            try Agent.finish(try Agent.call(request, client: client), success: "Access code changed.")
        }
    }

    struct Unblock: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unblock", abstract: "Unblock with the administrator (SO) code or PUK and set a new access code.")
        @OptionGroup var selection: TokenOption
        @Option(name: .customLong("so-code-fd"), help: "Read the administrator code from this file descriptor.")
        var soCodeFD: Int32?
        @Option(name: .customLong("new-code-fd"), help: "Read the new access code from this file descriptor.")
        var newCodeFD: Int32?
        @Flag(name: .customLong("final-try"), help: "Send the code even if the token reports the administrator code's final try.")
        var finalTry = false

        func run() throws {
            let client = try Agent.connect()
            let request: AgentRequest
            do {
                let so = try AccessCodeInput.obtain(fd: soCodeFD, prompt: "Administrator (SO) code or PUK: ")
                let new = try AccessCodeInput.obtainNew(fd: newCodeFD, prompt: "New access code: ", again: "Type it again: ")
                request = .unblock(token: selection.token, soCode: SharedSecret(so), newCode: SharedSecret(new), finalTry: finalTry)
            } catch {
                throw CLIError(description: error.description)
            }
            try Agent.finish(try Agent.call(request, client: client), success: "Unblocked: the new access code is set and Signet's lock is cleared.")
        }
    }

    struct RepairLedger: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "repair-ledger",
            abstract: "Rebuild a damaged access-code ledger; the token is then locked for the full lock time."
        )
        @OptionGroup var selection: TokenOption

        func run() throws {
            let (_, target) = try selection.target()
            let manager = AccessCodeManager()
            do {
                try manager.repairLedger(tokens: [target.identity])
            } catch {
                throw CLIError(description: "could not repair the ledger: \(error)")
            }
            print("The ledger was rebuilt. \(target.token.info.label) is locked for \(AccessResult.words(manager.policy.lockDuration)); after that you have \(manager.policy.maximumFailures) tries.")
        }
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
