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
        let content = try opener.open(message)
        guard let content, Self.acceptable(opener.status) else { throw ExitCode(opener.status.rawValue) }
        guard opener.encryptedLayers + opener.signedLayers > 0 else {
            throw SignetError(.malformed, "This is not an S/MIME encrypted message (no application/pkcs7-mime enveloped data).")
        }
        guard opener.encryptedLayers > 0 else {
            throw SignetError(.malformed, "The message is signed but not encrypted; `signet verify --out -` shows its content.")
        }
        try writeOutput(content, to: out, mode: 0o600)
        if opener.status != .success { throw ExitCode(opener.status.rawValue) }
    }

    /// Outcomes that still give the content (the signer is reported, the content is readable).
    private static func acceptable(_ status: ExitStatus) -> Bool {
        [ExitStatus.success, ExitStatus.headerMismatch, ExitStatus.untrusted, ExitStatus.unsupported].contains(status)
    }

    /// The outer layer is enveloped data: it is decrypted as it streams in, into the output file (renamed into
    /// place only on success) or, for standard output, a nameless temporary file copied out on success.
    /// A layer inside (a signed message) is then opened in memory, as any message is.
    private func runStreamed(_ reader: BERReader, headers: [UInt8]) throws {
        let opener = try MessageOpener.forCommand(trust: trust, codeFD: unlock.codeFD, topLevel: headers)
        opener.lenientAroundEncryption = true
        defer { opener.rememberTrustedSigners() }
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
        if nested && plaintext.size > MessageOpener.maximumSize {
            // Signatures are checked in memory: a layer this large inside is passed on unchecked, and said so.
            Console.error("Layer 2: an S/MIME layer of \(plaintext.size >> 20) MiB, larger than the \(MessageOpener.maximumSize >> 20) MiB "
                          + "Signet checks; its signature was NOT checked. It is written as it is.")
            if let spool { try spool.copy(to: output.fd) }
            try output.commit()
            throw ExitCode(ExitStatus.untrusted.rawValue)
        }
        if nested {
            guard let content = try opener.open(plaintext.contents(), from: 2), Self.acceptable(opener.status) else { throw ExitCode(opener.status.rawValue) }
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

/// The top of a message, read to decide whether its outer layer is enveloped data that can be decrypted as it
/// streams in: DER/BER CMS, or `application/pkcs7-mime` in base64 (or binary).
struct EnvelopeProbe {
    /// What was read (headers and the start of the body); the rest is still in the descriptor.
    let prefix: [UInt8]
    /// A reader of the enveloped data's encoding (the prefix included), when the outer layer is one.
    let reader: BERReader?

    init(fd: Int32) throws {
        var prefix: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var bodyStart: Int?
        while prefix.count < 1 << 20 {
            if let start = bodyStart ?? Self.bodyStart(prefix) {
                bodyStart = start
                if prefix.count >= start + 512 { break }
            }
            let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw CLIError(description: "Reading the message failed: \(String(cString: strerror(errno))).") }
            if got == 0 { break }
            prefix += chunk[..<got]
        }
        self.prefix = prefix
        reader = Self.reader(prefix: prefix, bodyStart: bodyStart ?? Self.bodyStart(prefix), fd: fd)
    }

    /// Where the body starts: 0 for DER, after the first empty line for MIME.
    private static func bodyStart(_ bytes: [UInt8]) -> Int? {
        if bytes.first == 0x30 { return 0 }
        var index = 0
        while let newline = bytes[index...].firstIndex(of: 0x0A) {
            let next = newline + 1
            if next < bytes.count, bytes[next] == 0x0A { return next + 1 }
            if next + 1 < bytes.count, bytes[next] == 0x0D, bytes[next + 1] == 0x0A { return next + 2 }
            index = next
        }
        return nil
    }

    private static func reader(prefix: [UInt8], bodyStart: Int?, fd: Int32) -> BERReader? {
        guard let bodyStart else { return nil }
        if bodyStart == 0 {
            return EnvelopeStream.recognises(prefix) ? BERReader(DescriptorSource(fd: fd, prefix: prefix)) : nil
        }
        let headers = MIMEHeaders(message: prefix)
        guard let type = headers.value("content-type"),
              ["application/pkcs7-mime", "application/x-pkcs7-mime"].contains(MIMEHeaders.mainValue(type)) else { return nil }
        if let smimeType = MIMEHeaders.parameter(type, "smime-type")?.lowercased(),
           !["enveloped-data", "authenveloped-data"].contains(smimeType) { return nil }
        let body = DescriptorSource(fd: fd, prefix: Array(prefix[bodyStart...]))
        let encoding = headers.value("content-transfer-encoding").map { MIMEHeaders.mainValue($0) }
        if encoding == "base64" {
            let sample = Base64DecodingSource(ArraySource(Array(prefix[bodyStart...].prefix(256))))
            var decoded = [UInt8](repeating: 0, count: 192)
            let got = (try? decoded.withUnsafeMutableBytes { try sample.read(into: $0) }) ?? 0
            guard EnvelopeStream.recognises(Array(decoded.prefix(got))) else { return nil }
            return BERReader(Base64DecodingSource(body))
        }
        return EnvelopeStream.recognises(Array(prefix[bodyStart...])) ? BERReader(body) : nil
    }
}
