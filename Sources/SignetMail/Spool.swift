import Glibc
import SignetCore

/// A temporary file with no name (created 0600 and unlinked at once), for ciphertext set aside or
/// plaintext held back until it is known good; it vanishes when closed or when the process ends.
public final class Spool {
    public let fd: Int32
    private var readOffset: off_t = 0

    /// Creates the file in `$TMPDIR` (default /tmp).
    /// - Throws: `SignetError` when the file cannot be made.
    public init() throws(SignetError) {
        let directory = ProcessEnvironment.value("TMPDIR").flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(directory)/.signet-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SignetError(.failure, "Cannot create a temporary file in \(directory): \(String(cString: strerror(errno))).") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        fchmod(fd, 0o600)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes everything `pull` gives until it returns 0.
    public func fill(from pull: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        while true {
            let got = try chunk.withUnsafeMutableBytes { try pull($0) }
            if got == 0 { break }
            try chunk.withUnsafeBytes { try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<got])) }
        }
    }

    /// Reads the file from the start, piece by piece (0 at the end).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let got = pread(fd, buffer.baseAddress, buffer.count, readOffset)
        guard got >= 0 else { throw SignetError(.failure, "Reading a temporary file failed: \(String(cString: strerror(errno))).") }
        readOffset += off_t(got)
        return got
    }

    /// Copies the whole file to `output`.
    public func copy(to output: Int32) throws {
        readOffset = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let got = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if got == 0 { return }
            try chunk.withUnsafeBytes { try FileIO.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[..<got])) }
        }
    }
}
