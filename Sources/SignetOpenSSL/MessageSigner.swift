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

    /// The name in multipart/signed's micalg parameter (RFC 8551 §3.5.3.2).
    var micalg: String {
        switch self {
        case .sha256: "sha-256"
        case .sha384: "sha-384"
        case .sha512: "sha-512"
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
        // (The detached forms are hashed and written here, in `signDetached`.)
        let streamed = options.form == .opaque && !options.pss
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
        if detached {
            return try signDetached(source, to: output, cms: cms, key: key, digest: options.digest, multipart: options.form == .detached)
        }
        let input = try source.makeBIO()
        defer { BIO_free(input) }
        try withOutputBIO(output) { out in
            let written: Bool
            if !streamed {
                written = CMS_final(cms, input, nil, UInt32(flags)) == 1 && SMIME_write_CMS(out, cms, nil, flags) == 1
            } else {
                written = SMIME_write_CMS(out, cms, input, flags) == 1
            }
            try source.checkRead()
            guard written else { throw key.failure("Signing the message") }
        }
    }

    /// The detached forms in one pass over the message: each block is hashed and (for multipart/signed) written
    /// out in the same step, in large writes. The MIME framing is the one OpenSSL's `SMIME_write_CMS` writes,
    /// CRLF line ends and all; its boundary comes from `getrandom`, not from OpenSSL's DRBG, which a signature
    /// made on the token otherwise never needs (setting it up cost an eighth of a small message's signing).
    private static func signDetached(_ source: MessageSource, to output: Int32, cms: OpaquePointer, key: AgentKey,
                                     digest: MessageDigest, multipart: Bool) throws {
        // The CMS's own digest chain, ending in a null sink (the content is detached).
        guard let hashing = CMS_dataInit(cms, nil) else { throw OpenSSLError("Starting the digest") }
        defer { BIO_free_all(hashing) }
        var writer = BlockWriter(fd: output)
        let boundary = multipart ? randomBoundary() : ""
        if multipart {
            try writer.append("MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
                + "micalg=\"\(digest.micalg)\"; boundary=\"----\(boundary)\"\r\n\r\nThis is an S/MIME signed message\r\n\r\n"
                + "------\(boundary)\r\n")
        }
        try source.forEachBlock { block in
            guard BIO_write(hashing, block.baseAddress, Int32(block.count)) == Int32(block.count) else {
                throw OpenSSLError("Hashing the message")
            }
            if multipart { try writer.append(block) }
        }
        guard CMS_dataFinal(cms, hashing) == 1 else { throw key.failure("Signing the message") }
        let der = try encodeDER(cms, { i2d_CMS_ContentInfo($0, $1) })
        if multipart {
            try writer.append("\r\n------\(boundary)\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
                + "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n")
            try base64Lines(der) { try writer.append($0) }
            try writer.append("\r\n------\(boundary)--\r\n\r\n")
        } else {
            try der.withUnsafeBufferPointer { try writer.append($0) }
        }
        try writer.flush()
    }

    /// 32 hexadecimal digits from the kernel's random source (`getrandom`, through the standard library's
    /// generator); OpenSSL's boundaries have the same form.
    static func randomBoundary() -> String {
        var generator = SystemRandomNumberGenerator()
        let words = [generator.next(), generator.next()]
        let bytes = words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> ($0 * 8)) } }
        return Hex.encode(bytes, uppercase: true)
    }

    /// Base64 in lines of 64 characters, each ending in LF, as OpenSSL's base64 BIO writes them.
    static func base64Lines(_ bytes: [UInt8], _ emit: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        var line = [UInt8](repeating: 0, count: 66)
        try bytes.withUnsafeBufferPointer { input in
            var offset = 0
            while offset < input.count {
                let count = min(48, input.count - offset)
                try line.withUnsafeMutableBufferPointer { out in
                    let length = Int(EVP_EncodeBlock(out.baseAddress, input.baseAddress! + offset, Int32(count)))
                    out[length] = 0x0A
                    try emit(UnsafeBufferPointer(rebasing: out[..<(length + 1)]))
                }
                offset += count
            }
        }
    }
}
