#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers over POSIX calls (no Foundation in the core layers).
public enum FileIO {
    /// The file's text, or `nil` if it cannot be read or is larger than `limit` bytes.
    public static func readText(_ path: String, limit: Int) -> String? {
        guard let bytes = readBytes(path, limit: limit) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The file's bytes, or `nil` if it cannot be read or is larger than `limit` bytes.
    public static func readBytes(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        // Not zeroed: /proc files are read per connection, and clearing 64 KiB cost more than reading them.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: min(65536, max(limit, 0) + 1)) { chunk -> [UInt8]? in
            while true {
                let n = System.retrying { read(fd, chunk.baseAddress, chunk.count) }
                if n < 0 { return nil }
                if n == 0 { break }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n]))
                if out.count > limit { return nil }
            }
            return out
        }
    }

    /// Writes all of `bytes` to a file or pipe.
    /// - Throws: `StreamError.io("Writing failed: …")` with the system's reason (`EPIPE`, `ENOSPC`, …); a signal does not fail it.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(StreamError) {
        var offset = 0
        while offset < bytes.count {
            do throws(SystemError) {
                offset += try System.call("write") { write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
            } catch {
                throw StreamError.io("Writing failed: \(error.reason)")
            }
        }
    }

    /// Creates `path` and its parents with `mode` (like `mkdir -p`).
    /// - Returns: `false` when a component could not be created.
    @discardableResult
    public static func makeDirectories(_ path: String, mode: mode_t = 0o700) -> Bool {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, mode) != 0 && errno != EEXIST { return false }
        }
        return true
    }

    /// Writes `text` to `path` atomically and durably: a temporary file,
    /// fsync of the file, rename over `path`, fsync of the directory. After
    /// it returns `true` the new content survives a crash or power loss.
    /// - Returns: `false` on any failure; the old file is left in place.
    @discardableResult
    public static func writeAtomically(_ path: String, text: String, mode: mode_t = 0o600) -> Bool {
        writeAtomically(path, bytes: Array(text.utf8), mode: mode)
    }

    /// `writeAtomically(_:text:mode:)` for bytes.
    @discardableResult
    public static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t = 0o600) -> Bool {
        guard let (fd, temporary) = createTemporary(beside: path, mode: mode) else { return false }
        let written = bytes.withUnsafeBytes { raw in (try? writeAll(fd, raw)) != nil }
        guard written else {
            close(fd)
            unlink(temporary)
            return false
        }
        return commit(fd, temporary: temporary, to: path)
    }

    /// Makes a file written through `fd` at `temporary` (from `createTemporary(beside: path, …)`) the file at
    /// `path`: fsync, close, rename over `path`, then fsync of the directory (so the rename is durable too).
    /// `fd` is closed either way, and `temporary` removed when the rename did not happen.
    /// - Returns: whether the new file is at `path`; when `false`, the old file is left in place.
    @discardableResult
    public static func commit(_ fd: Int32, temporary: String, to path: String) -> Bool {
        let synced = fsync(fd) == 0
        guard close(fd) == 0, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        syncDirectory(of: path)
        return true
    }

    /// Creates a new, empty file for reading and writing next to `path` (to be renamed over it), named
    /// `path` plus a random suffix, with `mode` (less the umask) from its creation. It never opens
    /// something already there: a name another user guessed and planted (a symlink to a victim's file,
    /// a file open to all) is skipped, not followed or reused.
    /// - Returns: the descriptor (close-on-exec) and the name, or `nil` with `errno` set.
    public static func createTemporary(beside path: String, mode: mode_t) -> (fd: Int32, path: String)? {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let suffix = String(generator.next() & 0xFFFF_FFFF_FFFF, radix: 36)
            let temporary = path + ".signet-" + suffix + ".tmp"
            let fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 { return (fd, temporary) }
            if errno != EEXIST { return nil }
        }
        return nil
    }

    /// fsyncs the directory holding `path`, so a rename or creation in it is durable.
    @discardableResult
    public static func syncDirectory(of path: String) -> Bool {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fsync(fd) == 0
    }

    /// Whether something exists at `path`.
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The names in a directory (without `.` and `..`, unsorted); empty when it cannot be read.
    public static func names(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }
}
