import ArgumentParser
import FoundationEssentials
import Glibc
import SignetCore
import SignetMail
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
        as `signet verify` does. When the token is locked, its access code is asked for on the terminal \
        (or read from --code-fd). \
        Exit status: 0 decrypted, 5 token not presented or removed, 6 token locked, 7 the token failed or refused \
        (not the message's fault), 10 not an S/MIME or CMS message, 11 not addressed to any certificate on your tokens, \
        12 the message is damaged, \
        13 a signature inside is bad, 14 its signer is not trusted, 15 SHA-1 signature, 16 From:/Date: mismatch, 1 otherwise (all statuses: docs/exit-status.md).
        """
    )
    @Option(name: .long, help: "The message file (default: standard input).")
    var `in`: String?
    @Option(name: [.customShort("o"), .long], help: "Where to write the plaintext (default: standard output).")
    var out: String?
    @OptionGroup var trust: TrustOptions
    @OptionGroup var unlock: UnlockOptions

    func run() throws {
        let input = try MailInput.open(`in`)
        defer { if input != 0 { close(input) } }
        let probe = try EnvelopeProbe(fd: input)
        if let reader = probe.reader { return try runStreamed(reader, headers: probe.prefix) }
        let message = try MailInput.readRest(input, prefix: probe.prefix, limit: MessageOpener.maximumSize, name: `in`)
        let opener = try MessageOpener.forCommand(trust: trust, codeFD: unlock.codeFD, topLevel: message)
        opener.lenientAroundEncryption = true
        defer { opener.rememberTrustedSigners() }
        defer { VerdictReport.print(opener) }
        let content = try opener.open(message)
        guard let content, opener.decryptedContentMayBeWritten else { throw ExitCode(opener.status.rawValue) }
        try opener.requireEncrypted()
        try writeOutput(content, to: out, mode: 0o600)
        if opener.status != .success { throw ExitCode(opener.status.rawValue) }
    }

    /// The outer layer is enveloped data: it is decrypted as it streams in, into the output file (renamed into
    /// place only on success) or, for standard output, a nameless temporary file copied out on success.
    /// A layer inside (a signed message) is then opened in memory, as any message is.
    private func runStreamed(_ reader: BERReader, headers: [UInt8]) throws {
        let opener = try MessageOpener.forCommand(trust: trust, codeFD: unlock.codeFD, topLevel: headers)
        opener.lenientAroundEncryption = true
        defer { opener.rememberTrustedSigners() }
        defer { VerdictReport.print(opener) }
        let path = out == "-" ? nil : out
        let output = try MailOutput(path, mode: 0o600)
        let spool = path == nil ? try Spool() : nil
        let target = spool?.fd ?? output.fd
        let stream: EnvelopeStream
        do { stream = try EnvelopeStream(reader) } catch {
            throw SignetError(.malformed, "Layer 1: not a readable S/MIME encrypted message (\(error)).")
        }
        guard try opener.decryptStreamed(stream, into: target) else { throw ExitCode(opener.status.rawValue) }
        let plaintext = FileView(fd: target)
        let nested = MessageOpener.mayBeLayer(plaintext.head(64 << 10))
        if nested, opener.noteUncheckedInnerLayer(size: plaintext.size) {
            if let spool { try spool.copy(to: output.fd) }
            try output.commit()
            throw ExitCode(opener.status.rawValue)
        }
        if nested {
            guard let content = try opener.open(plaintext.contents(), from: 2), opener.decryptedContentMayBeWritten else { throw ExitCode(opener.status.rawValue) }
            if path != nil {
                guard ftruncate(output.fd, 0) == 0, lseek(output.fd, 0, SEEK_SET) == 0 else {
                    throw CLIError(description: "Could not write \(path!).")
                }
            }
            try content.withUnsafeBytes { try FileIO.writeAll(output.fd, $0) }
        } else if let spool {
            try spool.copy(to: output.fd)
        }
        try output.commit()
        if opener.status != .success { throw ExitCode(opener.status.rawValue) }
    }
}

extension VerdictReport {
    /// Prints the report to standard error, each line with its terminal controls escaped (`Console.safe`):
    /// the names, addresses and reasons in it come from the message.
    static func print(_ opener: MessageOpener) {
        for line in lines(opener) { Console.error(Console.safe(line)) }
    }
}
