import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// What decides whether a signer is trusted (besides the trust store).
public struct TrustPolicy {
    /// Files of CA certificates trusted as well.
    public var trust: [String] = []
    /// The time to check signers at (2026-01-27 or 2026-01-27T10:00:00Z) instead of the signing time.
    public var at: String?
    /// CRL files (PEM or DER) to check signers' certificates against.
    public var crl: [String] = []
    /// Fetch the CRLs named in the CRL distribution points of a signer's path, once it is built to a
    /// trusted anchor (http://, no redirects, within `CRLFetcher`'s bounds).
    public var fetchCRL = false
    /// Fetch CRLs from loopback and link-local addresses too (`crl-fetch-local = yes`).
    public var fetchCRLFromLocal = false
    /// Accept signatures made with SHA-1.
    public var allowSHA1 = false

    public init() {}
}

/// Opens a message layer by layer, as a mail reader does: decrypts enveloped layers with
/// the key on the token, checks signed layers against the trust store, and decides each layer's
/// verdict (`status`, `reports`). It prints nothing: report lines go to `onLine`, and signers found
/// trusted are written to the correspondents' store only by `rememberTrustedSigners()`.
public final class MessageOpener {
    /// The largest message opened (parsed in memory).
    public static let maximumSize = CMSMessage.maximumSize
    /// How far a signing time may be from the Date: header (Thunderbird flags a mismatch too).
    public static let dateTolerance: TimeInterval = 3600

    public let options: TrustPolicy
    /// A signature around an encrypted layer covers only ciphertext and says nothing about the
    /// content (Thunderbird ignores it too): when true, a bad one is reported and passed over.
    public var lenientAroundEncryption = false
    /// What to do when the token holding `keyURI` turns out to be locked (for `AgentKey`'s `onLocked`;
    /// the front end asks for the access code). Nil: the operation fails as the token answers.
    public var unlocker: ((AgentClient, String) -> () -> Bool)?
    /// Where report lines go (the front end prints them to standard error): one line per call, with the
    /// terminal controls in it escaped (`Console.safe`), since names and addresses come from the message.
    public var onLine: (String) -> Void = { _ in }
    public let headers: MIMEHeaders
    public private(set) var status: ExitStatus = .success
    public private(set) var encryptedLayers = 0
    public private(set) var signedLayers = 0
    public private(set) var reports: [[String: String]] = []
    /// Signers whose certificates chained to a trusted root, in the order seen.
    public private(set) var trustedSigners: [Certificate] = []
    /// When true, report lines are kept until `finishReport()` instead of passed on as they come.
    public var holdReport = false
    private var heldLines: [String] = []
    private var client: AgentClient?
    private var inventory: Inventory?
    private let anchors: [Certificate]
    private let intermediates: [Certificate]
    private let crls: [RevocationList]
    private let at: Date?
    private lazy var crlFetcher = CRLFetcher(allowLocal: options.fetchCRLFromLocal)
    /// An OCSP check (issue 27) of a signer whose path reached a trusted root, given the certificate and its path: a line
    /// for the report, and whether the signer is revoked or, by the configuration, refused as unchecked. Nil: none.
    public var revocationCheck: ((Certificate, [Certificate]) -> (line: String, revoked: String?, unchecked: String?)?)?

    /// - Throws: `SignetError` when a --trust or --crl file cannot be read or the --at time does not parse.
    public init(options: TrustPolicy, topLevel message: [UInt8]) throws(SignetError) {
        self.options = options
        headers = MIMEHeaders(message: message)
        var anchors: [Certificate] = []
        var intermediates: [Certificate] = []
        for entry in TrustStore().entries() {
            if entry.certificate.isSelfSigned { anchors.append(entry.certificate) } else { intermediates.append(entry.certificate) }
        }
        for file in options.trust { anchors += try readCertificateFile(file).certificates }
        self.anchors = anchors
        self.intermediates = intermediates
        var crls: [RevocationList] = []
        for file in options.crl {
            guard let bytes = FileIO.readBytes(file, limit: RevocationList.maximumSize) else { throw SignetError(.failure, "Cannot read \(file).") }
            do { crls.append(try RevocationList(bytes: bytes)) } catch { throw SignetError(.failure, "\(file): \(error)", cause: error) }
        }
        self.crls = crls
        if let text = options.at {
            guard let date = Dates.parse(text) else { throw SignetError(.failure, "--at \(text): give a date like 2026-01-27 or 2026-01-27T10:00:00Z.") }
            at = date
        } else {
            at = nil
        }
    }

    /// One layer of a message, parsed once.
    public enum Layer {
        case enveloped(EnvelopedMessage)
        case signed(SignedMessage)
        /// Not S/MIME: the content itself.
        case plain
        /// Declared S/MIME (or CMS) but unreadable, or CMS of a type mail does not use.
        case unreadable(String)

        public var isEnveloped: Bool { if case .enveloped = self { true } else { false } }
    }

    /// What the outermost layer of `bytes` is: MIME types decide whether to parse; DER without headers is tried as CMS.
    public static func layer(of bytes: [UInt8]) -> Layer {
        guard mayBeLayer(bytes) else { return .plain }
        do {
            switch try CMSMessage.parse(bytes) {
            case .signed(let message): return .signed(message)
            case .enveloped(let message): return .enveloped(message)
            case .other(let type): return .unreadable("CMS \(type) content, neither signed nor encrypted")
            }
        } catch {
            return bytes.first == 0x30 && MIMEHeaders(message: bytes).value("content-type") == nil ? .plain : .unreadable("\(error)")
        }
    }

    /// Whether a message starting with `head` may be an S/MIME layer (its MIME type says so, or it is DER without headers).
    public static func mayBeLayer(_ head: [UInt8]) -> Bool {
        guard let type = MIMEHeaders(message: head).value("content-type") else { return head.first == 0x30 }
        return ["multipart/signed", "application/pkcs7-mime", "application/x-pkcs7-mime"].contains(MIMEHeaders.mainValue(type))
    }

    /// The verdict `signet verify` adds once a message is opened: it must hold a signature.
    /// - Parameter opened: whether its content came out (an encrypted message that opened but held no signature).
    /// - Throws: `SignetError` (`malformed`) when there was nothing to verify.
    public func requireSigned(opened: Bool) throws(SignetError) {
        if signedLayers + encryptedLayers == 0 && status == .success {
            throw SignetError(.malformed, "This is not a signed S/MIME message (no multipart/signed or application/pkcs7-mime).")
        }
        if opened && signedLayers == 0 { throw SignetError(.malformed, "The message is encrypted but not signed.") }
    }

    /// The verdict `signet decrypt` adds once a message is opened: it must have been encrypted.
    /// - Throws: `SignetError` (`malformed`) for a message with no S/MIME layer, or one only signed.
    public func requireEncrypted() throws(SignetError) {
        guard encryptedLayers + signedLayers > 0 else {
            throw SignetError(.malformed, "This is not an S/MIME encrypted message (no application/pkcs7-mime enveloped data).")
        }
        guard encryptedLayers > 0 else {
            throw SignetError(.malformed, "The message is signed but not encrypted; `signet verify --out -` shows its content.")
        }
    }

    /// What to say about a layer found inside a streamed decryption that is too large to check in memory
    /// (signatures are checked in memory): nil when it is small enough. Such a layer is passed on as it is.
    public static func uncheckedInnerLayer(size: Int) -> String? {
        guard size > maximumSize else { return nil }
        return "Layer 2: an S/MIME layer of \(size >> 20) MiB, larger than the \(maximumSize >> 20) MiB "
            + "Signet checks; its signature was NOT checked. It is written as it is."
    }

    /// Opens every layer; returns the innermost content, or nil when a layer failed (see `status`).
    /// A message that is not S/MIME at all comes back as it is, with no layer counted.
    /// - Throws: `SignetError` when the agent or the token fails (not the message: that is a verdict).
    public func open(_ message: [UInt8], from firstDepth: Int = 1) throws -> [UInt8]? {
        var current = message
        var layer = Self.layer(of: message)
        for depth in firstDepth...8 {
            switch layer {
            case .plain:
                return current
            case .unreadable(let reason):
                report(["layer": "\(depth)", "result": "malformed"], "Layer \(depth): not a readable S/MIME message (\(reason)).",
                       status: ExitStatus.malformed)
                return nil
            case .enveloped(let envelope):
                guard let plaintext = try decrypt(envelope, depth: depth) else { return nil }
                current = plaintext
                layer = Self.layer(of: plaintext)
            case .signed(let message):
                guard let (content, next) = verify(message, depth: depth) else { return nil }
                current = content
                layer = next
            }
        }
        report(["layer": "9", "result": "too deeply nested"], "More than 8 nested S/MIME layers; stopped.", status: ExitStatus.malformed)
        return nil
    }

    private func report(_ fields: [String: String], _ line: String, status: ExitStatus) {
        report(fields, lines: [line], status: status)
    }

    /// Records a layer's verdict; each of `lines` is one line on screen.
    private func report(_ fields: [String: String], lines: [String], status: ExitStatus) {
        reports.append(fields)
        self.status = ExitStatus.worse(self.status, status)
        if holdReport { heldLines += lines } else { lines.forEach(emit) }
    }

    /// Passes one line on. Every report line goes through here: the certificate names, addresses, URLs
    /// and reasons in it come from the message, and a control character in them could rewrite the screen.
    private func emit(_ line: String) { onLine(Console.safe(line)) }

    /// Prints the held report. When every signature is good and trusted it starts with the line
    /// "Verification successful", as OpenSSL's does: mutt and neomutt call a signature good only
    /// when the verify command exits 0 and that is the first line of its standard error.
    /// Later report lines are printed as they come; a second call does nothing.
    public func finishReport() {
        guard holdReport else { return }
        holdReport = false
        if status == .success && signedLayers > 0 { emit("Verification successful") }
        heldLines.forEach(emit)
        heldLines = []
    }

    // MARK: Encrypted layers

    private func decrypt(_ envelope: EnvelopedMessage, depth: Int) throws -> [UInt8]? {
        try decrypt(envelope, depth: depth) { certificate, key in try envelope.decrypt(certificate: certificate, key: key) }
    }

    /// Decrypts the outer layer streamed by `stream` into `fd` (a file thrown away on failure): the ciphertext
    /// passes through in pieces, so memory stays flat. authEnveloped data (GCM) has its tag after the content,
    /// so its ciphertext is set aside in a temporary file first. Returns whether it decrypted.
    public func decryptStreamed(_ stream: EnvelopeStream, into fd: Int32) throws -> Bool {
        let envelope: EnvelopedMessage
        var spool: Spool?
        do {
            if stream.kind == .authEnveloped {
                let made = try Spool()
                try made.fill(from: stream.readContent)
                spool = made
                try stream.finish()
            }
            envelope = try EnvelopedMessage(detachedHeader: stream.header())
        } catch {
            encryptedLayers += 1
            report(["layer": "1", "kind": "encrypted", "result": "malformed"],
                   "Layer 1: not a readable S/MIME encrypted message (\(error)).", status: ExitStatus.malformed)
            return false
        }
        let decrypted: Void? = try decrypt(envelope, depth: 1) { certificate, key in
            if let spool {
                try envelope.decrypt(certificate: certificate, key: key, content: spool.read, to: fd)
            } else {
                try envelope.decrypt(certificate: certificate, key: key, content: stream.readContent, to: fd)
                try stream.finish()
            }
        }
        return decrypted != nil
    }

    private func decrypt<T>(_ envelope: EnvelopedMessage, depth: Int, perform: (Certificate, AgentKey) throws -> T) throws -> T? {
        encryptedLayers += 1
        let recipients: [EnvelopedMessage.Recipient]
        do { recipients = try envelope.recipients() } catch {
            report(["layer": "\(depth)", "kind": "encrypted", "result": "malformed"],
                   "Layer \(depth): not a readable S/MIME encrypted message (\(error)).", status: ExitStatus.malformed)
            return nil
        }
        let cipher = envelope.contentCipher
        if let cipher, cipher.legacy {
            emit("Warning: layer \(depth) is encrypted with \(cipher.name), an obsolete cipher; ask the sender to use AES.")
        }
        let client = try connect()
        if inventory == nil { inventory = try Inventory.load(client: client); OwnCertificates.remember(inventory!) }
        let candidates = inventory!.certificates.compactMap { installed in installed.keyReference.map { (installed, $0.0, $0.1) } }
        guard let (installed, uri, spki) = candidates.first(where: { candidate in recipients.contains { $0.matches(candidate.0.certificate) } }) else {
            let names = recipients.map(\.description).joined(separator: "; ")
            report(["layer": "\(depth)", "kind": "encrypted", "result": "not-for-you"],
                   "Layer \(depth): the message is not addressed to any certificate on your tokens (it is for: \(names)). "
                   + "If the token holding that certificate is not inserted, insert it; `signet cert list` shows yours.", status: ExitStatus.notForYou)
            return nil
        }
        let key = try AgentKey(client: client, uri: uri, subjectPublicKeyInfo: spki, onLocked: unlocker?(client, uri) ?? { false })
        do {
            let plaintext = try perform(installed.certificate, key)
            report(["layer": "\(depth)", "kind": "encrypted", "result": "decrypted", "recipient": installed.certificate.subject,
                    "cipher": cipher?.name ?? "unknown"],
                   "Layer \(depth): encrypted (\(cipher?.name ?? "unknown cipher")) to \(installed.certificate.subject); decrypted.", status: .success)
            return plaintext
        } catch let error as AgentClientError {
            // An answer a damaged encrypted key also gives is the message's fault only when the token still
            // decrypts a value made here with the same key; otherwise the token (or the agent) failed.
            if Self.mayBeTheMessage(error), key.tokenDecryptsProbe() {
                report(["layer": "\(depth)", "kind": "encrypted", "result": "failed"],
                       "Layer \(depth): the message's encrypted key for \(installed.certificate.subject) is damaged: the token refused it "
                       + "(\(error.description)) but decrypts a test value with the same key. Ask the sender to send the message again.",
                       status: ExitStatus.damaged)
                return nil
            }
            let next = switch error.code {
            case .mechanismInvalid?: " The message is not at fault: ask the sender to encrypt with RSA PKCS#1 v1.5 or OAEP (SHA-1), which tokens support."
            case .tokenFailure?, .keyUsageNotPermitted?:
                " The message is not at fault: try again; if it fails again, remove and re-insert the token, and run `signet report` for your helpdesk."
            default: ""
            }
            throw SignetError(ExitStatus(error.code), "Layer \(depth): the token could not decrypt for \(Console.safe(installed.certificate.subject)): \(error.description)\(next)",
                              cause: error)
        } catch {
            report(["layer": "\(depth)", "kind": "encrypted", "result": "failed"],
                   "Layer \(depth): could not decrypt the message for \(Console.safe(installed.certificate.subject)): \(error). It may be damaged.",
                   status: ExitStatus.damaged)
            return nil
        }
    }

    /// Token answers that a damaged encrypted key also gives (SoftHSM2 answers bad PKCS#1 padding with
    /// CKR_GENERAL_ERROR): a probe with the same key then tells the message's fault from the token's.
    public static func mayBeTheMessage(_ error: AgentClientError) -> Bool {
        [.dataInvalid, .tokenFailure].contains(error.code)
    }

    private func connect() throws -> AgentClient {
        if let client { return client }
        let made = try AgentConnection.open()
        client = made
        return made
    }

    // MARK: Signed layers

    /// Checks `message`'s signatures, signers, algorithms and headers and reports them; returns the content
    /// when the signature matches, with the layer inside it (parsed here once).
    public func verify(_ message: SignedMessage, depth: Int) -> ([UInt8], Layer)? {
        signedLayers += 1
        let carried = message.certificates
        let content: [UInt8]
        switch message.checkSignatures(extraCertificates: anchors + intermediates + knownSigners()) {
        case .bad(let reason):
            if lenientAroundEncryption, let content = message.uncheckedContent() {
                let inner = Self.layer(of: content)
                if inner.isEnveloped {
                    report(["layer": "\(depth)", "kind": "signed", "result": "bad-ignored"],
                           "Layer \(depth): warning: the signature around the encrypted message does not match (\(reason)); "
                           + "it covers only the encrypted form, so it is ignored.", status: .success)
                    return (content, inner)
                }
            }
            report(["layer": "\(depth)", "kind": "signed", "result": "bad"],
                   "Layer \(depth): BAD signature: the content was changed after signing, or the signature is damaged (\(reason)).",
                   status: ExitStatus.badSignature)
            return nil
        case .signerUnknown(let reason):
            report(["layer": "\(depth)", "kind": "signed", "result": "signer-unknown"],
                   "Layer \(depth): cannot check the signature: \(reason). Ask the sender to include their certificate.", status: ExitStatus.untrusted)
            return nil
        case .good(let bytes):
            content = bytes
        }
        let inner = Self.layer(of: content)
        // Around an encrypted layer the signature covers only ciphertext: reported, but it does not decide (decrypt).
        let aroundEncryption = lenientAroundEncryption && inner.isEnveloped
        for signer in message.signers {
            guard let certificate = signer.certificate else { continue }
            var fields = ["layer": "\(depth)", "kind": "signed", "signer": certificate.subject, "digest": signer.digest,
                          "signature": signer.signatureAlgorithm]
            let email = certificate.emails.first.map { " <\($0)>" } ?? ""
            var lines = ["Layer \(depth): signed by \(certificate.label)\(email)"]
            var outcome: ExitStatus = .success
            let checkTime = at ?? signer.signingTime ?? Date()
            if let time = signer.signingTime { lines.append("  signed at:  \(Dates.show(time))"); fields["signingTime"] = Dates.iso(time) }
            lines.append("  algorithms: \(signer.digest) with \(signer.signatureAlgorithm)")
            if signer.digest.uppercased() == "SHA1" && !options.allowSHA1 {
                lines.append("  REFUSED:    signed with SHA-1, which is broken (--allow-sha1 accepts it).")
                outcome = ExitStatus.worse(outcome, ExitStatus.unsupported)
            }
            // The path first, with no CRL: a URL in a certificate no trusted CA issued is the sender's, and is never fetched.
            let (chain, path) = ChainVerifier.verify(certificate, anchors: anchors, intermediates: intermediates + carried, at: checkTime)
            var verdict = chain
            if chain == .trusted && (options.fetchCRL || !crls.isEmpty) {
                let fetched = options.fetchCRL ? crlFetcher.lists(for: path) { lines.append("  CRL:        \($0)") } : []
                verdict = ChainVerifier.verify(certificate, anchors: anchors, intermediates: intermediates + carried,
                                               at: checkTime, crls: crls + fetched, checkRevocation: options.fetchCRL).0
            }
            if verdict == .trusted, let check = revocationCheck?(certificate, path) {
                lines.append("  revocation: \(check.line)")
                if let revoked = check.revoked { verdict = .revoked(revoked) } else if let unchecked = check.unchecked { verdict = .revocationUnknown(unchecked) }
            }
            let pathText = path.map(\.label).joined(separator: " → ")
            switch verdict {
            case .trusted:
                lines.append("  signer:     trusted at \(Dates.show(checkTime)) (\(pathText))")
                fields["trust"] = "trusted"
                trustedSigners.append(certificate)
            case .revoked(let detail):
                lines.append("  REVOKED:    \(detail). The sender's CA withdrew this certificate: do not rely on this message.")
                fields["trust"] = "revoked: \(detail)"
                outcome = ExitStatus.worse(outcome, ExitStatus.untrusted)
            case .revocationUnknown(let detail):
                lines.append("  NOT TRUSTED: revocation could not be checked: \(detail). "
                             + "Give the CA's current CRL with --crl FILE, or check the network for --fetch-crl.")
                fields["trust"] = "revocation unknown: \(detail)"
                outcome = ExitStatus.worse(outcome, ExitStatus.untrusted)
            case .expired(let detail), .notYetValid(let detail), .untrusted(let detail):
                lines.append("  NOT TRUSTED at \(Dates.show(checkTime)): \(detail). "
                             + "If you trust the sender's CA, add its root with `signet trust add ROOT.pem`.")
                fields["trust"] = "untrusted: \(detail)"
                outcome = ExitStatus.worse(outcome, ExitStatus.untrusted)
            }
            // The message's From: and Date: belong to the outermost signature (inner ones may be forwarded mail).
            if signedLayers == 1, let from = headers.value("from") {
                let address = mailAddress(from)
                if certificate.emails.contains(address) {
                    lines.append("  From:       \(address) matches the certificate")
                } else {
                    lines.append("  MISMATCH:   From: \(address) is not an address of this certificate (\(certificate.emails.joined(separator: ", ")))")
                    outcome = ExitStatus.worse(outcome, ExitStatus.headerMismatch)
                }
            }
            if signedLayers == 1, let dateText = headers.value("date"), let date = Dates.parseHeader(dateText), let time = signer.signingTime,
               abs(date.timeIntervalSince(time)) > Self.dateTolerance {
                lines.append("  MISMATCH:   Date: \(Dates.show(date)) is more than an hour from the signing time")
                outcome = ExitStatus.worse(outcome, ExitStatus.headerMismatch)
            }
            let verdictWord = outcome == .success ? "good signature" : "signature matches, but see below"
            lines[0] += ": \(verdictWord)"
            fields["result"] = outcome == .success ? "good" : "\(outcome.rawValue)"
            if aroundEncryption { lines.append("  (this signature covers only the encrypted form; it does not decide the result)") }
            report(fields, lines: lines, status: aroundEncryption ? .success : outcome)
        }
        return (content, inner)
    }

    /// Certificates of people seen before (and in this message), to check signatures that do not carry theirs.
    private func knownSigners() -> [Certificate] { TrustStore.correspondents().entries().map(\.certificate) + trustedSigners }

    /// Keeps the trusted signers' certificates among the correspondents' (`TrustStore.correspondents()`),
    /// so that their later mail verifies without them and `encrypt --to ADDRESS` finds them.
    /// Best effort: a store that cannot be written loses nothing but this memory.
    public func rememberTrustedSigners() {
        let store = TrustStore.correspondents()
        for certificate in trustedSigners { _ = try? store.add(certificate) }
    }
}
