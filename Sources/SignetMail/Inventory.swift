import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// What the tokens hold, as the agent lists it, with certificates parsed here
/// (never in the agent) and each certificate linked to its key by public key.
public struct Inventory {
    public struct Key {
        public var entry: ObjectEntry
        /// The certificates whose public key is this key's.
        public var certificates: [Certificate] = []

        public init(entry: ObjectEntry, certificates: [Certificate] = []) {
            self.entry = entry
            self.certificates = certificates
        }
    }

    public struct Installed {
        public var entry: ObjectEntry
        public var certificate: Certificate
        /// The certificate's SubjectPublicKeyInfo (encoded once).
        public var publicKeyInfo: [UInt8]
        /// The private key with the same public key, when the token shows one.
        public var privateKey: ObjectEntry?
        /// A public key with the same public key (visible without unlocking).
        public var publicKey: ObjectEntry?
        /// Short id: the first 16 hex digits of the SHA-256 fingerprint.
        public var id: String { TrustStore.id(certificate) }
        /// The CKA_ID the certificate should carry: its key's.
        public var keyID: [UInt8]? { privateKey?.id ?? publicKey?.id }

        public init(entry: ObjectEntry, certificate: Certificate, publicKeyInfo: [UInt8], privateKey: ObjectEntry? = nil, publicKey: ObjectEntry? = nil) {
            self.entry = entry
            self.certificate = certificate
            self.publicKeyInfo = publicKeyInfo
            self.privateKey = privateKey
            self.publicKey = publicKey
        }
    }

    public var objects: [ObjectEntry]
    public var keys: [Key]
    public var certificates: [Installed]

    public init(objects: [ObjectEntry], keys: [Key], certificates: [Installed]) {
        self.objects = objects
        self.keys = keys
        self.certificates = certificates
    }

    /// Lists every token (or `token`) through the agent.
    /// - Throws: `SignetError` when the agent fails.
    public static func load(client: AgentClient, token: String? = nil) throws(SignetError) -> Inventory {
        let (objects, values) = try listObjects(client: client, token: token, certificateValues: true)
        var certificates: [Installed] = []
        for (entry, value) in zip(objects, values) where entry.kind == .certificate {
            var der = value
            if der.isEmpty {  // too large to share a page
                guard case .certificate(let read) = try client.request(.getCertificate(object: entry.uri)) else { continue }
                der = read
            }
            guard let certificate = try? Certificate(der: der) else { continue }
            let spki = certificate.subjectPublicKeyInfo
            certificates.append(Installed(
                entry: entry, certificate: certificate, publicKeyInfo: spki,
                privateKey: objects.first { $0.kind == .privateKey && $0.publicKeyInfo == spki },
                publicKey: objects.first { $0.kind == .publicKey && $0.publicKeyInfo == spki }))
        }
        var keys: [Key] = []
        for entry in objects where entry.kind == .privateKey {
            let linked = certificates.filter { $0.publicKeyInfo == entry.publicKeyInfo && !entry.publicKeyInfo.isEmpty }
            keys.append(Key(entry: entry, certificates: linked.map(\.certificate)))
        }
        return Inventory(objects: objects, keys: keys, certificates: certificates)
    }

    /// Every object on every token (or `token`), a page at a time, so that any number fits through the
    /// agent's frames; with `certificateValues`, each certificate's DER comes in the same pages
    /// (`values` has one element per entry, empty for keys and for a certificate too large for a page).
    /// One round trip for a token of a few dozen objects.
    public static func listObjects(client: AgentClient, token: String?, certificateValues: Bool) throws(SignetError)
        -> (entries: [ObjectEntry], values: [[UInt8]]) {
        try ObjectPaging.collect(fetch: { (start) throws(SignetError) -> ObjectPage in
            guard case .objectPage(let page) = try client.request(.listObjectPage(token: token, start: start, certificateValues: certificateValues))
            else { throw SignetError.unexpectedAnswer }
            return page
        }, failing: { _ in SignetError.unexpectedAnswer })
    }

    /// The certificate whose id or fingerprint starts with `id` (8+ hex digits), or whose URI is `id`.
    /// - Throws: `SignetError` when none matches or the id is ambiguous.
    public func certificate(_ id: String) throws(SignetError) -> Installed {
        let matches = matching(id)
        guard let match = matches.first else {
            throw SignetError(.failure, "No certificate on the tokens has the id \(id) (neither as the start of its fingerprint nor as "
                           + "its key's PKCS#11 id). `signet cert list` shows the ids (unlock the token first if it is locked).")
        }
        guard matches.count == 1 || matches.allSatisfy({ $0.certificate.sha256 == match.certificate.sha256 }) else {
            throw SignetError(.failure, "\(id) matches \(matches.count) certificates; give more digits.")
        }
        return match
    }

    /// The certificates whose id or fingerprint starts with `id` (8+ hex digits), whose URI is `id`, or whose
    /// PKCS#11 CKA_ID (the key id `signet keys` and other PKCS#11 tools show) is `id` or starts with it (8+ hex digits).
    public func matching(_ id: String) -> [Installed] {
        let prefix = id.lowercased().filter { $0 != ":" }
        let byFingerprint = certificates.filter { $0.entry.uri == id || (prefix.count >= 8 && $0.certificate.sha256.lowercased().hasPrefix(prefix)) }
        guard byFingerprint.isEmpty, !prefix.isEmpty, prefix.allSatisfy(\.isHexDigit) else { return byFingerprint }
        return certificates.filter { installed in
            [installed.entry.id, installed.keyID ?? []].contains { keyID in
                let hex = Hex.encode(keyID)
                return !keyID.isEmpty && (hex == prefix || (prefix.count >= 8 && hex.hasPrefix(prefix)))
            }
        }
    }

    /// The private key named by a URI, a hex CKA_ID or a label.
    /// - Throws: `SignetError` when none or several match.
    public func privateKey(_ name: String) throws(SignetError) -> ObjectEntry {
        let matches = objects.filter { entry in
            entry.kind == .privateKey && (entry.uri == name || Hex.encode(entry.id).lowercased() == name.lowercased() || entry.label == name)
        }
        guard let match = matches.first else {
            throw SignetError(.failure, "No private key named \(name) is visible. Unlock the token (`signet unlock`) and see `signet key list`.")
        }
        guard matches.count == 1 else { throw SignetError(.failure, "\(name) names \(matches.count) keys; use the key's URI.") }
        return match
    }
}

