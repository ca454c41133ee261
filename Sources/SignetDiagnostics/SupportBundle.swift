#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import SignetCore

/// The parts of `signet report`'s support bundle that are not the command: the private directory its files are
/// gathered in, the configuration with its secrets blanked, and `tar` run onto the archive.
public enum SupportBundle {
    /// What went wrong making the bundle, as a sentence for the user.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// The directory the report's files are gathered in before `tar` packs them: made by `mkdtemp` (0700,
    /// a fresh random name), its files created inside it through directory descriptors with `O_EXCL|O_NOFOLLOW`.
    /// A fixed name (`/tmp/signet-report-<pid>`) let another user pre-create it with symlinks inside and read or
    /// change the audit log, agent log and configuration before `tar` ran.
    public final class Staging {
        /// The private directory; the files are in its `signet-report` folder.
        public let path: String
        private let folder: Int32

        /// - Throws: `Failure` when the temporary directory cannot be made.
        public init() throws {
            let base = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            var template = Array((base + "/signet-report-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                throw Failure("cannot make a private directory in \(base) for the report: \(String(cString: strerror(errno))). Set TMPDIR to a directory you can write.")
            }
            path = String(cString: made)
            let work = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            defer { if work >= 0 { close(work) } }
            guard work >= 0, mkdirat(work, "signet-report", 0o700) == 0 else {
                let reason = String(cString: strerror(errno))
                rmdir(path)
                throw Failure("cannot prepare \(path) for the report: \(reason)")
            }
            folder = openat(work, "signet-report", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard folder >= 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: path)
                throw Failure("cannot prepare \(path) for the report: \(reason)")
            }
        }

        /// Creates `name` (0600; never an existing file or a symlink) and writes `text` to it.
        /// - Throws: `Failure` when the file cannot be created or written.
        public func write(_ name: String, _ text: String) throws {
            let fd = openat(folder, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Failure("cannot create \(name) in \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let failure = Array(text.utf8).withUnsafeBytes { bytes -> (any Error)? in
                do { try FileIO.writeAll(fd, bytes); return nil } catch { return error }
            }
            if let failure { throw Failure("cannot write \(name) in \(path): \(failure)") }
        }

        /// Removes the directory and what is in it.
        public func remove() {
            close(folder)
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Blanks the values of keys that name a code or a secret.
    public static func redacted(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let lower = line.lowercased()
            guard let eq = line.firstIndex(of: "="), !lower.hasPrefix("#"),
                  ["pin", "code", "password", "passphrase", "secret", "token-key"].contains(where: { lower[..<lower.index(lower.startIndex, offsetBy: line.distance(from: line.startIndex, to: eq))].contains($0) })
            else { return String(line) }
            return String(line[...eq]) + " [removed]"
        }.joined(separator: "\n")
    }

    /// Runs /bin/tar with its standard output on `output` and waits (posix_spawn and waitpid; Foundation's
    /// Process was seen to hang here).
    public static func tar(_ arguments: [String], output: Int32) throws -> Int32 {
        let argv = (["/bin/tar"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/tar", &actions, nil, argv, environ)
        guard result == 0 else { throw Failure("cannot run /bin/tar: \(String(cString: strerror(result)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
