import Foundation

/// A listening Unix socket at `/tmp/.X11-unix/XN`: what the agent checks of a local X display before it
/// starts a pinentry there (a socket of the caller's or root's, with a listener). A test double for an X
/// server, for the tests whose pinentry is the scripted one, which never connects to a display; the real
/// pinentry-gtk2 tests run a real Xvfb. The number is taken as an X server takes one: its lock file
/// `/tmp/.XN-lock` created exclusively with this process's pid (so Xvfb and the tests that start one pass
/// it by), from :79 down to :71 (this project's tests keep to those; the Xvfb tests count up from :71).
public final class StandInDisplay {
    /// The display name, ":N".
    public let name: String
    public let path: String
    private let lock: String
    private let fd: Int32

    public init() throws {
        if mkdir("/tmp/.X11-unix", 0o755) == 0 { chmod("/tmp/.X11-unix", 0o1777) }
        for number in (71...79).reversed() {
            let lock = "/tmp/.X\(number)-lock"
            let lockFD = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
            guard lockFD >= 0 else { continue }
            let pid = String(format: "%10d\n", getpid())
            _ = pid.withCString { write(lockFD, $0, strlen($0)) }
            close(lockFD)
            let path = "/tmp/.X11-unix/X\(number)"
            unlink(path)  // under our lock: a socket left by a server that is gone
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard StandInDisplay.withAddress(path, { bind(fd, $0, $1) }) == 0, listen(fd, 8) == 0 else {
                close(fd)
                unlink(lock)
                continue
            }
            self.fd = fd
            self.path = path
            self.lock = lock
            name = ":\(number)"
            return
        }
        throw TestFailure("no free display number from :79 down to :71 for a stand-in X socket")
    }

    deinit {
        close(fd)
        unlink(path)
        unlink(lock)
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
