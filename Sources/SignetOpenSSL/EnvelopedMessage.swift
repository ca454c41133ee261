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

    /// The content does not decrypt with the key the token recovered: its padding (CBC) or authentication tag
    /// (GCM) is wrong. Only this failure says the message was damaged or changed; OpenSSL's reasons.
    public struct ContentDecryptionError: Error, CustomStringConvertible {
        public var reasons: [String]
        public var description: String {
            "its padding or authentication tag is wrong" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))")
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
        if contentCipher?.name == "ChaCha20-Poly1305" {
            let (header, content) = try headerAndContent()
            guard let content else { throw OpenSSLError("The encrypted content is not in the message") }
            return try collectBIO { output in
                try withMemoryBIO(content) { input in try decryptChaCha20Poly1305(certificate: certificate, key: key, header: header, content: input, output: output) }
            }
        }
        // The same path as streamed content (CMS_decrypt's failures do not say whether the padding or GCM tag
        // was wrong, and a wrong tag leaves no reason queued): the content is handed over as detached.
        guard let content = try headerAndContent().1 else { throw OpenSSLError("The encrypted content is not in the message") }
        return try collectBIO { output in
            try withMemoryBIO(content) { input in try decryptDetached(certificate: certificate, key: key, input: input, output: output) }
        }
    }

    /// Decrypts the content read from `input` into `output` (`CSignetCrypto_decryptDetached`), and says which part failed.
    private func decryptDetached(certificate: Certificate, key: AgentKey, input: OpaquePointer, output: OpaquePointer) throws {
        OpenSSLError.drain()
        let result = CSignetCrypto_decryptDetached(cms, key.pkey, certificate.x509, input, output)
        // The token's refusal comes first: OpenSSL goes on with a random key when the key transport fails
        // (its defence against padding oracles), so the content then fails too, or one time in 256 even "decrypts".
        if let refused = key.lastFailure { throw refused }
        if result < 0 && result != -2 { throw OpenSSLError("Recovering the message key") }
        if result == -2 { throw OpenSSLError("Writing the plaintext") }
        guard result == 1 else { throw ContentDecryptionError(reasons: OpenSSLError.drain()) }
    }

    /// Decrypts encrypted content supplied apart from the header (`init(detachedHeader:)`), pulled from `content`
    /// piece by piece, and writes the plaintext to `fd` as it comes: memory stays flat. The plaintext is only
    /// known good (padding, GCM tag) when this returns, so `fd` should be a file the caller can throw away.
    public func decrypt(certificate: Certificate, key: AgentKey, content: @escaping (UnsafeMutableRawBufferPointer) throws -> Int,
                        to fd: Int32) throws {
        let source = PulledSource(content)
        let input = try source.makeBIO()
        defer { BIO_free(input) }
        if contentCipher?.name == "ChaCha20-Poly1305" {
            let header = try headerAndContent().0
            do {
                try withOutputBIO(fd) { output in
                    try decryptChaCha20Poly1305(certificate: certificate, key: key, header: header, content: input, output: output)
                }
            } catch {
                throw source.failure ?? error  // a truncated or unreadable stream is that, not a wrong tag
            }
            return
        }
        try withOutputBIO(fd) { output in
            do {
                try decryptDetached(certificate: certificate, key: key, input: input, output: output)
            } catch {
                throw source.failure ?? error  // a truncated or unreadable stream is that, not a wrong tag
            }
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
        // id-alg-AEADChaCha20Poly1305 (RFC 8103): OpenSSL 3.0's CMS has no ChaCha20-Poly1305; decryptChaCha20Poly1305 does it.
        ([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x03, 0x12], "ChaCha20-Poly1305", false),
    ]

    /// Content ciphers named above that Signet cannot decrypt (ChaCha20-Poly1305 it decrypts itself).
    static let unsupportedCiphers: Set<String> = []

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

// MARK: ChaCha20-Poly1305 (RFC 8103)

extension EnvelopedMessage {
    /// What decrypting ChaCha20-Poly1305 authEnveloped data needs from its header (RFC 5083, RFC 8103).
    struct AEADHeader {
        /// Key-transport recipients: their identifier (IssuerAndSerialNumber, or [0] subjectKeyIdentifier), the key
        /// encryption algorithm's identifier and parameters, and the encrypted content key.
        var keyTransport: [(identifier: (tag: UInt8, element: [UInt8]), algorithm: [UInt8], parameters: [UInt8]?, encryptedKey: [UInt8])] = []
        var nonce: [UInt8] = []
        /// The authenticated attributes as a SET (their [1] tag replaced), the additional data; empty when none.
        var additionalData: [UInt8] = []
        var mac: [UInt8] = []
    }

    static let rsaEncryptionOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    static let rsaesOAEPOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x07]

    /// The top-level elements of `bytes`: tag, header length, whole encoding.
    static func elements(_ bytes: [UInt8]) throws -> [(tag: UInt8, headerLength: Int, bytes: [UInt8])] {
        let reader = BERReader(ArraySource(bytes))
        var found: [(UInt8, Int, [UInt8])] = []
        while !(try reader.atEnd()) {
            let (header, element) = try reader.readElement(limit: bytes.count, what: "the message header")
            found.append((header.tag, header.encoded.count, element))
        }
        return found
    }

    /// The contents of a definite-length element (what its header announces).
    static func body(_ element: (tag: UInt8, headerLength: Int, bytes: [UInt8])) -> [UInt8] { Array(element.bytes.dropFirst(element.headerLength)) }

    /// Reads the parts of a ContentInfo of authEnveloped data encoded without its content.
    static func aeadHeader(_ header: [UInt8]) throws -> AEADHeader {
        let malformed = OpenSSLError(operation: "Reading the ChaCha20-Poly1305 message", reasons: ["its header is not authEnveloped data as RFC 5083 describes"])
        guard let contentInfo = try elements(header).first, contentInfo.tag == 0x30,
              let explicit = try elements(body(contentInfo)).dropFirst().first, explicit.tag == 0xA0,
              let authEnveloped = try elements(body(explicit)).first, authEnveloped.tag == 0x30 else { throw malformed }
        var result = AEADHeader()
        let fields = try elements(body(authEnveloped))
        guard let recipients = fields.first(where: { $0.tag == 0x31 }), let info = fields.first(where: { $0.tag == 0x30 }),
              let mac = fields.last, mac.tag == 0x04 else { throw malformed }
        result.mac = body(mac)
        if let attributes = fields.first(where: { $0.tag == 0xA1 }) { result.additionalData = [0x31] + attributes.bytes.dropFirst() }
        let contentFields = try elements(body(info))
        guard contentFields.count >= 2, contentFields[1].tag == 0x30 else { throw malformed }
        let algorithm = try elements(body(contentFields[1]))
        guard algorithm.count == 2, algorithm[1].tag == 0x04 else { throw malformed }
        result.nonce = body(algorithm[1])
        for recipient in try elements(body(recipients)) where recipient.tag == 0x30 {
            let parts = try elements(body(recipient))
            guard parts.count == 4, parts[2].tag == 0x30, parts[3].tag == 0x04 else { continue }
            let keyAlgorithm = try elements(body(parts[2]))
            guard let oid = keyAlgorithm.first, oid.tag == 0x06 else { continue }
            result.keyTransport.append(((parts[1].tag, parts[1].bytes), body(oid), keyAlgorithm.dropFirst().first.map(\.bytes), body(parts[3])))
        }
        return result
    }

    /// Whether a key-transport recipient's identifier names `certificate`.
    static func names(_ identifier: (tag: UInt8, element: [UInt8]), _ certificate: Certificate) throws -> Bool {
        let fields = try elements(identifier.element)
        guard let only = fields.first else { return false }
        if identifier.tag == 0x80 { return body(only) == certificate.subjectKeyIdentifier }
        let parts = try elements(body(only))
        guard parts.count == 2, parts[1].tag == 0x02 else { return false }
        let serial = Array(body(parts[1]).drop { $0 == 0 })
        let hex = certificate.serial.count % 2 == 1 ? "0" + certificate.serial : certificate.serial
        return parts[0].bytes == certificate.issuerDER && serial == Array((Hex.decode(hex) ?? []).drop { $0 == 0 })
    }

    /// Decrypts ChaCha20-Poly1305 content (RFC 8103), which OpenSSL 3.0's CMS cannot: the token recovers the content
    /// key from the RSA key-transport recipient for `certificate`, and the content is decrypted here from `content` into
    /// `output`, its tag checked at the end (`output` is thrown away unless this returns).
    /// - Throws: the agent's error when the token refused; `ContentDecryptionError` when the tag is wrong;
    ///   `OpenSSLError` when the message has no RSA recipient for `certificate` or is malformed.
    func decryptChaCha20Poly1305(certificate: Certificate, key: AgentKey, header: [UInt8], content: OpaquePointer, output: OpaquePointer) throws {
        let parts = try Self.aeadHeader(header)
        guard let recipient = try parts.keyTransport.first(where: { try Self.names($0.identifier, certificate) }) else {
            throw OpenSSLError(operation: "Decrypting ChaCha20-Poly1305 content", reasons: ["Signet recovers its key only from an RSA key-transport recipient"])
        }
        let oaep: Int32
        switch recipient.algorithm {
        case Self.rsaEncryptionOID: oaep = 0
        case Self.rsaesOAEPOID: oaep = 1
        default: throw OpenSSLError(operation: "Decrypting ChaCha20-Poly1305 content", reasons: ["the key is sent with an algorithm Signet does not know"])
        }
        // The parameters: OAEP's RSAES-OAEP-params SEQUENCE (NULL for rsaEncryption is ignored).
        let parameters = oaep == 1 ? (recipient.parameters ?? []) : []
        var contentKey = [UInt8](repeating: 0, count: 1024)  // EVP_PKEY_decrypt wants room for a whole RSA block
        defer { contentKey.withUnsafeMutableBytes { if let base = $0.baseAddress { explicit_bzero(base, $0.count) } } }
        var keyLength = contentKey.count
        OpenSSLError.drain()
        let recovered = parameters.withUnsafeBufferPointer { params in
            recipient.encryptedKey.withUnsafeBufferPointer { encrypted in
                CSignetCrypto_rsaRecoverKey(key.pkey, oaep, params.baseAddress, params.count, encrypted.baseAddress, encrypted.count, &contentKey, &keyLength)
            }
        }
        if let refused = key.lastFailure { throw refused }
        guard recovered == 1 else { throw OpenSSLError("Recovering the content key") }
        let result = CSignetCrypto_chacha20Poly1305Decrypt(contentKey, keyLength, parts.nonce, parts.nonce.count, parts.additionalData,
                                                           parts.additionalData.count, parts.mac, parts.mac.count, content, output)
        if result == -2 { throw OpenSSLError("Writing the plaintext") }
        guard result == 1 else { throw ContentDecryptionError(reasons: OpenSSLError.drain()) }
    }

    /// The structure encoded without its encrypted content (a few hundred bytes), and that content.
    func headerAndContent() throws -> ([UInt8], [UInt8]?) {
        guard let slot = CMS_get0_content(cms) else { throw OpenSSLError("The message has no content") }
        let encrypted = slot.pointee
        slot.pointee = nil
        defer { slot.pointee = encrypted }
        let header = try encodeDER(cms, { i2d_CMS_ContentInfo($0, $1) })
        let content = encrypted.map { Array(UnsafeBufferPointer(start: ASN1_STRING_get0_data($0), count: Int(ASN1_STRING_length($0)))) }
        return (header, content)
    }
}
