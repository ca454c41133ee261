#if canImport(Glibc)
import Glibc
#endif

/// Writing to the standard streams without the shared C `FILE*` globals.
public enum Console {
    /// Writes `text` and a newline to standard error.
    public static func error(_ text: String) { write(fd: 2, text + "\n") }
    /// Writes `text` to standard output, without a newline.
    public static func out(_ text: String) { write(fd: 1, text) }

    /// Writes all of `text` to `fd`, retrying short writes.
    public static func write(fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
