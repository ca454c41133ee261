import FoundationEssentials
import SignetOpenSSL

/// What opening one layer of a message found (`MessageOpener.layers`): values the front end renders and
/// tests compare. Each layer's `status` follows from its values alone; the message's is the worst of them.
public enum LayerVerdict {
    /// Signed data: one verdict per signer, in the message's order.
    case signed(depth: Int, SignedLayer)
    /// Enveloped or authEnveloped data.
    case encrypted(depth: Int, EncryptedLayer)
    /// Declared S/MIME (or CMS) but not opened.
    case unreadable(depth: Int, Unreadable)
    /// An S/MIME layer inside a streamed decryption too large to check in memory, passed on as it is (bytes).
    case unchecked(depth: Int, size: Int)
    /// More layers than Signet opens (`MessageOpener.maximumDepth`).
    case tooDeep(depth: Int)

    public var depth: Int {
        switch self {
        case .signed(let depth, _), .encrypted(let depth, _), .unreadable(let depth, _), .unchecked(let depth, _), .tooDeep(let depth): depth
        }
    }

    public var status: ExitStatus {
        switch self {
        case .signed(_, let layer): layer.status
        case .encrypted(_, let layer): layer.status
        case .unreadable(_, .compressed): .unsupported
        case .unreadable: .malformed
        case .unchecked: .untrusted
        case .tooDeep: .malformed
        }
    }
}

/// Why a layer was not opened.
public enum Unreadable: Equatable, Sendable {
    /// The message ends before its structure does.
    case truncated
    /// A detached signature given without the content it signs (`--content`).
    case detachedSignatureWithoutContent
    /// CMS of a type mail does not use (by OpenSSL's short name).
    case otherContentType(String)
    /// Compressed data (RFC 3274): S/MIME 4.0 says a receiving agent SHOULD read it, but Debian's OpenSSL is
    /// built without zlib, so Signet cannot.
    case compressed
    /// Not readable as S/MIME or CMS; the parser's reason.
    case notCMS(String)
}

/// The verdicts of a signed layer.
public struct SignedLayer {
    public var signers: [SignerVerdict]
    /// A signature around encrypted content (in `decrypt`): it covers only ciphertext, so it is reported and
    /// does not decide the result (Thunderbird ignores it too).
    public var aroundEncryption: Bool

    /// The worst of the signers' statuses; a layer with no signer is malformed. Around encryption: success.
    public var status: ExitStatus {
        if aroundEncryption { return .success }
        guard !signers.isEmpty else { return .malformed }
        return signers.map(\.status).reduce(.success, ExitStatus.worse)
    }

    /// Whether at least one signer's signature is good: the content is what that signer signed.
    public var contentProven: Bool { signers.contains { $0.signature == .good } }
}

/// One signer: what its signature proved, and for a good signature, who it is and whether they are trusted.
public struct SignerVerdict {
    /// How the message names the signer's certificate.
    public var identifier: SignedMessage.SignerIdentifier?
    /// The signer's certificate, when found.
    public var certificate: Certificate?
    public var digest: String
    public var signatureAlgorithm: String
    public var signingTime: Date?
    public var signature: SignedMessage.SignatureOutcome
    /// Only for a good signature (nothing else is judged for the others):
    /// SHA-1 and refused (`--allow-sha1` not given).
    public var sha1Refused = false
    /// The signer's certificate path and the time it was checked at.
    public var chain: ChainVerifier.Outcome?
    public var path: [Certificate] = []
    public var checkedAt: Date?
    /// What `--fetch-crl` did, one note per CRL distribution point (CRLFetcher's words).
    public var crlNotes: [String] = []
    /// What the revocation check (OCSP, then the CRL: `MessageOpener.revocationCheck`) found, in words.
    public var revocationNote: String?
    /// The outermost signature's From: and Date: headers against the certificate and the signing time.
    public var from: HeaderCheck?
    public var dateMismatch: Date?

    public enum HeaderCheck: Equatable, Sendable {
        case matches(String)
        /// The From: address, and the certificate's addresses.
        case mismatch(String, [String])
    }

    /// The status this signer alone gives the message.
    public var status: ExitStatus {
        switch signature {
        case .badSignature, .badContentDigest: return .badSignature
        case .unsupportedAlgorithm: return .unsupported
        case .signerCertificateMissing: return .untrusted
        case .malformed: return .malformed
        case .good: break
        }
        var status = ExitStatus.success
        if sha1Refused { status = ExitStatus.worse(status, .unsupported) }
        if let chain, chain != .trusted { status = ExitStatus.worse(status, .untrusted) }
        if case .mismatch? = from { status = ExitStatus.worse(status, .headerMismatch) }
        if dateMismatch != nil { status = ExitStatus.worse(status, .headerMismatch) }
        return status
    }
}

/// The verdict of an encrypted layer.
public struct EncryptedLayer {
    /// Who the message is for, as it says (every kind of recipient).
    public var recipients: [EnvelopedMessage.Recipient]
    /// The content-encryption algorithm, when Signet knows it.
    public var cipher: EnvelopedMessage.ContentCipher?
    public var outcome: Outcome

    public enum Outcome {
        /// Decrypted with the key of this certificate on a token.
        case decrypted(Certificate)
        /// Addressed to none of the certificates on your tokens.
        case notForYou
        /// Encrypted with a content cipher Signet cannot decrypt (named); found before the token is used.
        case unsupportedCipher(String)
        /// The encrypted key for this certificate is damaged: the token refused it (its reason), but decrypts a
        /// test value made with the same key.
        case damagedKey(Certificate, String)
        /// The content does not decrypt with the recovered key: its padding or authentication tag is wrong (OpenSSL's reason).
        case damagedContent(Certificate, String)
        /// The message ends before its encrypted content does.
        case truncated
        /// Not readable as enveloped data (the reason).
        case malformed(String)
    }

    public var status: ExitStatus {
        switch outcome {
        case .decrypted: .success
        case .notForYou: .notForYou
        case .unsupportedCipher: .unsupported
        case .damagedKey, .damagedContent, .truncated: .damaged
        case .malformed: .malformed
        }
    }
}
