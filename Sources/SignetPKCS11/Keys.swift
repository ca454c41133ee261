import SignetCore

/// Named elliptic curves Signet generates and understands.
public enum NamedCurve: String, Sendable, CaseIterable, Codable {
    case p256 = "P-256", p384 = "P-384", p521 = "P-521"

    /// DER of the curve's OBJECT IDENTIFIER (the `CKA_EC_PARAMS` value).
    public var parametersDER: [UInt8] {
        switch self {
        case .p256: DER.objectIdentifier([1, 2, 840, 10045, 3, 1, 7])
        case .p384: DER.objectIdentifier([1, 3, 132, 0, 34])
        case .p521: DER.objectIdentifier([1, 3, 132, 0, 35])
        }
    }

    /// Bytes of one field element.
    public var fieldLength: Int {
        switch self {
        case .p256: 32
        case .p384: 48
        case .p521: 66
        }
    }

    /// Size in bits, as shown to people.
    public var bits: Int { self == .p521 ? 521 : fieldLength * 8 }

    /// The curve whose OID DER is `parameters`, if Signet knows it.
    public init?(parametersDER parameters: [UInt8]) {
        guard let curve = NamedCurve.allCases.first(where: { $0.parametersDER == parameters }) else { return nil }
        self = curve
    }
}

/// The kind and size of a key pair to generate.
public enum KeySpec: Sendable, Equatable {
    case rsa(bits: Int)
    case ec(NamedCurve)

    /// The smallest RSA modulus Signet generates or accepts for new keys.
    public static let minimumRSABits = 2048
}

/// A public key read from a token, in the forms X.509 and OpenSSL need.
public enum PublicKey: Sendable, Equatable {
    case rsa(modulus: [UInt8], exponent: [UInt8])
    case ec(curve: NamedCurve, point: [UInt8])

    /// Size in bits: the modulus length, or the curve size.
    public var bits: Int {
        switch self {
        case .rsa(let modulus, _):
            let trimmed = modulus.drop(while: { $0 == 0 })
            guard let first = trimmed.first else { return 0 }
            return (trimmed.count - 1) * 8 + (8 - first.leadingZeroBitCount)
        case .ec(let curve, _): return curve.bits
        }
    }

    /// Length of a raw signature: the modulus bytes (RSA) or r‖s (ECDSA).
    public var signatureLength: Int {
        switch self {
        case .rsa: (bits + 7) / 8
        case .ec(let curve, _): 2 * curve.fieldLength
        }
    }

    /// DER `SubjectPublicKeyInfo` (RFC 5280), what `openssl pkey -pubin` reads.
    public var subjectPublicKeyInfoDER: [UInt8] {
        switch self {
        case .rsa(let modulus, let exponent):
            let algorithm = DER.sequence([DER.objectIdentifier([1, 2, 840, 113549, 1, 1, 1]), DER.null])
            let key = DER.sequence([DER.unsignedInteger(modulus), DER.unsignedInteger(exponent)])
            return DER.sequence([algorithm, DER.bitString(key)])
        case .ec(let curve, let point):
            let algorithm = DER.sequence([DER.objectIdentifier([1, 2, 840, 10045, 2, 1]), curve.parametersDER])
            return DER.sequence([algorithm, DER.bitString(point)])
        }
    }

    /// PEM `PUBLIC KEY`.
    public var pem: String { PEM.encode(subjectPublicKeyInfoDER, label: "PUBLIC KEY") }
}

extension Session {
    /// Generates a key pair that never leaves the token: the private key is
    /// `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, private, stored on the token,
    /// with usages that fit its type (RSA: sign and decrypt; EC: sign and derive);
    /// the templates are `Templates.generatedKeyPair`.
    /// Both halves share `id` and `label`.
    /// - Throws: `PKCS11Error.call` (`CKR_USER_NOT_LOGGED_IN`, `CKR_KEY_SIZE_RANGE`, …);
    ///   `PKCS11Error.call(CKR_KEY_SIZE_RANGE)` for RSA below 2048 bits without calling the token.
    public func generateKeyPair(_ spec: KeySpec, id: [UInt8], label: String) throws(PKCS11Error) -> (publicKey: ObjectHandle, privateKey: ObjectHandle) {
        if case .rsa(let bits) = spec, bits < KeySpec.minimumRSABits {
            throw .call(operation: "RSA key generation below \(KeySpec.minimumRSABits) bits", code: .keySizeRange)
        }
        let (mechanism, publicTemplate, privateTemplate) = Templates.generatedKeyPair(spec, id: id, label: label)
        return try generateKeyPair(mechanism, publicTemplate: publicTemplate, privateTemplate: privateTemplate)
    }

    /// The public key of a public-key object (or of a private key whose
    /// module exposes the public parts, as SoftHSM2 does for RSA).
    /// - Throws: `PKCS11Error.malformed` when the object is neither RSA nor a known curve.
    public func publicKey(_ object: ObjectHandle) throws(PKCS11Error) -> PublicKey {
        let values = try attributes(object, [.keyType, .modulus, .publicExponent, .ecParams, .ecPoint])
        guard let keyType = values[.keyType]?.ckULong.map(KeyType.init(rawValue:)) else {
            throw .malformed("object has no key type")
        }
        switch keyType {
        case .rsa:
            guard let modulus = values[.modulus], let exponent = values[.publicExponent] else {
                throw .malformed("RSA key without modulus or exponent")
            }
            return .rsa(modulus: modulus, exponent: exponent)
        case .ec:
            guard let parameters = values[.ecParams], let curve = NamedCurve(parametersDER: parameters) else {
                throw .malformed("EC key on an unknown curve")
            }
            guard let point = values[.ecPoint] else { throw .malformed("EC key without a point") }
            return .ec(curve: curve, point: try Self.unwrapPoint(point, curve: curve))
        default:
            throw .malformed("unsupported key type \(keyType.rawValue)")
        }
    }

    /// `CKA_EC_POINT` is specified as a DER OCTET STRING, but some modules
    /// return the raw point; the curve's size tells them apart.
    static func unwrapPoint(_ value: [UInt8], curve: NamedCurve) throws(PKCS11Error) -> [UInt8] {
        guard let point = DER.uncompressedPoint(value, fieldLength: curve.fieldLength) else {
            throw .malformed("EC point of \(value.count) bytes for \(curve.rawValue)")
        }
        return point
    }
}

/// ECDSA signature conversions: PKCS#11 returns r‖s; X.509 and CMS want DER.
public enum ECDSASignature {
    /// DER `ECDSA-Sig-Value` from PKCS#11's r‖s.
    public static func der(fromRaw raw: [UInt8]) -> [UInt8] {
        let half = raw.count / 2
        return DER.sequence([DER.unsignedInteger(Array(raw[..<half])), DER.unsignedInteger(Array(raw[half...]))])
    }
}
