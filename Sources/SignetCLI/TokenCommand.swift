import ArgumentParser
import SignetCore
import SignetPKCS11

/// `signet token …`: managing tokens themselves.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create or manage tokens.",
        subcommands: [Init.self]
    )

    /// `signet token init --software --label L`.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a software token (SoftHSM2) for trying Signet out.",
            discussion: """
            A software token keeps its keys in files under Signet's data directory
            ($XDG_DATA_HOME/signet/softhsm). It is marked as software everywhere it
            appears and is not meant for real keys. You are asked for the new access
            code and the administrator (SO) code twice each; scripts can pass them on
            file descriptors instead (one line each, the newline not part of the code).
            """
        )

        @Flag(name: .long, help: "Create a software token (the only kind Signet can create).")
        var software = false

        @Option(name: .long, help: "The token's label (up to 32 bytes).")
        var label: String

        @Option(name: .customLong("code-fd"), help: "Read the new access code from this file descriptor.")
        var codeFD: Int32?

        @Option(name: .customLong("so-code-fd"), help: "Read the new administrator (SO) code from this file descriptor.")
        var soCodeFD: Int32?

        func validate() throws {
            guard software else {
                throw ValidationError("Signet initialises only software tokens; pass --software. Hardware tokens are initialised by their vendor's tools.")
            }
            guard !label.isEmpty, label.utf8.count <= 32 else {
                throw ValidationError("--label must be 1 to 32 bytes long.")
            }
        }

        func run() throws {
            do {
                try SoftwareTokens.ensureConfiguration()
            } catch {
                throw CLIError(description: error.description)
            }
            let context: PKCS11Context
            do {
                context = try PKCS11Context()
            } catch {
                throw CLIError(description: error.description)
            }
            let token: Token
            do {
                let userCode = try AccessCodeInput.obtainNew(fd: codeFD, prompt: "New access code for \(label): ", again: "Type it again: ")
                let soCode = try AccessCodeInput.obtainNew(fd: soCodeFD, prompt: "New administrator (SO) code: ", again: "Type it again: ")
                token = try SoftwareTokens.create(in: context, label: label, userCode: userCode, soCode: soCode)
            } catch let error as AccessCodeInput.Failure {
                throw CLIError(description: error.description)
            } catch let error as SoftwareTokens.Failure {
                throw CLIError(description: error.description)
            }
            print("Created software token \"\(token.info.label)\" (serial \(token.info.serialNumber)).")
            print("URI: \(token.uri)")
            print("This is a SOFTWARE token for trying Signet out: its keys are files on this computer.")
        }
    }
}
