#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed: the call's name and its `errno`, read as `call: strerror(errno)`
/// ("connect: Connection refused").
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call that failed (`"open"`, `"waitpid"`), or a word for the condition (`"eof"`).
    public var call: String
    /// Its `errno` (or the error number a call such as `posix_spawn` returns).
    public var code: Int32
    public init(_ call: String, _ code: Int32 = errno) { self.call = call; self.code = code }
    /// The system's text for `code` (`strerror`).
    public var reason: String { System.describe(code) }
    public var description: String { "\(call): \(reason)" }
}

/// The socket calls' error: the same as every other system call's.
public typealias SocketError = SystemError

/// The one place POSIX calls are retried and their failures turned into `SystemError` (as NIOPosix's `syscall`).
///
/// A call interrupted by a signal (`EINTR`) is made again; any other failure is thrown with the call's name
/// and `errno`, read before anything else can change it.
public enum System {
    /// The system's text for an error number (`strerror`).
    public static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Makes a call that returns a negative number and sets `errno` when it fails, again while it fails with `EINTR`.
    /// - Parameter name: the call's name, for the error.
    /// - Returns: the call's result (never negative).
    /// - Throws: `SystemError(name, errno)` for any failure but `EINTR`.
    @discardableResult
    public static func call<Result: FixedWidthInteger & SignedInteger>(
        _ name: String, _ body: () -> Result
    ) throws(SystemError) -> Result {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw SystemError(name, code)
        }
    }

    /// Makes a call that returns its error number (0 on success) instead of setting `errno`
    /// (`posix_spawn`, the `pthread_` calls), again while it returns `EINTR`.
    /// - Throws: `SystemError(name, code)` for any other non-zero result.
    public static func checked(_ name: String, _ body: () -> Int32) throws(SystemError) {
        while true {
            let code = body()
            if code == 0 { return }
            if code == EINTR { continue }
            throw SystemError(name, code)
        }
    }

    /// Makes a call again while it fails with `EINTR`, and hands back its last result with `errno` as it left it:
    /// for callers to whom other failures are answers (`EAGAIN`, `ENOENT`, a timeout).
    @discardableResult
    public static func retrying<Result: FixedWidthInteger & SignedInteger>(_ body: () -> Result) -> Result {
        while true {
            let result = body()
            if result < 0 && errno == EINTR { continue }
            return result
        }
    }

    /// Waits until `fd` has one of `events` (`POLLIN`, `POLLOUT`) or `timeout` seconds pass (nil: no bound).
    /// A signal does not end the wait early nor stretch it: the wait goes on for the time that is left.
    /// - Returns: false when the time ran out.
    /// - Throws: `SystemError("poll", errno)`.
    public static func poll(_ fd: Int32, events: Int16, timeout: Double?) throws(SystemError) -> Bool {
        let deadline = timeout.map { MonotonicClock.seconds() + $0 }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let left = deadline.map { max(0, $0 - MonotonicClock.seconds()) }
            let milliseconds = left.map { Int32(min(($0 * 1000).rounded(.up), Double(Int32.max))) } ?? -1
            let ready = Glibc.poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready == 0 { return false }
            guard errno == EINTR else { throw SystemError("poll", errno) }
        }
    }

    /// Sleeps `seconds`, the whole of it: a signal does not cut it short.
    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        let whole = seconds.rounded(.down)
        var request = timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// The canonical absolute path of `path` (symbolic links, `.` and `..` resolved: `realpath(3)`),
    /// or nil when it cannot be resolved (it does not exist, or a directory on the way cannot be searched).
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
