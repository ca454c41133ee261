import COpenSSL

/// A failure inside OpenSSL, with the library's own reasons.
public struct OpenSSLError: Error, CustomStringConvertible, Sendable {
    /// What Signet was doing.
    public var operation: String
    /// OpenSSL's error queue, newest last ("asn1 encoding routines::wrong tag").
    public var reasons: [String]

    public var description: String {
        reasons.isEmpty ? operation : "\(operation): \(reasons.joined(separator: "; "))"
    }

    /// A failure with reasons already taken from the queue.
    public init(operation: String, reasons: [String]) {
        self.operation = operation
        self.reasons = reasons
    }

    /// Takes (and clears) the thread's OpenSSL error queue.
    public init(_ operation: String) {
        self.operation = operation
        reasons = OpenSSLError.drain()
    }

    /// Empties the thread's error queue and returns its texts.
    @discardableResult
    public static func drain() -> [String] {
        var texts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let reason = ERR_reason_error_string(code) {
                let library = ERR_lib_error_string(code).map { String(cString: $0) }
                texts.append((library.map { "\($0): " } ?? "") + String(cString: reason))
            } else {
                texts.append("error 0x\(String(code, radix: 16))")
            }
        }
        return texts
    }
}

/// A memory BIO holding `bytes`, for the OpenSSL readers; freed after `body`.
func withMemoryBIO<R>(_ bytes: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
    try bytes.withUnsafeBytes { raw in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { throw OpenSSLError("BIO_new_mem_buf") }
        defer { BIO_free(bio) }
        return try body(bio)
    }
}

/// Runs `write` against a fresh memory BIO and returns what it wrote.
func collectBIO(_ write: (OpaquePointer) throws -> Void) throws -> [UInt8] {
    guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLError("BIO_new") }
    defer { BIO_free(bio) }
    try write(bio)
    var pointer: UnsafeMutablePointer<CChar>?
    let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
    guard length > 0, let pointer else { return [] }
    return pointer.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
}

/// DER of an OpenSSL object through its `i2d_*` function.
func encodeDER<T>(_ object: T, _ i2d: (T, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) throws -> [UInt8] {
    let length = i2d(object, nil)
    guard length > 0 else { throw OpenSSLError("DER encoding") }
    var bytes = [UInt8](repeating: 0, count: Int(length))
    let written = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
        return i2d(object, &cursor)
    }
    guard written == length else { throw OpenSSLError("DER encoding") }
    return bytes
}

/// The text in a NUL-terminated C buffer.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
