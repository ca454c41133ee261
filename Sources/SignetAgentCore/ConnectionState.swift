import SignetCore
import SignetPKCS11

/// Per-connection memory: parsed URIs, so a client signing with the same key
/// again does not pay for parsing its URI again. Used by one thread only.
/// Bounded: URIs of at most `maximumURIBytes`, at most 64 of them and `maximumBytes` of text in all
/// (30 connections caching 64 URIs of 64 KiB each once held 257 MB).
final class ConnectionState {
    private var uris: [String: PKCS11URI] = [:]
    private var bytes = 0
    /// Where this connection's client can be asked (its `clientEnvironment`, checked); nowhere until it says.
    var environment = ClientEnvironment.none

    /// Longest URI accepted. The URIs `signet keys` prints are a few hundred bytes; token labels are 32.
    static let maximumURIBytes = 2048
    /// URI text kept per connection.
    static let maximumBytes = 16 << 10

    func uri(_ text: String) throws(AgentFailure) -> PKCS11URI {
        if let known = uris[text] { return known }
        let length = text.utf8.count
        guard length <= Self.maximumURIBytes else {
            throw AgentFailure(.invalidArgument, "The PKCS#11 URI is \(length) bytes, longer than the \(Self.maximumURIBytes) Signet accepts; "
                + "use the URI `signet keys` or `signet tokens` shows.")
        }
        do throws(PKCS11URI.ParseError) {
            let parsed = try PKCS11URI(parsing: text)
            if uris.count >= 64 || bytes + length > Self.maximumBytes { uris.removeAll(); bytes = 0 }
            uris[text] = parsed
            bytes += length
            return parsed
        } catch {
            throw AgentFailure(.invalidArgument, error.description)
        }
    }
}
