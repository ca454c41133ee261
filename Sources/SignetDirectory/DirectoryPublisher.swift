import CLDAP
import COpenSSL
import SignetCore
import SignetOpenSSL

/// Publishes your certificate to your own directory entry (`signet cert publish`) and removes it again
/// (`signet cert unpublish`, after a renewal). Your entry is the one you bind as (`directory-bind = simple` and
/// `directory-bind-dn`, or the entry the directory maps your Kerberos principal to with `directory-bind = sasl-gssapi`),
/// in the first configured directory: publishing writes as you, never as an administrator.
public enum DirectoryPublisher {
    /// One change made (or not needed) to one attribute.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public var directory: String
        public var dn: String
        public var attribute: String
        /// "added", "already there", "removed", or why nothing was done.
        public var outcome: String

        public var description: String { "\(attribute) of \(dn) in \(directory): \(outcome)" }
    }

    /// The certificate attributes written: DER in `userCertificate;binary`, and a PKCS#7 SignedData (the
    /// certificate and its issuers) in `userSMIMECertificate`, which Outlook reads, when the entry's schema has it.
    static let certificateAttribute = "userCertificate;binary"
    static let smimeAttribute = "userSMIMECertificate"

    /// Your entry and the session bound as you.
    private static func ownEntry(_ lookup: DirectoryLookup) throws(DirectoryError) -> (LDAPSession, LDAPSession.Entry) {
        let settings = lookup.settings
        guard let server = settings.servers.first else {
            throw DirectoryError(directory: "directory", reason: "no directory is configured; add directory = ldaps://host/BASE to the configuration")
        }
        let session: LDAPSession
        let dn: String
        switch settings.bind {
        case .simple:
            guard let bindDN = settings.bindDN else { throw DirectoryError(directory: server.uri, reason: "directory-bind = simple needs directory-bind-dn") }
            session = try lookup.connect(server)
            dn = bindDN
        case .saslGSSAPI:
            // Your entry is the one the directory maps your Kerberos principal to.
            session = try lookup.connect(server)
            let (bound, identity) = try session.boundEntry()
            guard let bound else {
                throw DirectoryError(directory: server.uri, reason: "the directory maps your Kerberos principal to no entry (it sees you as "
                                     + "\(Console.safe(identity.isEmpty ? "anonymous" : identity))); its administrator maps principals to "
                                     + "entries (OpenLDAP: olcAuthzRegexp); nothing was published")
            }
            dn = bound
        case .anonymous:
            throw DirectoryError(directory: server.uri, reason: "publishing writes to your own entry, as you: set directory-bind = sasl-gssapi "
                                 + "(your Kerberos ticket), or directory-bind = simple and directory-bind-dn = YOUR-ENTRY'S-DN "
                                 + "(and directory-password-file, mode 0600)")
        }
        let (entries, _) = try session.search(base: dn, filter: "(objectClass=*)",
                                              attributes: ["mail", "proxyAddresses", certificateAttribute, smimeAttribute],
                                              sizeLimit: 1, valueLimit: DirectoryLookup.maximumValue, timeout: settings.timeout, baseOnly: true)
        guard let entry = entries.first else { throw DirectoryError(directory: server.uri, reason: "your entry \(dn) was not found") }
        return (session, entry)
    }

    /// The addresses of `entry` (`mail`, and `smtp:` values of `proxyAddresses`), lower-cased.
    static func addresses(_ entry: LDAPSession.Entry) -> [String] {
        entry.values.compactMap { attribute, value -> String? in
            let text = String(decoding: value, as: UTF8.self)
            switch attribute.lowercased() {
            case "mail": return text.lowercased()
            case "proxyaddresses" where text.lowercased().hasPrefix("smtp:"): return String(text.dropFirst(5)).lowercased()
            default: return nil
            }
        }
    }

    /// The values of `attribute` in `entry` (the name compared without case, and without `;binary` when not asked).
    static func values(_ entry: LDAPSession.Entry, _ attribute: String) -> [[UInt8]] {
        let base = attribute.lowercased().split(separator: ";")[0]
        return entry.values.filter { $0.attribute.lowercased().split(separator: ";")[0] == base }.map(\.value)
    }

    /// Adds `certificate` to your entry, after checking that the entry's address is one the certificate names.
    /// - Parameter chain: its issuing CAs, for the PKCS#7 in `userSMIMECertificate`.
    /// - Throws: `DirectoryError` when the directory cannot be reached or bound to, the entry's address does not
    ///   match, or the directory refuses the change.
    public static func publish(_ certificate: Certificate, chain: [Certificate], lookup: DirectoryLookup) throws(DirectoryError) -> [Change] {
        let (session, entry) = try ownEntry(lookup)
        let directory = session.server.uri
        let entryAddresses = addresses(entry)
        guard certificate.emails.contains(where: entryAddresses.contains) else {
            throw DirectoryError(directory: directory, reason: "your entry \(entry.dn) has the address\(entryAddresses.count == 1 ? "" : "es") "
                                 + "\(entryAddresses.isEmpty ? "(none)" : entryAddresses.joined(separator: ", ")), and the certificate is for "
                                 + "\(certificate.emails.isEmpty ? "no address" : certificate.emails.joined(separator: ", ")); nothing was published")
        }
        var changes: [Change] = []
        let der = certificate.der
        if values(entry, certificateAttribute).contains(der) {
            changes.append(Change(directory: directory, dn: entry.dn, attribute: certificateAttribute, outcome: "already there"))
        } else {
            try session.modify(dn: entry.dn, add: true, attribute: certificateAttribute, values: [der])
            changes.append(Change(directory: directory, dn: entry.dn, attribute: certificateAttribute, outcome: "added"))
        }
        let holding = values(entry, smimeAttribute).contains { value in
            (try? CertificateFile.read(value))?.certificates.contains { $0.der == der } ?? false
        }
        if holding {
            changes.append(Change(directory: directory, dn: entry.dn, attribute: smimeAttribute, outcome: "already there"))
        } else if let bundle = pkcs7(certificate, chain: chain) {
            do {
                try session.modify(dn: entry.dn, add: true, attribute: smimeAttribute, values: [bundle])
                changes.append(Change(directory: directory, dn: entry.dn, attribute: smimeAttribute, outcome: "added"))
            } catch where [LDAP_UNDEFINED_TYPE, LDAP_OBJECT_CLASS_VIOLATION, LDAP_NO_SUCH_ATTRIBUTE].contains(error.code) {
                changes.append(Change(directory: directory, dn: entry.dn, attribute: smimeAttribute,
                                      outcome: "not written: the entry's schema has no such attribute"))
            }
        }
        return changes
    }

    /// Removes the certificate whose fingerprint starts with `id` (8 or more hex digits) from your entry: its
    /// `userCertificate` value and any `userSMIMECertificate` bundle holding it.
    /// - Throws: `DirectoryError` when the entry holds no such certificate, or the directory refuses.
    public static func unpublish(id: String, lookup: DirectoryLookup) throws(DirectoryError) -> [Change] {
        let (session, entry) = try ownEntry(lookup)
        let prefix = id.lowercased().filter { $0 != ":" }
        guard prefix.count >= 8 else {
            throw DirectoryError(directory: session.server.uri, reason: "give at least 8 hex digits of the certificate's fingerprint (its id)")
        }
        let matches = { (value: [UInt8]) -> Bool in
            (try? CertificateFile.read(value))?.certificates.contains { $0.sha256.lowercased().hasPrefix(prefix) && !$0.isAuthority } ?? false
        }
        var changes: [Change] = []
        for attribute in [certificateAttribute, smimeAttribute] {
            let present = values(entry, attribute)
            let doomed = present.filter(matches)
            guard !doomed.isEmpty else { continue }
            do {
                try session.modify(dn: entry.dn, add: false, attribute: attribute, values: doomed)
            } catch where error.code == LDAP_INAPPROPRIATE_MATCHING {
                // No equality rule for the attribute (userSMIMECertificate in OpenLDAP's schema): keep the others by replacing.
                try session.replace(dn: entry.dn, attribute: attribute, values: present.filter { !matches($0) })
            }
            changes.append(Change(directory: session.server.uri, dn: entry.dn, attribute: attribute,
                                  outcome: "removed \(doomed.count) value\(doomed.count == 1 ? "" : "s")"))
        }
        guard !changes.isEmpty else {
            throw DirectoryError(directory: session.server.uri, reason: "your entry \(entry.dn) holds no certificate with the id \(id); nothing was changed")
        }
        return changes
    }

    /// A PKCS#7 SignedData (certs-only) holding `certificate` and `chain`, DER, as Outlook stores in `userSMIMECertificate`.
    static func pkcs7(_ certificate: Certificate, chain: [Certificate]) -> [UInt8]? {
        guard let p7 = PKCS7_new() else { return nil }
        defer { PKCS7_free(p7) }
        guard PKCS7_set_type(p7, NID_pkcs7_signed) == 1, PKCS7_content_new(p7, NID_pkcs7_data) == 1 else { return nil }
        for member in [certificate] + chain {
            let der = member.der
            let x509: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
                var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
                return d2i_X509(nil, &cursor, buffer.count)
            }
            guard let x509 else { return nil }
            defer { X509_free(x509) }
            guard PKCS7_add_certificate(p7, x509) == 1 else { return nil }  // takes its own reference
        }
        var out: UnsafeMutablePointer<UInt8>?
        let length = i2d_PKCS7(p7, &out)
        guard length > 0, let out else { return nil }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }
}
