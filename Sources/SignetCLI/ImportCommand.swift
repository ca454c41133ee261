import ArgumentParser
import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetMail
import SignetOpenSSL

/// `signet import FILE.p12`.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a .p12/.pfx file onto the token: the key (never exportable again), its certificate and chain.",
        discussion: """
        Asks for the file's password without echo (or reads it from --password-fd) and unlocks the \
        token if needed. The key and its certificate are written both or neither. When the key is on the \
        token already with another certificate, nothing is written unless --replace is given. Files from current \
        tools (PBES2/AES) and older ones (3DES, RC2) are accepted; Signet says which it was. \
        Exit status: 0 imported, 2 wrong password, 1 otherwise (all statuses: docs/exit-status.md).
        """
    )
    @Argument(help: "The .p12 or .pfx file.")
    var file: String
    @Option(name: .customLong("password-fd"), help: "Read the file's password (one line) from this file descriptor.")
    var passwordFD: Int32?
    @Option(name: .customLong("code-fd"), help: "Read the token's access code (one line) from this descriptor when it must be unlocked.")
    var codeFD: Int32?
    @Option(name: .long, help: "The token's PKCS#11 URI; needed when more than one token is present.")
    var token: String?
    @Flag(name: .customLong("trust-roots"), help: "Trust the root CA certificates in the file without asking.")
    var trustRoots = false
    @Flag(name: .long, help: "Replace a different certificate the token already holds for the same key.")
    var replace = false

    func run() throws {
        guard let bytes = FileIO.readBytes(file, limit: PKCS12File.maximumSize + 1) else { throw CLIError(description: "Cannot read \(file).") }
        let contents: PKCS12File.Contents
        do {
            let password = try AccessCodeInput.obtain(fd: passwordFD, prompt: "Password for \(file): ", what: "password", option: "--password-fd")
            contents = try PKCS12File.open(bytes, password: password)
        } catch let failure as PKCS12File.Failure {
            throw SignetError(failure == .wrongPassword ? .wrongCode : .failure, "\(file): \(failure.description)", cause: failure)
        } catch let failure as AccessCodeInput.Failure {
            throw CLIError(description: failure.description)
        }
        let certificate = contents.certificate
        Console.error("\(file): \(certificate.keyDescription) key for \(Console.safe(certificate.subject)); encryption: \(contents.encryption)"
                      + (contents.legacy ? " (legacy PKCS#12 encryption; re-export with AES when you can)" : "") + ".")

        let client = try Agent.connect()
        let result = try PKCS12Import.run(contents, token: token, replace: replace, client: client) { () throws(SignetError) in
            try Agent.unlockAfterAsking(token: token, codeFD: codeFD, client: client)
        }
        let (importedKey, certificateThere, keyID) = (result.importedKey, result.certificateWasThere, result.keyID)
        if let label = result.existingKeyLabel { print("The key is already on the token (\"\(Console.safe(label))\"); not imported again.") }
        if certificateThere { print("The certificate is already installed.") }
        if importedKey == nil && certificateThere {
            print("Nothing changed: \(Console.safe(certificate.subject)) and its key were already on the token.")
        } else {
            print("Imported \(importedKey == nil ? "" : "\(certificate.keyDescription) key and ")certificate \(Console.safe(certificate.subject)) "
                  + "(id \(TrustStore.id(certificate)); PKCS#11 key id \(Hex.encode(keyID)))"
                  + (importedKey == nil ? "." : "; the key cannot be exported from the token."))
        }
        try TrustCommand.addAuthorities(contents.chain.filter(\.isAuthority), trustRoots: trustRoots)
    }
}

extension Agent {
    /// Says the token must be unlocked, asks for its access code (or reads it from `codeFD`) and unlocks it.
    /// - Throws: `SignetError` when no code can be read or the token does not unlock.
    static func unlockAfterAsking(token: String?, codeFD: Int32?, client: AgentClient) throws(SignetError) {
        Console.error("The token must be unlocked.")
        let code: SharedSecret
        do throws(AccessCodeInput.Failure) {
            code = SharedSecret(try AccessCodeInput.obtain(fd: codeFD, prompt: "Access code: "))
        } catch {
            throw SignetError(.failure, error.description, cause: error)
        }
        try finish(try call(.unlock(token: token, code: code, finalTry: false), client: client), success: "Unlocked.")
    }
}
