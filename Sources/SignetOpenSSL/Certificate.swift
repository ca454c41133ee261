import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// An X.509 certificate, parsed by OpenSSL. Only public data.
public final class Certificate: @unchecked Sendable {
    /// The OpenSSL object (owned).
    let x509: OpaquePointer

    /// Takes ownership of `x509`.
    init(owning x509: OpaquePointer) { self.x509 = x509 }

    deinit { X509_free(x509) }

    /// Parses one DER certificate.
    /// - Throws: `OpenSSLError` when `der` is not exactly one certificate.
    public convenience init(der: [UInt8]) throws {
        var parsed: OpaquePointer?
        der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            parsed = d2i_X509(nil, &cursor, buffer.count)
            if parsed != nil, cursor != buffer.baseAddress.map({ $0 + buffer.count }) {
                X509_free(parsed)
                parsed = nil
            }
        }
        guard let parsed else { throw OpenSSLError("This is not a DER X.509 certificate") }
        self.init(owning: parsed)
    }

    /// A new reference to the same certificate (for OpenSSL stacks that take ownership).
    func retainedPointer() -> OpaquePointer {
        X509_up_ref(x509)
        return x509
    }

    /// The DER encoding.
    public var der: [UInt8] { (try? encodeDER(x509, { i2d_X509($0, $1) })) ?? [] }

    /// PEM `CERTIFICATE`.
    public var pem: String { PEM.encode(der, label: "CERTIFICATE") }

    /// The subject in the order of the certificate (most significant first), comma-separated with
    /// RFC 4514 escaping: `C=CA,ST=ON,O=Example Org,CN=8934282`.
    public var subject: String { Certificate.nameText(X509_get_subject_name(x509)) }
    /// The issuer, as `subject`.
    public var issuer: String { Certificate.nameText(X509_get_issuer_name(x509)) }
    /// DER of the subject name.
    public var subjectDER: [UInt8] { (try? encodeDER(X509_get_subject_name(x509), { i2d_X509_NAME($0, $1) })) ?? [] }
    /// DER of the issuer name.
    public var issuerDER: [UInt8] { (try? encodeDER(X509_get_issuer_name(x509), { i2d_X509_NAME($0, $1) })) ?? [] }

    static func nameText(_ name: OpaquePointer?) -> String {
        guard let name else { return "" }
        // RFC 2253/4514 escaping and separators, in certificate order, UTF-8 kept as is.
        let bytes = (try? collectBIO { bio in _ = X509_NAME_print_ex(bio, name, 0, CSignetCrypto_nameFlags()) }) ?? []
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The subject's common name (the last CN), or the whole subject when it has none: the label on the token.
    public var label: String {
        let name = X509_get_subject_name(x509)
        var last: Int32 = -1, position: Int32 = -1
        while true {
            position = X509_NAME_get_index_by_NID(name, NID_commonName, position)
            if position < 0 { break }
            last = position
        }
        guard last >= 0, let entry = X509_NAME_get_entry(name, last), let data = X509_NAME_ENTRY_get_data(entry) else { return subject }
        return String(decoding: UnsafeBufferPointer(start: ASN1_STRING_get0_data(data), count: Int(ASN1_STRING_length(data))), as: UTF8.self)
    }

    /// SHA-1 of the public key bits (RFC 5280 §4.2.1.2 method 1): a stable CKA_ID for imported keys.
    public var keyIdentifier: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_pubkey_digest(x509, EVP_sha1(), &bytes, &length) == 1 else { return [] }
        return Array(bytes.prefix(Int(length)))
    }

    /// The subject key identifier extension, when present.
    public var subjectKeyIdentifier: [UInt8]? {
        guard let identifier = X509_get0_subject_key_id(x509) else { return nil }
        return Array(UnsafeBufferPointer(start: ASN1_STRING_get0_data(identifier), count: Int(ASN1_STRING_length(identifier))))
    }

    /// The serial number in hexadecimal (upper case, no separators).
    public var serial: String {
        guard let integer = X509_get0_serialNumber(x509), let number = ASN1_INTEGER_to_BN(integer, nil) else { return "" }
        defer { BN_free(number) }
        guard let hex = BN_bn2hex(number) else { return "" }
        defer { CSignetCrypto_free(hex) }
        return String(cString: hex)
    }

    /// Start of validity.
    public var notBefore: Date { Certificate.date(X509_get0_notBefore(x509)) }
    /// End of validity.
    public var notAfter: Date { Certificate.date(X509_get0_notAfter(x509)) }

    static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return .distantPast }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    /// Whether the certificate is valid at `date`: "valid", "expired" or "not yet valid".
    public func validity(at date: Date = Date()) -> Validity {
        if date < notBefore { return .notYetValid }
        if date > notAfter { return .expired }
        return .valid
    }

    /// Where `now` falls in a certificate's validity period.
    public enum Validity: String, Sendable, Codable {
        case valid, expired, notYetValid = "not-yet-valid"
    }

    /// DER `SubjectPublicKeyInfo`: what ties a certificate to its private key.
    public var subjectPublicKeyInfo: [UInt8] {
        guard let key = X509_get_X509_PUBKEY(x509) else { return [] }
        return (try? encodeDER(key, { i2d_X509_PUBKEY($0, $1) })) ?? []
    }

    /// SHA-256 fingerprint in hexadecimal.
    public var sha256: String { digest(EVP_sha256()) }
    /// SHA-1 fingerprint in hexadecimal (what Windows and many admins quote).
    public var sha1: String { digest(EVP_sha1()) }

    private func digest(_ type: OpaquePointer?) -> String {
        var bytes = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(x509, type, &bytes, &length) == 1 else { return "" }
        return Hex.encode(Array(bytes.prefix(Int(length))))
    }

    /// Key usage bits that matter for mail.
    public struct Usage: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let digitalSignature = Usage(rawValue: 1 << 0)
        public static let nonRepudiation = Usage(rawValue: 1 << 1)
        public static let keyEncipherment = Usage(rawValue: 1 << 2)
        public static let dataEncipherment = Usage(rawValue: 1 << 3)
        public static let keyAgreement = Usage(rawValue: 1 << 4)
        public static let keyCertSign = Usage(rawValue: 1 << 5)
        public static let crlSign = Usage(rawValue: 1 << 6)

        /// Names as RFC 5280 spells them.
        public var names: [String] {
            [(Usage.digitalSignature, "digitalSignature"), (.nonRepudiation, "nonRepudiation"), (.keyEncipherment, "keyEncipherment"),
             (.dataEncipherment, "dataEncipherment"), (.keyAgreement, "keyAgreement"), (.keyCertSign, "keyCertSign"), (.crlSign, "cRLSign")]
                .filter { contains($0.0) }.map(\.1)
        }
    }

    /// The key usage extension; nil when the certificate has none (any usage allowed).
    public var keyUsage: Usage? {
        guard X509_get_extension_flags(x509) & UInt32(EXFLAG_KUSAGE) != 0 else { return nil }
        let bits = X509_get_key_usage(x509)
        var usage: Usage = []
        let map: [(Int32, Usage)] = [
            (KU_DIGITAL_SIGNATURE, .digitalSignature), (KU_NON_REPUDIATION, .nonRepudiation), (KU_KEY_ENCIPHERMENT, .keyEncipherment),
            (KU_DATA_ENCIPHERMENT, .dataEncipherment), (KU_KEY_AGREEMENT, .keyAgreement), (KU_KEY_CERT_SIGN, .keyCertSign), (KU_CRL_SIGN, .crlSign),
        ]
        for (bit, value) in map where bits & UInt32(bit) != 0 { usage.insert(value) }
        return usage
    }

    /// Extended key usages by name (emailProtection, clientAuth, serverAuth, codeSigning,
    /// smartcardLogon, …, or the dotted OID); nil when the certificate has none (any purpose).
    public var extendedKeyUsage: [String]? {
        guard let usages = X509_get_ext_d2i(x509, NID_ext_key_usage, nil, nil) else { return nil }
        let stack = usages
        defer { CSignetCrypto_freeObjects(stack) }
        var names: [String] = []
        for index in 0..<CSignetCrypto_objectCount(stack) {
            guard let object = CSignetCrypto_objectAt(stack, index) else { continue }
            names.append(Certificate.objectName(object))
        }
        return names
    }

    static func objectName(_ object: OpaquePointer) -> String {
        let nid = OBJ_obj2nid(object)
        if nid == NID_ms_smartcard_login { return "smartcardLogon" }
        if nid != NID_undef, let short = OBJ_nid2sn(nid) { return String(cString: short) }
        var buffer = [CChar](repeating: 0, count: 128)
        _ = OBJ_obj2txt(&buffer, 128, object, 1)
        return text(buffer)
    }

    /// Whether this is a CA certificate (basicConstraints cA, or a v1 self-signed root).
    public var isAuthority: Bool { X509_check_ca(x509) != 0 }

    /// Whether the certificate names itself as issuer and its signature checks with its own key.
    public var isSelfSigned: Bool { X509_self_signed(x509, 1) == 1 }

    /// Whether `issuer` issued this certificate (name, key identifiers and signature).
    public func isIssued(by issuer: Certificate) -> Bool {
        guard X509_check_issued(issuer.x509, x509) == X509_V_OK, let key = X509_get0_pubkey(issuer.x509) else { return false }
        return X509_verify(x509, key) == 1
    }

    /// A subject alternative name.
    public enum AlternativeName: Sendable, Equatable, Hashable {
        case email(String), dns(String), upn(String), uri(String)
    }

    /// Subject alternative names (email, DNS, UPN, URI).
    public var alternativeNames: [AlternativeName] { Certificate.names(CSignetCrypto_alternativeNames, x509) }

    /// CRL distribution point URIs.
    public var crlDistributionPoints: [String] {
        Certificate.names(CSignetCrypto_crlDistributionPoints, x509).compactMap { if case .uri(let uri) = $0 { uri } else { nil } }
    }

    private static func names(_ read: (OpaquePointer?, UnsafeMutablePointer<Int32>?) -> UnsafeMutablePointer<CSignetCrypto_Name>?,
                              _ x509: OpaquePointer) -> [AlternativeName] {
        var count: Int32 = 0
        guard let list = read(x509, &count) else { return [] }
        defer { free(list) }
        var names: [AlternativeName] = []
        for index in 0..<Int(count) {
            let entry = list[index]
            guard let pointer = entry.value else { continue }
            let value = String(cString: pointer)
            CSignetCrypto_free(pointer)
            switch entry.kind {
            case 1: names.append(.email(value))
            case 2: names.append(.dns(value))
            case 3: names.append(.upn(value))
            default: names.append(.uri(value))
            }
        }
        return names
    }

    /// Email addresses: the SAN rfc822Names and any emailAddress in the subject, lower-cased.
    public var emails: [String] {
        var found = alternativeNames.compactMap { if case .email(let email) = $0 { email.lowercased() } else { nil } }
        let name = X509_get_subject_name(x509)
        var position: Int32 = -1
        while true {
            position = X509_NAME_get_index_by_NID(name, NID_pkcs9_emailAddress, position)
            guard position >= 0, let entry = X509_NAME_get_entry(name, position), let data = X509_NAME_ENTRY_get_data(entry) else { break }
            let bytes = UnsafeBufferPointer(start: ASN1_STRING_get0_data(data), count: Int(ASN1_STRING_length(data)))
            let email = String(decoding: bytes, as: UTF8.self).lowercased()
            if !found.contains(email) { found.append(email) }
        }
        return found
    }

    /// The user principal names in the SAN (Active Directory logon).
    public var userPrincipalNames: [String] {
        alternativeNames.compactMap { if case .upn(let upn) = $0 { upn } else { nil } }
    }

    /// The strong mapping string Active Directory's altSecurityIdentities takes:
    /// `X509:<I>issuer<S>subject`, each name in certificate order.
    public var activeDirectoryMapping: String { "X509:<I>\(issuer)<S>\(subject)" }

    /// The key's algorithm and size ("RSA-2048", "EC-P-256").
    public var keyDescription: String {
        guard let key = X509_get0_pubkey(x509) else { return "unknown" }
        let bits = EVP_PKEY_get_bits(key)
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA: return "RSA-\(bits)"
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            if EVP_PKEY_get_utf8_string_param(key, "group", &name, 64, nil) == 1 {
                let group = text(name)
                return "EC-" + (Curve.byGroup[group]?.name ?? group)
            }
            return "EC-\(bits)"
        default: return "other-\(bits)"
        }
    }
}
