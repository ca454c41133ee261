#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Whether the process at the other end of the agent's socket is this user's own agent, checked before
/// a client writes anything to it (the hello, an access code).
///
/// Without `XDG_RUNTIME_DIR` the socket lives in the shared `${TMPDIR:-/tmp}/signet-<uid>`, which another
/// user may make first, or make while a client waits for the agent it just started; such a user would
/// receive the client's `unlock`, code included, and could answer "Unlocked". So at every connect the
/// socket's directory must be a real directory of this user's with no group or other permission bits
/// (lstat, as GnuPG checks its socket directory), and after the connect the listening process must run
/// as this user (`SO_PEERCRED`), which closes the window any check of the directory leaves open.
/// Root's agent is not this user's either.
enum AgentIdentity {
    /// Throws when the directory that holds `socketPath` is not this user's private directory.
    /// A directory that does not exist passes: then no one listens there (the connect fails with ENOENT).
    /// - Throws: `AgentClientError.notYourAgent`.
    static func checkDirectory(of socketPath: String) throws(AgentClientError) {
        guard let slash = socketPath.lastIndex(of: "/") else { return }
        let directory = slash == socketPath.startIndex ? "/" : String(socketPath[..<slash])
        guard let problem = SignetPaths.privateDirectoryProblem(directory) else { return }
        throw .notYourAgent("the agent's socket directory \(directory) \(problem), so Signet does not trust a socket in it: someone else "
                            + "may be impersonating signet-agent to receive your access code. Nothing was sent to it. Remove it "
                            + "(`rm -r \(directory)`, as root if it is not yours) or set XDG_RUNTIME_DIR, then try again")
    }

    /// Throws when the process listening at the other end of `fd` does not run as this user.
    /// - Throws: `AgentClientError.notYourAgent`.
    static func checkPeer(_ fd: Int32, socketPath: String) throws(AgentClientError) {
        guard let peer = UnixSocket.peerCredentials(fd) else {
            throw .notYourAgent("cannot tell which user listens at \(socketPath) (SO_PEERCRED: \(System.describe(errno))), "
                                + "so nothing was sent to it")
        }
        guard peer.uid == getuid() else {
            throw .notYourAgent("the socket at \(socketPath) belongs to uid \(peer.uid) (pid \(peer.pid)), not you (uid \(getuid())): "
                                + "someone else may be impersonating signet-agent to receive your access code. Nothing was sent to it. "
                                + "Remove it (`rm \(socketPath)`, as root if you cannot) or set XDG_RUNTIME_DIR, then try again")
        }
    }
}
