#if canImport(Glibc)
import Glibc
#endif

/// Small, blocking Unix-domain stream socket helpers shared by the agent and its clients.
/// Every descriptor is created close-on-exec; writes never raise SIGPIPE.
public enum UnixSocket {
    /// The `sockaddr_un` for `path`, or nil when the path does not fit.
    public static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return address
    }

    /// Connects to the socket at `path`.
    /// - Throws: `SocketError` (`ENOENT`, `ECONNREFUSED`, `EACCES`, …).
    public static func connect(_ path: String) throws(SocketError) -> Int32 {
        guard var address = address(path) else { throw SocketError("socket path too long", ENAMETOOLONG) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let error = SocketError("connect", errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// Binds and listens on `path` (which must not exist), with `mode` applied before anyone can connect.
    /// - Throws: `SocketError` naming the call that failed (`bind`: `EADDRINUSE` when `path` exists, `EACCES`), or
    ///   `ENAMETOOLONG` for a path that does not fit a socket address.
    public static func listen(_ path: String, mode: mode_t = 0o600, backlog: Int32 = 128) throws(SocketError) -> Int32 {
        guard var address = address(path) else { throw SocketError("socket path too long", ENAMETOOLONG) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        // umask makes the socket file 0600 from its creation: no window where others may connect.
        let previous = umask(0o777 & ~mode)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0 else {
            let error = SocketError("bind", errno)
            close(fd)
            throw error
        }
        chmod(path, mode)
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = SocketError("listen", errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// The peer's pid, uid and gid (`SO_PEERCRED`), as the kernel recorded them at connect time.
    public static func peerCredentials(_ fd: Int32) -> (pid: Int32, uid: uid_t, gid: gid_t)? {
        // struct ucred needs _GNU_SOURCE, which the Glibc module does not define: same layout here.
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, length == 12 else { return nil }
        return (credentials.pid, uid_t(credentials.uid), gid_t(credentials.gid))
    }

    /// Sets a send timeout so that a peer that stops reading cannot block a writer forever.
    public static func setSendTimeout(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes all of `bytes`. MSG_NOSIGNAL: a closed peer is an error, not a signal.
    /// - Throws: `SocketError("send", errno)` (`EPIPE` when the peer has closed, `EAGAIN` past a send timeout); a signal does not fail it.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SocketError) {
        var offset = 0
        while offset < bytes.count {
            offset += try System.call("send") { send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// Waits until `fd` is readable or `timeout` seconds pass (nil: forever).
    /// - Returns: false on timeout.
    public static func waitReadable(_ fd: Int32, timeout: Double?) -> Bool {
        (try? System.poll(fd, events: Int16(POLLIN), timeout: timeout.map { max(0, $0) })) ?? false
    }

    /// Reads exactly `buffer.count` bytes, waiting at most `timeout` seconds in all.
    /// - Throws: `SocketError` with call "eof" when the peer closed before the first byte
    ///   (`code` 0) or mid-way (`code` EPIPE), or `ETIMEDOUT`.
    /// - Parameter spin: on machines with more than one CPU, poll without sleeping for up to this many
    ///   seconds first. A request–answer round trip then costs no sleep and wake-up on either side,
    ///   which on virtual machines is most of its time; the spin is short, so an idle peer costs little.
    /// - Parameter onceStarted: when given, the rest must arrive within this many seconds of the first
    ///   byte (`timeout` then bounds only the wait for that first byte).
    /// - Returns: when the first byte arrived (`MonotonicClock` seconds).
    @discardableResult
    public static func readExactly(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, timeout: Double?, spin: Double = 0,
                                   onceStarted: Double? = nil) throws(SocketError) -> Double {
        var offset = 0
        var deadline = timeout.map { MonotonicClock.seconds() + $0 }
        var firstByte = MonotonicClock.seconds()
        func started() {
            firstByte = MonotonicClock.seconds()
            if let onceStarted { deadline = firstByte + onceStarted }
        }
        if spin > 0, processorCount > 1 {
            let until = MonotonicClock.seconds() + spin
            while offset < buffer.count {
                let n = System.retrying { recv(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_DONTWAIT)) }
                if n > 0 { if offset == 0 { started() }; offset += n; continue }
                if n == 0 { throw SocketError("eof", offset == 0 ? 0 : EPIPE) }
                guard errno == EAGAIN else { throw SocketError("recv", errno) }
                if MonotonicClock.seconds() >= until { break }
            }
        }
        while offset < buffer.count {
            let left = deadline.map { $0 - MonotonicClock.seconds() }
            if let left, left <= 0 { throw SocketError("read", ETIMEDOUT) }
            guard waitReadable(fd, timeout: left) else { throw SocketError("read", ETIMEDOUT) }
            let n = System.retrying { recv(fd, buffer.baseAddress! + offset, buffer.count - offset, 0) }
            if n < 0 {
                if errno == EAGAIN { continue }
                throw SocketError("recv", errno)
            }
            if n == 0 { throw SocketError("eof", offset == 0 ? 0 : EPIPE) }
            if offset == 0 { started() }
            offset += n
        }
        return firstByte
    }
}

extension UnixSocket {
    /// Online CPUs (spinning helps only when the peer runs on another one).
    public static let processorCount = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}
