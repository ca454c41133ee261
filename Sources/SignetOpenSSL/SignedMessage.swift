import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// Digests Signet signs with (SHA-1 is refused for new signatures).
public enum MessageDigest: String, CaseIterable, Sendable {
    case sha256, sha384, sha512

    var md: OpaquePointer? { EVP_get_digestbyname(rawValue) }
}

/// Making S/MIME signatures with a key on the token (RFC 8551), streaming.
public enum MessageSigner {
    public struct Options: Sendable {
        /// Output form.
        public enum Form: Sendable {
            /// multipart/signed with application/pkcs7-signature (the default for mail).
            case detached
            /// application/pkcs7-mime; smime-type=signed-data.
            case opaque
            /// Only the detached signature, DER (what mutt's smime_sign_command returns).
            case signatureOnly
        }
        public var form: Form = .detached
        public var digest: MessageDigest = .sha256
        /// RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys only).
        public var pss = false
        public init() {}
    }

    /// Signs the MIME entity from `source` (canonicalised by the caller's choice) and writes the result to `output`.
    /// The signed attributes are contentType, messageDigest, signingTime and SMIMECapabilities; `chain` is included
    /// after the signer's certificate so recipients can build the path and answer encrypted.
    /// - Throws: the agent's error when the token refused, else `OpenSSLError`.
    public static func sign(_ source: MessageSource, to output: Int32, certificate: Certificate, key: AgentKey,
                            chain: [Certificate], options: Options) throws {
        if options.pss && !key.isRSA { throw OpenSSLError("RSA-PSS needs an RSA key; this certificate's key is EC") }
        let detached = options.form != .opaque
        var flags = Int32(CMS_PARTIAL | CMS_BINARY | CMS_CRLFEOL)
        if detached { flags |= Int32(CMS_DETACHED) }
        // OpenSSL 3.0 encodes an opaque streamed message's header before signing, which fails for RSA-PSS
        // ("illegal zero content"): that one combination is built in memory instead of streamed.
        let streamed = options.form == .detached || (options.form == .opaque && !options.pss)
        if streamed { flags |= Int32(CMS_STREAM) }
        OpenSSLError.drain()
        guard let cms = CMS_sign(nil, nil, nil, nil, UInt32(flags)) else { throw OpenSSLError("Starting the signature") }
        defer { CMS_ContentInfo_free(cms) }
        guard let md = options.digest.md else { throw OpenSSLError("Digest \(options.digest.rawValue) is not available") }
        guard let signer = CMS_add1_signer(cms, certificate.x509, key.pkey, md, UInt32(options.pss ? CMS_KEY_PARAM : 0)) else {
            throw OpenSSLError("Adding the signer")
        }
        if options.pss {
            let context = CMS_SignerInfo_get0_pkey_ctx(signer)
            guard EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PSS_PADDING) > 0,
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(context, RSA_PSS_SALTLEN_DIGEST) > 0 else { throw OpenSSLError("Choosing RSA-PSS") }
        }
        for extra in chain where CMS_add1_cert(cms, extra.x509) != 1 { throw OpenSSLError("Adding the certificate chain") }
        let input = try source.makeBIO()
        defer { BIO_free(input) }
        try withOutputBIO(output) { out in
            let written: Bool
            if options.form == .signatureOnly {
                written = CMS_final(cms, input, nil, UInt32(flags)) == 1 && i2d_CMS_bio(out, cms) == 1
            } else if !streamed {
                written = CMS_final(cms, input, nil, UInt32(flags)) == 1 && SMIME_write_CMS(out, cms, nil, flags) == 1
            } else {
                written = SMIME_write_CMS(out, cms, input, flags) == 1
            }
            try source.checkRead()
            guard written else { throw key.failure("Signing the message") }
        }
    }
}

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

    /// One signer as the message describes it.
    public struct Signer {
        public var certificate: Certificate?
        public var digest: String
        public var signatureAlgorithm: String
        public var signingTime: Date?
    }

    /// The outcome of checking the signatures' mathematics (not the signers' trust).
    public enum SignatureCheck {
        /// Every signature matches; `content` is what was signed.
        case good(content: [UInt8])
        /// A signature or digest does not match the content.
        case bad(String)
        /// The signer's certificate is neither in the message nor given.
        case signerUnknown(String)
    }

    /// Checks every signature against the content. Detached content is compared in
    /// canonical form (CRLF), and byte for byte when that fails, as a binary signer wrote it.
    public func checkSignatures(extraCertificates: [Certificate] = []) -> SignatureCheck {
        guard isSignedData else { return .bad("The message is not signed data") }
        let extra = CSignetCrypto_newCertificates()
        defer { CSignetCrypto_freeCertificates(extra) }
        for certificate in extraCertificates { _ = CSignetCrypto_pushCertificate(extra, certificate.retainedPointer()) }
        var firstFailure: String?
        for binary in detachedContent == nil ? [true] : [false, true] {
            OpenSSLError.drain()
            var flags = Int32(CMS_NO_SIGNER_CERT_VERIFY)
            if binary { flags |= Int32(CMS_BINARY) }
            var library: Int32 = 0
            var reason: Int32 = 0
            var failure = ""
            let content: [UInt8]? = try? collectBIO { out in
                let verified: Int32 = try withOptionalMemoryBIO(detachedContent) { dcont in CMS_verify(cms, extra, nil, dcont, out, UInt32(flags)) }
                if verified != 1 {
                    reason = CSignetCrypto_firstErrorReason(&library)
                    failure = OpenSSLError.drain().joined(separator: "; ")
                    throw OpenSSLError("The signature does not match")
                }
            }
            if let content { return .good(content: content) }
            if library == ERR_LIB_CMS && (reason == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND || reason == CMS_R_NO_SIGNERS) {
                return .signerUnknown("The message does not include the signer's certificate and none given matches")
            }
            if firstFailure == nil { firstFailure = failure }
        }
        return .bad(firstFailure ?? "The signature does not match")
    }

    /// The signed content without checking anything (to look inside a layer whose signature is reported as bad).
    public func uncheckedContent() -> [UInt8]? {
        if let detachedContent { return detachedContent }
        OpenSSLError.drain()
        let flags = Int32(CMS_NO_SIGNER_CERT_VERIFY | CMS_NO_ATTR_VERIFY | CMS_NO_CONTENT_VERIFY | CMS_BINARY)
        let content = try? collectBIO { out in
            guard CMS_verify(cms, nil, nil, nil, out, UInt32(flags)) == 1 else { throw OpenSSLError("No content") }
        }
        OpenSSLError.drain()
        return content
    }

    /// The signers (call after `checkSignatures`, which links each to its certificate).
    public var signers: [Signer] {
        (0..<CSignetCrypto_signerCount(cms)).compactMap { index in
            guard let info = CSignetCrypto_signerAt(cms, index) else { return nil }
            var digest = [CChar](repeating: 0, count: 80), signature = [CChar](repeating: 0, count: 80)
            CSignetCrypto_signerAlgorithms(info, &digest, digest.count, &signature, signature.count)
            var seconds: Int64 = 0
            let time = CSignetCrypto_signingTime(info, &seconds) == 1 ? Date(timeIntervalSince1970: TimeInterval(seconds)) : nil
            let certificate = CSignetCrypto_signerCertificate(info).map { Certificate(owning: X509_dup($0)) }
            return Signer(certificate: certificate, digest: text(digest), signatureAlgorithm: text(signature), signingTime: time)
        }
    }
}

/// A memory BIO over `bytes` when there are any, else nil.
func withOptionalMemoryBIO<R>(_ bytes: [UInt8]?, _ body: (OpaquePointer?) throws -> R) throws -> R {
    guard let bytes else { return try body(nil) }
    return try withMemoryBIO(bytes) { try body($0) }
}
