#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Reading the files setup edits, telling "not there" from "there but not usable": a file that cannot be read
/// or is too large is never taken for an empty one (and replaced).
enum SetupFile {
    /// gpg-agent.conf, gnupg-pkcs11-scd.conf, p11-kit module files: larger than this, setup leaves them alone.
    static let configLimit = 1 << 20
    /// An NSS database's pkcs11.txt.
    static let nssListLimit = 16 << 20

    enum Contents {
        case absent
        case bytes([UInt8])
        /// Why it cannot be used, as the end of a sentence that starts with the path.
        case unusable(String)

        var bytes: [UInt8]? { if case .bytes(let bytes) = self { bytes } else { nil } }
    }

    /// The bytes of `path`; `.absent` only when there is no file (ENOENT).
    static func read(_ path: String, limit: Int) -> Contents {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            return errno == ENOENT ? .absent : .unusable("cannot be read (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return .unusable("is not a regular file") }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .unusable("cannot be read (\(String(cString: strerror(errno))))")
            }
            if count == 0 { return .bytes(out) }
            out += chunk.prefix(count)
            if out.count > limit { return .unusable("is larger than \(limit >> 20) MiB, more than setup edits") }
        }
    }

    /// Writes `bytes` over the file at `path` in place (truncating it first): the way back when there is no
    /// room for a second copy beside it (a full disk). Not atomic; only for putting a file back.
    static func overwrite(_ path: String, with bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let written = bytes.withUnsafeBytes { (try? FileIO.writeAll(fd, $0)) != nil }
        let synced = fsync(fd) == 0
        return close(fd) == 0 && written && synced
    }
}

/// A configuration file (gpg-agent.conf, gnupg-pkcs11-scd.conf) as bytes: the user's lines, kept byte for byte
/// (CRLF or LF, any encoding), and Signet's block, the lines `signet setup` added between two marker comments,
/// so that undo removes exactly them and the file is again byte for byte what it was.
struct MarkedLines {
    static let begin = "# Added by `signet setup`; `signet setup --undo` removes these lines, up to the end mark."
    /// The begin mark when setup also ended the user's last line, which had no line end: undo takes that away too.
    static let beginAfterUnended = "# Added by `signet setup` (with the line end before it); `signet setup --undo` removes these lines, up to the end mark."
    static let end = "# End of the lines added by `signet setup`."

    /// The user's lines, each with its own line end (the last may have none).
    private(set) var outside: [[UInt8]] = []
    /// Signet's lines (without the marks and line ends), nil when the file has no block.
    private(set) var block: [String]?
    /// Where in `outside` the block was.
    private var position: Int?
    /// The block's begin mark was `beginAfterUnended`.
    private var endedLineBefore = false
    /// The file's line end: CRLF when its first line ends so, else LF.
    private let lineEnd: [UInt8]

    init(bytes: [UInt8]) {
        var lines: [[UInt8]] = []
        var start = 0
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            lines.append(Array(bytes[start...index]))
            start = index + 1
        }
        if start < bytes.count { lines.append(Array(bytes[start...])) }
        lineEnd = lines.first.map { $0.count >= 2 && $0.suffix(2) == [13, 10] } == true ? [13, 10] : [10]
        var inside: [[UInt8]]?
        var beginLine: [UInt8] = []
        for line in lines {
            let text = MarkedLines.content(line)
            if inside == nil, block == nil, text == MarkedLines.begin || text == MarkedLines.beginAfterUnended {
                inside = []
                beginLine = line
                position = outside.count
                endedLineBefore = text == MarkedLines.beginAfterUnended
            } else if inside != nil, text == MarkedLines.end {
                block = inside!.map(MarkedLines.content)
                inside = nil
            } else if inside != nil {
                inside!.append(line)
            } else {
                outside.append(line)
            }
        }
        // A begin mark without its end: the lines after it are the user's, not ours.
        if let inside, block == nil {
            outside.insert(contentsOf: [beginLine] + inside, at: position ?? outside.count)
            position = nil
            endedLineBefore = false
        }
    }

    /// A line's text without its line end (LF or CRLF), decoded for comparing (invalid UTF-8 becomes U+FFFD).
    static func content(_ line: [UInt8]) -> String {
        var end = line.count
        if end > 0, line[end - 1] == 10 { end -= 1 }
        if end > 0, line[end - 1] == 13 { end -= 1 }
        return String(decoding: line[..<end], as: UTF8.self)
    }

    /// The user's lines, as text without their line ends.
    var outsideLines: [String] { outside.map(MarkedLines.content) }

    /// The value of the user's `key value` line (the last one, as GnuPG reads it), or nil.
    func outsideValue(of key: String) -> String? {
        outside.compactMap { ConfigLines.value(of: key, inLine: MarkedLines.content($0), separator: " ") }.last
    }

    /// The file with `lines` as Signet's block (where the old block was, else at the end), or without one.
    func bytes(with lines: [String]?) -> [UInt8] {
        var result = outside
        let at = min(position ?? result.count, result.count)
        var ended = position != nil && endedLineBefore
        if let lines {
            if position == nil, let last = result.last, last.last != 10 {
                // The user's last line has no line end: the block gives it one, and says so for undo.
                result[result.count - 1] += lineEnd
                ended = true
            }
            let block = [ended ? MarkedLines.beginAfterUnended : MarkedLines.begin] + lines + [MarkedLines.end]
            result.insert(contentsOf: block.map { Array($0.utf8) + lineEnd }, at: at)
        } else if ended, at > 0 {
            // Undo the line end setup gave the line before the block.
            var line = result[at - 1]
            if line.last == 10 { line.removeLast() }
            if line.last == 13, lineEnd == [13, 10] { line.removeLast() }
            result[at - 1] = line
        }
        return result.flatMap { $0 }
    }
}

/// `key value` lines of the simple configuration files setup reads.
enum ConfigLines {
    /// The value of `key` in one line (`key<separator>value`, spaces around), or nil for another key or a comment.
    static func value(of key: String, inLine line: String, separator: Character) -> String? {
        let trimmed = line.trimmingSpaces
        guard !trimmed.hasPrefix("#"), trimmed.hasPrefix(key) else { return nil }
        let rest = trimmed.dropFirst(key.count)
        if separator == " " {
            guard let first = rest.first, first == " " || first == "\t" else { return nil }
            return String(rest).trimmingSpaces
        }
        let afterKey = String(rest).trimmingSpaces
        guard afterKey.first == separator else { return nil }
        return String(afterKey.dropFirst()).trimmingSpaces
    }

    /// The last value of `key` in `text` (LF or CRLF lines).
    static func value(of key: String, in text: String, separator: Character) -> String? {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).compactMap { value(of: key, inLine: String($0), separator: separator) }.last
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and carriage returns.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
