#if canImport(Glibc)
import Glibc
#endif

/// A program Signet starts: `posix_spawn` with its standard streams set up by file actions, no signal blocked
/// (a child inherits the mask of the thread that starts it, and the agent's threads block some), optionally in a
/// process group or session of its own, and a wait with a time bound after which it is killed.
///
/// Standard input is /dev/null unless said otherwise, so a child never reads the terminal of the program that
/// started it. Nothing is reaped on `deinit`: a child started to outlive its starter (the agent) is simply let go.
public final class Subprocess {
    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable {
        /// This process's own.
        case inherit
        /// `/dev/null` (read-only for standard input, write-only for the others).
        case null
        /// A descriptor of this process, duplicated onto the stream (it should be close-on-exec).
        case descriptor(Int32)
        /// A file opened for appending, created with `mode` if absent.
        case appending(to: String, mode: mode_t)
        /// Standard error only: the same as standard output.
        case standardOutput
    }

    /// The process group or session the child runs in.
    public enum Group: Sendable {
        /// This process's.
        case inherit
        /// A process group of its own, killed whole by `kill` and by the time bound of `wait`.
        case processGroup
        /// A session of its own (`setsid`): not killed with this terminal's process group, and killed whole as a group.
        case session
    }

    /// How a child ended.
    public enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)
        /// It outlived the time bound of `wait` and was killed.
        case timedOut
    }

    public let program: String
    public let pid: pid_t
    public let group: Group
    private var reaped = false

    /// Starts `program` (a path: no `PATH` search) with `arguments` after its name.
    /// - Parameters:
    ///   - environment: `NAME=value` entries; nil gives this process's environment.
    ///   - defaultSignals: signals set back to their default action in the child (ones this process ignores).
    /// - Throws: `SystemError("posix_spawn", code)` when it cannot be started (`ENOENT`, `EACCES`, …), or
    ///   `SystemError("open", code)` when a file given for a stream cannot be opened.
    public init(_ program: String, arguments: [String] = [], environment: [String]? = nil,
                standardInput: Stream = .null, standardOutput: Stream = .inherit, standardError: Stream = .inherit,
                group: Group = .inherit, defaultSignals: [Int32] = []) throws(SystemError) {
        self.program = program
        self.group = group
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, stream) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch stream {
            case .inherit: break
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let source): posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .appending(let path, let mode): posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_APPEND | O_CREAT, mode)
            case .standardOutput: posix_spawn_file_actions_adddup2(&actions, 1, fd)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), defaults = sigset_t()
        sigemptyset(&empty)
        sigemptyset(&defaults)
        for signal in defaultSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        switch group {
        case .inherit: break
        case .processGroup:
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        case .session:
            flags |= 0x80  // POSIX_SPAWN_SETSID (glibc 2.26+), which the Glibc module does not export.
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for pointer in envp ?? [] { free(pointer) } }
        var child: pid_t = 0
        try System.checked("posix_spawn") {
            if let envp { posix_spawn(&child, program, &actions, &attributes, argv, envp) } else { posix_spawn(&child, program, &actions, &attributes, argv, environ) }
        }
        pid = child
    }

    /// Sends `signal` to the child, or to its whole group when it leads one. Does nothing once it is reaped
    /// (its pid, or group id, may then be another process's).
    public func kill(_ signal: Int32 = SIGKILL) {
        guard !reaped else { return }
        _ = Glibc.kill(group == .inherit ? pid : -pid, signal)
    }

    /// Waits for the child to end and reaps it.
    /// - Parameters:
    ///   - timeout: seconds to wait (nil: no bound); past them the child (its group, when it leads one) is killed
    ///     with SIGKILL and the answer is `.timedOut`.
    ///   - killingGroup: kill the group even when the leader ended in time (helpers it left behind). The leader is
    ///     reaped only after, so the group id cannot have been reused.
    /// - Throws: `SystemError("waitpid", code)` (`ECHILD`: it was reaped elsewhere).
    @discardableResult
    public func wait(timeout: Double? = nil, killingGroup: Bool = false) throws(SystemError) -> Termination {
        var timedOut = false
        if let timeout {
            let deadline = MonotonicClock.seconds() + timeout
            var pause = 0.001
            while !hasEnded() {
                guard MonotonicClock.seconds() < deadline else { timedOut = true; break }
                System.sleep(seconds: min(pause, max(0, deadline - MonotonicClock.seconds())))
                pause = min(pause * 2, 0.01)
            }
        }
        if timedOut || (killingGroup && group != .inherit) { kill(SIGKILL) }
        var status: Int32 = 0
        try System.call("waitpid") { waitpid(pid, &status, 0) }
        reaped = true
        if timedOut { return .timedOut }
        return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }

    /// Whether the child has ended, without reaping it.
    private func hasEnded() -> Bool {
        var info = siginfo_t()
        return System.retrying { waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) } == 0 && info.si_signo == SIGCHLD
    }
}
