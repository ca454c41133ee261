import Glibc
import SignetCore

/// Bytes pulled in pieces: a file, a base64 decoder, a spool.
public protocol ByteSource: AnyObject {
    /// Copies up to `buffer.count` bytes into `buffer`; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A file descriptor read as it is (not closed here), after `prefix` (bytes already read from it).
public final class DescriptorSource: ByteSource {
    private let fd: Int32
    private var prefix: [UInt8]
    private var prefixOffset = 0

    public init(fd: Int32, prefix: [UInt8] = []) {
        self.fd = fd
        self.prefix = prefix
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if prefixOffset < prefix.count {
            let count = min(buffer.count, prefix.count - prefixOffset)
            prefix.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + prefixOffset, byteCount: count) }
            prefixOffset += count
            if prefixOffset == prefix.count { prefix = [] ; prefixOffset = 0 }
            return count
        }
        do throws(SystemError) {
            return try System.call("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        } catch {
            throw StreamError.io("Reading the message failed: \(error.reason)")
        }
    }
}

/// Decodes base64 text (line breaks and spaces ignored) from another source; stops at the padding or the end.
public final class Base64DecodingSource: ByteSource {
    private let upstream: ByteSource
    private var text = [UInt8](repeating: 0, count: 64 << 10)
    private var decoded: [UInt8] = []
    private var decodedOffset = 0
    private var quantum: UInt32 = 0
    private var quantumCount = 0
    private var finished = false

    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(char)] = UInt8(index) }
        for space in [0x20, 0x09, 0x0D, 0x0A] { table[space] = 0xFE }
        return table
    }()

    public init(_ upstream: ByteSource) { self.upstream = upstream }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while decodedOffset == decoded.count {
            if finished { return 0 }
            try refill()
        }
        let count = min(buffer.count, decoded.count - decodedOffset)
        decoded.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + decodedOffset, byteCount: count) }
        decodedOffset += count
        return count
    }

    private func refill() throws {
        decoded.removeAll(keepingCapacity: true)
        decodedOffset = 0
        let got = try text.withUnsafeMutableBytes { try upstream.read(into: $0) }
        if got == 0 { return finish() }
        if decoded.capacity < got { decoded.reserveCapacity(got) }
        var ended = false
        var bad: UInt8?
        var quantum = quantum
        var quantumCount = quantumCount
        Self.values.withUnsafeBufferPointer { table in
            text.withUnsafeBufferPointer { input in
                for index in 0..<got {
                    let char = input[index]
                    let value = table[Int(char)]
                    if value < 64 {
                        quantum = quantum << 6 | UInt32(value)
                        quantumCount += 1
                        if quantumCount == 4 {
                            decoded.append(UInt8(truncatingIfNeeded: quantum >> 16))
                            decoded.append(UInt8(truncatingIfNeeded: quantum >> 8))
                            decoded.append(UInt8(truncatingIfNeeded: quantum))
                            quantum = 0
                            quantumCount = 0
                        }
                    } else if value == 0xFE {
                        continue
                    } else if char == UInt8(ascii: "=") || char == UInt8(ascii: "-") {
                        ended = true
                        break
                    } else {
                        bad = char
                        break
                    }
                }
            }
        }
        self.quantum = quantum
        self.quantumCount = quantumCount
        if let bad { throw StreamError.malformed("the message body is not base64 (byte 0x\(Hex.encode([bad])))") }
        if ended { finish() }
    }

    /// The last, padded quantum (`=`, a boundary or the end ends the base64).
    private func finish() {
        finished = true
        switch quantumCount {
        case 2: decoded.append(UInt8(quantum >> 4 & 0xFF))
        case 3:
            decoded.append(UInt8(quantum >> 10 & 0xFF))
            decoded.append(UInt8(quantum >> 2 & 0xFF))
        default: break
        }
        quantumCount = 0
    }
}

/// Buffered reading of BER (DER, or the indefinite lengths NSS writes) from a source, one element header at a time.
public final class BERReader {
    /// One element's identifier and length; `length` nil for an indefinite length.
    public struct Header: Equatable {
        public var tag: UInt8
        public var length: Int?
        /// The identifier and length octets as read.
        public var encoded: [UInt8]
        public var constructed: Bool { tag & 0x20 != 0 }
    }

    private let source: ByteSource
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var start = 0
    private var end = 0
    private var sourceDone = false
    /// Bytes consumed so far.
    public private(set) var position = 0

    public init(_ source: ByteSource) { self.source = source }

    /// Makes at least `count` bytes available (fewer only at the end of the source).
    private func ensure(_ count: Int) throws {
        guard end - start < count, !sourceDone else { return }
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in raw.baseAddress!.copyMemory(from: raw.baseAddress! + start, byteCount: end - start) }
            end -= start
            start = 0
        }
        while end < count && !sourceDone {
            let got = try buffer.withUnsafeMutableBytes { raw in try source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[end...])) }
            if got == 0 { sourceDone = true } else { end += got }
        }
    }

    /// The next `count` bytes without consuming them (fewer at the end).
    public func peek(_ count: Int) throws -> ArraySlice<UInt8> {
        try ensure(count)
        return buffer[start..<min(end, start + count)]
    }

    /// Whether the source has no more bytes.
    public func atEnd() throws -> Bool { try peek(1).isEmpty }

    /// Consumes exactly `count` bytes.
    public func read(_ count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while result.count < count {
            try ensure(min(count - result.count, buffer.count))
            guard end > start else { throw StreamError.truncated }
            let take = min(count - result.count, end - start)
            result += buffer[start..<start + take]
            start += take
            position += take
        }
        return result
    }

    /// Copies up to `limit` bytes (at least one unless the source is done) into `into`.
    public func readSome(into output: UnsafeMutableRawBufferPointer, limit: Int) throws -> Int {
        try ensure(1)
        let count = min(limit, output.count, end - start)
        guard count > 0 else { return 0 }
        buffer.withUnsafeBytes { output.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: count) }
        start += count
        position += count
        return count
    }

    /// Reads an identifier and length (low tag numbers only, as CMS uses).
    public func readHeader() throws -> Header {
        let head = try peek(6)
        guard head.count >= 2 else { throw StreamError.truncated }
        let tag = head[head.startIndex]
        guard tag & 0x1F != 0x1F else { throw StreamError.malformed("the message uses an ASN.1 tag CMS does not") }
        let first = head[head.startIndex + 1]
        if first < 0x80 { return Header(tag: tag, length: Int(first), encoded: try read(2)) }
        if first == 0x80 {
            guard tag & 0x20 != 0 else { throw StreamError.malformed("an indefinite length on a primitive value") }
            return Header(tag: tag, length: nil, encoded: try read(2))
        }
        let count = Int(first & 0x7F)
        guard count <= 4 else { throw StreamError.malformed("a length longer than 4 bytes") }
        guard head.count >= 2 + count else { throw StreamError.truncated }
        var length = 0
        for index in 0..<count { length = length << 8 | Int(head[head.startIndex + 2 + index]) }
        return Header(tag: tag, length: length, encoded: try read(2 + count))
    }

    /// Reads the end-of-contents octets (00 00) when they come next.
    public func readEndOfContents() throws -> Bool {
        let head = try peek(2)
        guard head.count == 2, head.first == 0, head.last == 0 else { return false }
        _ = try read(2)
        return true
    }

    /// Deepest nesting of constructed values accepted. CMS as mail programs write it nests about
    /// ten levels; without a bound, 200 KB of nested indefinite lengths overflowed the stack.
    public static let depthLimit = 64

    /// The message for nesting past `depthLimit` in `what`.
    static func tooDeep(_ what: String) -> String {
        "\(what) nests BER deeper than \(depthLimit) levels; it is not a message a mail program makes"
    }

    /// Reads one whole element as encoded (nested indefinite lengths included), at most `limit` bytes.
    /// - Throws: `StreamError.malformed` when it nests deeper than `depthLimit`, `.tooLarge` past `limit`.
    public func readElement(limit: Int, what: String) throws -> (Header, [UInt8]) {
        try readElement(limit: limit, what: what, depth: 1)
    }

    private func readElement(limit: Int, what: String, depth: Int) throws -> (Header, [UInt8]) {
        let header = try readHeader()
        var bytes = header.encoded
        if let length = header.length {
            guard bytes.count + length <= limit else { throw StreamError.tooLarge(what) }
            bytes += try read(length)
        } else {
            guard depth <= Self.depthLimit else { throw StreamError.malformed(Self.tooDeep(what)) }
            while !(try readEndOfContents()) {
                let (_, child) = try readElement(limit: limit - bytes.count, what: what, depth: depth + 1)
                bytes += child
            }
            bytes += [0, 0]
            guard bytes.count <= limit else { throw StreamError.tooLarge(what) }
        }
        return (header, bytes)
    }
}
