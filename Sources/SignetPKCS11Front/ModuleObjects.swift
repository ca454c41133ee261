import CSignetPKCS11Front
import SignetAgentProtocol
import SignetCore

/// An attribute's value as the module answers it: bytes, or refused as sensitive.
package enum AttributeValue {
    case bytes([UInt8])
    case sensitive

    package static func bool(_ value: Bool) -> AttributeValue { .bytes([value ? 1 : 0]) }
    package static func ulong(_ value: CK_ULONG) -> AttributeValue { .bytes(withUnsafeBytes(of: value) { Array($0) }) }
}

/// One object as the module shows it: a token object from the agent's listing (certificate,
/// public or private key), the profile object, or a session key this module derived.
/// Every attribute is computed once, when the listing is read: searches and reads cost no round trip.
package final class ModuleObject: @unchecked Sendable {
    package let handle: CK_OBJECT_HANDLE
    /// The agent's URI of the object (empty for the profile object and session keys).
    package let uri: String
    package let objectClass: CK_OBJECT_CLASS
    package let keyType: WireKeyType?
    /// Modulus or curve bits (keys).
    package let bits: Int
    package let usages: KeyUsages
    package let attributes: [CK_ATTRIBUTE_TYPE: AttributeValue]
    /// A derived secret (session keys only), wiped when the object goes.
    package let secret: SharedSecret?
    /// The session that owns a session object.
    package let session: CK_SESSION_HANDLE?

    package init(handle: CK_OBJECT_HANDLE, uri: String, objectClass: CK_OBJECT_CLASS, keyType: WireKeyType?, bits: Int, usages: KeyUsages,
         attributes: [CK_ATTRIBUTE_TYPE: AttributeValue], secret: SharedSecret? = nil, session: CK_SESSION_HANDLE? = nil) {
        self.handle = handle; self.uri = uri; self.objectClass = objectClass; self.keyType = keyType; self.bits = bits
        self.usages = usages; self.attributes = attributes; self.secret = secret; self.session = session
    }

    /// Whether every attribute of `template` has the value given.
    package func matches(_ template: [(CK_ATTRIBUTE_TYPE, [UInt8])]) -> Bool {
        template.allSatisfy { type, wanted in
            guard case .bytes(let value)? = attributes[type] else { return false }
            if value.count == wanted.count { return value == wanted }
            // CK_BBOOL given in a wider buffer (some callers pass a CK_ULONG): compare truth.
            if value.count == 1, type.isBoolean { return (value[0] != 0) == wanted.contains { $0 != 0 } }
            return false
        }
    }

    /// Bytes of the signature this key makes (RSA: the modulus; ECDSA: r and s).
    package var signatureLength: Int {
        switch keyType {
        case .rsa: (bits + 7) / 8
        case .ec: 2 * ((bits + 7) / 8)
        case nil: 0
        }
    }
}

extension CK_ATTRIBUTE_TYPE {
    package var isBoolean: Bool {
        [CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_SIGN, CKA_DECRYPT, CKA_DERIVE, CKA_UNWRAP,
         CKA_VERIFY, CKA_ENCRYPT, CKA_WRAP, CKA_ALWAYS_AUTHENTICATE, CKA_TRUSTED, CKA_LOCAL, CKA_SIGN_RECOVER, CKA_VERIFY_RECOVER,
         CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_WRAP_WITH_TRUSTED].contains(self)
    }
}

/// Builds the module's objects from the agent's listing of one token.
package enum ObjectBuilder {
    /// Attributes no private key ever gives: the key itself.
    package static let sensitiveTypes: Set<CK_ATTRIBUTE_TYPE> = [
        CKA_VALUE, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
    ]

    /// The objects of a listing. `handle` gives each a stable handle from a stable key.
    package static func objects(_ entries: [ObjectEntry], values: [[UInt8]], handle: (String) -> CK_OBJECT_HANDLE) -> [ModuleObject] {
        var result: [ModuleObject] = []
        // A key without its own public key info borrows its certificate's (same CKA_ID).
        var certificateKeys: [[UInt8]: [UInt8]] = [:]
        var certificateSubjects: [[UInt8]: [UInt8]] = [:]
        var certificates: [(ObjectEntry, [UInt8], CertificateFields)] = []
        for (index, entry) in entries.enumerated() where entry.kind == .certificate {
            let der = index < values.count ? values[index] : []
            guard let fields = try? CertificateFields(der: der) else { continue }  // unreadable: not shown
            certificateKeys[entry.id] = fields.publicKeyInfo
            certificateSubjects[entry.id] = fields.subject
            certificates.append((entry, der, fields))
        }
        let privateIDs = Set(entries.filter { $0.kind == .privateKey }.map(\.id))
        for (entry, der, fields) in certificates {
            result.append(certificate(entry, der: der, fields, userCertificate: privateIDs.contains(entry.id), handle: handle(entry.uri)))
        }
        for entry in entries where entry.kind != .certificate {
            let spki = entry.publicKeyInfo.isEmpty ? certificateKeys[entry.id] ?? [] : entry.publicKeyInfo
            guard let key = try? PublicKeyFields(spki: spki) else { continue }  // without its public half, no key to show
            result.append(keyObject(entry, key, subject: certificateSubjects[entry.id] ?? [], handle: handle(entry.uri)))
        }
        return result
    }

    package static func common(_ objectClass: CK_OBJECT_CLASS, label: String, id: [UInt8]?, isPrivate: Bool) -> [CK_ATTRIBUTE_TYPE: AttributeValue] {
        var attributes: [CK_ATTRIBUTE_TYPE: AttributeValue] = [
            CKA_CLASS: .ulong(objectClass), CKA_TOKEN: .bool(true), CKA_PRIVATE: .bool(isPrivate),
            CKA_MODIFIABLE: .bool(false), CKA_LABEL: .bytes(Array(label.utf8)),
        ]
        if let id { attributes[CKA_ID] = .bytes(id) }
        return attributes
    }

    package static func certificate(_ entry: ObjectEntry, der: [UInt8], _ fields: CertificateFields, userCertificate: Bool,
                            handle: CK_OBJECT_HANDLE) -> ModuleObject {
        var attributes = common(CKO_CERTIFICATE, label: entry.label, id: entry.id, isPrivate: false)
        attributes[CKA_CERTIFICATE_TYPE] = .ulong(CKC_X_509)
        attributes[CKA_VALUE] = .bytes(der)
        attributes[CKA_SUBJECT] = .bytes(fields.subject)
        attributes[CKA_ISSUER] = .bytes(fields.issuer)
        attributes[CKA_SERIAL_NUMBER] = .bytes(fields.serialNumber)
        attributes[CKA_TRUSTED] = .bool(false)
        // 1: the token user's own certificate (its key is here); 0: unspecified.
        attributes[CKA_CERTIFICATE_CATEGORY] = .ulong(userCertificate ? 1 : 0)
        attributes[CKA_PUBLIC_KEY_INFO] = .bytes(fields.publicKeyInfo)
        return ModuleObject(handle: handle, uri: entry.uri, objectClass: CKO_CERTIFICATE, keyType: nil, bits: 0, usages: [], attributes: attributes)
    }

    package static func keyObject(_ entry: ObjectEntry, _ key: PublicKeyFields, subject: [UInt8], handle: CK_OBJECT_HANDLE) -> ModuleObject {
        let isPrivate = entry.kind == .privateKey
        let objectClass = isPrivate ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY
        var attributes = common(objectClass, label: entry.label, id: entry.id, isPrivate: isPrivate)
        attributes[CKA_KEY_TYPE] = .ulong(key.keyType == .rsa ? CKK_RSA : CKK_EC)
        attributes[CKA_SUBJECT] = .bytes(subject)
        attributes[CKA_LOCAL] = .bool(false)
        attributes[CKA_DERIVE] = .bool(entry.usages.contains(.derive))
        attributes[CKA_PUBLIC_KEY_INFO] = .bytes(key.spki)
        switch key.keyType {
        case .rsa:
            attributes[CKA_MODULUS] = .bytes(key.modulus)
            attributes[CKA_PUBLIC_EXPONENT] = .bytes(key.publicExponent)
            attributes[CKA_MODULUS_BITS] = .ulong(CK_ULONG(key.bits))
        case .ec:
            attributes[CKA_EC_PARAMS] = .bytes(key.ecParameters)
            attributes[CKA_EC_POINT] = .bytes(DER.tlv(0x04, key.ecPoint))
        }
        if isPrivate {
            attributes[CKA_SENSITIVE] = .bool(true)
            attributes[CKA_EXTRACTABLE] = .bool(false)
            attributes[CKA_ALWAYS_AUTHENTICATE] = .bool(false)
            attributes[CKA_SIGN] = .bool(entry.usages.contains(.sign))
            attributes[CKA_SIGN_RECOVER] = .bool(false)
            attributes[CKA_DECRYPT] = .bool(entry.usages.contains(.decrypt))
            attributes[CKA_UNWRAP] = .bool(entry.usages.contains(.unwrap))
            for type in sensitiveTypes { attributes[type] = .sensitive }
        } else {
            attributes[CKA_VERIFY] = .bool(entry.usages.contains(.verify) || entry.usages.isEmpty)
            attributes[CKA_ENCRYPT] = .bool(entry.usages.contains(.encrypt))
            attributes[CKA_WRAP] = .bool(false)
            attributes[CKA_VERIFY_RECOVER] = .bool(false)
        }
        return ModuleObject(handle: handle, uri: entry.uri, objectClass: objectClass, keyType: key.keyType, bits: key.bits,
                            usages: entry.usages, attributes: attributes)
    }

    /// The `CKO_PROFILE` object that tells NSS the certificates are readable without a login.
    package static func profile(handle: CK_OBJECT_HANDLE) -> ModuleObject {
        let attributes: [CK_ATTRIBUTE_TYPE: AttributeValue] = [
            CKA_CLASS: .ulong(CSIGNET_CKO_PROFILE), CKA_TOKEN: .bool(true), CKA_PRIVATE: .bool(false),
            CKA_MODIFIABLE: .bool(false), CKA_LABEL: .bytes([]),
            CSIGNET_CKA_PROFILE_ID: .ulong(CSIGNET_CKP_PUBLIC_CERTIFICATES_TOKEN),
        ]
        return ModuleObject(handle: handle, uri: "", objectClass: CSIGNET_CKO_PROFILE, keyType: nil, bits: 0, usages: [], attributes: attributes)
    }
}

/// A SubjectPublicKeyInfo taken apart: RSA modulus and exponent, or EC curve and point.
package struct PublicKeyFields {
    package let spki: [UInt8]
    package let keyType: WireKeyType
    package let bits: Int
    package var modulus: [UInt8] = []
    package var publicExponent: [UInt8] = []
    /// The DER OID of the named curve (`CKA_EC_PARAMS`).
    package var ecParameters: [UInt8] = []
    /// The uncompressed point (`CKA_EC_POINT` wraps it in an OCTET STRING).
    package var ecPoint: [UInt8] = []

    package static let rsaEncryption: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    package static let ecPublicKey: [UInt8] = [0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]
    /// P-256, P-384, P-521 and their sizes in bits.
    package static let curves: [[UInt8]: Int] = [
        [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]: 256,
        [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]: 384,
        [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23]: 521,
    ]

    package init(spki: [UInt8]) throws(DER.ParseError) {
        self.spki = spki
        let body = try DER.readTLV(spki[...], tag: 0x30).contents
        let algorithm = try DER.readTLV(body, tag: 0x30)
        let oid = try DER.element(algorithm.contents)
        let key = try DER.readTLV(algorithm.rest, tag: 0x03).contents
        guard key.first == 0 else { throw .badLength }
        let keyBytes = key.dropFirst()
        if Array(oid.whole) == Self.rsaEncryption {
            keyType = .rsa
            let sequence = try DER.readTLV(keyBytes, tag: 0x30).contents
            let n = try DER.readTLV(sequence, tag: 0x02)
            let e = try DER.readTLV(n.rest, tag: 0x02)
            modulus = Array(n.contents.drop { $0 == 0 })
            publicExponent = Array(e.contents.drop { $0 == 0 })
            bits = modulus.isEmpty ? 0 : (modulus.count - 1) * 8 + (8 - modulus[0].leadingZeroBitCount)
        } else if Array(oid.whole) == Self.ecPublicKey {
            keyType = .ec
            let parameters = Array(try DER.element(oid.rest).whole)
            guard let size = Self.curves[parameters] else { throw .unexpectedTag(expected: 0x06, found: parameters.first ?? 0) }
            ecParameters = parameters
            ecPoint = Array(keyBytes)
            bits = size
        } else {
            throw .unexpectedTag(expected: 0x06, found: 0)  // neither RSA nor EC: not shown
        }
    }
}
