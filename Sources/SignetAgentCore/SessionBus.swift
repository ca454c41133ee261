#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Which D-Bus session bus address a client may have the agent's notifications sent to.
///
/// A client sends its `DBUS_SESSION_BUS_ADDRESS` in `clientEnvironment`; the agent runs `gdbus`, which
/// connects wherever that says, as the agent's user. So only one form is taken: a single `unix:path=P`
/// address (a `guid=` key may follow) whose `P` is a Unix socket owned by the caller's uid, in a
/// directory that only the caller or root can change. It is checked when the client sends it and again
/// (lstat, owner) just before each `gdbus` runs. Everything else is refused, and the agent's own session bus
/// is used instead: TCP (`tcp:`, `nonce-tcp:`: any listener, on any host), abstract sockets (`unix:abstract=`:
/// they have no owner to check; desktop sessions today use a path), `unix:dir=`, `unix:tmpdir=` and
/// `unix:runtime=` (they name where to listen, not where to connect), `unixexec:`, `autolaunch:`, `launchd:`,
/// and lists of several addresses.
enum SessionBus {
    /// The socket path of `address` when it has the one accepted form, else why it does not.
    static func socketPath(_ address: String) -> Result<String, Refusal> {
        guard !address.contains(";") else { return .failure(Refusal("lists several addresses")) }
        guard let colon = address.firstIndex(of: ":") else { return .failure(Refusal("is not a D-Bus address")) }
        let transport = address[..<colon]
        guard transport == "unix" else {
            return .failure(Refusal("uses the \(transport.prefix(20)): transport; only a unix:path= socket of your own is used"))
        }
        var path: String?
        for pair in address[address.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = pair.firstIndex(of: "=") else { return .failure(Refusal("is not a D-Bus address")) }
            let key = pair[..<eq], value = pair[pair.index(after: eq)...]
            switch key {
            case "path":
                guard path == nil, let decoded = unescape(value) else { return .failure(Refusal("has a bad path")) }
                path = decoded
            case "guid":
                continue
            default:
                return .failure(Refusal("has unix:\(key.prefix(20))=; only a unix:path= socket of your own is used"))
            }
        }
        guard let path, path.hasPrefix("/"), !path.contains("\0") else { return .failure(Refusal("names no absolute unix:path=")) }
        return .success(path)
    }

    /// Why `address` may not be used for a client of `uid` now, or nil when it may: the form (`socketPath`),
    /// then lstat of the socket (a socket, not a link, owned by `uid`) and of its directory (owned by `uid` or root,
    /// not writable by others unless sticky, so that no one else can swap the socket after this check).
    static func problem(_ address: String, uid: uid_t) -> String? {
        let path: String
        switch socketPath(address) {
        case .failure(let refusal): return refusal.reason
        case .success(let found): path = found
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return "socket \(path) does not exist" }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return "\(path) is not a socket" }
        guard info.st_uid == uid else { return "socket \(path) belongs to uid \(info.st_uid), not the caller's \(uid)" }
        let slash = path.lastIndex(of: "/")!
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        var parent = stat()
        guard stat(directory, &parent) == 0 else { return "\(directory) cannot be checked" }
        guard parent.st_uid == uid || parent.st_uid == 0 else { return "\(directory) belongs to uid \(parent.st_uid), not the caller's \(uid)" }
        guard parent.st_mode & 0o022 == 0 || parent.st_mode & S_ISVTX != 0 else { return "\(directory) is writable by others" }
        return nil
    }

    /// The address to send a notification for a client of `uid` through: the client's when it passes `problem`,
    /// else `own` (the agent's session bus, from its own environment).
    static func choose(client: String?, uid: uid_t, own: String?) -> String? {
        if let client, problem(client, uid: uid) == nil { return client }
        return own
    }

    /// D-Bus address values escape bytes as `%XX`; nil for a malformed escape.
    static func unescape(_ value: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(value.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    struct Refusal: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
