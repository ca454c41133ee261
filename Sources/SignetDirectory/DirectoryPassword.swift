import Glibc
import SignetCore

/// The simple-bind password from `directory-password-file`: read only when the file is a regular file of yours
/// that no one else may read (mode 0600 or stricter), as ssh treats private keys; never from argv or the environment.
public enum DirectoryPassword {
    /// Why the password file was refused or could not be read.
    public struct Refused: Error, CustomStringConvertible {
        public var description: String
    }

    /// The password in `path`, without a final newline, in a buffer that is zeroed when released.
    /// - Throws: `Refused` when the file is missing, not a regular file, not yours, readable or writable by
    ///   others, empty, or longer than `SecretBytes.maximumCount`.
    public static func read(_ path: String) throws(Refused) -> SharedSecret {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw Refused(description: "Cannot read directory-password-file \(path): \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw Refused(description: "directory-password-file \(path) is not a regular file.")
        }
        guard info.st_uid == getuid() else {
            throw Refused(description: "directory-password-file \(path) belongs to uid \(info.st_uid), not to you; it is not used.")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw Refused(description: "directory-password-file \(path) has mode \(String(info.st_mode & 0o777, radix: 8)): others may read it, "
                          + "so it is not used. Make it yours alone with `chmod 600 \(path)`, and change the password if others could read it.")
        }
        let capacity = SecretBytes.maximumCount + 1
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
        defer {
            SecretBytes.wipe(buffer)
            buffer.deallocate()
        }
        var count = 0
        while count < capacity {
            let got = Glibc.read(fd, buffer.baseAddress! + count, capacity - count)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            count += got
        }
        guard count <= SecretBytes.maximumCount else {
            throw Refused(description: "directory-password-file \(path) is longer than \(SecretBytes.maximumCount) bytes; it should hold only the password.")
        }
        while count > 0 && (buffer[count - 1] == 10 || buffer[count - 1] == 13) { count -= 1 }
        guard count > 0 else { throw Refused(description: "directory-password-file \(path) is empty.") }
        return SharedSecret(copying: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
    }
}
