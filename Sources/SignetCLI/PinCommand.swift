import ArgumentParser
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// `signet pin …`: the access-code manager from the command line.
///
/// Every subcommand goes through the agent, which alone holds token sessions
/// and the ledger, so one process drives a token and its ledger. Every code
/// goes through the same ledger and lockout rule.
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
            guard case .tokens(let tokens) = try Agent.call(.listTokens) else { throw CLIError(description: "unexpected answer from the agent") }
            let token: TokenEntry
            do throws(TokenReports.Refusal) { token = try TokenReports.one(of: tokens, selectedBy: selection.token) } catch {
                throw CLIError(description: error.description)
            }
            let entry = Entry(token: token.label, uri: token.uri, failures: token.failures, triesLeft: token.triesLeft,
                              lockedSeconds: token.lockedSeconds, tokenCounter: token.tokenCounter, ledgerDamage: token.ledgerDamage)
            if output.json { return try JSONOutput.print(entry) }
            print("\(Console.safe(entry.token))\(token.software ? "  [SOFTWARE TOKEN]" : "")")
            for line in TokenReports.accessState(token) { print(line) }
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
            guard case .ok(let message) = try Agent.call(.repairLedger(token: selection.token)) else {
                throw CLIError(description: "unexpected answer from the agent")
            }
            print(Console.safe(message))
        }
    }
}
