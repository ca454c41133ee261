#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Running the NSS tools: never on the terminal, never for ever.
enum SetupTool {
    /// How long one tool may run before it is killed (modutil takes well under a second).
    static let timeoutSeconds = 60

    /// `name`'s path in `path` (a `$PATH` value), or nil.
    static func find(_ name: String, path: String) -> String? {
        path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// Runs `executable` and waits at most `timeout` seconds; its exit status and its standard output and error
    /// together. The child reads nothing from a terminal: standard input is /dev/null, and it runs in a session of
    /// its own, with no controlling terminal, so /dev/tty cannot be opened (certutil, asked for a password it
    /// cannot read, loops on /dev/tty for ever). One that outlives `timeout` is killed, with its process group.
    static func run(_ executable: String, _ arguments: [String], timeout: Int = timeoutSeconds) -> (status: Int32, output: String) {
        let ran = runCapturing(executable, arguments, timeout: timeout)
        var lines = String(decoding: ran.output, as: UTF8.self).split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty }
        if lines.count > 6 { lines = Array(lines.prefix(3)) + ["…"] + Array(lines.suffix(2)) }
        let text = lines.joined(separator: " ")
        if ran.timedOut {
            return (-1, "\(executable.split(separator: "/").last ?? "") did not finish within \(timeout) s and was stopped" + (text.isEmpty ? "" : " (it said: \(text))"))
        }
        return (ran.status, ran.failure ?? text)
    }

    /// Runs `executable` as `run` does and gives its output's lines; nil when it failed or did not finish.
    static func runLines(_ executable: String, _ arguments: [String], timeout: Int = timeoutSeconds) -> [String]? {
        let ran = runCapturing(executable, arguments, timeout: timeout)
        guard ran.status == 0, !ran.timedOut, ran.failure == nil else { return nil }
        // Split as bytes: in Swift "\r\n" is one Character, and certutil -a ends its lines so.
        return ran.output.split(separator: 10, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self).trimmingSpaces }
    }

    /// Runs `executable` as `run` describes; its exit status, output (standard output and error together), whether
    /// it was stopped for running too long, and why it could not be started.
    private static func runCapturing(_ executable: String, _ arguments: [String], timeout: Int)
        -> (status: Int32, output: [UInt8], timedOut: Bool, failure: String?) {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return (-1, [], false, "cannot make a pipe: \(String(cString: strerror(errno)))") }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID: glibc's spawn.h defines it (0x80) only under _GNU_SOURCE, so Swift does not see it.
        posix_spawnattr_setflags(&attributes, 0x80)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard spawned == 0 else { return (-1, [], false, "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = MonotonicClock.seconds() + Double(timeout)
        var timedOut = false
        while true {
            let left = deadline - MonotonicClock.seconds()
            if left <= 0 { timedOut = true; break }
            var poller = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, min(left * 1000, 60_000))))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            // Keep the start and the end of a long output (a tool that loops prints without end).
            output += chunk.prefix(count)
            if output.count > 1 << 16 { output = Array(output.prefix(1 << 15)) + Array(output.suffix(1 << 15)) }
        }
        if timedOut { kill(-pid, SIGKILL); kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (timedOut ? -1 : code, output, timedOut, nil)
    }
}

/// Held while setup changes files, so that two setups at once (which would each read a file, then write it
/// back over the other's change) cannot run: the second is refused, naming the first.
public enum SetupLock {
    /// Takes the lock on `path` (made 0600, its folder 0700, when missing) and holds it until the process exits.
    /// - Returns: nil when taken; else why not, as a sentence for the user.
    public static func acquire(_ path: String) -> String? {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard directory.isEmpty || FileIO.makeDirectories(directory) else {
            return "Cannot make \(directory) for setup's lock: \(String(cString: strerror(errno)))."
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return "Cannot open setup's lock \(path): \(String(cString: strerror(errno)))." }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) == 0 { return nil }  // fd stays open: the lock lasts as long as the process
        let reason = errno
        var holder = flock()
        holder.l_type = Int16(F_WRLCK)
        holder.l_whence = Int16(SEEK_SET)
        let pid = fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? " (pid \(holder.l_pid))" : ""
        close(fd)
        guard reason == EAGAIN || reason == EACCES else { return "Cannot lock \(path): \(String(cString: strerror(reason)))." }
        return "Another `signet setup` is running\(pid); nothing was changed. Let it finish, then run `signet setup` again if needed."
    }
}
