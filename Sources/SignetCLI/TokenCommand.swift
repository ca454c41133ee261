import ArgumentParser
import SignetCore
import SignetAgentProtocol

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
            code and the administrator (SO) code twice each (4 to 255 bytes each); scripts
            can pass them on file descriptors instead (one line each, the newline not part
            of the code).
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
            // The agent creates the token in its own process, so it is usable at once.
            let client = try Agent.connect()
            let request: AgentRequest
            do {
                let lengths = AgentProtocol.softwareTokenCodeLengths
                let userCode = try AccessCodeInput.obtainNew(fd: codeFD, prompt: "New access code for \(label): ", again: "Type it again: ",
                                                             lengths: ("access code", lengths))
                let soCode = try AccessCodeInput.obtainNew(fd: soCodeFD, prompt: "New administrator (SO) code: ", again: "Type it again: ",
                                                           lengths: ("administrator (SO) code", lengths))
                request = .initSoftwareToken(label: label, userCode: SharedSecret(userCode), soCode: SharedSecret(soCode))
            } catch {
                throw CLIError(description: error.description)
            }
            guard case .stored(let uri) = try Agent.call(request, client: client) else {
                throw CLIError(description: "unexpected answer from the agent")
            }
            let serial = (try? PKCS11URI(parsing: uri))?.text("serial") ?? "?"
            print("Created software token \"\(Console.safe(label))\" (serial \(Console.safe(serial))).")
            print("URI: \(Console.safe(uri))")
            print("This is a SOFTWARE token for trying Signet out: its keys are files on this computer.")
        }
    }
}
