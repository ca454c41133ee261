import SignetCore

/// Every object template Signet writes to a token, in one place, so the rule
/// "a private key is created sensitive, never extractable, private and on the
/// token" is written once and read in one file.
///
/// Secret values (private exponents, CRT parts, EC private scalars) are not in
/// these templates: `Session.createObject(_:secrets:)` adds them from zeroing buffers.
public enum Templates {
    /// What every private key Signet creates carries: on the token, private,
    /// `CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false, with its id and label.
    public static func privateKey(_ keyType: KeyType, id: [UInt8], label: String) -> [Attribute] {
        [
            Attribute(.objectClass, .privateKey), Attribute(.token, true), Attribute(.isPrivate, true),
            Attribute(.sensitive, true), Attribute(.extractable, false), Attribute(.keyType, keyType),
            Attribute(.id, bytes: id), Attribute(.label, text: label),
        ]
    }

    /// A public key object on the token: public, with its id and label.
    public static func publicKey(_ keyType: KeyType, id: [UInt8], label: String) -> [Attribute] {
        [
            Attribute(.objectClass, .publicKey), Attribute(.token, true), Attribute(.isPrivate, false), Attribute(.keyType, keyType),
            Attribute(.id, bytes: id), Attribute(.label, text: label),
        ]
    }

    /// The mechanism and both templates of a key pair generated on the token, with usages that fit
    /// its type (RSA: sign, decrypt, verify, encrypt; EC: sign, derive, verify).
    public static func generatedKeyPair(_ spec: KeySpec, id: [UInt8], label: String)
        -> (mechanism: Mechanism, publicKey: [Attribute], privateKey: [Attribute]) {
        switch spec {
        case .rsa(let bits):
            return (Mechanism(.rsaPKCSKeyPairGen),
                    publicKey(.rsa, id: id, label: label) + [
                        Attribute(.verify, true), Attribute(.encrypt, true),
                        Attribute(.modulusBits, ulong: UInt(bits)), Attribute(.publicExponent, bytes: [0x01, 0x00, 0x01]),
                    ],
                    privateKey(.rsa, id: id, label: label) + [Attribute(.sign, true), Attribute(.decrypt, true)])
        case .ec(let curve):
            return (Mechanism(.ecKeyPairGen),
                    publicKey(.ec, id: id, label: label) + [Attribute(.verify, true), Attribute(.ecParams, bytes: curve.parametersDER)],
                    privateKey(.ec, id: id, label: label) + [Attribute(.sign, true), Attribute(.derive, true)])
        }
    }

    /// An imported RSA private key, without its secret components: sign, decrypt and unwrap.
    public static func importedRSAPrivateKey(modulus: [UInt8], publicExponent: [UInt8], id: [UInt8], label: String) -> [Attribute] {
        privateKey(.rsa, id: id, label: label) + [
            Attribute(.modulus, bytes: modulus), Attribute(.publicExponent, bytes: publicExponent),
            Attribute(.sign, true), Attribute(.decrypt, true), Attribute(.unwrap, true),
        ]
    }

    /// The public half of an imported RSA key: verify and encrypt.
    public static func importedRSAPublicKey(modulus: [UInt8], publicExponent: [UInt8], id: [UInt8], label: String) -> [Attribute] {
        publicKey(.rsa, id: id, label: label) + [
            Attribute(.modulus, bytes: modulus), Attribute(.publicExponent, bytes: publicExponent),
            Attribute(.verify, true), Attribute(.encrypt, true),
        ]
    }

    /// An imported EC private key on the curve `parameters` (DER OID), without its scalar: sign and derive.
    public static func importedECPrivateKey(parameters: [UInt8], id: [UInt8], label: String) -> [Attribute] {
        privateKey(.ec, id: id, label: label) + [Attribute(.ecParams, bytes: parameters), Attribute(.sign, true), Attribute(.derive, true)]
    }

    /// The public half of an imported EC key; `point` is the uncompressed point, stored as a DER OCTET STRING.
    public static func importedECPublicKey(parameters: [UInt8], point: [UInt8], id: [UInt8], label: String) -> [Attribute] {
        publicKey(.ec, id: id, label: label) + [
            Attribute(.ecParams, bytes: parameters), Attribute(.ecPoint, bytes: DER.tlv(0x04, point)), Attribute(.verify, true),
        ]
    }

    /// An X.509 certificate object: public, modifiable, with the subject, issuer and serial number
    /// that NSS and other PKCS#11 clients search by.
    public static func certificate(der: [UInt8], id: [UInt8], label: String,
                                   subject: [UInt8], issuer: [UInt8], serialNumber: [UInt8]) -> [Attribute] {
        [
            Attribute(.objectClass, .certificate), Attribute(.certificateType, ulong: 0 /* CKC_X_509 */),
            Attribute(.token, true), Attribute(.isPrivate, false), Attribute(.modifiable, true),
            Attribute(.id, bytes: id), Attribute(.label, text: label), Attribute(.value, bytes: der),
            Attribute(.subject, bytes: subject), Attribute(.issuer, bytes: issuer), Attribute(.serialNumber, bytes: serialNumber),
        ]
    }
}
