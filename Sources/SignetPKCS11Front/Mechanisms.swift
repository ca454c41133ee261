import CSignetPKCS11Front
import SignetAgentProtocol

/// One mechanism the module offers: what `C_GetMechanismInfo` says of it, and how an operation
/// that names it is carried out. `Mechanisms.table` is the only list: `C_GetMechanismList`,
/// `C_GetMechanismInfo`, `C_SignInit`, `C_DecryptInit` and `C_DeriveKey` all read it, so a
/// mechanism is offered exactly when it is accepted.
package struct MechanismEntry {
    /// How the module carries the mechanism out.
    package enum Form: Equatable {
        /// The caller's input goes to the agent as it is, under the same mechanism (`CKM_RSA_PKCS`,
        /// `CKM_RSA_PKCS_PSS` and OAEP with their parameters, `CKM_ECDSA`).
        case atToken
        /// Hashed here, then the DigestInfo built here, then `CKM_RSA_PKCS` at the token.
        case hashDigestInfo(Hash)
        /// Hashed here, then `CKM_RSA_PKCS_PSS` at the token with the caller's parameters.
        case hashPSS(Hash)
        /// Hashed here, then `CKM_ECDSA` at the token.
        case hashECDSA(Hash)
        /// The raw ECDH secret at the token (`CKD_NULL`), the X9.63 KDF here.
        case ecdh
        /// RFC 3394 AES key unwrap here, with a KEK `CKM_ECDH1_DERIVE` made here.
        case aesUnwrap
    }

    /// The kind of key a mechanism takes.
    package enum KeyKind: Equatable {
        case rsa, ec
        /// A session key this module derived (the KEK of an ECDH message).
        case derivedSecret
    }

    package init(type: CK_MECHANISM_TYPE, flags: CK_FLAGS, minKeySize: CK_ULONG, maxKeySize: CK_ULONG, keyKind: KeyKind, form: Form) {
        self.type = type; self.flags = flags; self.minKeySize = minKeySize; self.maxKeySize = maxKeySize; self.keyKind = keyKind; self.form = form
    }

    package let type: CK_MECHANISM_TYPE
    /// `CKF_SIGN`, `CKF_DECRYPT` or `CKF_DERIVE`, with `CKF_HW` when the token does the key operation and the EC flags.
    package let flags: CK_FLAGS
    /// Key sizes as `CK_MECHANISM_INFO` gives them: bits for RSA and EC, bytes for AES.
    package let minKeySize: CK_ULONG
    package let maxKeySize: CK_ULONG
    package let keyKind: KeyKind
    package let form: Form

    /// The mechanism the agent is asked for, or nil when the module does all of it.
    package var wire: CK_MECHANISM_TYPE? {
        switch form {
        case .atToken: type
        case .hashDigestInfo: CKM_RSA_PKCS
        case .hashPSS: CKM_RSA_PKCS_PSS
        case .hashECDSA: CKM_ECDSA
        case .ecdh: CKM_ECDH1_DERIVE
        case .aesUnwrap: nil
        }
    }

    /// The hash computed here, when there is one.
    package var hash: Hash? {
        switch form {
        case .hashDigestInfo(let hash), .hashPSS(let hash), .hashECDSA(let hash): hash
        case .atToken, .ecdh, .aesUnwrap: nil
        }
    }

    /// Whether `bits` (RSA modulus or EC field; bytes for a derived secret) is a size this mechanism takes.
    package func takes(keyBits bits: Int) -> Bool {
        bits >= 0 && CK_ULONG(bits) >= minKeySize && CK_ULONG(bits) <= maxKeySize
    }
}

/// The mechanism table.
///
/// SHA-1 and SHA-224 are not in it: no S/MIME, TLS or CMS consumer of the module signs with them
/// (RFC 8551 makes SHA-256 the sending agents' hash, and NSS, OpenSSL and GnuTLS sign with SHA-256 or
/// more), and SHA-1 signatures are forged at a cost within reach. A program that still needs one
/// hashes itself and signs the DigestInfo with `CKM_RSA_PKCS`. OAEP with SHA-1 stays: it is a
/// parameter of `CKM_RSA_PKCS_OAEP`, and what CMS messages are encrypted with. The X9.63 KDFs
/// (`CKD_SHA1_KDF` and the rest) are parameters of `CKM_ECDH1_DERIVE`, for reading mail already sent.
package enum Mechanisms {
    package static let rsaSizes: (CK_ULONG, CK_ULONG) = (1024, 8192)
    package static let ecSizes: (CK_ULONG, CK_ULONG) = (256, 521)
    package static let ecFlags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS

    package static let table: [MechanismEntry] = {
        func rsa(_ type: CK_MECHANISM_TYPE, _ flags: CK_FLAGS, _ form: MechanismEntry.Form) -> MechanismEntry {
            MechanismEntry(type: type, flags: CKF_HW | flags, minKeySize: rsaSizes.0, maxKeySize: rsaSizes.1, keyKind: .rsa, form: form)
        }
        func ec(_ type: CK_MECHANISM_TYPE, _ flags: CK_FLAGS, _ form: MechanismEntry.Form) -> MechanismEntry {
            MechanismEntry(type: type, flags: CKF_HW | flags | ecFlags, minKeySize: ecSizes.0, maxKeySize: ecSizes.1, keyKind: .ec, form: form)
        }
        // Only with a KEK that CKM_ECDH1_DERIVE made here: NSS unwraps an ECDH message's content key
        // on the slot that derived the KEK (NSS_CMSUtil_DecryptSymKey_ECDH), by C_Decrypt.
        func unwrap(_ type: CK_MECHANISM_TYPE) -> MechanismEntry {
            MechanismEntry(type: type, flags: CKF_DECRYPT, minKeySize: 16, maxKeySize: 32, keyKind: .derivedSecret, form: .aesUnwrap)
        }
        return [
            rsa(CKM_RSA_PKCS, CKF_SIGN | CKF_DECRYPT, .atToken),
            rsa(CKM_RSA_PKCS_OAEP, CKF_DECRYPT, .atToken),
            rsa(CKM_RSA_PKCS_PSS, CKF_SIGN, .atToken),
            rsa(CKM_SHA256_RSA_PKCS, CKF_SIGN, .hashDigestInfo(.sha256)),
            rsa(CKM_SHA384_RSA_PKCS, CKF_SIGN, .hashDigestInfo(.sha384)),
            rsa(CKM_SHA512_RSA_PKCS, CKF_SIGN, .hashDigestInfo(.sha512)),
            rsa(CKM_SHA256_RSA_PKCS_PSS, CKF_SIGN, .hashPSS(.sha256)),
            rsa(CKM_SHA384_RSA_PKCS_PSS, CKF_SIGN, .hashPSS(.sha384)),
            rsa(CKM_SHA512_RSA_PKCS_PSS, CKF_SIGN, .hashPSS(.sha512)),
            ec(CKM_ECDSA, CKF_SIGN, .atToken),
            ec(CKM_ECDSA_SHA256, CKF_SIGN, .hashECDSA(.sha256)),
            ec(CKM_ECDSA_SHA384, CKF_SIGN, .hashECDSA(.sha384)),
            ec(CKM_ECDSA_SHA512, CKF_SIGN, .hashECDSA(.sha512)),
            ec(CKM_ECDH1_DERIVE, CKF_DERIVE, .ecdh),
            unwrap(CKM_AES_KEY_WRAP),
            unwrap(CSIGNET_CKM_NSS_AES_KEY_WRAP),
        ]
    }()

    /// The entry for `type`, or nil when the module does not offer it.
    package static func entry(_ type: CK_MECHANISM_TYPE) -> MechanismEntry? {
        table.first { $0.type == type }
    }

    /// The entry for `type` when it offers `function` (`CKF_SIGN`, `CKF_DECRYPT`, `CKF_DERIVE`).
    /// - Throws: `CKR_MECHANISM_INVALID` when the table has no such mechanism for that function.
    package static func entry(_ type: CK_MECHANISM_TYPE, for function: CK_FLAGS) throws(ModuleError) -> MechanismEntry {
        guard let found = entry(type), found.flags & function != 0 else { throw ModuleError(CKR_MECHANISM_INVALID) }
        return found
    }
}
