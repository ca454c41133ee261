import Glibc
import SignetCore

/// Puts a MIME entity into the canonical form S/MIME signs (RFC 5751 §3.1.1),
/// as a stream: text lines end in CRLF (a bare LF gains its CR; nothing else
/// changes), while the body of a part declared `Content-Transfer-Encoding:
/// binary` is copied byte for byte. Multipart boundaries are followed so each
/// part is treated by its own headers. Memory stays bounded whatever the size
/// of the input: lines longer than `maximumLine` are passed on in pieces.
public struct MIMECanonicalizer {
    /// A line longer than this is passed on before its end is seen.
    public static let maximumLine = 64 << 10
    /// Header text kept per entity to find its type, boundary and encoding.
    static let maximumHeaders = 64 << 10

    private enum Phase { case headers, body }
    private var phase = Phase.headers
    private var pending: [UInt8] = []
    /// The pending line's beginning was already passed on (no boundary or header checks).
    private var midLine = false
    private var headerText: [UInt8] = []
    private var boundaries: [[UInt8]] = []
    private var binaryBody = false
    private var atStart = true

    public init() {}

    /// Canonicalises `input`, appending to `output`.
    public mutating func feed(_ input: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) {
        var start = 0
        while start < input.count {
            // Body text goes through in runs (one copy for lines already ending in CRLF); what ends a run
            // (a possible delimiter, an unfinished line) takes the line-by-line path below.
            if pending.isEmpty, !midLine, phase == .body, let base = input.baseAddress {
                start += bodyLines(base + start, count: input.count - start, into: &output)
                if start == input.count { return }
            }
            guard let base = input.baseAddress, let found = memchr(base + start, 0x0A, input.count - start) else {
                pending.append(contentsOf: input[start...])
                if pending.count > Self.maximumLine { flushLongLine(into: &output) }
                return
            }
            let newline = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            if pending.isEmpty {
                line(UnsafeBufferPointer(rebasing: input[start..<newline]), newline: true, into: &output)
            } else {
                pending.append(contentsOf: input[start..<newline])
                let whole = pending
                pending.removeAll(keepingCapacity: true)
                whole.withUnsafeBufferPointer { line($0, newline: true, into: &output) }
            }
            start = newline + 1
        }
    }

    /// Passes on the whole body lines at `bytes` up to the first that could be a delimiter (`--` while a
    /// multipart is open) or has no newline yet, as `line` would: a text line keeps its CRLF and a bare LF
    /// becomes CRLF; a binary part's lines are copied as they are. Lines already in canonical form are
    /// copied together. Returns how many bytes it took.
    private mutating func bodyLines(_ bytes: UnsafePointer<UInt8>, count: Int, into output: inout [UInt8]) -> Int {
        let delimiters = !boundaries.isEmpty
        var offset = 0
        var copied = 0
        while offset < count {
            if delimiters, bytes[offset] == 0x2D, offset + 1 == count || bytes[offset + 1] == 0x2D { break }
            guard let found = memchr(bytes + offset, 0x0A, count - offset) else { break }
            let newline = UnsafeRawPointer(bytes).distance(to: UnsafeRawPointer(found))
            if !binaryBody, newline == offset || bytes[newline - 1] != 0x0D {
                output.append(contentsOf: UnsafeBufferPointer(start: bytes + copied, count: newline - copied))
                output.append(0x0D)
                output.append(0x0A)
                copied = newline + 1
            }
            offset = newline + 1
        }
        if copied < offset { output.append(contentsOf: UnsafeBufferPointer(start: bytes + copied, count: offset - copied)) }
        if offset > 0 { atStart = false }
        return offset
    }

    /// Passes on what is left (a last line without a newline).
    public mutating func finish(into output: inout [UInt8]) {
        guard !pending.isEmpty else { return }
        let rest = pending
        pending.removeAll()
        rest.withUnsafeBufferPointer { line($0, newline: false, into: &output) }
    }

    /// Convenience for whole inputs.
    public static func canonicalize(_ bytes: [UInt8]) -> [UInt8] {
        var canonicalizer = MIMECanonicalizer()
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 32)
        bytes.withUnsafeBufferPointer { canonicalizer.feed($0, into: &output) }
        canonicalizer.finish(into: &output)
        return output
    }

    private mutating func flushLongLine(into output: inout [UInt8]) {
        // Keep a trailing CR: it may be the first half of a CRLF.
        let keep = pending.last == 0x0D ? 1 : 0
        output.append(contentsOf: pending[..<(pending.count - keep)])
        pending.removeFirst(pending.count - keep)
        midLine = true
    }

    private mutating func line(_ bytes: UnsafeBufferPointer<UInt8>, newline: Bool, into output: inout [UInt8]) {
        let wasMidLine = midLine
        midLine = false
        var content = bytes
        if newline, let last = bytes.last, last == 0x0D { content = UnsafeBufferPointer(rebasing: bytes[..<(bytes.count - 1)]) }
        defer { atStart = false }
        if phase == .headers, !wasMidLine {
            if atStart, !looksLikeHeader(content) {
                phase = .body  // an entity without headers: all text
            } else {
                if content.isEmpty { endOfHeaders() } else if headerText.count < Self.maximumHeaders {
                    if content.first != 0x20 && content.first != 0x09 { headerText.append(0x0A) }
                    headerText.append(contentsOf: content)
                }
                output.append(contentsOf: content)
                if newline { output.append(contentsOf: [0x0D, 0x0A]) }
                return
            }
        }
        if !wasMidLine, content.count >= 2, content[0] == 0x2D, content[1] == 0x2D, let (level, closing) = boundary(content) {
            boundaries.removeLast(boundaries.count - level - (closing ? 0 : 1))
            if closing { binaryBody = false } else { phase = .headers; headerText.removeAll(keepingCapacity: true) }
            output.append(contentsOf: content)
            if newline { output.append(contentsOf: [0x0D, 0x0A]) }
            return
        }
        if binaryBody {
            output.append(contentsOf: bytes)
            if newline { output.append(0x0A) }
        } else {
            output.append(contentsOf: content)
            if newline { output.append(contentsOf: [0x0D, 0x0A]) }
        }
    }

    /// The innermost open boundary this delimiter line names, and whether it closes it.
    private func boundary(_ content: UnsafeBufferPointer<UInt8>) -> (Int, Bool)? {
        for level in boundaries.indices.reversed() {
            let name = boundaries[level]
            guard content.count >= 2 + name.count, content[2..<(2 + name.count)].elementsEqual(name) else { continue }
            let rest = content[(2 + name.count)...]
            let closing = rest.starts(with: [0x2D, 0x2D])
            let tail = closing ? rest.dropFirst(2) : rest
            guard tail.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            return (level, closing)
        }
        return nil
    }

    private func looksLikeHeader(_ content: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let colon = content.firstIndex(of: 0x3A), colon > 0 else { return false }
        return content[..<colon].allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    private mutating func endOfHeaders() {
        phase = .body
        let headers = MIMEHeaders(headerText)
        headerText.removeAll(keepingCapacity: true)
        binaryBody = false
        if let type = headers.value("content-type"), MIMEHeaders.mainValue(type).hasPrefix("multipart/"),
           let name = MIMEHeaders.parameter(type, "boundary"), !name.isEmpty {
            boundaries.append(Array(name.utf8))
        } else if let encoding = headers.value("content-transfer-encoding") {
            binaryBody = MIMEHeaders.mainValue(encoding) == "binary"
        }
    }
}

/// The header fields of a MIME entity, unfolded (enough to read types, parameters, From and Date).
public struct MIMEHeaders {
    public private(set) var fields: [(name: String, value: String)] = []

    /// Parses header text (lines separated by LF; continuation lines already appended).
    init(_ text: [UInt8]) {
        for line in text.split(separator: 0x0A) {
            guard let colon = line.firstIndex(of: 0x3A) else { continue }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).trimmingSpaces().lowercased()
            let value = String(String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces())
            fields.append((name, value))
        }
    }

    /// The headers at the top of `message` (up to the first empty line, at most 64 KiB).
    public init(message: [UInt8]) {
        var text: [UInt8] = []
        var index = 0
        while index < message.count, index < 64 << 10 {
            var end = message[index...].firstIndex(of: 0x0A) ?? message.count
            let next = end + 1
            if end > index, message[end - 1] == 0x0D { end -= 1 }
            if end == index { break }
            let line = message[index..<end]
            if line.first != 0x20 && line.first != 0x09 { text.append(0x0A) }
            text.append(contentsOf: line)
            index = next
        }
        self.init(text)
    }

    /// The first field called `name` (lower case).
    public func value(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// "multipart/signed" from `Multipart/Signed; boundary=…`.
    public static func mainValue(_ value: String) -> String {
        (value.split(separator: ";", maxSplits: 1).first ?? "").trimmingSpaces().lowercased()
    }

    /// A parameter's value, unquoted.
    public static func parameter(_ value: String, _ name: String) -> String? {
        for part in value.split(separator: ";").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingSpaces().lowercased() == name else { continue }
            var result = String(pair[1].trimmingSpaces())
            if result.hasPrefix("\""), result.hasSuffix("\""), result.count >= 2 { result = String(result.dropFirst().dropLast()) }
            return result
        }
        return nil
    }
}
