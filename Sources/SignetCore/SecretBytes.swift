#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffer for an access code or password that is zeroed when released.
///
/// The bytes live in memory allocated here (never in a `String` or `Array`,
/// whose storage Swift may copy and free without wiping), are locked into RAM
/// with `mlock` where the system allows it, and are overwritten with zeros
/// before being freed. The type is `~Copyable` so that a code has one owner
/// and cannot be duplicated by accident.
public struct SecretBytes: ~Copyable, @unchecked Sendable {
    /// Largest secret accepted: PKCS#11 codes are far shorter; this bounds a
    /// hostile input (e.g. a file descriptor that never sends a newline).
    public static let maximumCount = 1024

    private let storage: UnsafeMutableRawBufferPointer
    /// Number of bytes in use.
    public private(set) var count: Int

    /// Creates an empty secret with room for `capacity` bytes.
    public init(capacity: Int = SecretBytes.maximumCount) {
        let size = max(1, min(capacity, SecretBytes.maximumCount))
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        _ = mlock(storage.baseAddress, size)
        count = 0
    }

    /// Creates a secret by copying `bytes`; the caller remains responsible for
    /// wiping its own copy. Meant for tests and for bytes already in a wiped buffer.
    public init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        self.init(capacity: max(bytes.count, 1))
        for byte in bytes.prefix(SecretBytes.maximumCount) { append(byte) }
    }

    deinit {
        SecretBytes.wipe(storage)
        munlock(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// Room left before `maximumCount`.
    public var isFull: Bool { count >= storage.count }

    /// Appends one byte; returns `false` (and keeps the secret unchanged) when full.
    @discardableResult
    public mutating func append(_ byte: UInt8) -> Bool {
        guard count < storage.count else { return false }
        storage[count] = byte
        count += 1
        return true
    }

    /// Removes the last byte (for a backspace typed at a prompt).
    public mutating func removeLast() {
        guard count > 0 else { return }
        count -= 1
        storage[count] = 0
    }

    /// Zeroes every byte and empties the secret.
    public mutating func clear() {
        SecretBytes.wipe(storage)
        count = 0
    }

    /// Calls `body` with the secret's bytes. The pointer must not escape.
    /// - Throws: what `body` throws.
    public func withUnsafeBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// Constant-time comparison with another secret.
    public func constantTimeEquals(_ other: borrowing SecretBytes) -> Bool {
        var difference = UInt8(count == other.count ? 0 : 1)
        let length = max(count, other.count)
        for index in 0..<length {
            let a: UInt8 = index < count ? storage[index] : 0
            let b: UInt8 = other.withUnsafeBytes { index < $0.count ? $0[index] : 0 }
            difference |= a ^ b
        }
        return difference == 0
    }

    /// Overwrites memory with zeros in a way the optimiser may not remove.
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        #if canImport(Glibc)
        explicit_bzero(base, buffer.count)
        #else
        let volatileBase = base.assumingMemoryBound(to: UInt8.self)
        for index in 0..<buffer.count { volatileBase[index] = 0 }
        #endif
    }
}

/// A `SecretBytes` that can be shared by reference: for secrets that travel
/// inside copyable values (a decoded request), still zeroed when the last
/// reference goes away.
public final class SharedSecret: @unchecked Sendable {
    private let secret: SecretBytes

    /// Takes ownership of `secret`.
    public init(_ secret: consuming SecretBytes) { self.secret = secret }

    /// Copies `bytes` (which the caller must wipe) into a zeroing buffer.
    public convenience init(copying bytes: UnsafeRawBufferPointer) { self.init(SecretBytes(copying: bytes)) }

    /// Number of bytes.
    public var count: Int { secret.count }

    /// Calls `body` with the secret, borrowed.
    /// - Throws: what `body` throws.
    public func use<R, E: Error>(_ body: (borrowing SecretBytes) throws(E) -> R) throws(E) -> R { try body(secret) }
}
