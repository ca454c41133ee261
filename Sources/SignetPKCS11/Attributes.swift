import CP11Kit
import SignetCore

/// A PKCS#11 attribute type (`CKA_*`).
public struct AttributeType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let objectClass = AttributeType(rawValue: UInt(CKA_CLASS))
    public static let token = AttributeType(rawValue: UInt(CKA_TOKEN))
    public static let isPrivate = AttributeType(rawValue: UInt(CKA_PRIVATE))
    public static let label = AttributeType(rawValue: UInt(CKA_LABEL))
    public static let value = AttributeType(rawValue: UInt(CKA_VALUE))
    public static let certificateType = AttributeType(rawValue: UInt(CKA_CERTIFICATE_TYPE))
    public static let subject = AttributeType(rawValue: UInt(CKA_SUBJECT))
    public static let issuer = AttributeType(rawValue: UInt(CKA_ISSUER))
    public static let serialNumber = AttributeType(rawValue: UInt(CKA_SERIAL_NUMBER))
    public static let id = AttributeType(rawValue: UInt(CKA_ID))
    public static let keyType = AttributeType(rawValue: UInt(CKA_KEY_TYPE))
    public static let sensitive = AttributeType(rawValue: UInt(CKA_SENSITIVE))
    public static let encrypt = AttributeType(rawValue: UInt(CKA_ENCRYPT))
    public static let decrypt = AttributeType(rawValue: UInt(CKA_DECRYPT))
    public static let wrap = AttributeType(rawValue: UInt(CKA_WRAP))
    public static let unwrap = AttributeType(rawValue: UInt(CKA_UNWRAP))
    public static let sign = AttributeType(rawValue: UInt(CKA_SIGN))
    public static let verify = AttributeType(rawValue: UInt(CKA_VERIFY))
    public static let derive = AttributeType(rawValue: UInt(CKA_DERIVE))
    public static let modulus = AttributeType(rawValue: UInt(CKA_MODULUS))
    public static let modulusBits = AttributeType(rawValue: UInt(CKA_MODULUS_BITS))
    public static let publicExponent = AttributeType(rawValue: UInt(CKA_PUBLIC_EXPONENT))
    public static let privateExponent = AttributeType(rawValue: UInt(CKA_PRIVATE_EXPONENT))
    public static let prime1 = AttributeType(rawValue: UInt(CKA_PRIME_1))
    public static let prime2 = AttributeType(rawValue: UInt(CKA_PRIME_2))
    public static let exponent1 = AttributeType(rawValue: UInt(CKA_EXPONENT_1))
    public static let exponent2 = AttributeType(rawValue: UInt(CKA_EXPONENT_2))
    public static let coefficient = AttributeType(rawValue: UInt(CKA_COEFFICIENT))
    public static let extractable = AttributeType(rawValue: UInt(CKA_EXTRACTABLE))
    public static let neverExtractable = AttributeType(rawValue: UInt(CKA_NEVER_EXTRACTABLE))
    public static let alwaysSensitive = AttributeType(rawValue: UInt(CKA_ALWAYS_SENSITIVE))
    public static let local = AttributeType(rawValue: UInt(CKA_LOCAL))
    public static let modifiable = AttributeType(rawValue: UInt(CKA_MODIFIABLE))
    public static let ecParams = AttributeType(rawValue: UInt(CKA_EC_PARAMS))
    public static let ecPoint = AttributeType(rawValue: UInt(CKA_EC_POINT))
    public static let valueLength = AttributeType(rawValue: UInt(CKA_VALUE_LEN))
    public static let alwaysAuthenticate = AttributeType(rawValue: UInt(CKA_ALWAYS_AUTHENTICATE))
}

/// `CKO_*` object classes.
public struct ObjectClass: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let data = ObjectClass(rawValue: UInt(CKO_DATA))
    public static let certificate = ObjectClass(rawValue: UInt(CKO_CERTIFICATE))
    public static let publicKey = ObjectClass(rawValue: UInt(CKO_PUBLIC_KEY))
    public static let privateKey = ObjectClass(rawValue: UInt(CKO_PRIVATE_KEY))
    public static let secretKey = ObjectClass(rawValue: UInt(CKO_SECRET_KEY))
}

/// `CKK_*` key types.
public struct KeyType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let rsa = KeyType(rawValue: UInt(CKK_RSA))
    public static let ec = KeyType(rawValue: UInt(CKK_EC))
    public static let genericSecret = KeyType(rawValue: UInt(CKK_GENERIC_SECRET))
    public static let aes = KeyType(rawValue: UInt(CKK_AES))
}

/// One attribute with a value, for templates.
public struct Attribute: Sendable, Equatable {
    public var type: AttributeType
    public var bytes: [UInt8]

    public init(_ type: AttributeType, bytes: [UInt8]) {
        self.type = type
        self.bytes = bytes
    }
    public init(_ type: AttributeType, _ flag: Bool) { self.init(type, bytes: [flag ? 1 : 0]) }
    public init(_ type: AttributeType, ulong: UInt) {
        self.init(type, bytes: withUnsafeBytes(of: CK_ULONG(ulong)) { Array($0) })
    }
    public init(_ type: AttributeType, _ objectClass: ObjectClass) { self.init(type, ulong: objectClass.rawValue) }
    public init(_ type: AttributeType, _ keyType: KeyType) { self.init(type, ulong: keyType.rawValue) }
    public init(_ type: AttributeType, text: String) { self.init(type, bytes: Array(text.utf8)) }
}

/// Calls `body` with a `CK_ATTRIBUTE` array that points into `attributes`' storage.
func withTemplate<R>(_ attributes: [Attribute], secrets: [(AttributeType, SharedSecret)] = [],
                     _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws(PKCS11Error) -> R) throws(PKCS11Error) -> R {
    // One contiguous buffer holds every value, so the pointers stay valid for
    // the call; it is wiped afterwards because secret values pass through it.
    let total = attributes.reduce(0) { $0 + $1.bytes.count } + secrets.reduce(0) { $0 + $1.1.count }
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 8)
    defer {
        SecretBytes.wipe(storage)
        storage.deallocate()
    }
    var template: [CK_ATTRIBUTE] = []
    template.reserveCapacity(attributes.count + secrets.count)
    var offset = 0
    for attribute in attributes {
        let base = storage.baseAddress! + offset
        attribute.bytes.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: $0.count) } }
        template.append(CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(attribute.type.rawValue), pValue: base, ulValueLen: CK_ULONG(attribute.bytes.count)))
        offset += attribute.bytes.count
    }
    for (type, secret) in secrets {
        let base = storage.baseAddress! + offset
        secret.use { $0.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: $0.count) } } }
        template.append(CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(type.rawValue), pValue: base, ulValueLen: CK_ULONG(secret.count)))
        offset += secret.count
    }
    return try template.withUnsafeMutableBufferPointer { (buffer) throws(PKCS11Error) -> R in
        try body(buffer.baseAddress, CK_ULONG(buffer.count))
    }
}

extension Array where Element == UInt8 {
    /// The value as a `CK_ULONG`, when it has exactly that size.
    public var ckULong: UInt? {
        guard count == MemoryLayout<CK_ULONG>.size else { return nil }
        return UInt(withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) })
    }
    /// The value as a `CK_BBOOL`.
    public var ckBool: Bool? { count == 1 ? self[0] != 0 : nil }
}
