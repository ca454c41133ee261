import ArgumentParser
import Foundation
import SignetCore
import SignetOpenSSL

/// `signet decrypt`: opens S/MIME enveloped-data addressed to a certificate on the user's tokens.
struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt an S/MIME message addressed to one of your certificates (the key stays on the token).",
        discussion: """
        Reads the message (application/pkcs7-mime, or DER/BER CMS) from --in or standard input and writes \
        the decrypted MIME entity to --out or standard output; nothing is written unless every layer opens. \
        Nested layers are unwrapped and each is reported: signatures inside (or around) the encryption are checked \
        as `signet verify` does. \
        Exit status: 0 decrypted, 5 token not presented, 6 token locked, 10 not an S/MIME or CMS message, \
        11 not addressed to any certificate on your tokens, 12 the message is damaged or could not be decrypted, \
        13 a signature inside is bad, 14 its signer is not trusted, 15 SHA-1 signature, 16 From:/Date: mismatch, 1 otherwise.
        """
    )
    @Option(name: .long, help: "The message file (default: standard input).")
    var `in`: String?
    @Option(name: [.customShort("o"), .long], help: "Where to write the plaintext (default: standard output).")
    var out: String?
    @OptionGroup var trust: TrustOptions

    func run() throws {
        let message = try MailInput.read(`in`, limit: MessageOpener.maximumSize)
        let opener = try MessageOpener(options: trust, topLevel: message)
        opener.lenientAroundEncryption = true
        let content = try opener.open(message)
        guard let content, opener.status == 0 || opener.status == MailExit.headerMismatch || opener.status == MailExit.untrusted
                || opener.status == MailExit.unsupported else { throw ExitCode(opener.status) }
        guard opener.encryptedLayers + opener.signedLayers > 0 else {
            throw CLIError(description: "This is not an S/MIME encrypted message (no application/pkcs7-mime enveloped data).",
                           exitCode: MailExit.malformed).reported()
        }
        guard opener.encryptedLayers > 0 else {
            throw CLIError(description: "The message is signed but not encrypted; `signet verify --out -` shows its content.",
                           exitCode: MailExit.malformed).reported()
        }
        try writeOutput(content, to: out, mode: 0o600)
        if opener.status != 0 { throw ExitCode(opener.status) }
    }
}
