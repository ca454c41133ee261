import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front

/// What a caller passes, checked before the module converts or copies any of it: every count and
/// length from the caller is a `CK_ULONG` that may hold anything (`CK_UNAVAILABLE_INFORMATION`
/// left in a reused template, `ULONG_MAX`), and a Swift conversion that does not fit would stop the
/// host program. Each check answers a `CKR_*` instead.
enum Arguments {
    /// The most attributes a template may have: far more than any object has.
    static let templateLimit: CK_ULONG = 4096
    /// The longest attribute value a template may give (a certificate is a few kilobytes).
    static let valueLimit: CK_ULONG = 1 << 20
    /// The longest input buffer taken (data to sign, a ciphertext): no process has a buffer of a terabyte,
    /// and a length past it (`ULONG_MAX / 2`, `CK_UNAVAILABLE_INFORMATION`) is a caller's mistake the
    /// module must not read from.
    static let bufferLimit: CK_ULONG = 1 << 40

    /// The `length` bytes at `pointer`, not copied.
    /// - Throws: `CKR_ARGUMENTS_BAD` for a length without a buffer, or one no buffer can have.
    static func buffer(_ pointer: UnsafeMutablePointer<UInt8>?, _ length: CK_ULONG) throws(ModuleError) -> UnsafeRawBufferPointer {
        guard length > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let pointer, length <= bufferLimit else { throw ModuleError(CKR_ARGUMENTS_BAD) }
        return UnsafeRawBufferPointer(start: pointer, count: Int(length))
    }

    /// A copy of the `length` bytes at `pointer`, at most `limit` of them.
    /// - Throws: `CKR_ARGUMENTS_BAD` as `buffer`; `tooLong` when there are more than `limit`.
    static func bytes(_ pointer: UnsafeMutableRawPointer?, _ length: CK_ULONG, limit: Int, tooLong: CK_RV) throws(ModuleError) -> [UInt8] {
        guard length > 0 else { return [] }
        guard let pointer else { throw ModuleError(CKR_ARGUMENTS_BAD) }
        guard length <= CK_ULONG(limit) else { throw ModuleError(tooLong) }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length)))
    }

    /// The number of entries of a template, checked against `templateLimit`.
    /// - Throws: `CKR_ARGUMENTS_BAD` for entries without a template, or more than any template has.
    static func templateCount(_ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG) throws(ModuleError) -> Int {
        guard count > 0 else { return 0 }
        guard template != nil, count <= templateLimit else { throw ModuleError(CKR_ARGUMENTS_BAD) }
        return Int(count)
    }

    /// A template's types and values, copied.
    /// - Throws: `CKR_ARGUMENTS_BAD` as `templateCount`; `CKR_ATTRIBUTE_VALUE_INVALID` for a value
    ///   whose length is `CK_UNAVAILABLE_INFORMATION`, longer than `valueLimit`, or given without a buffer.
    static func template(_ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG) throws(ModuleError) -> [(CK_ATTRIBUTE_TYPE, [UInt8])] {
        let n = try templateCount(template, count)
        var result: [(CK_ATTRIBUTE_TYPE, [UInt8])] = []
        result.reserveCapacity(n)
        for index in 0..<n {
            let attribute = template![index]
            guard attribute.ulValueLen > 0 else { result.append((attribute.type, [])); continue }
            guard let value = attribute.pValue, attribute.ulValueLen <= valueLimit else { throw ModuleError(CKR_ATTRIBUTE_VALUE_INVALID) }
            result.append((attribute.type, Array(UnsafeRawBufferPointer(start: value, count: Int(attribute.ulValueLen)))))
        }
        return result
    }
}
