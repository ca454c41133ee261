import COpenSSL
import FoundationEssentials
import SignetCore
import SignetOpenSSL

/// A certificate found in a directory, where it was found, and why it is refused (nothing when it is usable).
public struct DirectoryCandidate: @unchecked Sendable {
    public var certificate: Certificate
    /// The directory's URI as configured.
    public var directory: String
    /// The entry that holds it.
    public var dn: String
    /// The attribute it was read from (`userCertificate;binary`, `userSMIMECertificate`, ...).
    public var attribute: String
    /// Why it may not be encrypted to, in words; empty when it may.
    public var refusals: [String]
    /// What the revocation check found ("good (OCSP, http://...)", ...), when one was made.
    public var revocation: String?

    public var isUsable: Bool { refusals.isEmpty }
}

/// What a search of the directories found for one query.
public struct DirectoryLookupResult: @unchecked Sendable {
    public var query: String
    /// Every certificate found, usable or not, in the order found.
    public var candidates: [DirectoryCandidate] = []
    /// The newest usable certificate (by notBefore), when there is one.
    public var chosen: DirectoryCandidate? { candidates.filter(\.isUsable).max { $0.certificate.notBefore < $1.certificate.notBefore } }
    /// One line per directory asked: how it was reached, and anything left out (results over the size limit, oversized values).
    public var notes: [String] = []
    /// The directories that could not be asked, and why.
    public var failures: [DirectoryError] = []
    /// The directories searched in the clear (they offer no StartTLS, and `directory-tls = prefer`).
    public var inTheClear: [String] = []
    /// Whether the chosen certificate came from the cache (no directory was asked).
    public var fromCache = false
}

/// Finds colleagues' encryption certificates in the configured LDAP directories (issue 27): searches `mail`
/// and `proxyAddresses` for an address (or `cn` and `displayName` for a name), reads `userCertificate;binary`,
/// `userCertificate` and `userSMIMECertificate` (DER certificates and PKCS#7 SignedData), and accepts a
/// certificate only when it is valid now, chains to a root in Signet's trust store, names the address,
/// allows key encipherment or key agreement, and passes the revocation check. The newest usable one wins.
public final class DirectoryLookup {
    /// The attributes read from each entry.
    public static let certificateAttributes = ["userCertificate;binary", "userCertificate", "userSMIMECertificate"]
    /// The largest value read: a certificate, or a PKCS#7 bundle of a few, is a few kilobytes.
    public static let maximumValue = 64 << 10

    public let settings: DirectorySettings
    /// The simple-bind password, asked for only when a directory is contacted (the file, or the terminal).
    private let password: () throws(DirectoryError) -> SharedSecret
    /// Checks a usable certificate's revocation (with its path, anchor last): nil when it may be used,
    /// else why not. Set by the caller (OCSP, then CRL; or nothing with `--offline`).
    public var revocationCheck: ((Certificate, [Certificate]) -> (refusal: String?, verdict: String))?
    private let cache: DirectoryCache
    private let trust: TrustStore

    /// - Parameters:
    ///   - password: gives the simple-bind password when `settings.bind` is `simple`.
    public init(settings: DirectorySettings, cache: DirectoryCache = DirectoryCache(), trust: TrustStore = TrustStore(),
                password: @escaping () throws(DirectoryError) -> SharedSecret) {
        self.settings = settings
        self.cache = cache
        self.trust = trust
        self.password = password
    }

    /// Connects to `server` and binds as configured.
    /// - Throws: `DirectoryError` when it cannot be reached, its TLS certificate does not check, or the bind fails.
    func connect(_ server: DirectoryServer, bind: DirectorySettings.Bind? = nil) throws(DirectoryError) -> LDAPSession {
        let session = try LDAPSession(server: server, caFile: settings.caFile, timeout: settings.timeout, requireTLS: settings.tls == .require)
        switch bind ?? settings.bind {
        case .anonymous: break
        case .simple:
            guard let dn = settings.bindDN else { throw DirectoryError(directory: server.uri, reason: "directory-bind = simple needs directory-bind-dn") }
            try session.bind(dn: dn, password: try password())
        case .saslGSSAPI:
            try session.bindKerberos()
        }
        return session
    }

    /// The certificates for `query` (an address, or a name), from the cache when it holds a usable one younger
    /// than the configured time (unless `refresh`), else from the directories in order until one has a usable one.
    /// - Throws: `DirectoryError` when no directory is configured.
    public func find(_ query: String, refresh: Bool = false, now: Date = Date()) throws(DirectoryError) -> DirectoryLookupResult {
        guard !settings.servers.isEmpty else {
            throw DirectoryError(directory: "directory", reason: "no directory is configured; add directory = ldaps://host/BASE to the configuration")
        }
        var result = DirectoryLookupResult(query: query)
        if !refresh, settings.cacheSeconds > 0, let cached = cache.load(query, maximumAge: settings.cacheSeconds, now: now) {
            let candidate = evaluate(cached.certificate, extra: [], addresses: cached.addresses, directory: cached.directory, dn: cached.dn,
                                     attribute: cached.attribute, now: now)
            if candidate.isUsable {
                result.candidates = [candidate]
                result.fromCache = true
                result.notes = ["from the cache (found \(Dates.text(cached.fetched)) in \(cached.directory); `--refresh` asks again)"]
                return result
            }
        }
        for server in settings.servers {
            do {
                let session = try connect(server)
                let (entries, truncated) = try session.search(base: server.base, filter: DirectoryFilter.filter(for: query),
                                                              attributes: Self.certificateAttributes + ["mail", "proxyAddresses", "cn"],
                                                              sizeLimit: settings.sizeLimit, valueLimit: Self.maximumValue, timeout: settings.timeout)
                var note = "\(server.uri): \(session.security.rawValue), \(entries.count) entr\(entries.count == 1 ? "y" : "ies")"
                if truncated { note += "; more entries match than directory-size-limit = \(settings.sizeLimit), only the first are shown" }
                for entry in entries where !entry.oversized.isEmpty {
                    note += "; \(entry.dn): values of \(Set(entry.oversized).sorted().joined(separator: ", ")) over \(Self.maximumValue >> 10) KiB left out"
                }
                result.notes.append(note)
                if session.security == .plain { result.inTheClear.append(server.uri) }
                for entry in entries { result.candidates += candidates(in: entry, query: query, directory: server.uri, now: now) }
                if result.chosen != nil { break }
            } catch {
                result.failures.append(error)
            }
        }
        if let chosen = result.chosen, settings.cacheSeconds > 0 {
            cache.store(query, candidate: chosen, addresses: addresses(for: query, entryAddresses: chosen.certificate.emails), now: now)
        }
        return result
    }

    /// The addresses a certificate for `query` must name: the address itself, or for a name the entry's addresses.
    private func addresses(for query: String, entryAddresses: [String]) -> [String] {
        DirectoryFilter.isAddress(query) ? [query.lowercased()] : entryAddresses.map { $0.lowercased() }
    }

    /// Every certificate in `entry`, each judged.
    private func candidates(in entry: LDAPSession.Entry, query: String, directory: String, now: Date) -> [DirectoryCandidate] {
        var entryAddresses: [String] = []
        for (attribute, value) in entry.values {
            let name = attribute.lowercased()
            let text = String(decoding: value, as: UTF8.self)
            if name == "mail" { entryAddresses.append(text) }
            if name == "proxyaddresses", text.lowercased().hasPrefix("smtp:") { entryAddresses.append(String(text.dropFirst(5))) }
        }
        let required = addresses(for: query, entryAddresses: entryAddresses)
        var found: [DirectoryCandidate] = []
        for (attribute, value) in entry.values where Self.certificateAttributes.contains(where: { attribute.lowercased().hasPrefix($0.lowercased().split(separator: ";")[0]) }) {
            guard let contents = try? CertificateFile.read(value) else { continue }
            let authorities = contents.certificates.filter(\.isAuthority)
            for certificate in contents.certificates where !certificate.isAuthority {
                found.append(evaluate(certificate, extra: authorities, addresses: required, directory: directory, dn: entry.dn,
                                      attribute: attribute, now: now))
            }
        }
        return found
    }

    /// Judges one certificate: valid now, chains to a trusted root, names one of `addresses`, fit for encryption, not revoked.
    func evaluate(_ certificate: Certificate, extra: [Certificate], addresses: [String], directory: String, dn: String,
                  attribute: String, now: Date) -> DirectoryCandidate {
        var refusals: [String] = []
        switch certificate.validity(at: now) {
        case .valid: break
        case .expired: refusals.append("expired on \(Dates.day(certificate.notAfter))")
        case .notYetValid: refusals.append("not valid until \(Dates.day(certificate.notBefore))")
        }
        let named = certificate.emails
        if !addresses.contains(where: { named.contains($0.lowercased()) }) {
            refusals.append("it does not name \(addresses.isEmpty ? "an address of the entry" : addresses.joined(separator: " or ")) "
                            + "(it names \(named.isEmpty ? "no address" : named.joined(separator: ", ")))")
        }
        if let usage = certificate.keyUsage, !usage.contains(.keyEncipherment), !usage.contains(.keyAgreement) {
            refusals.append("its key usage allows no encryption (no keyEncipherment or keyAgreement; it has \(usage.names.joined(separator: ", ")))")
        }
        if let eku = certificate.extendedKeyUsage, !eku.contains("emailProtection"), !eku.contains("anyExtendedKeyUsage") {
            refusals.append("no emailProtection extended key usage")
        }
        let stored = trust.entries().map(\.certificate)
        let (outcome, path) = ChainVerifier.verify(certificate, anchors: stored.filter(\.isSelfSigned),
                                                   intermediates: stored.filter { !$0.isSelfSigned } + extra, at: now,
                                                   purpose: X509_PURPOSE_SMIME_ENCRYPT)
        switch outcome {
        case .trusted: break
        case .untrusted(let why), .revoked(let why), .revocationUnknown(let why):
            refusals.append("it does not chain to a root in Signet's trust store (\(why)); `signet trust add ROOT.pem` if you trust its CA")
        case .expired, .notYetValid:
            if certificate.validity(at: now) == .valid { refusals.append("a CA certificate of its path is not valid now") }
        }
        var candidate = DirectoryCandidate(certificate: certificate, directory: directory, dn: dn, attribute: attribute, refusals: refusals)
        if refusals.isEmpty, let check = revocationCheck {
            let (refusal, verdict) = check(certificate, path)
            candidate.revocation = verdict
            if let refusal { candidate.refusals.append(refusal) }
        }
        return candidate
    }
}

/// Dates as the directory commands print them.
enum Dates {
    static func day(_ date: Date) -> String { String(text(date).prefix(10)) }
    static func text(_ date: Date) -> String { UTCTime.format(date.timeIntervalSince1970) }
}
