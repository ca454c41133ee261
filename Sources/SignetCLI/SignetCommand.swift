import ArgumentParser
import SignetCore
import SignetOpenSSL
import SignetMail

/// The `signet` command line. Each subcommand lives in its own file.
public struct SignetCommand: ParsableCommand {
    public static let version = SignetVersion.string

    public static let configuration = CommandConfiguration(
        commandName: "signet",
        abstract: "Smart-card-backed keys for signing and decrypting mail.",
        discussion: """
        Signet keeps your private keys on a hardware token and uses them for S/MIME.
        Tokens are named by PKCS#11 URI (see `signet tokens`), never by slot number.
        """,
        version: SignetCommand.version,
        subcommands: [
            StatusCommand.self, UnlockCommand.self, LockCommand.self, KeysCommand.self, ReadersCommand.self, TokensCommand.self,
            TokenCommand.self, PinCommand.self, KeyCommand.self, CSRCommand.self, CertCommand.self, ImportCommand.self, TrustCommand.self, SignCommand.self, VerifyCommand.self, EncryptCommand.self, DecryptCommand.self,
            LogCommand.self, PolicyCommand.self, ReportCommand.self, SetupCommand.self, AgentCommand.self, VersionCommand.self,
        ]
    )

    public init() {}

    /// The program: the mail commands in their plain forms start without ArgumentParser (see
    /// `QuickArguments`), everything else goes through it.
    public static func start() {
        OpenSSLStart.shortLivedProcess()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if QuickArguments.run(arguments) { return }
        if let message = CommandSuggestion.message(for: arguments) {
            Console.error("Error: \(message)")
            exit(withError: ExitCode.validationFailure)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(reporting: error)
        }
    }

    /// The one place an error is printed: a `SignetError` as "Error: <message>" with its exit status;
    /// anything else as ArgumentParser prints it (usage and help, `ExitCode` silently, other errors as "Error: ...").
    /// Messages name certificates and labels that came from outside, so each of their lines is escaped (`Console.safe`).
    static func exit(reporting error: any Error) -> Never {
        if let error = error as? SignetError {
            let lines = error.message.split(separator: "\n", omittingEmptySubsequences: false).map { Console.safe(String($0)) }
            Console.error("Error: " + lines.joined(separator: "\n"))
            exit(withError: ExitCode(error.code.rawValue))
        }
        exit(withError: error)
    }
}

/// A mistyped command name, answered as git does: `signet sing` → "Did you mean 'sign'?"
/// (ArgumentParser says only "Unexpected argument 'sing'").
enum CommandSuggestion {
    /// The message for `arguments` when they name a subcommand that does not exist, else nil.
    static func message(for arguments: [String], root: any ParsableCommand.Type = SignetCommand.self) -> String? {
        var command: any ParsableCommand.Type = root
        var path: [String] = []
        for argument in arguments {
            let configuration = command.configuration
            guard !argument.hasPrefix("-"), argument != "help", !configuration.subcommands.isEmpty,
                  configuration.defaultSubcommand == nil else { return nil }
            if let next = configuration.subcommands.first(where: { $0.configuration.commandName == argument || $0.configuration.aliases.contains(argument) }) {
                command = next
                path.append(argument)
                continue
            }
            let names: [String] = configuration.subcommands.compactMap { $0.configuration.commandName }
            let prefix = path.map { "\($0) " }.joined()
            let help = "See 'signet \(prefix)--help' for the commands."
            let distances = names.map { ($0, EditDistance.between(argument.lowercased(), $0)) }
            guard let best = distances.map(\.1).min(), best <= min(2, max(1, argument.count / 2)) else {
                return "Unknown command '\(prefix)\(argument)'. \(help)"
            }
            let nearest = distances.filter { $0.1 == best }.map { "'\(prefix)\($0.0)'" }
            return "Unknown command '\(prefix)\(argument)'. Did you mean \(nearest.prefix(3).joined(separator: " or "))? \(help)"
        }
        return nil
    }
}

/// `signet version`: the versions a helpdesk asks for.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Show Signet's version, the libraries it uses, and the PKCS#11 modules it loads with their versions.")

    func run() throws {
        for line in Versions.lines() { print(line) }
    }
}

/// Options shared by listing commands.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false
}

/// The error the command line throws: `SignetError`, printed once by `SignetCommand.exit(reporting:)`.
typealias CLIError = SignetError
