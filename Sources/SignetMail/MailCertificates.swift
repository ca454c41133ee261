import FoundationEssentials
import SignetAgentClient
import SignetCore
import SignetOpenSSL

/// A certificate of yours with the URI and public key of its private key on a token.
public struct OwnKey {
    public var certificate: Certificate
    public var keyURI: String
    public var publicKeyInfo: [UInt8]

    public init(certificate: Certificate, keyURI: String, publicKeyInfo: [UInt8]) {
        self.certificate = certificate
        self.keyURI = keyURI
        self.publicKeyInfo = publicKeyInfo
    }
}

/// Which certificates a mail is signed with and encrypted to.
public enum MailCertificates {
    /// The signing certificate and its key: `id` when given, else the configured or automatic choice
    /// (for `email` when given). From the tokens when they show it, else remembered from before (the
    /// agent then asks for the token to be presented when the signature is made). Remembers what the
    /// tokens show (`OwnCertificates.remember`).
    /// - Throws: `SignetError` when the agent fails or no certificate fits, saying why each present one does not.
    public static func signer(client: AgentClient, id: String?, email: String?) throws(SignetError) -> OwnKey {
        let inventory = try Inventory.load(client: client)
        OwnCertificates.remember(inventory)
        if let id {
            if let found = inventory.matching(id).first, let reference = found.keyReference {
                return OwnKey(certificate: found.certificate, keyURI: reference.0, publicKeyInfo: reference.1)
            }
            let prefix = id.lowercased().filter { $0 != ":" }
            if prefix.count >= 8, let remembered = OwnCertificates.load().certificates.first(where: { $0.0.sha256.lowercased().hasPrefix(prefix) }) {
                return OwnKey(certificate: remembered.0, keyURI: remembered.1, publicKeyInfo: remembered.2)
            }
            _ = try inventory.certificate(id)  // throws the usual message
            throw SignetError(.failure, "The certificate \(id) has no key on your tokens.")
        }
        if let chosen = CertificateChoice.choose(.signing, from: inventory.certificates, email: email), let reference = chosen.keyReference {
            return OwnKey(certificate: chosen.certificate, keyURI: reference.0, publicKeyInfo: reference.1)
        }
        let remembered = OwnCertificates.load().certificates.filter {
            CertificateChoice.fits($0.0, .signing) && (email == nil || $0.0.emails.contains(email!.lowercased()))
        }
        if let newest = remembered.max(by: { $0.0.notBefore < $1.0.notBefore }) {
            return OwnKey(certificate: newest.0, keyURI: newest.1, publicKeyInfo: newest.2)
        }
        if let explanation = CertificateChoice.explanation(.signing, installed: inventory.certificates, email: email) {
            throw SignetError(.failure, explanation)
        }
        throw SignetError(.failure, "No signing certificate\(email.map { " for \($0)" } ?? "") is on your tokens. Insert the token, "
                          + "or see `signet cert list`; enrol one with `signet key generate` and `signet csr`.")
    }

    /// A recipient named by a certificate file (its person's certificate; a file with one self-signed
    /// certificate is taken as it is) or by an email address of someone whose signed mail was verified, or of yours.
    /// - Throws: `SignetError` when the file holds no person's certificate or no certificate for the address is known.
    public static func recipient(_ name: String) throws(SignetError) -> Certificate {
        if FileManager.default.fileExists(atPath: name) {
            let found = try readCertificateFile(name).certificates
            guard let certificate = found.first(where: { !$0.isAuthority }) ?? (found.count == 1 ? found.first : nil) else {
                throw SignetError(.failure, "\(name) holds no person's certificate.")
            }
            return certificate
        }
        // Not a file: an address, unless it looks like a path (bob.pem, ./bob, ~/certs/bob.der).
        let fileLike = name.contains("/") || [".pem", ".crt", ".cer", ".der", ".p7b", ".p7c"].contains { name.lowercased().hasSuffix($0) }
        guard name.contains("@"), !fileLike else {
            throw SignetError(.failure, "The certificate file \(name) does not exist. Give the path of the recipient's certificate "
                              + "(PEM or DER), or their email address when you have verified signed mail from them.")
        }
        let address = name.lowercased()
        let known = TrustStore.correspondents().entries().map(\.certificate) + OwnCertificates.load().certificates.map(\.0)
        let fitting = known.filter { $0.emails.contains(address) && CertificateChoice.fits($0, .encryption) }
        guard let newest = fitting.max(by: { $0.notBefore < $1.notBefore }) else {
            throw SignetError(.failure, "No certificate for \(name) is known. Verify a signed message from them (`signet verify`), "
                              + "which keeps their certificate, or give their certificate file with --to FILE.")
        }
        return newest
    }

    /// Your encryption certificate: the first in `file` when given, else the configured or newest one. When every
    /// recipient is RSA, an RSA certificate of yours is preferred: NSS 3.87 (Debian 12's, which its Thunderbird uses)
    /// cannot read a message that has any ECDH recipient in it, even when its own recipient entry is RSA.
    /// The tokens are asked when the agent can list them, else what was seen on them before: no token is needed.
    /// `alone`: no recipient was named, so the message is for yourself only.
    /// - Throws: `SignetError` saying why none of yours fits and what to do.
    /// Everyone a message is encrypted to: each recipient named (a certificate file or an address, `recipient(_:)`)
    /// and always yourself (`ownEncryptionCertificate`, or `ownFile`), so you can read what you sent. Refuses a
    /// certificate that is expired or not yet valid at `at`, since its owner may no longer hold the key.
    /// - Throws: `SignetError` naming the recipient that cannot be used, or when you have no certificate of your own.
    public static func encryptionRecipients(_ names: [String], ownFile: String?, at: Date = Date()) throws(SignetError) -> [Certificate] {
        var certificates: [Certificate] = []
        for name in names { certificates.append(try recipient(name)) }
        return try encryptionRecipients(certificates: certificates, ownFile: ownFile, at: at)
    }

    /// The same decision for recipients whose certificates were already found (in a directory, say): your own
    /// certificate added, and every certificate valid at `at`.
    public static func encryptionRecipients(certificates found: [Certificate], ownFile: String?, at: Date = Date()) throws(SignetError) -> [Certificate] {
        var certificates = found
        let own = try ownEncryptionCertificate(file: ownFile, rsaRecipients: certificates.allSatisfy { $0.keyDescription.hasPrefix("RSA") },
                                               alone: certificates.isEmpty)
        if !certificates.contains(where: { $0.sha256 == own.sha256 }) { certificates.append(own) }
        for certificate in certificates where certificate.validity(at: at) != .valid {
            throw SignetError(.failure, "The certificate of \(Console.safe(certificate.subject)) is \(certificate.validity(at: at).rawValue) "
                              + "(valid \(Dates.day(certificate.notBefore)) to \(Dates.day(certificate.notAfter))); ask for a current one.")
        }
        return certificates
    }

    /// The certificates a signature carries besides the signer's: its intermediates from the trust store, not the
    /// root (as gpgsm does by default), so a recipient can build the path to a root they trust.
    public static func chainToInclude(for certificate: Certificate) -> [Certificate] {
        TrustStore().chain(for: certificate).filter { !$0.isSelfSigned }
    }

    public static func ownEncryptionCertificate(file: String?, rsaRecipients: Bool, alone: Bool) throws(SignetError) -> Certificate {
        if let file {
            guard let certificate = try readCertificateFile(file).certificates.first else {
                throw SignetError(.failure, "\(file) holds no certificate.")
            }
            return certificate
        }
        var listed: Inventory?
        if let client = try? AgentConnection.open(start: true), let inventory = try? Inventory.load(client: client) {
            listed = inventory
            OwnCertificates.remember(inventory)
            let rsa = inventory.certificates.filter { $0.certificate.keyDescription.hasPrefix("RSA") }
            if let chosen = (rsaRecipients ? CertificateChoice.choose(.encryption, from: rsa) : nil)
                ?? CertificateChoice.choose(.encryption, from: inventory.certificates) { return chosen.certificate }
        }
        let remembered = OwnCertificates.load().certificates.map(\.0).filter { CertificateChoice.fits($0, .encryption) }
        let preferred = rsaRecipients ? remembered.filter { $0.keyDescription.hasPrefix("RSA") } : []
        if let newest = (preferred.isEmpty ? remembered : preferred).max(by: { $0.notBefore < $1.notBefore }) { return newest }
        if let explanation = listed.flatMap({ CertificateChoice.explanation(.encryption, installed: $0.certificates) }) {
            throw SignetError(.failure, explanation + (alone ? " Or name recipients with --to FILE or --to ADDRESS." : " Or give your certificate with --self FILE.")
                              + " Nothing was encrypted.")
        }
        if alone {
            throw SignetError(.failure, "No recipient was named and you have no encryption certificate of your own; nothing was encrypted. "
                              + "Name recipients with --to FILE or --to ADDRESS; to encrypt to yourself, insert your token once so Signet "
                              + "sees your certificate, or give it with --self FILE.")
        }
        throw SignetError(.failure, "You have no encryption certificate, so you could not read this message yourself; nothing was encrypted. "
                          + "Insert your token once so Signet sees your certificate, or give it with --self FILE.")
    }
}
