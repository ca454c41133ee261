import FoundationEssentials
import SignetCore

/// The CA certificates Signet trusts: one PEM file per certificate under
/// `$XDG_DATA_HOME/signet/trust/`, named by its SHA-256 fingerprint. Used to
/// build chains when installing certificates and (later) to verify mail.
public struct TrustStore: Sendable {
    /// The directory holding the certificates.
    public let directory: String

    public init(paths: SignetPaths = .current) { directory = paths.data + "/trust" }

    /// A folder of certificates kept the same way but not trusted: the certificates of
    /// people who sent you signed mail (`$XDG_DATA_HOME/signet/people/`), to encrypt to them.
    public static func correspondents(paths: SignetPaths = .current) -> TrustStore { TrustStore(directory: paths.data + "/people") }

    private init(directory: String) { self.directory = directory }

    /// A trusted certificate and its short id (the first 16 hex digits of its SHA-256 fingerprint).
    public struct Entry {
        public var id: String
        public var certificate: Certificate
    }

    /// The short id used in commands.
    public static func id(_ certificate: Certificate) -> String { String(certificate.sha256.lowercased().prefix(16)) }

    /// Every trusted certificate; unreadable files are skipped.
    public func entries() -> [Entry] {
        FileIO.names(in: directory).filter { $0.hasSuffix(".pem") }.sorted().compactMap { name in
            guard let bytes = FileIO.readBytes(directory + "/" + name, limit: CertificateFile.maximumSize),
                  let contents = try? CertificateFile.read(bytes), let certificate = contents.certificates.first else { return nil }
            return Entry(id: TrustStore.id(certificate), certificate: certificate)
        }
    }

    /// Whether `certificate` is in the store.
    public func contains(_ certificate: Certificate) -> Bool {
        FileIO.exists(path(certificate))
    }

    private func path(_ certificate: Certificate) -> String { directory + "/" + certificate.sha256.lowercased() + ".pem" }

    /// Adds `certificate`; returns false when it was already there.
    /// - Throws: a file-system error when the directory cannot be written.
    @discardableResult
    public func add(_ certificate: Certificate) throws -> Bool {
        if contains(certificate) { return false }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileIO.writeAtomically(path(certificate), text: certificate.pem, mode: 0o644) else {
            throw CocoaError(.fileWriteUnknown, userInfo: ["NSFilePath": path(certificate)])
        }
        return true
    }

    /// Removes the certificates whose id or fingerprint starts with `id` (at least 8 hex digits).
    /// - Returns: the removed certificates (empty when none matched).
    /// - Throws: `TrustStoreError.ambiguous` when the prefix names more than one.
    public func remove(id: String) throws -> [Certificate] {
        let matches = matching(id)
        guard matches.count <= 1 else { throw TrustStoreError(description: "\(id) matches \(matches.count) certificates; give more digits of the id.") }
        for entry in matches { try FileManager.default.removeItem(atPath: path(entry.certificate)) }
        return matches.map(\.certificate)
    }

    /// Entries whose id or SHA-256 fingerprint starts with `id`.
    public func matching(_ id: String) -> [Entry] {
        let prefix = id.lowercased().filter { $0 != ":" }
        guard prefix.count >= 8 else { return [] }
        return entries().filter { $0.certificate.sha256.lowercased().hasPrefix(prefix) }
    }

    /// The issuers of `certificate` up to a root, from `candidates` and the store (nearest first).
    public func chain(for certificate: Certificate, candidates: [Certificate] = []) -> [Certificate] {
        let pool = candidates + entries().map(\.certificate)
        var chain: [Certificate] = []
        var current = certificate
        while !current.isSelfSigned, chain.count < 8, let issuer = pool.first(where: { current.isIssued(by: $0) }) {
            if issuer.sha256 == certificate.sha256 || chain.contains(where: { $0.sha256 == issuer.sha256 }) { break }
            chain.append(issuer)
            current = issuer
        }
        return chain
    }
}

/// A trust-store command that cannot be carried out.
public struct TrustStoreError: Error, CustomStringConvertible {
    public var description: String
}
