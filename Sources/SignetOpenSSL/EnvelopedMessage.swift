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
    /// Who a message is addressed to: its kind of recipient information, and an issuer and serial number or a key identifier.
    public struct Recipient: Sendable, Equatable, CustomStringConvertible {
        /// RFC 5652 §6.2's kinds of recipient information.
        public enum Kind: Sendable, Equatable {
            /// A public key, used for key transport (RSA).
            case keyTransport
            /// A public key, used for key agreement (ECDH).
            case keyAgreement
            /// A symmetric key-encryption key both sides hold (KEKRecipientInfo), named by its key identifier.
            case keyEncryptionKey
            /// A password (PasswordRecipientInfo).
            case password
            /// Another kind (OtherRecipientInfo).
            case other
        }

        public var kind: Kind = .keyTransport
        public var issuerDER: [UInt8]?
        public var issuer: String?
        public var serial: String?
        public var keyIdentifier: [UInt8]?

        /// Whether `certificate` is this recipient (only public-key recipients can be).
        public func matches(_ certificate: Certificate) -> Bool {
            guard kind == .keyTransport || kind == .keyAgreement else { return false }
            if let keyIdentifier { return certificate.subjectKeyIdentifier == keyIdentifier || certificate.keyIdentifier == keyIdentifier }
            return issuerDER == certificate.issuerDER && serial == certificate.serial
        }

        public var description: String {
            switch kind {
            case .password: return "a password (PasswordRecipientInfo)"
            case .other: return "a recipient of a kind Signet does not know (OtherRecipientInfo)"
            case .keyEncryptionKey: return "a shared key-encryption key with key identifier \(keyIdentifier.map { Hex.encode($0) } ?? "?") (KEKRecipientInfo)"
            case .keyTransport, .keyAgreement:
                if let issuer, let serial { return "serial \(serial) from \(issuer)" }
                return "key identifier \(keyIdentifier.map { Hex.encode($0) } ?? "?")"
            }
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
            recipient.kind = switch UInt32(entry.kind) {
            case CSignetCrypto_keyAgreement.rawValue: .keyAgreement
            case CSignetCrypto_keyEncryptionKey.rawValue: .keyEncryptionKey
            case CSignetCrypto_password.rawValue: .password
            case CSignetCrypto_otherRecipient.rawValue: .other
            default: .keyTransport
            }
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
    /// A content-encryption algorithm: its name, whether it is a legacy one (3DES, RC2, DES), and whether Signet decrypts it.
    public struct ContentCipher: Sendable, Equatable {
        public var name: String
        public var legacy: Bool
        public var supported: Bool

        public init(name: String, legacy: Bool, supported: Bool) {
            self.name = name
            self.legacy = legacy
            self.supported = supported
        }
    }

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
        // id-alg-AEADChaCha20Poly1305 (RFC 8103): OpenSSL 3.0's CMS has no ChaCha20-Poly1305 content decryption.
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x03, 0x12], "ChaCha20-Poly1305", false),
    ]

    /// Content ciphers named above that Signet cannot decrypt.
    static let unsupportedCiphers: Set<String> = ["ChaCha20-Poly1305"]

    /// The content-encryption algorithm ("AES-256-GCM", or OpenSSL's name or the dotted identifier of another);
    /// nil when the message does not say. OpenSSL has no getter for it, so the structure is encoded without its
    /// encrypted content (set aside for the moment: a few hundred bytes, not the message) and read here.
    public var contentCipher: ContentCipher? {
        guard let slot = CMS_get0_content(cms) else { return nil }
        let encrypted = slot.pointee
        slot.pointee = nil
        defer { slot.pointee = encrypted }
        guard let header = try? encodeDER(cms, { i2d_CMS_ContentInfo($0, $1) }), let oid = Self.contentAlgorithm(header) else { return nil }
        if let known = Self.contentCiphers.first(where: { $0.oid == oid }) {
            return ContentCipher(name: known.name, legacy: known.legacy, supported: !Self.unsupportedCiphers.contains(known.name))
        }
        // Another cipher: OpenSSL's CMS decrypts it when libcrypto has it (Camellia, ARIA, ...).
        let der = [0x06, UInt8(oid.count)] + oid
        var cursor: UnsafePointer<UInt8>? = nil
        let object: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            cursor = buffer.baseAddress
            return d2i_ASN1_OBJECT(nil, &cursor, buffer.count)
        }
        defer { ASN1_OBJECT_free(object) }
        var name = [CChar](repeating: 0, count: 80)
        let nid = OBJ_obj2nid(object)
        if nid != NID_undef, let short = OBJ_nid2sn(nid) { name = Array(String(cString: short).utf8CString) } else { _ = OBJ_obj2txt(&name, 80, object, 1) }
        let supported = nid != NID_undef && EVP_get_cipherbyname(OBJ_nid2sn(nid)) != nil
        OpenSSLError.drain()
        return ContentCipher(name: text(name), legacy: false, supported: supported)
    }

    /// The object identifier (body) of the content-encryption algorithm in a ContentInfo of enveloped or
    /// authEnveloped data encoded without its content.
    static func contentAlgorithm(_ header: [UInt8]) -> [UInt8]? {
        let reader = BERReader(ArraySource(header))
        do {
            _ = try reader.readHeader()                              // ContentInfo
            _ = try reader.readElement(limit: 64, what: "type")      // contentType
            _ = try reader.readHeader()                              // [0]
            _ = try reader.readHeader()                              // EnvelopedData / AuthEnvelopedData
            while try reader.readElement(limit: header.count, what: "header").0.tag != 0x31 {}  // version, originatorInfo, recipientInfos
            _ = try reader.readHeader()                              // EncryptedContentInfo
            _ = try reader.readElement(limit: 64, what: "type")      // contentType
            _ = try reader.readHeader()                              // contentEncryptionAlgorithm
            let (oidHeader, oid) = try reader.readElement(limit: 64, what: "algorithm")
            guard oidHeader.tag == 0x06 else { return nil }
            return Array(oid.dropFirst(oidHeader.encoded.count))
        } catch {
            return nil
        }
    }
}
