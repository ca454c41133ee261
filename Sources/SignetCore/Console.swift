#if canImport(Glibc)
import Glibc
#endif

/// Writing to the standard streams without the shared C `FILE*` globals.
public enum Console {
    /// `text` made safe to show on a terminal as one line: every character that can move the cursor, erase,
    /// recolour, end the line or reorder the text around it is written as a visible escape instead. That is C0
    /// controls (`\e`, `\n`, `\r`, `\t`, else `\u{7}`-style), DEL, C1 controls (U+0080–U+009F, `\u{9B}`),
    /// the line and paragraph separators (U+2028, U+2029) and the bidirectional controls (U+061C, U+200E,
    /// U+200F, U+202A–U+202E, U+2066–U+2069, `\u{202E}`).
    ///
    /// For every line meant for a person that holds text Signet did not write: names and addresses from
    /// certificates, labels and URIs from tokens, program paths and details from the audit log. A certificate
    /// whose common name held `ESC[1A ESC[2K` could otherwise rewrite the line above ("NOT TRUSTED") on screen.
    /// A backslash is kept as it is, so escaping twice changes nothing; JSON output is escaped by its encoder.
    public static func safe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard isUnsafe(scalar) else { result.unicodeScalars.append(scalar); continue }
            switch scalar {
            case "\u{1B}": result += "\\e"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default: result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            }
        }
        return result
    }

    /// Whether `scalar` is one that `safe(_:)` escapes.
    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069: true
        default: false
        }
    }

    /// Writes `text` and a newline to standard error.
    public static func error(_ text: String) { write(fd: 2, text + "\n") }
    /// Writes `text` to standard output, without a newline.
    public static func out(_ text: String) { write(fd: 1, text) }

    /// Writes all of `text` to `fd`, retrying short writes.
    public static func write(fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { raw in System.retrying { Glibc.write(fd, raw.baseAddress, raw.count) } }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
