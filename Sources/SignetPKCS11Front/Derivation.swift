import CSignetPKCS11Front
import SignetCore

/// `CKM_ECDH1_DERIVE`'s new key: its attributes from the caller's template, and its value from the raw
/// ECDH secret the agent returns (one request, `CKD_NULL` at the agent) through the X9.63 KDF run here.
package enum Derivation {
    /// The new key's attributes (class, type, length and what it may do) and its length in bytes.
    /// Without a KDF the shared secret is the key; with one, as long as asked (or one hash).
    /// - Throws: `CKR_TEMPLATE_INCONSISTENT` for a token key, another class, or a length past the secret
    ///   without a KDF; `CKR_ATTRIBUTE_VALUE_INVALID` for a `CKA_VALUE_LEN` that is not 1 to 64.
    package static func template(_ given: [(CK_ATTRIBUTE_TYPE, [UInt8])], kdfHash: Hash?, fieldBytes: Int) throws(ModuleError)
        -> (attributes: [CK_ATTRIBUTE_TYPE: AttributeValue], length: Int) {
        var attributes: [CK_ATTRIBUTE_TYPE: AttributeValue] = [
            CKA_CLASS: .ulong(CKO_SECRET_KEY), CKA_KEY_TYPE: .ulong(CKK_GENERIC_SECRET), CKA_TOKEN: .bool(false),
            CKA_PRIVATE: .bool(true), CKA_MODIFIABLE: .bool(false), CKA_LABEL: .bytes([]), CKA_ID: .bytes([]),
            CKA_SENSITIVE: .bool(true), CKA_EXTRACTABLE: .bool(false), CKA_LOCAL: .bool(false), CKA_DERIVE: .bool(false),
            CKA_ENCRYPT: .bool(false), CKA_DECRYPT: .bool(false), CKA_WRAP: .bool(false), CKA_UNWRAP: .bool(false),
            CKA_SIGN: .bool(false), CKA_VERIFY: .bool(false),
        ]
        var valueLength: Int?
        for (type, value) in given {
            switch type {
            case CKA_TOKEN where value.contains { $0 != 0 }: throw ModuleError(CKR_TEMPLATE_INCONSISTENT)  // session keys only
            case CKA_CLASS:
                guard value.count == MemoryLayout<CK_ULONG>.size, value.withUnsafeBytes({ $0.loadUnaligned(as: CK_ULONG.self) }) == CKO_SECRET_KEY
                else { throw ModuleError(CKR_TEMPLATE_INCONSISTENT) }
            case CKA_VALUE_LEN:
                guard value.count == MemoryLayout<CK_ULONG>.size else { throw ModuleError(CKR_ATTRIBUTE_VALUE_INVALID) }
                let requested = value.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
                guard requested > 0, requested <= 64 else { throw ModuleError(CKR_ATTRIBUTE_VALUE_INVALID) }
                valueLength = Int(requested)
                attributes[CKA_VALUE_LEN] = .bytes(value)
            default:
                attributes[type] = .bytes(value)
            }
        }
        let length = valueLength ?? (kdfHash?.length ?? fieldBytes)
        if kdfHash == nil, length > fieldBytes { throw ModuleError(CKR_TEMPLATE_INCONSISTENT) }
        attributes[CKA_VALUE_LEN] = .ulong(CK_ULONG(length))
        return (attributes, length)
    }

    /// The session key for `session` from the raw ECDH `secret`. Its value is readable only when the caller
    /// asked for a key that is not sensitive and extractable.
    package static func key(handle: CK_OBJECT_HANDLE, session: CK_SESSION_HANDLE, secret: [UInt8], kdfHash: Hash?, sharedInfo: [UInt8],
                            length: Int, attributes given: [CK_ATTRIBUTE_TYPE: AttributeValue]) -> ModuleObject {
        var attributes = given
        var value = kdfHash.map { X963.derive(secret, hash: $0, sharedInfo: sharedInfo, length: length) } ?? Array(secret.prefix(length))
        defer { value.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        let readable = attributes[CKA_SENSITIVE].map { if case .bytes(let b) = $0 { !b.contains { $0 != 0 } } else { false } } ?? false
            && (attributes[CKA_EXTRACTABLE].map { if case .bytes(let b) = $0 { b.contains { $0 != 0 } } else { false } } ?? false)
        attributes[CKA_VALUE] = readable ? .bytes(value) : .sensitive
        attributes[CKA_ALWAYS_SENSITIVE] = .bool(!readable)
        attributes[CKA_NEVER_EXTRACTABLE] = .bool(!readable)
        return ModuleObject(handle: handle, uri: "", objectClass: CKO_SECRET_KEY, keyType: nil, bits: length * 8, usages: [],
                            attributes: attributes, secret: SharedSecret(SecretBytes(copying: value)), session: session)
    }
}
