import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// Installing the certificate a CA issued next to its key on a token: matched by public key, stored
/// with the key's id, replacing an older certificate of the same key only when asked, and putting
/// the old one back when storing the new one fails.
public enum CertificateInstaller {
    /// What `relink` did for one certificate.
    public enum Relinked {
        /// No key on the token has this certificate's public key; it is left as it is.
        case noKey(Inventory.Installed)
        /// The certificate now carries its key's id (it was stored again under that id, the old object deleted).
        case relinked(Inventory.Installed, key: ObjectEntry)
    }

    /// Re-links certificates to their keys by public key where the ids disagree ("private key missing" while the
    /// key is on the token): each such certificate is stored under its key's id (unless a copy already is) and
    /// the old object deleted. Certificates already linked are not touched. `each` hears of every certificate
    /// as it is dealt with, so a failure part-way leaves a record of what was already done.
    /// - Returns: how many were re-linked.
    /// - Throws: `SignetError` (`notUnlocked`) when no private key is visible, or when the agent fails.
    @discardableResult
    public static func relink(_ inventory: Inventory, client: AgentClient, each: (Relinked) -> Void) throws(SignetError) -> Int {
        guard inventory.objects.contains(where: { $0.kind == .privateKey }) else {
            throw SignetError(.notUnlocked, "No private keys are visible; unlock the token first (`signet unlock`).")
        }
        var relinked = 0
        for installed in inventory.certificates {
            guard let key = installed.privateKey else {
                each(.noKey(installed))
                continue
            }
            guard installed.entry.id != key.id else { continue }
            let label = installed.entry.label.isEmpty ? installed.certificate.label : installed.entry.label
            if !inventory.certificates.contains(where: { $0.entry.id == key.id && $0.certificate.der == installed.certificate.der }) {
                _ = try client.request(.storeCertificate(token: key.uri, der: installed.certificate.der, id: key.id, label: label))
            }
            _ = try client.request(.deleteObject(object: installed.entry.uri))
            relinked += 1
            each(.relinked(installed, key: key))
        }
        return relinked
    }

    /// What happened to one person's certificate of a file.
    public enum Outcome {
        /// The token holds this certificate already; nothing was written.
        case alreadyInstalled(Certificate)
        /// Stored next to `key`.
        case installed(Certificate, key: ObjectEntry)
    }

    /// Installs each non-CA certificate of `certificates` whose key is in `inventory`; `onOutcome` hears of each
    /// as it happens. Returns the certificates whose key was found (installed now or before).
    /// - Throws: `SignetError` when a key already has another certificate and `replace` is false (nothing more is
    ///   written), when no certificate's key is on the tokens (nothing was written), or when the agent fails.
    public static func install(_ certificates: [Certificate], file: String, inventory: Inventory, token: String?, replace: Bool,
                               client: AgentClient, onOutcome: (Outcome) -> Void) throws(SignetError) -> [Certificate] {
        var leaves: [Certificate] = []
        for certificate in certificates where !certificate.isAuthority {
            let spki = certificate.subjectPublicKeyInfo
            guard let key = inventory.objects.first(where: { $0.kind == .privateKey && $0.publicKeyInfo == spki })
                    ?? inventory.objects.first(where: { $0.kind == .publicKey && $0.publicKeyInfo == spki }) else { continue }
            leaves.append(certificate)
            if inventory.certificates.contains(where: { $0.certificate.der == certificate.der }) {
                onOutcome(.alreadyInstalled(certificate))
                continue
            }
            let others = inventory.certificates.filter { $0.publicKeyInfo == spki }
            if !others.isEmpty && !replace {
                let names = others.map { "\($0.certificate.subject), valid until \(Dates.day($0.certificate.notAfter)), id \($0.id)" }
                throw SignetError(.failure, "The key \"\(key.label)\" already has a certificate (\(names.joined(separator: "; "))). "
                                  + "Nothing was written. Add --replace to replace it.")
            }
            try store(certificate, key: key, replacing: others, client: client)
            onOutcome(.installed(certificate, key: key))
        }
        guard !leaves.isEmpty else {
            let names = certificates.filter { !$0.isAuthority }.map(\.subject)
            throw SignetError(.failure, """
                No private key on \(token == nil ? "your tokens" : "that token") matches \(names.isEmpty ? "a certificate in \(file) (it holds only CA certificates)" : names.joined(separator: "; ")) \
                (compared by public key): the private key is missing. Nothing was written. Was the request made on another token? \
                If the token is locked, run `signet unlock` first; `signet key list` shows the keys.
                """)
        }
        return leaves
    }

    /// Stores `certificate` with `key`'s id; with `replacing`, removes those first and puts them back if the store fails.
    /// - Throws: `SignetError` with the agent's answer.
    public static func store(_ certificate: Certificate, key: ObjectEntry, replacing: [Inventory.Installed], client: AgentClient) throws(SignetError) {
        for old in replacing { _ = try client.request(.deleteObject(object: old.entry.uri)) }
        do throws(SignetError) {
            _ = try client.request(.storeCertificate(token: key.uri, der: certificate.der, id: key.id, label: certificate.label))
        } catch {
            for old in replacing {
                _ = try? client.call(.storeCertificate(token: old.entry.uri, der: old.certificate.der, id: old.entry.id, label: old.entry.label))
            }
            throw error
        }
    }
}

/// Importing an opened PKCS#12 file onto a token: the key (unless the token has it already) and its
/// certificate, both or neither.
public enum PKCS12Import {
    /// What was written.
    public struct Result {
        /// The URI of the key written now; nil when the token had the key already.
        public var importedKey: String?
        /// The label of the key the token had already, when it had one.
        public var existingKeyLabel: String?
        /// Whether the token held the certificate already.
        public var certificateWasThere: Bool
        /// The PKCS#11 id the key and certificate carry.
        public var keyID: [UInt8]
    }

    /// Imports `contents` to `token` (or the only token). A locked token lists no private keys: when the
    /// agent answers that it must be unlocked, `unlock` is called (it asks for the code and unlocks, or throws),
    /// the key is looked for again, and the import is sent again only when it is still missing.
    /// When the token already holds a different certificate for the same public key (say the CA re-certified the
    /// key with `signet cert import`), nothing is written unless `replace` is true; then that certificate is
    /// replaced, like `cert import --replace`. Either way one certificate is left per key, never two with one id.
    /// - Throws: `SignetError` from the agent or `unlock`; when the key has another certificate and `replace` is
    ///   false (nothing was written); when the certificate cannot be stored, the key written a moment ago is taken
    ///   back, the replaced certificates are put back, and the message says whether that worked.
    public static func run(_ contents: PKCS12File.Contents, token: String?, replace: Bool = false, client: AgentClient,
                           unlock: () throws(SignetError) -> Void) throws(SignetError) -> Result {
        let certificate = contents.certificate
        var inventory = try Inventory.load(client: client, token: token)
        let spki = certificate.subjectPublicKeyInfo
        // Certificates are listed on a locked token too: decide before anything is written.
        let others = inventory.certificates.contains(where: { $0.certificate.der == certificate.der })
            ? [] : inventory.certificates.filter { $0.publicKeyInfo == spki }
        if !others.isEmpty && !replace {
            let names = others.map { "\($0.certificate.subject), valid until \(Dates.day($0.certificate.notAfter)), id \($0.id)" }
            throw SignetError(.failure, "The token already holds another certificate for this key (\(names.joined(separator: "; "))). "
                              + "Nothing was written. Add --replace to replace it with the certificate in the file.")
        }
        let id = certificate.keyIdentifier
        let label = certificate.label
        var importedKey: String?
        var tokenURI = token
        func existingKey() -> ObjectEntry? { inventory.objects.first(where: { $0.kind == .privateKey && $0.publicKeyInfo == spki }) }
        if existingKey() == nil {
            let request = AgentRequest.importKey(token: token, key: contents.key, id: id, label: label)
            var response: AgentResponse?
            do throws(AgentClientError) {
                response = try client.call(request)
            } catch {
                guard error.code == .notUnlocked else { throw SignetError(error) }
                try unlock()
                // Private keys are listed only once the token is unlocked: look again before writing.
                inventory = try Inventory.load(client: client, token: token)
                if existingKey() == nil { response = try client.request(request) }
            }
            if let response {
                guard case .stored(let uri) = response else { throw SignetError.unexpectedAnswer }
                importedKey = uri
                tokenURI = uri
            }
        }
        var existingLabel: String?
        if importedKey == nil, let existing = existingKey() {
            existingLabel = existing.label
            tokenURI = existing.uri
        }
        let keyID = existingKey()?.id ?? id
        let certificateThere = inventory.certificates.contains(where: { $0.certificate.der == certificate.der })
        if !certificateThere {
            var removed: [Inventory.Installed] = []
            do throws(AgentClientError) {
                // Replacing (asked for above): the old certificates go first, so no two share the key's id.
                for old in others {
                    _ = try client.call(.deleteObject(object: old.entry.uri))
                    removed.append(old)
                }
                _ = try client.call(.storeCertificate(token: tokenURI, der: certificate.der, id: keyID, label: label))
            } catch {
                // Both or neither: put back what was replaced and take back the key written a moment ago.
                var cleaned = true
                for old in removed {
                    cleaned = (try? client.call(.storeCertificate(token: old.entry.uri, der: old.certificate.der, id: old.entry.id,
                                                                 label: old.entry.label))) != nil && cleaned
                }
                if let importedKey {
                    cleaned = (try? client.call(.deleteObject(object: importedKey))) != nil && cleaned
                    let publicURI = importedKey.replacing("type=private", with: "type=public")
                    cleaned = (try? client.call(.deleteObject(object: publicURI))) != nil && cleaned
                }
                throw SignetError(.failure, "Could not store the certificate: \(error.description). "
                                  + (cleaned ? "Nothing was left on the token" + (removed.isEmpty ? "." : "; the replaced certificate was put back.")
                                     : "The token could not be put back as it was (the key written a moment ago, or a replaced certificate); see `signet key list` and `signet cert list`."),
                                  cause: error)
            }
        }
        return Result(importedKey: importedKey, existingKeyLabel: existingLabel, certificateWasThere: certificateThere, keyID: keyID)
    }
}
