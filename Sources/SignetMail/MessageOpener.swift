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
/// the key on the token, checks each signer of signed layers against the trust store, and keeps a
/// verdict per layer and per signer (`layers`, values in Verdicts.swift). It prints nothing and says
/// nothing in words: the front end renders the verdicts; signers found trusted are written to the
/// correspondents' store only by `rememberTrustedSigners()`.
public final class MessageOpener {
    /// The largest message opened (parsed in memory).
    public static let maximumSize = CMSMessage.maximumSize
    /// How far a signing time may be from the Date: header (Thunderbird flags a mismatch too).
    public static let dateTolerance: TimeInterval = 3600
    /// Nested layers opened at most.
    public static let maximumDepth = 8

    public let options: TrustPolicy
    /// A signature around an encrypted layer covers only ciphertext and says nothing about the
    /// content (Thunderbird ignores it too): when true, a bad one is reported and passed over.
    public var lenientAroundEncryption = false
    /// What to do when the token holding `keyURI` turns out to be locked (for `AgentKey`'s `onLocked`;
    /// the front end asks for the access code). Nil: the operation fails as the token answers.
    public var unlocker: ((AgentClient, String) -> () -> Bool)?
    /// How the agent is reached when an encrypted layer needs the token (starting it when none runs).
    public var connectAgent: () throws -> AgentClient = { try AgentConnection.open() }
    public let headers: MIMEHeaders
    /// The verdict of each layer opened, outermost first.
    public private(set) var layers: [LayerVerdict] = []
    /// The message's status: the worst of its layers' (`ExitStatus.worse`).
    public var status: ExitStatus { layers.map(\.status).reduce(.success, ExitStatus.worse) }
    public var encryptedLayers: Int { layers.count { if case .encrypted = $0 { true } else { false } } }
    public var signedLayers: Int { layers.count { if case .signed = $0 { true } else { false } } }
    /// Signers whose certificates chained to a trusted root, in the order seen.
    public private(set) var trustedSigners: [Certificate] = []
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
        case unreadable(Unreadable)

        public var isEnveloped: Bool { if case .enveloped = self { true } else { false } }
    }

    /// What the outermost layer of `bytes` is: MIME types decide whether to parse; DER without headers and
    /// PEM CMS are tried as CMS.
    public static func layer(of bytes: [UInt8]) -> Layer {
        guard mayBeLayer(bytes) else { return .plain }
        do {
            switch try CMSMessage.parse(bytes) {
            case .signed(let message): return .signed(message)
            case .enveloped(let message): return .enveloped(message)
            case .other("id-smime-ct-compressedData"): return .unreadable(.compressed)
            case .other(let type): return .unreadable(.otherContentType(type))
            }
        } catch {
            if CMSMessage.isTruncated(bytes) { return .unreadable(.truncated) }
            return bytes.first == 0x30 && MIMEHeaders(message: bytes).value("content-type") == nil ? .plain : .unreadable(.notCMS("\(error)"))
        }
    }

    /// Whether a message starting with `head` may be an S/MIME layer (its MIME type says so, or it is DER
    /// without headers, or PEM CMS).
    public static func mayBeLayer(_ head: [UInt8]) -> Bool {
        guard let type = MIMEHeaders(message: head).value("content-type") else { return head.first == 0x30 || CMSMessage.isPEM(head) }
        return ["multipart/signed", "application/pkcs7-mime", "application/x-pkcs7-mime"].contains(MIMEHeaders.mainValue(type))
    }

    /// The verdict `signet verify` adds once a message is opened: it must hold a signature.
    /// - Parameter opened: whether its content came out (an encrypted message that opened but held no signature).
    /// - Throws: `SignetError` (`malformed`) when there was nothing to verify.
    public func requireSigned(opened: Bool) throws(SignetError) {
        if layers.isEmpty {
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

    /// Whether `signet verify --out` may write the content it opened: no layer failed outright (a bad signature,
    /// damage, malformed, not for you), and in every signed layer a signer's good signature proves the content
    /// (one Signet refuses, SHA-1 without --allow-sha1, does not). The signer may still be untrusted, a header may
    /// disagree, or another signer may be one Signet cannot check: the exit status says so.
    public var verifiedContentMayBeWritten: Bool {
        guard [ExitStatus.success, .untrusted, .headerMismatch, .unsupported].contains(status) else { return false }
        return layers.allSatisfy { layer in
            guard case .signed(_, let signed) = layer, !signed.aroundEncryption else { return true }
            return signed.signers.contains { $0.signature == .good && !$0.sha1Refused }
        }
    }

    /// Whether `signet decrypt` may write the plaintext: every layer opened, and any signature inside is good
    /// (its signer may be untrusted, refused for SHA-1, or disagree with the headers: the exit status says so).
    public var decryptedContentMayBeWritten: Bool {
        [ExitStatus.success, .headerMismatch, .untrusted, .unsupported].contains(status)
    }

    /// Records a layer found inside a streamed decryption when it is too large to check in memory (signatures
    /// are checked in memory); returns whether it was. Such a layer is passed on as it is, unchecked.
    public func noteUncheckedInnerLayer(size: Int, depth: Int = 2) -> Bool {
        guard size > Self.maximumSize else { return false }
        layers.append(.unchecked(depth: depth, size: size))
        return true
    }

    /// Opens every layer; returns the innermost content, or nil when a layer failed (see `status`).
    /// A message that is not S/MIME at all comes back as it is, with no layer counted.
    /// - Throws: `SignetError` when the agent or the token fails (not the message: that is a verdict).
    public func open(_ message: [UInt8], from firstDepth: Int = 1) throws -> [UInt8]? {
        var current = message
        var layer = Self.layer(of: message)
        for depth in firstDepth...Self.maximumDepth {
            switch layer {
            case .plain:
                return current
            case .unreadable(let reason):
                layers.append(.unreadable(depth: depth, reason))
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
        layers.append(.tooDeep(depth: Self.maximumDepth + 1))
        return nil
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
            let outcome: EncryptedLayer.Outcome = (error as? StreamError) == .truncated ? .truncated : .malformed("\(error)")
            layers.append(.encrypted(depth: 1, EncryptedLayer(recipients: [], cipher: nil, outcome: outcome)))
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
        var verdict = EncryptedLayer(recipients: [], cipher: envelope.contentCipher, outcome: .notForYou)
        var record = true  // not when the token fails: that is an error, not the message's verdict
        defer { if record { layers.append(.encrypted(depth: depth, verdict)) } }
        do { verdict.recipients = try envelope.recipients() } catch {
            verdict.outcome = .malformed("\(error)")
            return nil
        }
        // Known before the token is used: a content cipher Signet cannot decrypt.
        if let cipher = verdict.cipher, !cipher.supported {
            verdict.outcome = .unsupportedCipher(cipher.name)
            return nil
        }
        // Only a certificate's key can be on a token: a message for a shared key or a password is not for you.
        guard verdict.recipients.contains(where: { $0.kind == .keyTransport || $0.kind == .keyAgreement }) else {
            verdict.outcome = .notForYou
            return nil
        }
        let client = try connect()
        if inventory == nil { inventory = try Inventory.load(client: client); OwnCertificates.remember(inventory!) }
        let candidates = inventory!.certificates.compactMap { installed in installed.keyReference.map { (installed, $0.0, $0.1) } }
        guard let (installed, uri, spki) = candidates.first(where: { candidate in verdict.recipients.contains { $0.matches(candidate.0.certificate) } }) else {
            verdict.outcome = .notForYou
            return nil
        }
        // ChaCha20-Poly1305's key is recovered by Signet itself, from RSA key transport only: known before the token is used.
        if verdict.cipher?.name == "ChaCha20-Poly1305",
           !verdict.recipients.contains(where: { $0.kind == .keyTransport && $0.matches(installed.certificate) }) {
            verdict.outcome = .unsupportedCipher("ChaCha20-Poly1305 with a key-agreement (ECDH) recipient")
            return nil
        }
        let key = try AgentKey(client: client, uri: uri, subjectPublicKeyInfo: spki, onLocked: unlocker?(client, uri) ?? { false })
        do {
            let plaintext = try perform(installed.certificate, key)
            verdict.outcome = .decrypted(installed.certificate)
            return plaintext
        } catch let error as AgentClientError {
            // An answer a damaged encrypted key also gives is the message's fault only when the token still
            // decrypts a value made here with the same key; otherwise the token (or the agent) failed.
            if Self.mayBeTheMessage(error), key.tokenDecryptsProbe() {
                verdict.outcome = .damagedKey(installed.certificate, error.description)
                return nil
            }
            let next = switch error.code {
            case .mechanismInvalid?: " The message is not at fault: ask the sender to encrypt with RSA PKCS#1 v1.5 or OAEP (SHA-1), which tokens support."
            case .tokenFailure?, .keyUsageNotPermitted?:
                " The message is not at fault: try again; if it fails again, remove and re-insert the token, and run `signet report` for your helpdesk."
            default: ""
            }
            record = false
            throw SignetError(ExitStatus(error.code), "Layer \(depth): the token could not decrypt for \(Console.safe(installed.certificate.subject)): \(error.description)\(next)",
                              cause: error)
        } catch let error as StreamError where error == .truncated {
            verdict.outcome = .truncated
            return nil
        } catch let error as EnvelopedMessage.ContentDecryptionError {
            verdict.outcome = .damagedContent(installed.certificate, error.description)
            return nil
        } catch let error as StreamError {
            verdict.outcome = .malformed("\(error)")
            return nil
        } catch let error as OpenSSLError {
            // Not a check of the content that failed (the structure, a parameter, writing): not called damaged.
            verdict.outcome = .malformed("\(error)")
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
        let made = try connectAgent()
        client = made
        return made
    }

    // MARK: Signed layers

    /// Checks each of `message`'s signers (signature, content digest, certificate, trust, algorithms and headers)
    /// and records the layer's verdict; returns the content when a signer's signature proves it (or, around
    /// encryption in `decrypt`, whatever the signatures say), with the layer inside it (parsed here once).
    public func verify(_ message: SignedMessage, depth: Int) -> ([UInt8], Layer)? {
        if message.lacksContent {
            layers.append(.unreadable(depth: depth, .detachedSignatureWithoutContent))
            return nil
        }
        let carried = message.certificates
        let report = message.checkSigners(extraCertificates: anchors + intermediates + knownSigners())
        // Around an encrypted layer the signature covers only ciphertext: reported, but it does not decide (decrypt).
        var aroundEncryption = false
        var content = report.content
        if lenientAroundEncryption, let unchecked = content ?? message.uncheckedContent(), Self.layer(of: unchecked).isEnveloped {
            aroundEncryption = true
            content = unchecked
        }
        var verdicts: [SignerVerdict] = []
        // The message's From: and Date: belong to the outermost signature (inner ones may be forwarded mail).
        let outermost = signedLayers == 0
        for check in report.signers {
            let signer = check.signer
            var verdict = SignerVerdict(identifier: signer.identifier, certificate: signer.certificate, digest: signer.digest,
                                        signatureAlgorithm: signer.signatureAlgorithm, signingTime: signer.signingTime, signature: check.outcome)
            if check.outcome == .good, let certificate = signer.certificate {
                judge(&verdict, certificate: certificate, carried: carried, outermost: outermost)
            }
            verdicts.append(verdict)
        }
        layers.append(.signed(depth: depth, SignedLayer(signers: verdicts, aroundEncryption: aroundEncryption)))
        guard let content else { return nil }
        return (content, Self.layer(of: content))
    }

    /// Judges a signer whose signature is good: SHA-1, the certificate's path and revocation at the signing
    /// time (or --at), and for the outermost signature the From: and Date: headers.
    private func judge(_ verdict: inout SignerVerdict, certificate: Certificate, carried: [Certificate], outermost: Bool) {
        let checkTime = at ?? verdict.signingTime ?? Date()
        verdict.checkedAt = checkTime
        verdict.sha1Refused = verdict.digest.uppercased() == "SHA1" && !options.allowSHA1
        // The path first, with no CRL: a URL in a certificate no trusted CA issued is the sender's, and is never fetched.
        let (chain, path) = ChainVerifier.verify(certificate, anchors: anchors, intermediates: intermediates + carried, at: checkTime)
        var outcome = chain
        if chain == .trusted && (options.fetchCRL || !crls.isEmpty) {
            var notes: [String] = []
            let fetched = options.fetchCRL ? crlFetcher.lists(for: path) { notes.append($0) } : []
            verdict.crlNotes = notes
            outcome = ChainVerifier.verify(certificate, anchors: anchors, intermediates: intermediates + carried,
                                           at: checkTime, crls: crls + fetched, checkRevocation: options.fetchCRL).0
        }
        if outcome == .trusted, let check = revocationCheck?(certificate, path) {
            verdict.revocationNote = check.line
            if let revoked = check.revoked { outcome = .revoked(revoked) } else if let unchecked = check.unchecked { outcome = .revocationUnknown(unchecked) }
        }
        verdict.chain = outcome
        verdict.path = path
        if outcome == .trusted { trustedSigners.append(certificate) }
        guard outermost else { return }
        if let from = headers.value("from") {
            let address = mailAddress(from)
            verdict.from = certificate.emails.contains(address) ? .matches(address) : .mismatch(address, certificate.emails)
        }
        if let dateText = headers.value("date"), let date = Dates.parseHeader(dateText), let time = verdict.signingTime,
           abs(date.timeIntervalSince(time)) > Self.dateTolerance {
            verdict.dateMismatch = date
        }
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
