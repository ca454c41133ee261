import ArgumentParser
import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// `signet decrypt`: opens S/MIME enveloped-data addressed to a certificate on the user's tokens.
struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt an S/MIME message addressed to one of your certificates (the key stays on the token).",
        discussion: """
        Reads the message (application/pkcs7-mime, or DER/BER CMS) from --in or standard input and writes \
        the decrypted MIME entity to --out or standard output; nothing is written unless decryption succeeds. \
        Exit status: 0 decrypted, 5 token not presented, 6 token locked, 10 not an S/MIME or CMS message, \
        11 not addressed to any certificate on your tokens, 12 the message is damaged or could not be decrypted, 1 otherwise.
        """
    )
    @Option(name: .long, help: "The message file (default: standard input).")
    var `in`: String?
    @Option(name: [.customShort("o"), .long], help: "Where to write the plaintext (default: standard output).")
    var out: String?

    static let malformed: Int32 = 10, notForYou: Int32 = 11, failed: Int32 = 12

    func run() throws {
        let message = try readMessage()
        let client = try Agent.connect()
        let inventory = try Inventory.load(client: client)
        let candidates = inventory.certificates.compactMap { installed -> (Inventory.Installed, String, [UInt8])? in
            if let key = installed.privateKey { return (installed, key.uri, key.publicKeyInfo) }
            if let key = installed.publicKey { return (installed, key.uri.replacingOccurrences(of: "type=public", with: "type=private"), key.publicKeyInfo) }
            return nil
        }
        let envelope: EnvelopedMessage
        let recipients: [EnvelopedMessage.Recipient]
        do {
            envelope = try EnvelopedMessage(message)
            recipients = try envelope.recipients()
        } catch {
            throw CLIError(description: "This is not an S/MIME encrypted message (\(error)).", exitCode: Self.malformed).reported()
        }
        guard let (installed, uri, spki) = candidates.first(where: { candidate in recipients.contains { $0.matches(candidate.0.certificate) } }) else {
            let names = recipients.map(\.description).joined(separator: "; ")
            throw CLIError(description: "The message is not addressed to any certificate on your tokens (it is for: \(names)). "
                           + "If the token holding that certificate is not inserted, insert it; `signet cert list` shows yours.",
                           exitCode: Self.notForYou).reported()
        }
        let key = try AgentKey(client: client, uri: uri, subjectPublicKeyInfo: spki)
        let plaintext: [UInt8]
        do {
            plaintext = try envelope.decrypt(certificate: installed.certificate, key: key)
        } catch let error as AgentClientError where [.tokenAbsent, .noToken, .notUnlocked].contains(error.code) || error.code == nil {
            throw CLIError(description: error.description, exitCode: Agent.exitCode(error.code)).reported()
        } catch {
            throw CLIError(description: "Could not decrypt the message for \(installed.certificate.subject): \(error). It may be damaged.",
                           exitCode: Self.failed).reported()
        }
        Console.error("Decrypted for \(installed.certificate.subject).")
        try writeOutput(plaintext, to: out)
    }

    func readMessage() throws -> [UInt8] {
        let limit = EnvelopedMessage.maximumSize
        if let path = `in` {
            guard let bytes = FileIO.readBytes(path, limit: limit + 1) else { throw CLIError(description: "Cannot read \(path).").reported() }
            guard bytes.count <= limit else { throw CLIError(description: "\(path) is larger than \(limit >> 20) MiB.", exitCode: Self.malformed).reported() }
            return bytes
        }
        let data = FileHandle.standardInput.readData(ofLength: limit + 1)
        guard data.count <= limit else { throw CLIError(description: "The message is larger than \(limit >> 20) MiB.", exitCode: Self.malformed).reported() }
        return Array(data)
    }
}
