import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// Digests Signet signs with (SHA-1 is refused for new signatures).
public enum MessageDigest: String, CaseIterable, Sendable {
    case sha256, sha384, sha512

    /// The digest itself, not looked up by name: a lookup by name makes OpenSSL first fill its table
    /// of every cipher and digest name (and empty it again at exit).
    var md: OpaquePointer? {
        switch self {
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
    }
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
        // OpenSSL's standard capabilities list fetches every cipher it names (filling its cipher table on each
        // run) and advertises RC2-40 and DES, which no sender should use and the default provider cannot decrypt:
        // Signet adds its own list instead.
        let signerFlags = Int32(CMS_NOSMIMECAP) | (options.pss ? Int32(CMS_KEY_PARAM) : 0)
        guard let signer = CMS_add1_signer(cms, certificate.x509, key.pkey, md, UInt32(signerFlags)) else {
            throw OpenSSLError("Adding the signer")
        }
        guard CSignetCrypto_addSMIMECapabilities(signer) == 1 else { throw OpenSSLError("Adding the S/MIME capabilities") }
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
