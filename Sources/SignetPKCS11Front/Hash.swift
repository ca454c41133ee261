import COpenSSL
import CSignetPKCS11Front
import SignetAgentProtocol
import SignetCore

/// The hashes the module computes itself, for the `CKM_SHA*_RSA_PKCS`, `_PSS` and `CKM_ECDSA_SHA*` mechanisms.
package enum Hash {
    case sha1, sha224, sha256, sha384, sha512

    package init?(mechanism: CK_MECHANISM_TYPE) {
        switch mechanism {
        case CKM_SHA_1: self = .sha1
        case CKM_SHA224: self = .sha224
        case CKM_SHA256: self = .sha256
        case CKM_SHA384: self = .sha384
        case CKM_SHA512: self = .sha512
        default: return nil
        }
    }

    package var mechanism: CK_MECHANISM_TYPE {
        switch self {
        case .sha1: CKM_SHA_1
        case .sha224: CKM_SHA224
        case .sha256: CKM_SHA256
        case .sha384: CKM_SHA384
        case .sha512: CKM_SHA512
        }
    }

    package var mgf: CK_ULONG {
        switch self {
        case .sha1: CKG_MGF1_SHA1
        case .sha224: CKG_MGF1_SHA224
        case .sha256: CKG_MGF1_SHA256
        case .sha384: CKG_MGF1_SHA384
        case .sha512: CKG_MGF1_SHA512
        }
    }

    package var length: Int {
        switch self {
        case .sha1: 20
        case .sha224: 28
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    /// The DER DigestInfo prefix for PKCS#1 v1.5 signatures (the digest follows it).
    package var digestInfoPrefix: [UInt8] {
        switch self {
        case .sha1: [0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14]
        case .sha224: [0x30, 0x2D, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1C]
        case .sha256: [0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]
        case .sha384: [0x30, 0x41, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30]
        case .sha512: [0x30, 0x51, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40]
        }
    }

    fileprivate var evp: OpaquePointer? {
        switch self {
        case .sha1: EVP_sha1()
        case .sha224: EVP_sha224()
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
    }

    package func digest(_ parts: [UInt8]...) -> [UInt8] {
        let digester = Digester(self)
        for part in parts { digester.update(part) }
        return digester.finish()
    }
}

/// A hash being computed over the parts of a multi-part signature (`C_SignUpdate`), so a large
/// input is never held whole.
package final class Digester: @unchecked Sendable {
    private let context = EVP_MD_CTX_new()

    package init(_ hash: Hash) { EVP_DigestInit_ex(context, hash.evp, nil) }
    deinit { EVP_MD_CTX_free(context) }

    package func update(_ part: [UInt8]) { part.withUnsafeBytes { update($0) } }
    package func update(_ part: UnsafeRawBufferPointer) { _ = EVP_DigestUpdate(context, part.baseAddress, part.count) }

    package func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        return Array(out.prefix(Int(length)))
    }
}

