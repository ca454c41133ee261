import COpenSSL
import CSignetCrypto

/// Opening S/MIME enveloped-data with a key on the token: OpenSSL's CMS
/// does the parsing and the content decryption; only the key transport
/// (RSA) or key agreement (ECDH) goes to the agent through `AgentKey`.
///
/// This is the core the S/MIME issue builds `signet decrypt` on; enrollment
/// uses it to prove an imported key works.
public enum EnvelopedMessage {
    /// Largest message read into memory here.
    public static let maximumSize = 64 << 20

    /// Decrypts an S/MIME message (`application/pkcs7-mime` MIME text) or a DER/BER CMS structure
    /// addressed to `certificate`, whose private key is `key`.
    /// - Returns: the plaintext MIME entity.
    /// - Throws: the agent's error when the token refused, else `OpenSSLError` (not addressed to this certificate, damaged).
    public static func decrypt(_ message: [UInt8], certificate: Certificate, key: AgentKey) throws -> [UInt8] {
        guard message.count <= maximumSize else { throw OpenSSLError("The message is larger than \(maximumSize) bytes") }
        OpenSSLError.drain()
        let cms: OpaquePointer? = try withMemoryBIO(message) { bio in
            if let parsed = SMIME_read_CMS(bio, nil) { return parsed }
            OpenSSLError.drain()
            _ = BIO_ctrl(bio, BIO_CTRL_RESET, 0, nil)
            return d2i_CMS_bio(bio, nil)
        }
        guard let cms else { throw OpenSSLError("This is not an S/MIME or CMS message") }
        defer { CMS_ContentInfo_free(cms) }
        return try collectBIO { output in
            guard CMS_decrypt(cms, key.pkey, certificate.x509, nil, output, UInt32(CMS_BINARY)) == 1 else {
                throw key.failure("Decrypting the message")
            }
        }
    }
}
