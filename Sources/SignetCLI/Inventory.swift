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
        reasons(certificate, purpose, at: date).isEmpty
    }

    /// Why `certificate` may not be used for `purpose` at `date`, in words (empty when it may).
    static func reasons(_ certificate: Certificate, _ purpose: Purpose, at date: Date = Date()) -> [String] {
        var reasons: [String] = []
        switch certificate.validity(at: date) {
        case .valid: break
        case .expired: reasons.append("expired on \(Dates.day(certificate.notAfter))")
        case .notYetValid: reasons.append("not valid until \(Dates.day(certificate.notBefore))")
        }
        if certificate.isAuthority { reasons.append("it is a CA certificate (basicConstraints CA:TRUE), as `openssl req -x509` makes by default") }
        if let eku = certificate.extendedKeyUsage, !eku.contains("emailProtection"), !eku.contains("anyExtendedKeyUsage") {
            reasons.append("no emailProtection extended key usage (it has \(eku.isEmpty ? "none" : eku.joined(separator: ", ")))")
        }
        if let usage = certificate.keyUsage {
            let names = usage.names.isEmpty ? "none" : usage.names.joined(separator: ", ")
            switch purpose {
            case .signing where !usage.contains(.digitalSignature) && !usage.contains(.nonRepudiation):
                reasons.append("no digitalSignature key usage (it has \(names))")
            case .encryption where !usage.contains(.keyEncipherment) && !usage.contains(.keyAgreement):
                reasons.append("no keyEncipherment or keyAgreement key usage (it has \(names))")
            default: break
            }
        }
        return reasons
    }

    /// Why no certificate among `installed` is chosen for `purpose` (as `choose` decides): the certificates
    /// present, why each does not qualify, and what to do. Nil when there are none to explain.
    static func explanation(_ purpose: Purpose, installed: [Inventory.Installed], email: String? = nil,
                            config: SignetConfig = .load(), at date: Date = Date()) -> String? {
        guard !installed.isEmpty else { return nil }
        let task = purpose == .signing ? "sign mail" : "encrypt mail to you"
        var lines = ["No certificate on your tokens can \(task)\(email.map { " as \($0)" } ?? ""). Present:"]
        let pinned = config.value(configKey(purpose))
        for entry in installed {
            var why = reasons(entry.certificate, purpose, at: date)
            if entry.privateKey == nil && entry.publicKey == nil {
                why.append("its key is not on the token (unlock the token with `signet unlock`, or see `signet cert repair`)")
            }
            if let email, !entry.certificate.emails.contains(email.lowercased()) {
                let names = entry.certificate.emails
                why.append("it is not for \(email) (\(names.isEmpty ? "it names no address" : "it is for \(names.joined(separator: ", "))"))")
            }
            if let pinned, !entry.certificate.sha256.lowercased().hasPrefix(pinned.lowercased()), entry.entry.uri != pinned {
                why.append("the configuration pins \(configKey(purpose)) = \(pinned), another certificate")
            }
            lines.append("  \(entry.id)  \(entry.certificate.subject): \(why.isEmpty ? "usable, but not chosen" : why.joined(separator: "; "))")
        }
        let usages = purpose == .signing ? "key usage digitalSignature" : "key usage keyEncipherment (RSA) or keyAgreement (EC)"
        lines.append("A mail certificate must be current, not a CA certificate, and carry extended key usage emailProtection and \(usages) "
                     + "(or leave those extensions out). Ask your CA for one and install it with `signet cert import FILE` "
                     + "(request it with `signet key generate` and `signet csr`), or import a .p12 with `signet import FILE`.")
        return lines.joined(separator: "\n")
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
