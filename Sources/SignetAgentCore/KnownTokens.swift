import Synchronization
import SignetCore
import SignetPKCS11

/// The tokens this user's agent has seen, kept across restarts in
/// `$XDG_STATE_HOME/signet/known-tokens` (one token URI a line, newest last, at most
/// 64): a request naming a token that is not inserted waits for it only when it is
/// one of these, and fails at once, listing them, for a URI that matches none
/// (a typo, or a token never used here).
final class KnownTokens: Sendable {
    private let directory: String
    private let path: String
    private let uris = Mutex<[String]>([])
    static let limit = 64

    init(directory: String) {
        self.directory = directory
        path = directory + "/known-tokens"
        let text = FileIO.readText(path, limit: 1 << 18) ?? ""
        let lines = text.split(separator: "\n").map(String.init).filter { (try? PKCS11URI(parsing: $0)) != nil }
        uris.withLock { $0 = Array(lines.suffix(Self.limit)) }
    }

    /// Remembers `token` (written only when it is new or not the newest).
    func note(_ token: Token) {
        let uri = token.uri.description
        let text: String? = uris.withLock { list in
            if list.last == uri { return nil }
            list.removeAll { $0 == uri }
            list.append(uri)
            if list.count > Self.limit { list.removeFirst(list.count - Self.limit) }
            return list.joined(separator: "\n") + "\n"
        }
        if let text {
            _ = FileIO.makeDirectories(directory)
            _ = FileIO.writeAtomically(path, text: text)
        }
    }

    /// The known tokens' URIs that `uri` may select.
    func matching(_ uri: PKCS11URI) -> [PKCS11URI] {
        uris.withLock { $0 }.compactMap { try? PKCS11URI(parsing: $0) }.filter { uri.mayMatchToken($0) }
    }

    /// Every known token as "label (serial …)", newest first.
    var names: [String] {
        uris.withLock { $0 }.reversed().compactMap { try? PKCS11URI(parsing: $0) }.map { known in
            "\"\(known.text("token") ?? "?")\" (serial \(known.text("serial") ?? "?"))"
        }
    }
}

extension PKCS11URI {
    /// Whether this URI may select the token that `known` (a token's own URI) names: every token
    /// attribute both give must agree. Library and slot attributes are not in a token's URI, so
    /// they are not compared; object attributes never are.
    func mayMatchToken(_ known: PKCS11URI) -> Bool {
        for name in ["token", "manufacturer", "serial", "model"] {
            if let wanted = value(name), let actual = known.value(name), wanted != actual { return false }
        }
        return true
    }
}
