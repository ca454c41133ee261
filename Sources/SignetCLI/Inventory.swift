import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// What the tokens hold, as the agent lists it, with certificates parsed here
/// (never in the agent) and each certificate linked to its key by public key.
struct Inventory {
    struct Key {
        var entry: ObjectEntry
        /// The certificates whose public key is this key's.
        var certificates: [Certificate] = []
    }

    struct Installed {
        var entry: ObjectEntry
        var certificate: Certificate
        /// The certificate's SubjectPublicKeyInfo (encoded once).
        var publicKeyInfo: [UInt8]
        /// The private key with the same public key, when the token shows one.
        var privateKey: ObjectEntry?
        /// A public key with the same public key (visible without unlocking).
        var publicKey: ObjectEntry?
        /// Short id: the first 16 hex digits of the SHA-256 fingerprint.
        var id: String { TrustStore.id(certificate) }
        /// The CKA_ID the certificate should carry: its key's.
        var keyID: [UInt8]? { privateKey?.id ?? publicKey?.id }
    }

    var objects: [ObjectEntry]
    var keys: [Key]
    var certificates: [Installed]

    /// Lists every token (or `token`) through the agent.
    static func load(client: AgentClient, token: String? = nil) throws -> Inventory {
        guard case .objects(let objects) = try Agent.call(.listObjects(token: token), client: client) else {
            throw CLIError(description: "unexpected answer from the agent").reported()
        }
        var certificates: [Installed] = []
        for entry in objects where entry.kind == .certificate {
            guard case .certificate(let der) = try Agent.call(.getCertificate(object: entry.uri), client: client),
                  let certificate = try? Certificate(der: der) else { continue }
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

    /// The certificate whose id or fingerprint starts with `id` (8+ hex digits), or whose URI is `id`.
    func certificate(_ id: String) throws -> Installed {
        let matches = matching(id)
        guard let match = matches.first else {
            throw CLIError(description: "No certificate on the tokens has the id \(id) (neither as the start of its fingerprint nor as "
                           + "its key's PKCS#11 id). `signet cert list` shows the ids (unlock the token first if it is locked).").reported()
        }
        guard matches.count == 1 || matches.allSatisfy({ $0.certificate.sha256 == match.certificate.sha256 }) else {
            throw CLIError(description: "\(id) matches \(matches.count) certificates; give more digits.").reported()
        }
        return match
    }

    /// The certificates whose id or fingerprint starts with `id` (8+ hex digits), whose URI is `id`, or whose
    /// PKCS#11 CKA_ID (the key id `signet keys` and other PKCS#11 tools show) is `id` or starts with it (8+ hex digits).
    func matching(_ id: String) -> [Installed] {
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
    func privateKey(_ name: String) throws -> ObjectEntry {
        let matches = objects.filter { entry in
            entry.kind == .privateKey && (entry.uri == name || Hex.encode(entry.id).lowercased() == name.lowercased() || entry.label == name)
        }
        guard let match = matches.first else {
            throw CLIError(description: "No private key named \(name) is visible. Unlock the token (`signet unlock`) and see `signet key list`.",
                           exitCode: 1).reported()
        }
        guard matches.count == 1 else { throw CLIError(description: "\(name) names \(matches.count) keys; use the key's URI.").reported() }
        return match
    }
}

/// Which certificate signs and which encrypts (enrollment issue, part 7).
enum CertificateChoice {
    enum Purpose: String { case signing, encryption }

    /// The configuration entry that pins the choice: `signing-certificate = <id>` / `encryption-certificate = <id>`.
    static func configKey(_ purpose: Purpose) -> String { "\(purpose.rawValue)-certificate" }

    /// Whether `certificate` may be used for `purpose` now.
    static func fits(_ certificate: Certificate, _ purpose: Purpose, at date: Date = Date()) -> Bool {
        guard certificate.validity(at: date) == .valid, !certificate.isAuthority else { return false }
        if let eku = certificate.extendedKeyUsage, !eku.contains("emailProtection"), !eku.contains("anyExtendedKeyUsage") { return false }
        guard let usage = certificate.keyUsage else { return true }
        switch purpose {
        case .signing: return usage.contains(.digitalSignature) || usage.contains(.nonRepudiation)
        case .encryption: return usage.contains(.keyEncipherment) || usage.contains(.keyAgreement)
        }
    }

    /// The default certificate for `purpose` among those whose key is present:
    /// the pinned one when configured, else one that fits (matching `email` when given), newest first.
    static func choose(_ purpose: Purpose, from installed: [Inventory.Installed], email: String? = nil,
                       config: SignetConfig = .load(), at date: Date = Date()) -> Inventory.Installed? {
        let withKey = installed.filter { $0.privateKey != nil || $0.publicKey != nil }
        if let pinned = config.value(configKey(purpose))?.lowercased() {
            return withKey.first { $0.certificate.sha256.lowercased().hasPrefix(pinned) || $0.entry.uri == pinned }
        }
        let candidates = withKey.filter { fits($0.certificate, purpose, at: date) }
            .filter { email == nil || $0.certificate.emails.contains(email!.lowercased()) }
        return candidates.max { $0.certificate.notBefore < $1.certificate.notBefore }
    }
}
