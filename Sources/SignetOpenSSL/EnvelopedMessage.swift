import COpenSSL
import CSignetCrypto
import SignetCore

/// Opening S/MIME enveloped-data with a key on the token: OpenSSL's CMS
/// does the parsing and the content decryption; only the key transport
/// (RSA) or key agreement (ECDH) goes to the agent through `AgentKey`.
///
/// This is the core the S/MIME issue builds `signet decrypt` on; enrollment
/// uses it to prove an imported key works.
public final class EnvelopedMessage {
    /// Who a message is addressed to: an issuer and serial number, or a subject key identifier.
    public struct Recipient: Sendable, CustomStringConvertible {
        public var issuerDER: [UInt8]?
        public var issuer: String?
        public var serial: String?
        public var keyIdentifier: [UInt8]?

        /// Whether `certificate` is this recipient.
        public func matches(_ certificate: Certificate) -> Bool {
            if let keyIdentifier { return certificate.subjectKeyIdentifier == keyIdentifier || certificate.keyIdentifier == keyIdentifier }
            return issuerDER == certificate.issuerDER && serial == certificate.serial
        }

        public var description: String {
            if let issuer, let serial { return "serial \(serial) from \(issuer)" }
            return "key identifier \(keyIdentifier.map { Hex.encode($0) } ?? "?")"
        }
    }

    /// The parsed CMS structure (owned).
    private let cms: OpaquePointer

    /// Parses an S/MIME message (`application/pkcs7-mime` MIME text) or a DER/BER CMS structure, once.
    /// - Throws: `OpenSSLError` when it is too large or not CMS.
    public convenience init(_ message: [UInt8]) throws {
        self.init(owning: try readCMS(message).0)
    }

    /// Parses a DER ContentInfo whose encrypted content is not included (`EnvelopeStream.header()`).
    public convenience init(detachedHeader der: [UInt8]) throws {
        OpenSSLError.drain()
        guard let cms = try withMemoryBIO(der, { d2i_CMS_bio($0, nil) }) else { throw OpenSSLError("The message header is not readable CMS") }
        self.init(owning: cms)
    }

    /// Takes ownership of a parsed CMS structure.
    init(owning cms: OpaquePointer) { self.cms = cms }

    deinit { CMS_ContentInfo_free(cms) }

    /// The recipients (key transport and key agreement).
    /// - Throws: `OpenSSLError` when the message is not enveloped data.
    public func recipients() throws -> [Recipient] {
        var found: [Recipient] = []
        var count: Int32 = 0
        guard let list = CSignetCrypto_recipients(cms, &count) else { throw OpenSSLError("The message has no recipients") }
        defer { free(list) }
        for index in 0..<Int(count) {
            let entry = list[index]
            var recipient = Recipient()
            if let name = entry.issuer {
                recipient.issuerDER = (try? encodeDER(name, { i2d_X509_NAME($0, $1) }))
                recipient.issuer = Certificate.nameText(name)
            }
            if let serial = entry.serial, let number = ASN1_INTEGER_to_BN(serial, nil) {
                if let hex = BN_bn2hex(number) { recipient.serial = String(cString: hex); CSignetCrypto_free(hex) }
                BN_free(number)
            }
            if let identifier = entry.keyIdentifier {
                recipient.keyIdentifier = Array(UnsafeBufferPointer(start: ASN1_STRING_get0_data(identifier), count: Int(ASN1_STRING_length(identifier))))
            }
            found.append(recipient)
        }
        return found
    }

    /// Decrypts the message for `certificate`, whose private key is `key`.
    /// - Returns: the plaintext MIME entity.
    /// - Throws: the agent's error when the token refused, else `OpenSSLError` (not addressed to this certificate, damaged).
    public func decrypt(certificate: Certificate, key: AgentKey) throws -> [UInt8] {
        try collectBIO { output in
            guard CMS_decrypt(cms, key.pkey, certificate.x509, nil, output, UInt32(CMS_BINARY)) == 1 else {
                throw key.failure("Decrypting the message")
            }
            // OpenSSL goes on with a random content key when the key transport fails (its defence against
            // padding oracles); one time in 256 that random key even "decrypts". The token's refusal decides.
            if let refused = key.lastFailure { throw refused }
        }
    }

    /// Decrypts encrypted content supplied apart from the header (`init(detachedHeader:)`), pulled from `content`
    /// piece by piece, and writes the plaintext to `fd` as it comes: memory stays flat. The plaintext is only
    /// known good (padding, GCM tag) when this returns, so `fd` should be a file the caller can throw away.
    public func decrypt(certificate: Certificate, key: AgentKey, content: @escaping (UnsafeMutableRawBufferPointer) throws -> Int,
                        to fd: Int32) throws {
        let source = PulledSource(content)
        let input = try source.makeBIO()
        defer { BIO_free(input) }
        try withOutputBIO(fd) { output in
            let result = CSignetCrypto_decryptDetached(cms, key.pkey, certificate.x509, input, output)
            if let failure = source.failure { throw failure }
            if result < 0 { throw key.failure("Recovering the message key") }
            // The token's refusal comes first: OpenSSL goes on with a random key when the key transport fails
            // (its defence against padding oracles), so the content then fails too.
            guard result == 1 else {
                throw key.failure("the content does not decrypt: it was changed or damaged on the way (its padding or authentication tag is wrong)")
            }
            // The random key may pass the padding check (one time in 256): a refused key transport still decides.
            if let refused = key.lastFailure { throw refused }
        }
    }
}

extension EnvelopedMessage {
    /// Content ciphers Signet names in reports, by DER object identifier body.
    private static let contentCiphers: [(oid: [UInt8], name: String, legacy: Bool)] = [
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02], "AES-128-CBC", false),
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16], "AES-192-CBC", false),
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2A], "AES-256-CBC", false),
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06], "AES-128-GCM", false),
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x1A], "AES-192-GCM", false),
        ([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2E], "AES-256-GCM", false),
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x03, 0x07], "3DES-CBC", true),
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x03, 0x02], "RC2-CBC", true),
        ([0x2B, 0x0E, 0x03, 0x02, 0x07], "DES-CBC", true),
    ]

    /// The content-encryption algorithm ("AES-256-GCM") and whether it is a legacy one (3DES, RC2, DES); nil when unknown.
    /// OpenSSL has no getter for it, so the structure is encoded without its encrypted content (set aside for the
    /// moment: a few hundred bytes, not the message) and the algorithm's identifier looked up there.
    public var contentCipher: (name: String, legacy: Bool)? {
        guard let slot = CMS_get0_content(cms) else { return nil }
        let encrypted = slot.pointee
        slot.pointee = nil
        defer { slot.pointee = encrypted }
        guard let header = try? encodeDER(cms, { i2d_CMS_ContentInfo($0, $1) }) else { return nil }
        // Only the content-encryption algorithm uses these identifiers (key wrap and OAEP parameters use others).
        return Self.contentCiphers.first { Self.occurs([0x06, UInt8($0.oid.count)] + $0.oid, in: header) }.map { ($0.name, $0.legacy) }
    }

    /// Whether `needle` occurs in `haystack` (a plain loop: the generic search Foundation offers took 0.1 ms to set up).
    private static func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            var index = 1
            while index < needle.count, haystack[start + index] == needle[index] { index += 1 }
            if index == needle.count { return true }
        }
        return false
    }
}
