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

    /// Makes and signs a request with SHA-256 (or `digest`: "sha256", "sha384", "sha512").
    /// - Returns: the DER request.
    /// - Throws: `OpenSSLError`, or the agent's error when the token refused to sign (not unlocked, absent).
    public static func make(subject: DistinguishedName, names: AlternativeNames, key: AgentKey, digest: String = "sha256") throws -> [UInt8] {
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
        if !names.isEmpty {
            let added = withCStrings(names.emails) { emails in
                withCStrings(names.dnsNames) { dns in
                    withCStrings(names.userPrincipalNames) { upns in
                        CSignetCrypto_requestAddAlternativeNames(request, emails, Int32(names.emails.count), dns, Int32(names.dnsNames.count),
                                                                 upns, Int32(names.userPrincipalNames.count))
                    }
                }
            }
            guard added == 1 else { throw OpenSSLError("Adding the subject alternative names") }
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
