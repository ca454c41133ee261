import FoundationEssentials
import Glibc
import SignetCore

/// Where a mail command reads: `--in FILE` or standard input.
public enum MailInput {
    /// Opens the input for streaming; the caller closes what is not 0.
    public static func open(_ path: String?) throws -> Int32 {
        guard let path else { return 0 }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SignetError(.failure, "Cannot read \(path): \(String(cString: strerror(errno))).") }
        return fd
    }

    /// The whole input when `prefix` has been read from `fd` already, up to `limit` bytes.
    public static func readRest(_ fd: Int32, prefix: [UInt8], limit: Int, name: String?) throws -> [UInt8] {
        let tooLarge = SignetError(.malformed, "\(name ?? "The message") is larger than \(limit >> 20) MiB, more than Signet opens.")
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > limit { throw tooLarge }
        var bytes = prefix
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while bytes.count <= limit {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw SignetError(description: "Reading the message failed: \(String(cString: strerror(errno))).") }
            if got == 0 { return bytes }
            bytes += chunk[..<got]
        }
        throw tooLarge
    }

    /// Reads the whole input, up to `limit` bytes (messages that are parsed in memory).
    public static func read(_ path: String?, limit: Int) throws -> [UInt8] {
        let fd = try open(path)
        defer { if fd != 0 { close(fd) } }
        return try readRest(fd, prefix: [], limit: limit, name: path)
    }
}

/// Where a mail command writes, so that a failure leaves nothing behind: `-o FILE` is
/// written to a temporary file renamed into place at the end; standard output is streamed.
public final class MailOutput {
    public let fd: Int32
    private let temporary: String?
    private let destination: String?
    private var done = false

    public init(_ path: String?, mode: mode_t) throws {
        destination = path
        if let path {
            guard let (fd, temporary) = FileIO.createTemporary(beside: path, mode: mode) else {
                throw SignetError(description: "Cannot write \(path): \(String(cString: strerror(errno))).")
            }
            self.fd = fd
            self.temporary = temporary
        } else {
            fd = 1
            temporary = nil
        }
    }

    /// Makes the output visible: renames the file into place.
    public func commit() throws {
        done = true
        guard let temporary, let destination else { return }
        guard FileIO.commit(fd, temporary: temporary, to: destination) else {
            throw SignetError(description: "Could not write \(destination).")
        }
    }

    /// Throws away what was written to a file.
    public func discard() {
        guard !done else { return }
        done = true
        if let temporary { close(fd); unlink(temporary) }
    }

    deinit { discard() }
}

/// Reading an open file by position (what was just written to it).
public struct FileView {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public var size: Int { Int(lseek(fd, 0, SEEK_END)) }

    /// The first `count` bytes (fewer if the file is shorter).
    public func head(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, 0) }
        return Array(bytes.prefix(max(0, got)))
    }

    /// The whole file (callers check `size` first).
    public func contents() -> [UInt8] { head(size) }
}
