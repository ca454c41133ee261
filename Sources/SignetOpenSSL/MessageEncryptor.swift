import COpenSSL
import CSignetCrypto
import SignetCore

/// Making S/MIME enveloped-data (or authEnveloped-data for GCM) to recipients'
/// certificates, streaming. No private key is involved: encrypting needs no token.
public enum MessageEncryptor {
    public enum Cipher: String, CaseIterable, Sendable {
        case aes256cbc = "aes256-cbc", aes128cbc = "aes128-cbc", aes256gcm = "aes256-gcm", aes128gcm = "aes128-gcm"

        var evp: OpaquePointer? {
            switch self {
            case .aes256cbc: EVP_aes_256_cbc()
            case .aes128cbc: EVP_aes_128_cbc()
            case .aes256gcm: EVP_aes_256_gcm()
            case .aes128gcm: EVP_aes_128_gcm()
            }
        }

        /// The ECDH key-derivation digest that matches the cipher's strength (RFC 5753, RFC 8551 §2.7).
        var ecdhDigest: String { self == .aes128cbc || self == .aes128gcm ? "sha256" : "sha384" }
    }

    public struct Options: Sendable {
        public var cipher: Cipher = .aes256cbc
        /// RSA recipients: RSAES-OAEP with SHA-256 instead of PKCS#1 v1.5.
        public var oaep = false
        /// The DER CMS structure (streamed, indefinite lengths) instead of an S/MIME message.
        public var der = false
        public init() {}
    }

    /// Encrypts the MIME entity from `source` to every certificate in `recipients` and writes
    /// `application/pkcs7-mime; smime-type=enveloped-data` (or authEnveloped-data) to `output`.
    public static func encrypt(_ source: MessageSource, to output: Int32, recipients: [Certificate], options: Options) throws {
        guard !recipients.isEmpty else { throw OpenSSLError("No recipients") }
        let flags = Int32(CMS_PARTIAL | CMS_STREAM | CMS_BINARY | CMS_CRLFEOL)
        OpenSSLError.drain()
        guard let cms = CMS_encrypt(nil, nil, options.cipher.evp, UInt32(flags)) else { throw OpenSSLError("Starting the encryption") }
        defer { CMS_ContentInfo_free(cms) }
        for recipient in recipients {
            guard let info = CMS_add1_recipient_cert(cms, recipient.x509, UInt32(CMS_KEY_PARAM)) else {
                throw OpenSSLError("Adding the recipient \(recipient.subject) (its key must be RSA or EC)")
            }
            let context = CMS_RecipientInfo_get0_pkey_ctx(info)
            var settings: [(String, String)] = []
            if CMS_RecipientInfo_type(info) == CMS_RECIPINFO_AGREE {
                settings = [("ecdh_kdf_md", options.cipher.ecdhDigest)]
            } else if options.oaep {
                settings = [("rsa_padding_mode", "oaep"), ("rsa_oaep_md", "sha256"), ("rsa_mgf1_md", "sha256")]
            }
            for (name, value) in settings where EVP_PKEY_CTX_ctrl_str(context, name, value) <= 0 {
                throw OpenSSLError("Setting \(name) for \(recipient.subject)")
            }
        }
        let input = try source.makeBIO()
        defer { BIO_free(input) }
        try withOutputBIO(output) { out in
            let written = options.der ? i2d_CMS_bio_stream(out, cms, input, flags) == 1 : SMIME_write_CMS(out, cms, input, flags) == 1
            try source.checkRead()
            guard written else { throw OpenSSLError("Encrypting the message") }
        }
    }
}
