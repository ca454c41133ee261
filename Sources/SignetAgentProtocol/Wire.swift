#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Why bytes could not be decoded. Every malformed input ends here: the
/// decoder never traps, never reads past the frame, never allocates more
/// than the frame's size.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, as a value a caller switches on (the reason is for people).
    public enum Kind: UInt8, Sendable, Equatable, CaseIterable {
        /// The bytes do not hold what their kind says (truncated, a bad marker, bytes left over, …).
        case malformed
        /// A frame's length prefix is over the limit.
        case frameTooLarge
        /// The kind byte names no message this code knows.
        case unknownKind
    }
    public var kind: Kind
    public var reason: String
    public init(_ reason: String) { self.kind = .malformed; self.reason = reason }
    public init(_ kind: Kind, _ reason: String) { self.kind = kind; self.reason = reason }
    public var description: String { reason }
}

/// A growable byte buffer that zeroes its storage when it grows and when it
/// is released, so a frame that carried an access code leaves no copy behind.
public final class WireBuffer: @unchecked Sendable {
    private var storage: UnsafeMutableRawBufferPointer
    /// Bytes written so far.
    public private(set) var count = 0

    public init(capacity: Int = 256) {
        storage = .allocate(byteCount: max(capacity, 16), alignment: 8)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        SecretBytes.wipe(storage)
        storage.deallocate()
    }

    private func reserve(_ extra: Int) {
        guard count + extra > storage.count else { return }
        var size = storage.count * 2
        while size < count + extra { size *= 2 }
        let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        bigger.initializeMemory(as: UInt8.self, repeating: 0)
        bigger.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: count)
        SecretBytes.wipe(storage)
        storage.deallocate()
        storage = bigger
    }

    public func append(_ byte: UInt8) {
        reserve(1)
        storage[count] = byte
        count += 1
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        reserve(bytes.count)
        (storage.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    public func append(contentsOf bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// Overwrites four bytes at `offset` with `value`, big-endian (for a length filled in afterwards).
    func patchUInt32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { storage[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(index))) }
    }

    /// The bytes written; the pointer must not escape.
    /// - Throws: what `body` throws, and nothing else.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as an array: only for frames that hold no secret.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Zeroes and empties the buffer (its capacity is kept).
    public func clear() {
        SecretBytes.wipe(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
        count = 0
    }
}

/// Writes protocol primitives: big-endian integers, length-prefixed bytes and text.
public struct WireWriter {
    public let buffer: WireBuffer

    public init(_ buffer: WireBuffer = WireBuffer()) { self.buffer = buffer }

    public func u8(_ value: UInt8) { buffer.append(value) }
    public func bool(_ value: Bool) { buffer.append(value ? 1 : 0) }
    public func u16(_ value: UInt16) { u8(UInt8(value >> 8)); u8(UInt8(truncatingIfNeeded: value)) }
    public func u32(_ value: UInt32) { u16(UInt16(value >> 16)); u16(UInt16(truncatingIfNeeded: value)) }
    public func u64(_ value: UInt64) { u32(UInt32(value >> 32)); u32(UInt32(truncatingIfNeeded: value)) }
    public func bytes(_ value: [UInt8]) { u32(UInt32(value.count)); buffer.append(contentsOf: value) }
    public func string(_ value: String) { bytes(Array(value.utf8)) }
    public func secret(_ value: SharedSecret) {
        u32(UInt32(value.count))
        value.use { $0.withUnsafeBytes { buffer.append($0) } }
    }
    public func optional<T>(_ value: T?, _ write: (T) -> Void) {
        if let value { u8(1); write(value) } else { u8(0) }
    }
    public func array<T>(_ values: [T], _ write: (T) -> Void) {
        u32(UInt32(values.count))
        for value in values { write(value) }
    }
}

/// Reads protocol primitives from a frame body, checking every length against
/// what is left so that no input can make it read outside the frame.
public struct WireReader {
    private let input: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ input: UnsafeRawBufferPointer) { self.input = input }

    public var remaining: Int { input.count - offset }

    private mutating func take(_ count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw WireError("truncated: needed \(count) bytes at offset \(offset), \(remaining) left") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: input[offset..<offset + count])
    }

    /// One byte.
    /// - Throws: `WireError` (`.malformed`) when no byte is left.
    public mutating func u8() throws(WireError) -> UInt8 { try take(1)[0] }
    /// A boolean: one byte, 0 or 1.
    /// - Throws: `WireError` (`.malformed`) when no byte is left or it is neither 0 nor 1.
    public mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let other: throw WireError("a boolean must be 0 or 1, not \(other)")
        }
    }
    /// A big-endian 16-bit integer.
    /// - Throws: `WireError` (`.malformed`) when fewer than 2 bytes are left.
    public mutating func u16() throws(WireError) -> UInt16 {
        let part = try take(2)
        return UInt16(part[0]) << 8 | UInt16(part[1])
    }
    /// A big-endian 32-bit integer.
    /// - Throws: `WireError` (`.malformed`) when fewer than 4 bytes are left.
    public mutating func u32() throws(WireError) -> UInt32 {
        let part = try take(4)
        return part.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
    /// A big-endian 64-bit integer.
    /// - Throws: `WireError` (`.malformed`) when fewer than 8 bytes are left.
    public mutating func u64() throws(WireError) -> UInt64 {
        let part = try take(8)
        return part.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
    private mutating func length() throws(WireError) -> Int {
        let count = Int(try u32())
        guard count <= remaining else { throw WireError("a length of \(count) exceeds the \(remaining) bytes left") }
        return count
    }
    /// A byte string: a 32-bit length, then that many bytes.
    /// - Throws: `WireError` (`.malformed`) when the length is more than what is left.
    public mutating func bytes() throws(WireError) -> [UInt8] { Array(try take(length())) }
    /// Text: a byte string of UTF-8.
    /// - Throws: `WireError` (`.malformed`) when the length is more than what is left or the bytes are not UTF-8.
    public mutating func string() throws(WireError) -> String {
        let raw = try take(length())
        guard let text = String(validating: raw, as: UTF8.self) else { throw WireError("text is not valid UTF-8") }
        return text
    }
    /// A secret copied straight into a zeroing buffer.
    /// - Throws: `WireError` (`.malformed`) when the length is more than what is left or over `SecretBytes.maximumCount`.
    public mutating func secret() throws(WireError) -> SharedSecret {
        let count = try length()
        guard count <= SecretBytes.maximumCount else { throw WireError("a code of \(count) bytes is longer than \(SecretBytes.maximumCount)") }
        return SharedSecret(copying: try take(count))
    }
    /// An optional value: a marker byte 0 (absent) or 1, then the value `read` reads.
    /// - Throws: `WireError` (`.malformed`) when the marker is missing or neither 0 nor 1; rethrows what `read` throws.
    public mutating func optional<T>(_ read: (inout WireReader) throws(WireError) -> T) throws(WireError) -> T? {
        switch try u8() {
        case 0: return nil
        case 1: return try read(&self)
        case let other: throw WireError("an optional's marker must be 0 or 1, not \(other)")
        }
    }
    /// An array; each element takes at least one byte, so the count is bounded by what is left.
    /// - Throws: `WireError` (`.malformed`) when the count is more than the bytes left; rethrows what `read` throws.
    public mutating func array<T>(_ read: (inout WireReader) throws(WireError) -> T) throws(WireError) -> [T] {
        let count = Int(try u32())
        guard count <= remaining else { throw WireError("an array of \(count) elements cannot fit in \(remaining) bytes") }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try read(&self)) }
        return result
    }
    /// Fails when bytes are left over: a frame holds exactly one message.
    /// - Throws: `WireError` (`.malformed`) when any byte is left.
    public func finish() throws(WireError) {
        guard remaining == 0 else { throw WireError("\(remaining) unexpected bytes after the message") }
    }
}
