#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Reads access codes from the terminal without echo, or from a file
/// descriptor for scripts (one line, like gpg's `--passphrase-fd`).
///
/// Codes go straight into `SecretBytes`; they never pass through a `String`.
enum AccessCodeInput {
    enum Failure: Error, CustomStringConvertible {
        case noTerminal
        case noTerminalFor(String, String)
        case badDescriptor(Int32)
        case empty
        case tooLong
        /// A new code outside the lengths the token takes: what it is ("access code") and the range in bytes.
        case length(String, ClosedRange<Int>)
        case mismatch
        case cancelled

        var description: String {
            switch self {
            case .noTerminal: "there is no terminal to ask for the access code; pass it on a file descriptor with --code-fd N"
            case .noTerminalFor(let what, let option): "there is no terminal to ask for the \(what); pass it on a file descriptor with \(option) N"
            case .badDescriptor(let fd): "cannot read the access code from file descriptor \(fd): it is not open"
            case .empty: "the access code is empty; type it again"
            case .tooLong: "the access code is longer than \(SecretBytes.maximumCount) bytes"
            case .length(let what, let range):
                "the \(what) must be \(range.lowerBound) to \(range.upperBound) bytes long (letters and digits count one each); nothing was changed"
            case .mismatch: "the two codes you typed differ; nothing was changed — try again"
            case .cancelled: "cancelled"
            }
        }
    }

    /// One line from `fd`, without its newline. Reads byte by byte so that
    /// nothing after the newline is consumed (the next code may follow on the same descriptor).
    static func read(fd: Int32) throws(Failure) -> SecretBytes {
        guard fcntl(fd, F_GETFD) != -1 else { throw .badDescriptor(fd) }
        var code = SecretBytes()
        var byte: UInt8 = 0
        while true {
            let n = Glibc.read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 0x0A { break }
            guard code.append(byte) else {
                byte = 0
                throw .tooLong
            }
        }
        byte = 0
        guard code.count > 0 else { throw .empty }
        return code
    }

    /// Asks on the controlling terminal with echo off.
    static func prompt(_ message: String) throws(Failure) -> SecretBytes {
        let tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard tty >= 0 else { throw .noTerminal }
        defer { close(tty) }
        var saved = termios()
        guard tcgetattr(tty, &saved) == 0 else { throw .noTerminal }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO | ECHONL)
        quiet.c_lflag |= tcflag_t(ICANON)
        Console.write(fd: tty, message)
        tcsetattr(tty, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(tty, TCSAFLUSH, &saved)
            Console.write(fd: tty, "\n")
        }
        return try read(fd: tty)
    }

    /// A code from `fd` when given, else from the terminal.
    static func obtain(fd: Int32?, prompt message: String) throws(Failure) -> SecretBytes {
        if let fd { return try read(fd: fd) }
        return try prompt(message)
    }

    /// `obtain` for another secret (a file's password): the messages name `what` and `option`.
    static func obtain(fd: Int32?, prompt message: String, what: String, option: String) throws(Failure) -> SecretBytes {
        do throws(Failure) {
            return try obtain(fd: fd, prompt: message)
        } catch .noTerminal {
            throw .noTerminalFor(what, option)
        }
    }

    /// A new code: from `fd` once, or typed twice on the terminal and compared. With `lengths`, a code of
    /// another length (in bytes) is refused as soon as it is read, before it is asked for again.
    static func obtainNew(fd: Int32?, prompt message: String, again: String,
                          lengths: (what: String, range: ClosedRange<Int>)? = nil) throws(Failure) -> SecretBytes {
        let first: SecretBytes
        if let fd { first = try read(fd: fd) } else { first = try prompt(message) }
        if let lengths, !lengths.range.contains(first.count) { throw .length(lengths.what, lengths.range) }
        if fd != nil { return first }
        let second = try prompt(again)
        guard first.constantTimeEquals(second) else { throw .mismatch }
        return first
    }
}
