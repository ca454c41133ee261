#if canImport(Glibc)
import Glibc
#endif

/// Reading a file that tells Signet what to run, load or allow — the configuration (which names a
/// `pinentry-program` and `pkcs11-module`s), the lockout policy and the client rules — only when no one
/// but its owner could have written it.
///
/// The rule (the clients file's since it was added; OpenSSH's StrictModes is alike): the file is owned by
/// this user or root (root only for the administrator's files in `/etc/signet`) and is not writable by
/// group or others; so is every directory on its path, followed or not through symbolic links, up to `/`,
/// except that a directory with the sticky bit (`/tmp`) may be writable by others, since they cannot
/// rename or remove what is in it. Otherwise the file is refused as a whole: another user who can write it,
/// or replace it, could have made Signet run their program as this user.
public enum ProtectedFile {
    /// Who may own the file and the directories above it.
    public enum Owner: Sendable {
        /// Root only: `/etc/signet/…`.
        case administrator
        /// This user or root: `$XDG_CONFIG_HOME/signet/…`.
        case user

        func allows(_ uid: uid_t) -> Bool { uid == 0 || (self == .user && uid == getuid()) }
        var words: String { self == .administrator ? "root" : "you (uid \(getuid())) or root" }
    }

    /// What reading found.
    public enum Contents: Sendable, Equatable {
        /// There is no such file.
        case absent
        /// The file's text.
        case text(String)
        /// The file is not used; each problem names the file or directory and says what to do.
        case refused([String])
    }

    /// Reads `path` (at most `limit` bytes) when it and the directories above it pass the rule.
    /// - Parameter risk: what someone who could write the file could do, for the message ("make Signet run
    ///   their program as you").
    public static func read(_ path: String, owner: Owner, limit: Int, risk: String) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return .absent }
            return .refused(["\(path): cannot be read (\(System.describe(errno)))"])
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return .refused(["\(path): is not a regular file"]) }
        var problems = fileProblems(path, info, owner: owner, risk: risk)
        problems += directoryProblems(path, owner: owner)
        guard problems.isEmpty else { return .refused(problems) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= limit {
            let n = System.retrying { Glibc.read(fd, &chunk, chunk.count) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        guard bytes.count <= limit else { return .refused(["\(path): is larger than \(limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit >> 10) KiB")"]) }
        return .text(String(decoding: bytes, as: UTF8.self))
    }

    /// The problems of a file whose `fstat` is `info`: its owner, and write permission for group or others.
    public static func fileProblems(_ path: String, _ info: stat, owner: Owner, risk: String) -> [String] {
        var problems: [String] = []
        if !owner.allows(info.st_uid) {
            problems.append("\(path): belongs to uid \(info.st_uid), not to \(owner.words); it could have been written by someone else (chown it)")
        }
        if info.st_mode & 0o022 != 0 {
            problems.append("\(path): is writable by group or others (mode \(String(info.st_mode & 0o7777, radix: 8))); "
                            + "anyone who can write it could \(risk) (chmod go-w \(path))")
        }
        return problems
    }

    /// The problems of the directories above `path`, both as written and with symbolic links resolved:
    /// one owned by someone else, or writable by group or others without the sticky bit, lets them replace the file.
    public static func directoryProblems(_ path: String, owner: Owner) -> [String] {
        var directories: [String] = []
        func addParents(of file: String) {
            var current = file
            while let slash = current.lastIndex(of: "/") {
                current = slash == current.startIndex ? "/" : String(current[..<slash])
                if !directories.contains(current) { directories.append(current) }
                if current == "/" { break }
            }
        }
        if path.hasPrefix("/") { addParents(of: path) }
        if let real = System.realPath(path) { addParents(of: real) }
        var problems: [String] = []
        for directory in directories {
            var info = stat()
            guard stat(directory, &info) == 0 else { continue }
            if !owner.allows(info.st_uid) {
                problems.append("\(directory): belongs to uid \(info.st_uid), not to \(owner.words), so its owner could replace "
                                + "the files in it (chown it, or move Signet's configuration elsewhere)")
            } else if info.st_mode & 0o022 != 0, info.st_mode & S_ISVTX == 0 {
                problems.append("\(directory): is writable by group or others (mode \(String(info.st_mode & 0o7777, radix: 8))), so they "
                                + "could replace the files in it (chmod go-w \(directory))")
            }
        }
        return problems
    }
}
