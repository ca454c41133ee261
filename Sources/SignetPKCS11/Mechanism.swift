import CP11Kit

/// A `CKM_*` mechanism type.
public struct MechanismType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let rsaPKCSKeyPairGen = MechanismType(rawValue: UInt(CKM_RSA_PKCS_KEY_PAIR_GEN))
    public static let rsaPKCS = MechanismType(rawValue: UInt(CKM_RSA_PKCS))
    public static let rsaX509 = MechanismType(rawValue: UInt(CKM_RSA_X_509))
    public static let rsaPKCSOAEP = MechanismType(rawValue: UInt(CKM_RSA_PKCS_OAEP))
    public static let rsaPKCSPSS = MechanismType(rawValue: UInt(CKM_RSA_PKCS_PSS))
    public static let sha1RSAPKCS = MechanismType(rawValue: UInt(CKM_SHA1_RSA_PKCS))
    public static let sha256RSAPKCS = MechanismType(rawValue: UInt(CKM_SHA256_RSA_PKCS))
    public static let sha384RSAPKCS = MechanismType(rawValue: UInt(CKM_SHA384_RSA_PKCS))
    public static let sha512RSAPKCS = MechanismType(rawValue: UInt(CKM_SHA512_RSA_PKCS))
    public static let sha256RSAPKCSPSS = MechanismType(rawValue: UInt(CKM_SHA256_RSA_PKCS_PSS))
    public static let sha384RSAPKCSPSS = MechanismType(rawValue: UInt(CKM_SHA384_RSA_PKCS_PSS))
    public static let sha512RSAPKCSPSS = MechanismType(rawValue: UInt(CKM_SHA512_RSA_PKCS_PSS))
    public static let ecKeyPairGen = MechanismType(rawValue: UInt(CKM_EC_KEY_PAIR_GEN))
    public static let ecdsa = MechanismType(rawValue: UInt(CKM_ECDSA))
    public static let ecdsaSHA256 = MechanismType(rawValue: UInt(CKM_ECDSA_SHA256))
    public static let ecdh1Derive = MechanismType(rawValue: UInt(CKM_ECDH1_DERIVE))
    public static let sha1 = MechanismType(rawValue: UInt(CKM_SHA_1))
    public static let sha256 = MechanismType(rawValue: UInt(CKM_SHA256))
    public static let sha384 = MechanismType(rawValue: UInt(CKM_SHA384))
    public static let sha512 = MechanismType(rawValue: UInt(CKM_SHA512))

    public var description: String {
        let names: [MechanismType: String] = [
            .rsaPKCSKeyPairGen: "CKM_RSA_PKCS_KEY_PAIR_GEN", .rsaPKCS: "CKM_RSA_PKCS", .rsaX509: "CKM_RSA_X_509",
            .rsaPKCSOAEP: "CKM_RSA_PKCS_OAEP", .rsaPKCSPSS: "CKM_RSA_PKCS_PSS",
            .sha1RSAPKCS: "CKM_SHA1_RSA_PKCS", .sha256RSAPKCS: "CKM_SHA256_RSA_PKCS",
            .sha384RSAPKCS: "CKM_SHA384_RSA_PKCS", .sha512RSAPKCS: "CKM_SHA512_RSA_PKCS",
            .sha256RSAPKCSPSS: "CKM_SHA256_RSA_PKCS_PSS", .sha384RSAPKCSPSS: "CKM_SHA384_RSA_PKCS_PSS",
            .sha512RSAPKCSPSS: "CKM_SHA512_RSA_PKCS_PSS", .ecKeyPairGen: "CKM_EC_KEY_PAIR_GEN",
            .ecdsa: "CKM_ECDSA", .ecdsaSHA256: "CKM_ECDSA_SHA256", .ecdh1Derive: "CKM_ECDH1_DERIVE",
            .sha1: "CKM_SHA_1", .sha256: "CKM_SHA256", .sha384: "CKM_SHA384", .sha512: "CKM_SHA512",
        ]
        return names[self] ?? "CKM_0x" + String(rawValue, radix: 16, uppercase: true)
    }
}

/// Mask generation functions for OAEP and PSS (`CKG_MGF1_*`).
public struct MGF: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let sha1 = MGF(rawValue: UInt(CKG_MGF1_SHA1))
    public static let sha256 = MGF(rawValue: UInt(CKG_MGF1_SHA256))
    public static let sha384 = MGF(rawValue: UInt(CKG_MGF1_SHA384))
    public static let sha512 = MGF(rawValue: UInt(CKG_MGF1_SHA512))
}

/// Key derivation functions for ECDH (`CKD_*`).
public struct ECKDF: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    /// The raw shared secret Z (the caller applies the KDF, as CMS requires).
    public static let null = ECKDF(rawValue: UInt(CKD_NULL))
    public static let sha1 = ECKDF(rawValue: UInt(CKD_SHA1_KDF))
    public static let sha256 = ECKDF(rawValue: UInt(CKD_SHA256_KDF))
}

/// A mechanism with its parameters.
public struct Mechanism: Sendable, Equatable {
    public enum Parameters: Sendable, Equatable {
        case none
        /// RSA-OAEP: hash, MGF and an optional label (`CKZ_DATA_SPECIFIED`).
        case oaep(hash: MechanismType, mgf: MGF, label: [UInt8])
        /// RSA-PSS: hash, MGF and salt length in bytes.
        case pss(hash: MechanismType, mgf: MGF, saltLength: Int)
        /// ECDH1: KDF, shared info and the peer's public point (uncompressed, not DER-wrapped).
        case ecdh1(kdf: ECKDF, sharedData: [UInt8], publicData: [UInt8])
    }

    public var type: MechanismType
    public var parameters: Parameters

    public init(_ type: MechanismType, _ parameters: Parameters = .none) {
        self.type = type
        self.parameters = parameters
    }

    public static let rsaPKCS = Mechanism(.rsaPKCS)
    public static let rsaX509 = Mechanism(.rsaX509)
    public static let ecdsa = Mechanism(.ecdsa)
    public static let sha256RSAPKCS = Mechanism(.sha256RSAPKCS)

    /// RSA-OAEP with `hash` for both the label hash and MGF1.
    public static func oaep(hash: MechanismType = .sha1, label: [UInt8] = []) -> Mechanism {
        Mechanism(.rsaPKCSOAEP, .oaep(hash: hash, mgf: MGF.matching(hash), label: label))
    }

    /// RSA-PSS over a precomputed digest (`CKM_RSA_PKCS_PSS`), salt = digest length.
    public static func pss(hash: MechanismType) -> Mechanism {
        Mechanism(.rsaPKCSPSS, .pss(hash: hash, mgf: MGF.matching(hash), saltLength: hash.digestLength))
    }

    /// Calls `body` with a `CK_MECHANISM` whose parameter pointers are valid for the call.
    func withUnsafeMechanism<R>(_ body: (UnsafeMutablePointer<CK_MECHANISM>) throws(PKCS11Error) -> R) throws(PKCS11Error) -> R {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(type.rawValue), pParameter: nil, ulParameterLen: 0)
        if case .none = parameters { return try body(&mechanism) }
        // Parameters and the buffers they point to live in memory allocated
        // here and released after the call.
        var allocations: [UnsafeMutableRawPointer] = []
        defer { allocations.forEach { $0.deallocate() } }
        func copy(_ bytes: [UInt8]) -> UnsafeMutablePointer<UInt8>? {
            guard !bytes.isEmpty else { return nil }
            let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
            pointer.initialize(from: bytes, count: bytes.count)
            allocations.append(UnsafeMutableRawPointer(pointer))
            return pointer
        }
        func place<T>(_ value: T) {
            let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
            pointer.initialize(to: value)
            allocations.append(UnsafeMutableRawPointer(pointer))
            mechanism.pParameter = UnsafeMutableRawPointer(pointer)
            mechanism.ulParameterLen = CK_ULONG(MemoryLayout<T>.size)
        }
        switch parameters {
        case .none:
            break
        case .oaep(let hash, let mgf, let label):
            place(CK_RSA_PKCS_OAEP_PARAMS(
                hashAlg: CK_MECHANISM_TYPE(hash.rawValue), mgf: CK_RSA_PKCS_MGF_TYPE(mgf.rawValue),
                source: CK_RSA_PKCS_OAEP_SOURCE_TYPE(CKZ_DATA_SPECIFIED),
                pSourceData: copy(label).map(UnsafeMutableRawPointer.init), ulSourceDataLen: CK_ULONG(label.count)))
        case .pss(let hash, let mgf, let saltLength):
            place(CK_RSA_PKCS_PSS_PARAMS(hashAlg: CK_MECHANISM_TYPE(hash.rawValue), mgf: CK_RSA_PKCS_MGF_TYPE(mgf.rawValue), sLen: CK_ULONG(saltLength)))
        case .ecdh1(let kdf, let sharedData, let publicData):
            place(CK_ECDH1_DERIVE_PARAMS(
                kdf: ck_ec_kdf_t(kdf.rawValue),
                ulSharedDataLen: CK_ULONG(sharedData.count), pSharedData: copy(sharedData),
                ulPublicDataLen: CK_ULONG(publicData.count), pPublicData: copy(publicData)))
        }
        return try body(&mechanism)
    }
}

extension MGF {
    /// MGF1 with the same hash as `hash` (SHA-1 for anything unknown).
    public static func matching(_ hash: MechanismType) -> MGF {
        switch hash {
        case .sha256: .sha256
        case .sha384: .sha384
        case .sha512: .sha512
        default: .sha1
        }
    }
}

extension MechanismType {
    /// Output length of a digest mechanism in bytes (0 for non-digests).
    public var digestLength: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        default: 0
        }
    }
}
