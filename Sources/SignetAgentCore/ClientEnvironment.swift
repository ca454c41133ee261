#if canImport(Glibc)
import Glibc
#endif
import SignetAccessCode
import SignetCore

/// Where a client can be asked: what it sent in `clientEnvironment`, checked. The agent serves its own
/// uid only, and each place is checked to belong to the caller: the tty and the Wayland socket (in the
/// agent's `XDG_RUNTIME_DIR`, or an absolute path) and the `XAUTHORITY` file must be the caller's
/// (`lstat`: no symlink followed), and so must the D-Bus session bus, a `unix:path=` socket (`SessionBus`);
/// `DISPLAY` and `TERM` must look like what they are.
/// An entry that fails a check is dropped, with the reason in `refused`.
public struct ClientEnvironment: Sendable, Equatable {
    public var display: String?
    public var waylandDisplay: String?
    public var xauthority: String?
    public var dbusAddress: String?
    public var tty: String?
    public var term: String?
    /// The agent's runtime directory, where a relative `WAYLAND_DISPLAY` is found.
    public var runtimeDirectory: String?
    /// Entries that were dropped, each with why (names and reasons only).
    public var refused: [String] = []

    /// Nowhere to ask: the client sent nothing.
    public static let none = ClientEnvironment()

    public init(display: String? = nil, waylandDisplay: String? = nil, xauthority: String? = nil, dbusAddress: String? = nil,
                tty: String? = nil, term: String? = nil, runtimeDirectory: String? = nil) {
        self.display = display; self.waylandDisplay = waylandDisplay; self.xauthority = xauthority
        self.dbusAddress = dbusAddress; self.tty = tty; self.term = term; self.runtimeDirectory = runtimeDirectory
    }

    /// Checks `entries` for a client of `uid`.
    public init(entries: [(String, String)], uid: uid_t, runtimeDirectory: String? = ProcessEnvironment.value("XDG_RUNTIME_DIR")) {
        self.runtimeDirectory = runtimeDirectory
        for (name, value) in entries {
            if let reason = check(name, value, uid: uid) {
                refused.append("\(Console.safe(String(name.prefix(40)))): \(reason)")
                continue
            }
            switch name {
            case "DISPLAY": display = value
            case "WAYLAND_DISPLAY": waylandDisplay = value
            case "XAUTHORITY": xauthority = value
            case "DBUS_SESSION_BUS_ADDRESS": dbusAddress = value
            case "tty": tty = value
            case "TERM": term = value
            default: break
            }
        }
    }

    /// A display the GUI pinentries can use.
    public var hasScreen: Bool { display != nil || waylandDisplay != nil }

    /// The environment a pinentry gets: these variables, `PATH` and `LANG` from the agent, nothing else.
    var pinentryVariables: [String] {
        var variables = ["PATH=\(ProcessEnvironment.value("PATH") ?? "/usr/local/bin:/usr/bin:/bin")"]
        if let lang = ProcessEnvironment.value("LANG") { variables.append("LANG=\(lang)") }
        if let term { variables.append("TERM=\(term)") }
        if let display { variables.append("DISPLAY=\(display)") }
        if let waylandDisplay {
            variables.append("WAYLAND_DISPLAY=\(waylandDisplay)")
            // Where a relative WAYLAND_DISPLAY is: the socket checked was there.
            if let runtimeDirectory { variables.append("XDG_RUNTIME_DIR=\(runtimeDirectory)") }
        }
        if let xauthority { variables.append("XAUTHORITY=\(xauthority)") }
        if let dbusAddress { variables.append("DBUS_SESSION_BUS_ADDRESS=\(dbusAddress)") }
        return variables
    }

    /// Why `value` is not acceptable for `name`, or nil.
    private func check(_ name: String, _ value: String, uid: uid_t) -> String? {
        guard !value.isEmpty, value.utf8.count <= 512 else { return "empty or longer than 512 bytes" }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return "has control characters" }
        func owned(_ path: String, _ type: mode_t, _ what: String) -> String? {
            var info = stat()
            guard lstat(path, &info) == 0 else { return "\(what) \(path) does not exist" }
            guard info.st_mode & S_IFMT == type else { return "\(path) is not a \(what)" }
            guard info.st_uid == uid else { return "\(what) \(path) belongs to uid \(info.st_uid), not the caller's \(uid)" }
            return nil
        }
        func only(_ allowed: String) -> Bool { value.unicodeScalars.allSatisfy { $0.isASCII && (allowed.unicodeScalars.contains($0) || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)) } }
        switch name {
        case "tty":
            guard value.hasPrefix("/dev/"), !value.contains("/../"), !value.hasSuffix("/..") else { return "not a terminal under /dev" }
            // /dev/tty is whichever terminal the process that opens it has: for a pinentry the agent starts, none.
            guard value != "/dev/tty" else { return "/dev/tty names no terminal in particular; name the terminal itself (/dev/pts/N)" }
            return owned(value, S_IFCHR, "terminal")
        case "WAYLAND_DISPLAY":
            guard !value.contains("..") else { return "has .." }
            if value.hasPrefix("/") { return owned(value, S_IFSOCK, "Wayland socket") }
            guard let runtimeDirectory, !value.contains("/") else { return "no runtime directory to find it in" }
            return owned(runtimeDirectory + "/" + value, S_IFSOCK, "Wayland socket")
        case "XAUTHORITY":
            guard value.hasPrefix("/") else { return "not an absolute path" }
            return owned(value, S_IFREG, "file")
        case "DISPLAY":
            return only(".:-_/") && value.contains(":") ? nil : "not an X display name"
        case "TERM":
            return only(".-_+") && value.utf8.count <= 64 ? nil : "not a terminal type"
        case "DBUS_SESSION_BUS_ADDRESS":
            return SessionBus.problem(value, uid: uid)  // a unix:path= socket of the caller's only (issue 24 #6)
        default:
            return "not used by Signet"
        }
    }
}
