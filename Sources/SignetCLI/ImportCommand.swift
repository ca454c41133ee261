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
        token if needed. The key and its certificate are written both or neither. Files from current \
        tools (PBES2/AES) and older ones (3DES, RC2) are accepted; Signet says which it was. \
        Exit status: 0 imported, 2 wrong password, 1 otherwise.
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
        Console.error("\(file): \(certificate.keyDescription) key for \(certificate.subject); encryption: \(contents.encryption)"
                      + (contents.legacy ? " (legacy PKCS#12 encryption; re-export with AES when you can)" : "") + ".")

        let client = try Agent.connect()
        var inventory = try Inventory.load(client: client, token: token)
        let spki = certificate.subjectPublicKeyInfo
        let id = certificate.keyIdentifier
        let label = certificate.label
        var importedKey: String?
        var tokenURI = token
        func existingKey() -> ObjectEntry? { inventory.objects.first(where: { $0.kind == .privateKey && $0.publicKeyInfo == spki }) }
        if existingKey() == nil {
            let request = AgentRequest.importKey(token: token, key: contents.key, id: id, label: label)
            // Private keys are listed only once the token is unlocked: after unlocking, look again before writing.
            let response = try Agent.callUnlocking(request, token: token, codeFD: codeFD, client: client) {
                inventory = try Inventory.load(client: client, token: token)
                return existingKey() != nil
            }
            if let response {
                guard case .stored(let uri) = response else { throw CLIError(description: "unexpected answer from the agent") }
                importedKey = uri
                tokenURI = uri
            }
        }
        if importedKey == nil, let existing = existingKey() {
            print("The key is already on the token (\"\(existing.label)\"); not imported again.")
            tokenURI = existing.uri
        }
        let keyID = inventory.objects.first(where: { $0.kind == .privateKey && $0.publicKeyInfo == spki })?.id ?? id
        let certificateThere = inventory.certificates.contains(where: { $0.certificate.der == certificate.der })
        if certificateThere {
            print("The certificate is already installed.")
        } else {
            do throws(AgentClientError) {
                _ = try client.call(.storeCertificate(token: tokenURI, der: certificate.der, id: keyID, label: label))
            } catch {
                // Both or neither: take back the key written a moment ago.
                var cleaned = true
                if let importedKey {
                    cleaned = (try? client.call(.deleteObject(object: importedKey))) != nil
                    let publicURI = importedKey.replacing("type=private", with: "type=public")
                    cleaned = (try? client.call(.deleteObject(object: publicURI))) != nil && cleaned
                }
                throw CLIError(description: "Could not store the certificate: \(error.description). "
                               + (cleaned ? "Nothing was left on the token." : "The key written a moment ago could not be removed; see `signet key list`."))
            }
        }
        if importedKey == nil && certificateThere {
            print("Nothing changed: \(certificate.subject) and its key were already on the token.")
        } else {
            print("Imported \(importedKey == nil ? "" : "\(certificate.keyDescription) key and ")certificate \(certificate.subject) "
                  + "(id \(TrustStore.id(certificate)); PKCS#11 key id \(Hex.encode(keyID)))"
                  + (importedKey == nil ? "." : "; the key cannot be exported from the token."))
        }
        try TrustCommand.addAuthorities(contents.chain.filter(\.isAuthority), trustRoots: trustRoots)
    }
}

extension Agent {
    /// `call`, and when the token is locked: asks for the access code, unlocks, and tries once more, unless
    /// `unneededOnceUnlocked` finds, after the unlock, that the request need not be sent again (then nil is returned).
    static func callUnlocking(_ request: AgentRequest, token: String?, codeFD: Int32?, client: AgentClient,
                              unneededOnceUnlocked: () throws -> Bool) throws -> AgentResponse? {
        do throws(AgentClientError) {
            return try client.call(request)
        } catch {
            guard error.code == .notUnlocked else { throw SignetError(error) }
        }
        Console.error("The token must be unlocked.")
        let code: SharedSecret
        do {
            code = SharedSecret(try AccessCodeInput.obtain(fd: codeFD, prompt: "Access code: "))
        } catch {
            throw CLIError(description: error.description)
        }
        try finish(try call(.unlock(token: token, code: code, finalTry: false), client: client), success: "Unlocked.")
        if try unneededOnceUnlocked() { return nil }
        return try call(request, client: client)
    }
}
