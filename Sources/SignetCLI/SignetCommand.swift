import ArgumentParser
import COpenSSL
import SignetCore

/// The `signet` command line. Each subcommand lives in its own file.
public struct SignetCommand: ParsableCommand {
    public static let version = "0.2.0"

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
            LogCommand.self, ReportCommand.self, AgentCommand.self, VersionCommand.self,
        ]
    )

    public init() {}

    /// The program: the mail commands in their plain forms start without ArgumentParser (see
    /// `QuickArguments`), everything else goes through it.
    public static func start() {
        if QuickArguments.run(Array(CommandLine.arguments.dropFirst())) { return }
        main()
    }
}

/// `signet version`: the versions a helpdesk asks for.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Show Signet's version and the libraries it uses.")

    func run() throws {
        print("signet \(SignetCommand.version)")
        print("OpenSSL: \(String(cString: COpenSSL_versionText()))")
    }
}

/// Options shared by listing commands.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false
}

/// An error the CLI prints as it is and exits with a status.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 1

    /// Prints the message to standard error and returns the exit status to throw,
    /// for commands whose exit status says which failure it was.
    func reported() -> ExitCode {
        Console.error("Error: \(description)")
        return ExitCode(exitCode)
    }
}
