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
