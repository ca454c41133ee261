import COpenSSL
import CSignetCrypto
import Glibc
import SignetCore

/// A message read from a file descriptor as OpenSSL pulls it, optionally put
/// into canonical MIME form on the way (`MIMECanonicalizer`). Nothing holds
/// the whole message: memory stays flat however large it is.
public final class MessageSource {
    private let fd: Int32
    private var canonicalizer: MIMECanonicalizer?
    private var ready: [UInt8] = []
    private var offset = 0
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)
    private var finished = false
    /// `errno` of a failed read, if any.
    public private(set) var readError: Int32?
    /// Bytes read from the descriptor so far.
    public private(set) var bytesRead = 0

    /// Reads `fd` (not closed here); canonicalises when `canonicalize`.
    public init(fd: Int32, canonicalize: Bool) {
        self.fd = fd
        canonicalizer = canonicalize ? MIMECanonicalizer() : nil
    }

    /// Copies up to `capacity` bytes into `buffer`; 0 at the end.
    func fill(_ buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
        while offset == ready.count && !finished { refill() }
        let count = min(capacity, ready.count - offset)
        guard count > 0 else { return 0 }
        ready.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress! + offset, count: count) }
        offset += count
        return count
    }

    private func refill() {
        ready.removeAll(keepingCapacity: true)
        offset = 0
        let got = chunk.withUnsafeMutableBytes { raw in System.retrying { read(fd, raw.baseAddress, raw.count) } }
        if got < 0 { readError = errno; finished = true; return }
        if got == 0 {
            finished = true
            canonicalizer?.finish(into: &ready)
            return
        }
        bytesRead += got
        if canonicalizer == nil {
            ready.append(contentsOf: chunk[..<got])
        } else {
            chunk.withUnsafeBufferPointer { canonicalizer!.feed(UnsafeBufferPointer(rebasing: $0[..<got]), into: &ready) }
        }
    }

    /// How much `forEachBlock` reads at a time.
    static let blockSize = 1 << 20

    /// Passes the whole message (canonicalised when asked) to `body` in blocks of about `blockSize` bytes:
    /// the pass the detached signature makes, hashing and writing each block as it comes, with no copy
    /// when the bytes are signed as they are. Not mixed with `fill` or the BIO on one source.
    func forEachBlock(_ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let block = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Self.blockSize)
        defer { block.deallocate() }
        if canonicalizer != nil { ready.reserveCapacity(Self.blockSize + Self.blockSize / 8) }
        while !finished {
            // A pipe gives at most 64 KiB per read: fill the block, so that the output goes in large writes too.
            var got = 0
            while got < block.count {
                let result = read(fd, block.baseAddress! + got, block.count - got)
                if result < 0 && errno == EINTR { continue }
                if result < 0 { readError = errno; finished = true; break }
                if result == 0 { finished = true; break }
                got += result
            }
            try checkRead()
            bytesRead += got
            let input = UnsafeBufferPointer(rebasing: block[..<got])
            guard canonicalizer != nil else {
                if got > 0 { try body(input) }
                continue
            }
            ready.removeAll(keepingCapacity: true)
            canonicalizer!.feed(input, into: &ready)
            if finished { canonicalizer!.finish(into: &ready) }
            if !ready.isEmpty { try ready.withUnsafeBufferPointer { try body($0) } }
        }
    }

    /// The same bytes through `PulledSource`, which makes OpenSSL's BIO.
    private lazy var pulled = PulledSource { [unowned self] buffer in
        let count = fill(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), capacity: buffer.count)
        try checkRead()
        return count
    }

    /// A BIO reading from this source; valid while the source lives.
    func makeBIO() throws -> OpaquePointer { try pulled.makeBIO() }

    /// Throws when reading failed part way.
    func checkRead() throws {
        if let readError { throw OpenSSLError("Reading the message failed: \(System.describe(readError))") }
    }
}

/// A BIO writing to `fd` (not closed by it); freed after `body`.
func withOutputBIO<R>(_ fd: Int32, _ body: (OpaquePointer) throws -> R) throws -> R {
    guard let bio = BIO_new_fd(fd, BIO_NOCLOSE) else { throw OpenSSLError("Opening the output") }
    defer { BIO_free_all(bio) }
    let result = try body(bio)
    guard BIO_ctrl(bio, BIO_CTRL_FLUSH, 0, nil) == 1 else { throw OpenSSLError("Writing the output failed") }
    return result
}

/// Output gathered into large writes: small pieces are collected, large ones written as they are.
struct BlockWriter: ~Copyable {
    private let fd: Int32
    private let buffer: UnsafeMutableBufferPointer<UInt8>
    private var used = 0

    init(fd: Int32, capacity: Int = 256 << 10) {
        self.fd = fd
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) throws {
        if used + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count / 2 {
            try Self.write(fd, UnsafeRawBufferPointer(bytes))
        } else if let source = bytes.baseAddress {
            (buffer.baseAddress! + used).update(from: source, count: bytes.count)
            used += bytes.count
        }
    }

    mutating func append(_ text: String) throws {
        var text = text
        try text.withUTF8 { try append($0) }
    }

    mutating func flush() throws {
        guard used > 0 else { return }
        try Self.write(fd, UnsafeRawBufferPointer(start: buffer.baseAddress, count: used))
        used = 0
    }

    private static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        do throws(StreamError) { try FileIO.writeAll(fd, bytes) } catch { throw OpenSSLError("Writing the output failed (\(error))") }
    }
}

/// Bytes OpenSSL pulls from a Swift closure (streamed content such as detached ciphertext).
final class PulledSource {
    private let pull: (UnsafeMutableRawBufferPointer) throws -> Int
    /// The first error the closure threw.
    private(set) var failure: Error?

    init(_ pull: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) { self.pull = pull }

    func fill(_ buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
        guard failure == nil else { return 0 }
        do { return try pull(UnsafeMutableRawBufferPointer(start: buffer, count: capacity)) } catch {
            failure = error
            return 0
        }
    }

    /// A BIO reading from this source; valid while the source lives.
    func makeBIO() throws -> OpaquePointer {
        guard let bio = CSignetCrypto_sourceBIO(pulledSourceTrampoline, Unmanaged.passUnretained(self).toOpaque()) else {
            throw OpenSSLError("Creating the input stream")
        }
        return bio
    }
}

private let pulledSourceTrampoline: CSignetCrypto_ReadCallback = { context, buffer, capacity, read in
    guard let context, let buffer, let read else { return 0 }
    let source = Unmanaged<PulledSource>.fromOpaque(context).takeUnretainedValue()
    read.pointee = source.fill(buffer, capacity: capacity)
    return source.failure == nil ? 1 : 0
}
