#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Why the agent could not take its socket.
struct AgentSocketError: Error, CustomStringConvertible {
    var description: String
}

/// The agent's listening socket: systemd's (socket activation), or
/// `$XDG_RUNTIME_DIR/signet/agent.sock` made here with the directory 0700 and
/// the socket 0600. A lock file held for the agent's lifetime makes a second
/// agent refuse to start; a socket left by a dead agent is replaced.
struct AgentSocket {
    let fd: Int32
    let path: String
    let pidPath: String
    let fromSystemd: Bool
    private let lockFD: Int32
    /// The socket file's device and inode when bound (nil for systemd's socket).
    private var identity: (dev: UInt64, ino: UInt64)?

    /// systemd passes listening sockets from fd 3 when `LISTEN_PID` is this process.
    static let firstSystemdFD: Int32 = 3

    static func open(settings: AgentSettings) throws(AgentSocketError) -> AgentSocket {
        if let pid = ProcessEnvironment.value("LISTEN_PID"), pid == String(getpid()),
           let count = ProcessEnvironment.value("LISTEN_FDS").flatMap(Int32.init), count >= 1 {
            unsetenv("LISTEN_PID"); unsetenv("LISTEN_FDS"); unsetenv("LISTEN_FDNAMES")
            var type: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(firstSystemdFD, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else {
                throw AgentSocketError(description: "systemd passed fd \(firstSystemdFD), which is not a stream socket")
            }
            _ = fcntl(firstSystemdFD, F_SETFD, FD_CLOEXEC)
            return AgentSocket(fd: firstSystemdFD, path: settings.socketPath, pidPath: settings.paths.agentPIDFile, fromSystemd: true, lockFD: -1,
                               identity: nil)
        }

        let directory = settings.paths.runtime
        guard FileIO.makeDirectories(directory, mode: 0o700) else {
            throw AgentSocketError(description: "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw AgentSocketError(description: "\(directory) is not a directory")
        }
        guard info.st_uid == getuid() else {
            throw AgentSocketError(description: "\(directory) belongs to uid \(info.st_uid), not to you (uid \(getuid())); remove it")
        }
        if info.st_mode & 0o077 != 0 { chmod(directory, 0o700) }

        let lockPath = directory + "/agent.lock"
        let lockFD = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw AgentSocketError(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            close(lockFD)
            let pid = FileIO.readText(settings.paths.agentPIDFile, limit: 32).map { " (pid \($0.split(separator: "\n").first ?? ""))" } ?? ""
            throw AgentSocketError(description: "another signet-agent is already running for this user\(pid); stop it first (`signet agent stop`)")
        }
        _ = FileIO.writeAtomically(settings.paths.agentPIDFile, text: "\(getpid())\n")

        // We hold the lock, so any socket file here was left by an agent that died.
        let path = settings.socketPath
        unlink(path)
        do throws(SocketError) {
            let fd = try UnixSocket.listen(path, mode: 0o600)
            return AgentSocket(fd: fd, path: path, pidPath: settings.paths.agentPIDFile, fromSystemd: false, lockFD: lockFD,
                               identity: AgentSocket.fileIdentity(path))
        } catch {
            close(lockFD)
            throw AgentSocketError(description: "cannot listen on \(path): \(error)")
        }
    }

    private static func fileIdentity(_ path: String) -> (dev: UInt64, ino: UInt64)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// Whether the socket file at `path` is still the one this agent bound: false once it was
    /// removed or replaced (clients can then no longer reach this agent). Always true for systemd's.
    var isStillOurs: Bool {
        guard let identity else { return true }
        guard let now = AgentSocket.fileIdentity(path) else { return false }
        return now == identity
    }

    /// Removes the socket file (not systemd's, which systemd owns, and not one that another
    /// agent made in its place) and releases the lock.
    func remove() {
        guard !fromSystemd else { return }
        if isStillOurs {
            unlink(path)
            if FileIO.readText(pidPath, limit: 32)?.filter(\.isNumber) == String(getpid()) { unlink(pidPath) }
        }
        close(lockFD)
    }
}
