import Foundation

/// A listening Unix socket at `/tmp/.X11-unix/XN`: what the agent checks of a local X display before it
/// starts a pinentry there (a socket of the caller's or root's, with a listener). A test double for an X
/// server, for the tests whose pinentry is the scripted one, which never connects to a display; the real
/// pinentry-gtk2 tests run a real Xvfb. The number is the first free one from 71 to 79 (this project's
/// tests keep to those), taken by `bind`, which fails when another process holds it.
public final class StandInDisplay {
    /// The display name, ":N".
    public let name: String
    public let path: String
    private let fd: Int32

    public init() throws {
        if mkdir("/tmp/.X11-unix", 0o755) == 0 { chmod("/tmp/.X11-unix", 0o1777) }
        for number in 71...79 {
            let path = "/tmp/.X11-unix/X\(number)"
            // A socket file no one listens on is stale (a test that was killed): take it over.
            if FileManager.default.fileExists(atPath: path) {
                let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                let live = StandInDisplay.withAddress(path) { connect(probe, $0, $1) } == 0
                close(probe)
                if live || FileManager.default.fileExists(atPath: "/tmp/.X\(number)-lock") { continue }
                unlink(path)
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard StandInDisplay.withAddress(path, { bind(fd, $0, $1) }) == 0, listen(fd, 8) == 0 else { close(fd); continue }
            self.fd = fd
            self.path = path
            name = ":\(number)"
            return
        }
        throw TestFailure("no free display number from :71 to :79 for a stand-in X socket")
    }

    deinit {
        close(fd)
        unlink(path)
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }
}
