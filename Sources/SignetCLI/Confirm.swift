import Glibc
import SignetCore

/// Yes/no questions on the terminal.
enum Confirm {
    /// Asks `question` on /dev/tty; nil when there is no terminal.
    static func ask(_ question: String) -> Bool? {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard tty >= 0 else { return nil }
        defer { close(tty) }
        _ = Array(question.utf8).withUnsafeBytes { try? FileIO.writeAll(tty, $0) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 64 {
            let n = read(tty, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1, byte != 0x0A else { break }
            line.append(byte)
        }
        let answer = String(decoding: line, as: UTF8.self).trimmingSpaces().lowercased()
        return answer == "y" || answer == "yes"
    }
}
