import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// A signed S/MIME message (detached multipart/signed, opaque signed-data,
/// or a CMS signature with its content given apart) and what its signatures say.
public final class SignedMessage {
    private let cms: OpaquePointer
    /// The signed content when it travels beside the signature (multipart/signed, or given apart).
    private let detachedContent: [UInt8]?

    public var isDetached: Bool { detachedContent != nil }

    /// Parses an S/MIME message: multipart/signed or application/pkcs7-mime, or DER/BER CMS.
    public convenience init(message: [UInt8]) throws {
        let (cms, content) = try readCMS(message)
        self.init(owning: cms, detachedContent: content)
    }

    /// Takes ownership of a parsed CMS structure.
    init(owning cms: OpaquePointer, detachedContent: [UInt8]?) {
        self.cms = cms
        self.detachedContent = detachedContent
    }

    /// A detached signature (DER, PEM or S/MIME) over `content`.
    public init(signature: [UInt8], content: [UInt8]) throws {
        guard signature.count <= CMSMessage.maximumSize, content.count <= CMSMessage.maximumSize else {
            throw OpenSSLError("The signature or content is larger than \(CMSMessage.maximumSize >> 20) MiB")
        }
        OpenSSLError.drain()
        let parsed: OpaquePointer? = try withMemoryBIO(signature) { bio in
            if let parsed = d2i_CMS_bio(bio, nil) { return parsed }
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
            if let parsed = PEM_read_bio_CMS(bio, nil, nil, nil) { return parsed }
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
            return SMIME_read_CMS(bio, nil)
        }
        guard let parsed else { throw OpenSSLError("The signature is not CMS (DER, PEM or S/MIME)") }
        cms = parsed
        detachedContent = content
    }

    deinit { CMS_ContentInfo_free(cms) }

    /// Whether the message is CMS signed-data at all.
    public var isSignedData: Bool { OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed }
    /// The certificates the message carries.
    public var certificates: [Certificate] {
        guard let stack = CMS_get1_certs(cms) else { return [] }
        defer { CSignetCrypto_freeCertificates(stack) }
        return (0..<CSignetCrypto_certificateCount(stack)).compactMap { index in
            CSignetCrypto_certificateAt(stack, index).map { Certificate(owning: X509_dup($0)) }
        }
    }

    /// How a signer names its certificate (RFC 5652 §5.3 SignerIdentifier).
    public enum SignerIdentifier: Sendable, Hashable, CustomStringConvertible {
        case issuerAndSerial(issuer: String, serial: String)
        case keyIdentifier([UInt8])

        public var description: String {
            switch self {
            case .issuerAndSerial(let issuer, let serial): "serial \(serial) from \(issuer)"
            case .keyIdentifier(let identifier): "key identifier \(Hex.encode(identifier))"
            }
        }
    }

    /// One signer as the message describes it.
    public struct Signer {
        /// The signer's certificate, once found in the message or among those given (`checkSigners`); nil before or when missing.
        public var certificate: Certificate?
        public var identifier: SignerIdentifier?
        public var digest: String
        public var signatureAlgorithm: String
        public var signingTime: Date?
        /// Whether the signer signed attributes (contentType, messageDigest, ...) rather than the content directly.
        public var hasSignedAttributes: Bool
    }

    /// What checking one signer's signature against the content proved (not the signer's trust).
    public enum SignatureOutcome: Sendable, Equatable {
        /// The signature verifies and covers this content.
        case good
        /// The signature does not verify with the signer's key: the signed attributes (or, without them, the content)
        /// were changed after signing, or the signature is damaged. OpenSSL's reasons.
        case badSignature(String)
        /// The signed attributes verify, but the digest they hold is not the content's: the content was changed.
        case badContentDigest
        /// The check could not be made: OpenSSL does not support the named algorithm (or its parameters).
        case unsupportedAlgorithm(String)
        /// No certificate for this signer is in the message or among those given.
        case signerCertificateMissing
        /// The signer's information is malformed (no messageDigest, a duplicated attribute, ...). OpenSSL's reasons.
        case malformed(String)
    }

    /// One signer and what its check proved.
    public struct SignerCheck {
        public var signer: Signer
        public var outcome: SignatureOutcome
    }

    /// Every signer's check, and the content a good signer vouches for.
    public struct SignatureReport {
        public var signers: [SignerCheck]
        /// What was signed, when at least one signer's signature is good (in the form that signer signed:
        /// canonical CRLF text, or the bytes as they are); nil otherwise.
        public var content: [UInt8]?
    }

    /// Whether the message holds no content and none was given: a detached signature read on its own.
    public var lacksContent: Bool {
        guard detachedContent == nil else { return false }
        var bytes: UnsafePointer<UInt8>?
        var length = 0
        return CSignetCrypto_encapsulatedContent(cms, &bytes, &length) == 0
    }

    /// Checks each signer on its own, so that one signer that cannot be checked never hides a good one:
    /// finds its certificate (the message's, or among `extraCertificates`), verifies the signature over its
    /// signed attributes, then the content's digest. Detached content is tried in canonical form (CRLF) and,
    /// when that does not match, byte for byte, as a binary signer wrote it.
    public func checkSigners(extraCertificates: [Certificate] = []) -> SignatureReport {
        guard isSignedData else { return SignatureReport(signers: [], content: nil) }
        OpenSSLError.drain()
        let extra = CSignetCrypto_newCertificates()
        defer { CSignetCrypto_freeCertificates(extra) }
        for certificate in extraCertificates { _ = CSignetCrypto_pushCertificate(extra, certificate.retainedPointer()) }
        _ = CMS_set1_signers_certs(cms, extra, 0)
        OpenSSLError.drain()  // signers without a certificate are judged one by one below
        let forms = contentForms()
        var content: [UInt8]?
        var checks: [SignerCheck] = []
        for (index, signer) in signers.enumerated() {
            guard let info = CSignetCrypto_signerAt(cms, Int32(index)) else { continue }
            var outcome: SignatureOutcome?
            for form in forms {
                OpenSSLError.drain()
                let code = form.withUnsafeBufferPointer { CSignetCrypto_checkSigner(info, $0.baseAddress, $0.count) }
                let reasons = OpenSSLError.drain().joined(separator: "; ")
                let this: SignatureOutcome = switch UInt32(code) {
                case CSignetCrypto_signerGood.rawValue: .good
                case CSignetCrypto_signerBadSignature.rawValue: .badSignature(reasons)
                case CSignetCrypto_signerBadDigest.rawValue: .badContentDigest
                case CSignetCrypto_signerCertificateMissing.rawValue: .signerCertificateMissing
                case CSignetCrypto_signerMalformed.rawValue: .malformed(reasons)
                default: .unsupportedAlgorithm(Self.unsupportedName(signer, reasons: reasons))
                }
                // The first form (canonical text) decides, unless another proves the content (a binary signer's bytes).
                if outcome == nil { outcome = this }
                if this == .good { outcome = .good; content = content ?? form; break }
                if !Self.dependsOnContent(this, signer) { break }
            }
            checks.append(SignerCheck(signer: signer, outcome: outcome ?? .malformed("the message holds no signed content, and none was given")))
        }
        return SignatureReport(signers: checks, content: content)
    }
    /// Whether another form of the content might change `outcome`: only a mismatch of the content can.
    private static func dependsOnContent(_ outcome: SignatureOutcome, _ signer: Signer) -> Bool {
        switch outcome {
        case .badContentDigest: true
        case .badSignature: !signer.hasSignedAttributes  // without signed attributes the signature covers the content
        default: false
        }
    }

    /// The name of what could not be checked: the signature algorithm, with its digest, and OpenSSL's reason.
    private static func unsupportedName(_ signer: Signer, reasons: String) -> String {
        let name = "\(signer.signatureAlgorithm) with \(signer.digest)"
        return reasons.isEmpty ? name : "\(name) (\(reasons))"
    }

    /// The content each signer's digest is checked against: the encapsulated content, or the detached content
    /// in canonical form (CRLF line ends, as OpenSSL's CMS_verify makes it) and as it is.
    private func contentForms() -> [[UInt8]] {
        if let detachedContent {
            var flags = Int32(0)
            if OBJ_obj2nid(CMS_get0_eContentType(cms)) == NID_id_ct_asciiTextWithCRLF { flags |= Int32(SMIME_ASCIICRLF) }
            let canonical = try? withMemoryBIO(detachedContent) { input in
                try collectBIO { out in _ = SMIME_crlf_copy(input, out, flags) }
            }
            OpenSSLError.drain()
            guard let canonical, canonical != detachedContent else { return [detachedContent] }
            return [canonical, detachedContent]
        }
        var bytes: UnsafePointer<UInt8>?
        var length = 0
        guard CSignetCrypto_encapsulatedContent(cms, &bytes, &length) == 1 else { return [] }
        return [length == 0 ? [] : Array(UnsafeBufferPointer(start: bytes, count: length))]
    }

    /// The signed content without checking anything (to look inside a layer whose signature is reported as bad).
    public func uncheckedContent() -> [UInt8]? { contentForms().first }

    /// The signers as the message describes them (their certificates once `checkSigners` has found them).
    public var signers: [Signer] {
        (0..<CSignetCrypto_signerCount(cms)).compactMap { index in
            guard let info = CSignetCrypto_signerAt(cms, index) else { return nil }
            var digest = [CChar](repeating: 0, count: 80), signature = [CChar](repeating: 0, count: 80)
            CSignetCrypto_signerAlgorithms(info, &digest, digest.count, &signature, signature.count)
            var seconds: Int64 = 0
            let time = CSignetCrypto_signingTime(info, &seconds) == 1 ? Date(timeIntervalSince1970: TimeInterval(seconds)) : nil
            let certificate = CSignetCrypto_signerCertificate(info).map { Certificate(owning: X509_dup($0)) }
            return Signer(certificate: certificate, identifier: Self.identifier(info), digest: text(digest), signatureAlgorithm: text(signature),
                          signingTime: time, hasSignedAttributes: CMS_signed_get_attr_count(info) >= 0)
        }
    }

    private static func identifier(_ info: OpaquePointer) -> SignerIdentifier? {
        var issuer: OpaquePointer?, serial: UnsafeMutablePointer<ASN1_INTEGER>?, keyIdentifier: UnsafeMutablePointer<ASN1_OCTET_STRING>?
        guard CSignetCrypto_signerIdentifier(info, &issuer, &serial, &keyIdentifier) == 1 else { return nil }
        if let keyIdentifier {
            return .keyIdentifier(Array(UnsafeBufferPointer(start: ASN1_STRING_get0_data(keyIdentifier), count: Int(ASN1_STRING_length(keyIdentifier)))))
        }
        guard let issuer, let serial, let number = ASN1_INTEGER_to_BN(serial, nil) else { return nil }
        defer { BN_free(number) }
        guard let hex = BN_bn2hex(number) else { return nil }
        defer { CSignetCrypto_free(hex) }
        return .issuerAndSerial(issuer: Certificate.nameText(issuer), serial: String(cString: hex))
    }
}

/// A BIO reading `bytes` when there are any, else nil: for CMS_verify's detached content.
/// A memory BIO behind a buffering filter, not a bare one: given a memory BIO, OpenSSL 3.0's
/// CMS_verify copies it into one of its own, which it loses when CMS_BINARY is set and the
/// message's digests cannot be set up (openssl/openssl#30471; found by Fuzz/ message-opener).
func withOptionalMemoryBIO<R>(_ bytes: [UInt8]?, _ body: (OpaquePointer?) throws -> R) throws -> R {
    guard let bytes else { return try body(nil) }
    return try withMemoryBIO(bytes) { memory in
        guard let buffer = BIO_new(BIO_f_buffer()) else { throw OpenSSLError("BIO_new") }
        let chain = BIO_push(buffer, memory)
        defer { _ = BIO_pop(buffer); BIO_free(buffer) }  // the memory BIO is withMemoryBIO's to free
        return try body(chain)
    }
}
