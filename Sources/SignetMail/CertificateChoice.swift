import FoundationEssentials
import SignetCore
import SignetOpenSSL

/// Which certificate signs and which encrypts (enrollment issue, part 7).
public enum CertificateChoice {
    public enum Purpose: String { case signing, encryption }

    /// The configuration entry that pins the choice: `signing-certificate = <id>` / `encryption-certificate = <id>`.
    public static func configKey(_ purpose: Purpose) -> String { "\(purpose.rawValue)-certificate" }

    /// Whether `certificate` may be used for `purpose` now.
    public static func fits(_ certificate: Certificate, _ purpose: Purpose, at date: Date = Date()) -> Bool {
        reasons(certificate, purpose, at: date).isEmpty
    }

    /// Why `certificate` may not be used for `purpose` at `date`, in words (empty when it may).
    public static func reasons(_ certificate: Certificate, _ purpose: Purpose, at date: Date = Date()) -> [String] {
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

    /// Whether a TLS server (webmail, a VPN) would take `certificate` for client login, as OpenSSL and NSS
    /// check it: not a CA, an extendedKeyUsage that is absent or has clientAuth (or any), and a keyUsage that
    /// is absent or has digitalSignature. Validity is not considered.
    public static func servesClientLogin(_ certificate: Certificate) -> Bool {
        guard !certificate.isAuthority else { return false }
        if let eku = certificate.extendedKeyUsage, !eku.contains("clientAuth"), !eku.contains("anyExtendedKeyUsage") { return false }
        if let usage = certificate.keyUsage, !usage.contains(.digitalSignature) { return false }
        return true
    }

    /// Why no certificate among `installed` is chosen for `purpose` (as `choose` decides): the certificates
    /// present, why each does not qualify, and what to do. Nil when there are none to explain.
    public static func explanation(_ purpose: Purpose, installed: [Inventory.Installed], email: String? = nil,
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
                why.append("it is not for \(email) (\(names.isEmpty ? "it names no address" : "it is for \(Console.safe(names.joined(separator: ", ")))"))")
            }
            if let pinned, !entry.certificate.sha256.lowercased().hasPrefix(pinned.lowercased()), entry.entry.uri != pinned {
                why.append("the configuration pins \(configKey(purpose)) = \(pinned), another certificate")
            }
            lines.append("  \(entry.id)  \(Console.safe(entry.certificate.subject)): \(why.isEmpty ? "usable, but not chosen" : why.joined(separator: "; "))")
        }
        let usages = purpose == .signing ? "key usage digitalSignature" : "key usage keyEncipherment (RSA) or keyAgreement (EC)"
        lines.append("A mail certificate must be current, not a CA certificate, and carry extended key usage emailProtection and \(usages) "
                     + "(or leave those extensions out). Ask your CA for one and install it with `signet cert import FILE` "
                     + "(request it with `signet key generate` and `signet csr`), or import a .p12 with `signet import FILE`.")
        return lines.joined(separator: "\n")
    }

    /// The default certificate for `purpose` among those whose key is present:
    /// the pinned one when configured, else one that fits (matching `email` when given), newest first.
    public static func choose(_ purpose: Purpose, from installed: [Inventory.Installed], email: String? = nil,
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
