import CSignetPKCS11Front

/// ANSI X9.63 key derivation (the `CKD_SHA*_KDF` of `CKM_ECDH1_DERIVE`), over the raw ECDH secret the agent returns.
package enum X963 {
    package static func hash(forKDF kdf: CK_ULONG) -> Hash? {
        switch kdf {
        case CKD_SHA1_KDF: .sha1
        case CKD_SHA224_KDF: .sha224
        case CKD_SHA256_KDF: .sha256
        case CKD_SHA384_KDF: .sha384
        case CKD_SHA512_KDF: .sha512
        default: nil
        }
    }

    package static func derive(_ secret: [UInt8], hash: Hash, sharedInfo: [UInt8], length: Int) -> [UInt8] {
        var out: [UInt8] = []
        var counter: UInt32 = 1
        while out.count < length {
            let counterBytes = [UInt8(counter >> 24), UInt8((counter >> 16) & 0xFF), UInt8((counter >> 8) & 0xFF), UInt8(counter & 0xFF)]
            out += hash.digest(secret, counterBytes, sharedInfo)
            counter += 1
        }
        return Array(out.prefix(length))
    }
}
