import ArgumentParser
import SignetAccessCode
import SignetCore
import SignetPKCS11

/// `signet pin …`: the access-code manager from the command line.
///
/// Until the agent exists these talk to the token directly; they then move
/// behind the agent, which alone holds token sessions. Either way every code
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

    /// Exit status for a result: 0 done, 2 wrong code, 3 locked, 4 the token refuses (final try or blocked), 1 otherwise.
    static func finish(_ result: AccessResult, role: CodeRole, success: String) throws {
        let message = result.message(role: role)
        switch result {
        case .unlocked:
            print(success)
        case .alreadyUnlocked:
            print(message)
        case .wrongCode:
            throw CLIError(description: message, exitCode: 2).reported()
        case .locked:
            throw CLIError(description: message, exitCode: 3).reported()
        case .cardFinalTry, .cardBlocked:
            throw CLIError(description: message, exitCode: 4).reported()
        default:
            throw CLIError(description: message, exitCode: 1).reported()
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show tries left, any lock, and the token's own counter.")
        @OptionGroup var selection: TokenOption
        @OptionGroup var output: OutputOptions

        struct Entry: Codable {
            var token: String
            var uri: String
            var failures: Int
            var triesLeft: Int
            var lockedSeconds: Int?
            var tokenCounter: String
            var ledgerDamage: String?
        }

        func run() throws {
            let (_, target) = try selection.target()
            let status = AccessCodeManager().status(target)
            let counter: String
            switch status.card {
            case .unknown: counter = "not reported"
            case .triesLeft(let n): counter = n.map { "\($0) tries left" } ?? "ok"
            case .countLow: counter = "a wrong code was entered recently"
            case .finalTry: counter = "final try"
            case .blocked: counter = "blocked"
            }
            let entry = Entry(token: target.token.info.label, uri: target.token.uri.description, failures: status.failures,
                              triesLeft: status.triesLeft, lockedSeconds: status.lockedRemaining.map { Int($0.seconds.rounded(.up)) },
                              tokenCounter: counter, ledgerDamage: status.damaged)
            if output.json { return try JSONOutput.print(entry) }
            print("\(entry.token)\(target.token.isSoftware ? "  [SOFTWARE TOKEN]" : "")")
            if let damage = status.damaged {
                print("  ledger:  damaged (\(damage)); run `signet pin repair-ledger`")
            } else if let remaining = status.lockedRemaining {
                print("  signet:  locked for \(AccessResult.words(remaining))")
            } else {
                print("  signet:  \(status.triesLeft) \(status.triesLeft == 1 ? "try" : "tries") left before a lock")
            }
            print("  token:   \(counter)")
        }
    }

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change the access code (the new one is asked twice).")
        @OptionGroup var selection: TokenOption
        @Option(name: .customLong("code-fd"), help: "Read the current code from this file descriptor.")
        var codeFD: Int32?
        @Option(name: .customLong("new-code-fd"), help: "Read the new code from this file descriptor.")
        var newCodeFD: Int32?
        @Flag(name: .customLong("final-try"), help: "Send the code even if the token reports its final try.")
        var finalTry = false

        func run() throws {
            let (_, target) = try selection.target()
            let result: AccessResult
            do {
                let old = try AccessCodeInput.obtain(fd: codeFD, prompt: "Current access code: ")
                let new = try AccessCodeInput.obtainNew(fd: newCodeFD, prompt: "New access code: ", again: "Type it again: ")
                result = AccessCodeManager().changeCode(target, old: old, new: new, allowFinalTry: finalTry)
            } catch {
                throw CLIError(description: error.description)
            }
            try PinCommand.finish(result, role: .user, success: "Access code changed.")
        }
    }

    struct Unblock: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock with the administrator (SO) code or PUK and set a new access code.")
        @OptionGroup var selection: TokenOption
        @Option(name: .customLong("so-code-fd"), help: "Read the administrator code from this file descriptor.")
        var soCodeFD: Int32?
        @Option(name: .customLong("new-code-fd"), help: "Read the new access code from this file descriptor.")
        var newCodeFD: Int32?
        @Flag(name: .customLong("final-try"), help: "Send the code even if the token reports the administrator code's final try.")
        var finalTry = false

        func run() throws {
            let (_, target) = try selection.target()
            let result: AccessResult
            do {
                let so = try AccessCodeInput.obtain(fd: soCodeFD, prompt: "Administrator (SO) code or PUK: ")
                let new = try AccessCodeInput.obtainNew(fd: newCodeFD, prompt: "New access code: ", again: "Type it again: ")
                result = AccessCodeManager().unblock(target, soCode: so, newCode: new, allowFinalTry: finalTry)
            } catch {
                throw CLIError(description: error.description)
            }
            try PinCommand.finish(result, role: .so, success: "Unblocked: the new access code is set and Signet's lock is cleared.")
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
