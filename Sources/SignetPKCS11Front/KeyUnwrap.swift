import COpenSSL
import CSignetPKCS11Front
import SignetCore

/// RFC 3394 AES key unwrap (what CMS's id-aes*-wrap is), with a KEK this module derived.
package enum KeyUnwrap {
    package static func unwrap(kek: SharedSecret, wrapped: [UInt8], iv: [UInt8]) throws(ModuleError) -> SharedSecret {
        guard wrapped.count >= 24, wrapped.count % 8 == 0, wrapped.count <= 1024 else { throw ModuleError(CKR_ENCRYPTED_DATA_LEN_RANGE) }
        let cipher: OpaquePointer? = switch kek.count {
        case 16: EVP_aes_128_wrap()
        case 24: EVP_aes_192_wrap()
        case 32: EVP_aes_256_wrap()
        default: nil
        }
        guard let cipher, let context = EVP_CIPHER_CTX_new() else { throw ModuleError(CKR_KEY_SIZE_RANGE) }
        defer { EVP_CIPHER_CTX_free(context) }
        EVP_CIPHER_CTX_set_flags(context, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
        var plain = [UInt8](repeating: 0, count: wrapped.count + 16)
        defer { plain.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var length: Int32 = 0, final: Int32 = 0
        let ok: Bool = kek.use { key in
            key.withUnsafeBytes { keyBytes in
                iv.withUnsafeBufferPointer { ivBytes in
                    guard EVP_DecryptInit_ex(context, cipher, nil, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                             iv.isEmpty ? nil : ivBytes.baseAddress) == 1,
                          EVP_DecryptUpdate(context, &plain, &length, wrapped, Int32(wrapped.count)) == 1
                    else { return false }
                    return plain.withUnsafeMutableBufferPointer { buffer in
                        EVP_DecryptFinal_ex(context, buffer.baseAddress! + Int(length), &final) == 1
                    }
                }
            }
        }
        guard ok else { throw ModuleError(CKR_ENCRYPTED_DATA_INVALID) }
        return SharedSecret(SecretBytes(copying: plain.prefix(Int(length + final))))
    }
}
