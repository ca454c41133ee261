// PKCS11URI is all this file takes from SignetPKCS11; the URI type is moving to a target both the
// agent and the mail side use (issue 16), and then this import and SignetMail's dependency change.
import SignetCore

extension Inventory.Installed {
    /// The private key's URI and public key, when the token shows the key (a public key stands for it while locked).
    public var keyReference: (String, [UInt8])? {
        if let key = privateKey { return (key.uri, key.publicKeyInfo) }
        if let key = publicKey { return (Self.privateKeyURI(standingFor: key.uri), key.publicKeyInfo) }
        return nil
    }

    /// The URI of the private key paired with the public key at `text`: the same token and id, type=private.
    /// The label is dropped when there is an id (cards label the halves differently: OpenSC's PIV
    /// driver calls them "PIV AUTH pubkey" and "PIV AUTH key").
    public static func privateKeyURI(standingFor text: String) -> String {
        guard var uri = try? PKCS11URI(parsing: text) else { return text }
        if uri.value("id") != nil { uri = uri.removing("object") }
        return uri.setting("type", Array("private".utf8)).description
    }
}
