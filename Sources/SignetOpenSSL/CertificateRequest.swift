import COpenSSL
import CSignetCrypto
import SignetCore

/// A PKCS#10 certificate signing request, signed by a key on the token.
///
/// Built with OpenSSL (`X509_REQ`) and an `AgentKey`: the same delegating
/// key that S/MIME signing uses, so one code path signs everything and
/// OpenSSL encodes the signature (ECDSA as DER) the way `openssl req -verify` expects.
public enum CertificateRequest {
    /// Subject alternative names to request.
    public struct AlternativeNames: Sendable {
        public var emails: [String] = []
        public var dnsNames: [String] = []
        /// Microsoft user principal names (otherName 1.3.6.1.4.1.311.20.2.3).
        public var userPrincipalNames: [String] = []
        public init(emails: [String] = [], dnsNames: [String] = [], userPrincipalNames: [String] = []) {
            self.emails = emails; self.dnsNames = dnsNames; self.userPrincipalNames = userPrincipalNames
        }
        var isEmpty: Bool { emails.isEmpty && dnsNames.isEmpty && userPrincipalNames.isEmpty }
    }

    /// A request option `signet csr` refuses, with what to write instead.
    public struct OptionError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The purposes `purpose` names ("mail", "login", "mail,login"), checked with the rest of a request's options:
    /// the digest is SHA-256, -384 or -512; a UPN only with login (it maps a login certificate to an account), and
    /// each as user@domain.
    public static func checkedOptions(purpose: String, userPrincipalNames: [String], digest: String) throws(OptionError) -> Purposes {
        guard ["sha256", "sha384", "sha512"].contains(digest) else { throw OptionError(description: "--digest must be sha256, sha384 or sha512.") }
        guard let purposes = Purposes(parsing: purpose) else {
            throw OptionError(description: "--purpose must be mail, login or mail,login (not \"\(Console.safe(purpose))\").")
        }
        guard userPrincipalNames.isEmpty || purposes.contains(.login) else {
            throw OptionError(description: "A UPN (--upn) maps a login certificate to an account; add --purpose login (or mail,login).")
        }
        for name in userPrincipalNames where !name.contains("@") {
            throw OptionError(description: "The UPN \"\(Console.safe(name))\" has no @domain; write it as user@domain, as in Active Directory.")
        }
        return purposes
    }

    /// What the certificate is to be used for; each asks for its extended key usage and key usage bits.
    public struct Purposes: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// S/MIME: `emailProtection`; digitalSignature, and keyEncipherment (RSA) or keyAgreement (EC) to decrypt.
        public static let mail = Purposes(rawValue: 1)
        /// TLS client login (webmail, VPN): `clientAuth`; digitalSignature.
        public static let login = Purposes(rawValue: 2)

        /// The names `--purpose` takes, in the order they are listed.
        public static let names: [(String, Purposes)] = [("mail", .mail), ("login", .login)]

        /// Parses "mail", "login", "mail,login"; nil for an unknown or empty name.
        public init?(parsing text: String) {
            var purposes: Purposes = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let name = String(part).trimmingSpaces().lowercased()
                guard let found = Purposes.names.first(where: { $0.0 == name }) else { return nil }
                purposes.insert(found.1)
            }
            guard !purposes.isEmpty else { return nil }
            self = purposes
        }

        /// The extendedKeyUsage OIDs to ask for.
        var extendedKeyUsages: [String] {
            (contains(.mail) ? ["1.3.6.1.5.5.7.3.4"] : []) + (contains(.login) ? ["1.3.6.1.5.5.7.3.2"] : [])
        }

        /// The keyUsage bits (1 << bit number, RFC 5280 §4.2.1.3) for a key of this kind.
        func keyUsageBits(elliptic: Bool) -> Int32 {
            guard !isEmpty else { return 0 }
            let digitalSignature: Int32 = 1 << 0, keyEncipherment: Int32 = 1 << 2, keyAgreement: Int32 = 1 << 4
            return digitalSignature | (contains(.mail) ? (elliptic ? keyAgreement : keyEncipherment) : 0)
        }
    }

    /// Makes and signs a request with SHA-256 (or `digest`: "sha256", "sha384", "sha512"), asking for the
    /// extensions `purposes` need (none when empty).
    /// - Returns: the DER request.
    /// - Throws: `OpenSSLError`, or the agent's error when the token refused to sign (not unlocked, absent).
    public static func make(subject: DistinguishedName, names: AlternativeNames, purposes: Purposes = [], key: AgentKey,
                            digest: String = "sha256") throws -> [UInt8] {
        OpenSSLError.drain()
        guard let request = X509_REQ_new() else { throw OpenSSLError("X509_REQ_new") }
        defer { X509_REQ_free(request) }
        guard X509_REQ_set_version(request, 0) == 1 else { throw OpenSSLError("X509_REQ_set_version") }
        guard let name = X509_NAME_new() else { throw OpenSSLError("X509_NAME_new") }
        defer { X509_NAME_free(name) }
        for rdn in subject.relativeNames {
            for (index, attribute) in rdn.enumerated() {
                // set 0: a new RDN; -1: joins the previous one (a multi-valued RDN).
                let added = X509_NAME_add_entry_by_txt(name, attribute.type, MBSTRING_UTF8, attribute.value, -1, -1, index == 0 ? 0 : -1)
                guard added == 1 else { throw OpenSSLError("The subject attribute \(attribute.type)=\(attribute.value) is not allowed") }
            }
        }
        guard X509_REQ_set_subject_name(request, name) == 1 else { throw OpenSSLError("X509_REQ_set_subject_name") }
        guard X509_REQ_set_pubkey(request, key.pkey) == 1 else { throw OpenSSLError("X509_REQ_set_pubkey") }
        if !names.isEmpty || !purposes.isEmpty {
            let elliptic = EVP_PKEY_get_base_id(key.pkey) == EVP_PKEY_EC
            let usages = purposes.extendedKeyUsages
            let added = withCStrings(names.emails) { emails in
                withCStrings(names.dnsNames) { dns in
                    withCStrings(names.userPrincipalNames) { upns in
                        withCStrings(usages) { usageOIDs in
                            CSignetCrypto_requestAddExtensions(request, emails, Int32(names.emails.count), dns, Int32(names.dnsNames.count),
                                                               upns, Int32(names.userPrincipalNames.count),
                                                               purposes.keyUsageBits(elliptic: elliptic), usageOIDs, Int32(usages.count))
                        }
                    }
                }
            }
            guard added == 1 else { throw OpenSSLError("Adding the requested extensions (alternative names, key usage)") }
        }
        guard let md = EVP_get_digestbyname(digest) else { throw OpenSSLError("Unknown digest \(digest)") }
        guard X509_REQ_sign(request, key.pkey, md) > 0 else { throw key.failure("Signing the request on the token") }
        return try encodeDER(request, { i2d_X509_REQ($0, $1) })
    }

    /// PEM `CERTIFICATE REQUEST`.
    public static func pem(_ der: [UInt8]) -> String { PEM.encode(der, label: "CERTIFICATE REQUEST") }
}

/// Calls `body` with a C array of C strings that live for the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers = duplicates.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
