import Foundation

/// A pseudo-terminal of this process's (`/dev/ptmx`): its `/dev/pts/N`, held open on both sides until
/// `close()`, for the tests of where a prompt may go.
public final class PseudoTerminal {
    public let master: Int32
    public private(set) var slave: Int32
    /// `/dev/pts/N`.
    public let path: String

    public init() throws {
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw TestFailure("cannot open /dev/ptmx: \(String(cString: strerror(errno)))") }
        var unlock: Int32 = 0, number: UInt32 = 0
        // TIOCSPTLCK and TIOCGPTN (what unlockpt and ptsname do; Swift's Glibc does not import them).
        guard ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            Glibc.close(master)
            throw TestFailure("cannot unlock the pseudo-terminal")
        }
        path = "/dev/pts/\(number)"
        slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else { Glibc.close(master); throw TestFailure("cannot open \(path)") }
    }

    /// Closes both sides: the pts is gone, and its number free for the next one opened.
    public func close() {
        if slave >= 0 { Glibc.close(slave); slave = -1 }
        Glibc.close(master)
    }

    /// What was written to the terminal (its master side) within `seconds`; empty when nothing was.
    public func written(within seconds: Double) -> [UInt8] {
        var entry = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(seconds * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(master, &buffer, buffer.count)
        return n > 0 ? Array(buffer[..<n]) : []
    }
}
