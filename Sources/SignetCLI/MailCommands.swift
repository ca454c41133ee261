import ArgumentParser
import FoundationEssentials
import Glibc
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetMail
import SignetOpenSSL

/// `signet sign`: signs a MIME entity with the key on the token (S/MIME, RFC 8551).
struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign a MIME entity with your certificate's key on the token (S/MIME).",
        discussion: """
        Reads the MIME entity (headers, empty line, body) from --in or standard input and writes multipart/signed \
        (or, with --opaque, application/pkcs7-mime signed-data; with --signature-only, just the DER signature) to --out \
        or standard output. The input is streamed: messages of any size sign in constant memory. Text is put into \
        canonical form (CRLF line ends) before signing; parts sent with Content-Transfer-Encoding: binary are signed \
        as they are. The certificate is --cert, or the configured/automatic signing certificate. \
        When the token is absent the agent asks for it to be presented and waits; when it is locked the \
        access code is asked for on the terminal (or read from --code-fd). \
        Exit status: 0 signed, 5 token not presented or removed, 6 token locked, 7 the token failed, 1 otherwise (all statuses: docs/exit-status.md).
        """
    )
    @Option(name: .long, help: "The MIME entity to sign (default: standard input).")
    var `in`: String?
    @Option(name: [.customShort("o"), .long], help: "Where to write the signed message (default: standard output).")
    var out: String?
    @Flag(name: .long, help: "Opaque signed-data (application/pkcs7-mime) instead of multipart/signed.")
    var opaque = false
    @Flag(name: .customLong("signature-only"), help: "Write only the detached signature, DER (for mutt's smime_sign_command).")
    var signatureOnly = false
    @Option(name: .long, help: "Digest: sha256, sha384 or sha512.")
    var digest: String = "sha256"
    @Flag(name: .long, help: "RSA-PSS instead of PKCS#1 v1.5 (RSA keys).")
    var pss = false
    @Option(name: .long, help: "The certificate to sign with (id from `signet cert list`).")
    var cert: String?
    @Option(name: .long, help: "The sender's address: picks the signing certificate for it.")
    var from: String?
    @Flag(name: .long, help: "Sign the bytes as they are (no CRLF canonicalisation).")
    var binary = false
    @Flag(name: [.customShort("q"), .long], help: "Say nothing on success (mutt shows anything written to standard error and waits for a key).")
    var quiet = false
    @OptionGroup var unlock: UnlockOptions

    /// `--digest` as named (`sha256`, `SHA-256`, ...); nil when not offered.
    private var digestChoice: MessageDigest? { MessageDigest(rawValue: digest.lowercased().filter { $0 != "-" }) }

    func validate() throws {
        if opaque && signatureOnly { throw ValidationError("--opaque and --signature-only exclude each other.") }
        guard digestChoice != nil else {
            throw ValidationError("--digest must be sha256, sha384 or sha512 (SHA-1 is not offered for new signatures).")
        }
    }

    func run() throws {
        let client = try Agent.connect()
        let signer = try MailCertificates.signer(client: client, id: cert, email: from)
        let (certificate, uri, spki) = (signer.certificate, signer.keyURI, signer.publicKeyInfo)
        var options = MessageSigner.Options()
        options.form = opaque ? .opaque : signatureOnly ? .signatureOnly : .detached
        options.digest = digestChoice!
        options.pss = pss
        let chain = MailCertificates.chainToInclude(for: certificate)
        let key = try AgentKey(client: client, uri: uri, subjectPublicKeyInfo: spki,
                               onLocked: Agent.unlocker(client: client, keyURI: uri, codeFD: unlock.codeFD))
        let input = try MailInput.open(`in`)
        defer { if input != 0 { close(input) } }
        let output = try MailOutput(out, mode: 0o600)
        do {
            try MessageSigner.sign(MessageSource(fd: input, canonicalize: !binary), to: output.fd, certificate: certificate, key: key,
                                   chain: chain, options: options)
            try output.commit()
        } catch let error as AgentClientError {
            output.discard()
            throw SignetError(error)
        } catch let error as CLIError {
            output.discard()
            throw error
        } catch {
            output.discard()
            throw SignetError(.failure, "Could not sign: \(error)", cause: error)
        }
        if !quiet { Console.error(Console.safe("Signed as \(certificate.subject) (\(options.digest.rawValue.uppercased())\(pss ? ", RSA-PSS" : "")).")) }
    }
}

/// `signet verify`: checks S/MIME signatures against the trust store.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the signatures of an S/MIME message (detached or opaque) and who made them.",
        discussion: """
        Reads the message from --in or standard input (or a detached signature with --signature and --content). \
        Reports each signer: name, address, signing time, algorithms, the chain to a trusted root (checked at the \
        signing time, or --at), and whether the From: address and Date: agree. Encrypted layers are decrypted \
        with the key on your token. With --out the signed content is written when the signature matches. \
        Exit status: 0 good and trusted, 13 bad signature, 14 signer not trusted/expired/revoked, 15 SHA-1 or \
        unknown algorithm, 16 good but From:/Date: disagree, 10 not a signed S/MIME message, 1 otherwise (all statuses: docs/exit-status.md).
        """
    )
    @Option(name: .long, help: "The signed message (default: standard input).")
    var `in`: String?
    @Option(name: .long, help: "A detached signature file (DER, PEM or S/MIME), with --content.")
    var signature: String?
    @Option(name: .long, help: "The content the detached --signature signs.")
    var content: String?
    @Option(name: [.customShort("o"), .long], help: "Write the signed content here ('-' for standard output).")
    var out: String?
    @OptionGroup var trust: TrustOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var unlock: UnlockOptions

    func validate() throws {
        if (signature == nil) != (content == nil) { throw ValidationError("--signature and --content go together.") }
        if signature != nil && `in` != nil { throw ValidationError("Give either --in or --signature with --content.") }
    }

    func run() throws {
        let limit = MessageOpener.maximumSize
        var result: [UInt8]?
        let opener: MessageOpener
        if let signature, let content {
            let signatureBytes = try MailInput.read(signature, limit: limit)
            let contentBytes = try MailInput.read(content, limit: limit)
            opener = try MessageOpener.forCommand(trust: trust, codeFD: unlock.codeFD, topLevel: contentBytes)
            defer { opener.rememberTrustedSigners() }
            let message: SignedMessage
            do { message = try SignedMessage(signature: signatureBytes, content: contentBytes) } catch {
                throw SignetError(.malformed, "\(signature) is not an S/MIME signature (\(error)).", cause: error)
            }
            result = opener.verify(message, depth: 1)?.0
            VerdictReport.print(opener)
        } else {
            let message = try MailInput.read(`in`, limit: limit)
            opener = try MessageOpener.forCommand(trust: trust, codeFD: unlock.codeFD, topLevel: message)
            defer { opener.rememberTrustedSigners() }
            var reported = false
            defer { if !reported { VerdictReport.print(opener) } }  // also when opening throws
            result = try opener.open(message)
            VerdictReport.print(opener)  // the report before any verdict below
            reported = true
            try opener.requireSigned(opened: result != nil)
        }
        if output.json { try JSONOutput.print(VerdictReport.json(opener.layers)) }
        if let result, let out, opener.verifiedContentMayBeWritten {
            try writeOutput(result, to: out, mode: 0o600)
        }
        if opener.status != .success { throw ExitCode(opener.status.rawValue) }
    }
}

/// `signet encrypt`: encrypts a MIME entity to recipients' certificates and to yourself.
struct EncryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt",
        abstract: "Encrypt a MIME entity to recipients' certificates and your own (S/MIME). Needs no token.",
        discussion: """
        Each --to is a certificate file (PEM or DER) or an email address found among the certificates of people \
        whose signed mail you verified (`$XDG_DATA_HOME/signet/people/`) or on your tokens. The message is always \
        also encrypted to your own encryption certificate so you can read what you sent; Signet refuses when you \
        have none. Without --to, the message is encrypted to your own certificate alone. AES-256-CBC by default (every S/MIME client reads it); --cipher aes256-gcm makes authEnveloped-data. \
        RSA recipients get PKCS#1 v1.5 key transport (--oaep for RSAES-OAEP with SHA-256); EC recipients ECDH. \
        The input is streamed in constant memory.
        """
    )
    @Option(name: .long, help: "A recipient: certificate file or email address (repeatable; with none, the message is for you alone).")
    var to: [String] = []
    @Argument(help: "More recipients, as --to (mutt's %c passes certificate files this way).")
    var recipients: [String] = []
    @Flag(name: .long, help: "Write the DER CMS structure instead of an S/MIME message (for mutt's smime_encrypt_command).")
    var der = false
    @Option(name: .long, help: "The MIME entity to encrypt (default: standard input).")
    var `in`: String?
    @Option(name: [.customShort("o"), .long], help: "Where to write the encrypted message (default: standard output).")
    var out: String?
    @Option(name: .long, help: "aes256-cbc, aes128-cbc, aes256-gcm or aes128-gcm.")
    var cipher: String = "aes256-cbc"
    @Flag(name: .long, help: "RSAES-OAEP (SHA-256) key transport for RSA recipients.")
    var oaep = false
    @Option(name: .customLong("self"), help: "Your own certificate to encrypt to (default: your encryption certificate).")
    var ownCertificate: String?
    @Flag(name: [.customShort("q"), .long], help: "Say nothing on success (mutt shows anything written to standard error and waits for a key).")
    var quiet = false
    @Flag(name: .long, help: "Ask no directory and check no revocation (no network); the message says so.")
    var offline = false
    @Flag(name: .long, help: "Ask the directories even for recipients whose certificate is cached.")
    var refresh = false

    func validate() throws {
        if MessageEncryptor.Cipher(rawValue: cipher.lowercased()) == nil {
            throw ValidationError("--cipher must be one of \(MessageEncryptor.Cipher.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
    }

    func run() throws {
        let directories = try Directories.settings()
        var found: [Certificate] = []
        for name in to + recipients {
            found.append(try DirectoryRecipients.certificate(name, settings: directories, offline: offline, refresh: refresh))
        }
        let certificates = try MailCertificates.encryptionRecipients(certificates: found, ownFile: ownCertificate)
        try Revocation.checkRecipients(certificates, settings: directories, offline: offline, quiet: quiet)
        var options = MessageEncryptor.Options()
        options.cipher = MessageEncryptor.Cipher(rawValue: cipher.lowercased())!
        options.oaep = oaep
        options.der = der
        let input = try MailInput.open(`in`)
        defer { if input != 0 { close(input) } }
        let output = try MailOutput(out, mode: 0o644)
        do {
            try MessageEncryptor.encrypt(MessageSource(fd: input, canonicalize: true), to: output.fd, recipients: certificates, options: options)
            try output.commit()
        } catch {
            output.discard()
            throw SignetError(.failure, "Could not encrypt: \(error)", cause: error)
        }
        if !quiet { Console.error(Console.safe("Encrypted (\(options.cipher.rawValue.uppercased())) to \(certificates.map(\.label).joined(separator: ", ")).")) }
    }
}
