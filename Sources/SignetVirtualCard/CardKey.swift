import COpenSSL
import SignetCore

/// A private key held by the virtual card, used only through the operations a
/// PIV card offers: the raw RSA private operation (the host pads), ECDSA over a
/// digest the host computed, and ECDH with a peer's point. Nothing reads it back.
public final class CardKey: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case unreadable
        case unsupported(String)
        public var description: String {
            switch self {
            case .unreadable: "the card key is not a PEM private key"
            case .unsupported(let what): "the virtual card does not support \(what)"
            }
        }
    }

    /// The PIV algorithm identifier (SP 800-78-4 table 6-2).
    public let algorithm: UInt8
    private let key: OpaquePointer

    /// Loads a PEM private key (RSA 1024/2048/3072/4096, or EC P-256/P-384).
    public init(pem: [UInt8]) throws(Failure) {
        let loaded: OpaquePointer? = pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let loaded else { throw .unreadable }
        let bits = EVP_PKEY_get_bits(loaded)
        let algorithm: UInt8? = switch (EVP_PKEY_get_base_id(loaded), bits) {
        case (EVP_PKEY_RSA, 1024): 0x06
        case (EVP_PKEY_RSA, 2048): 0x07
        case (EVP_PKEY_RSA, 3072): 0x05
        case (EVP_PKEY_RSA, 4096): 0x16
        case (EVP_PKEY_EC, 256): 0x11
        case (EVP_PKEY_EC, 384): 0x14
        default: nil
        }
        guard let algorithm else {
            EVP_PKEY_free(loaded)
            throw .unsupported("this key type (\(bits) bits)")
        }
        self.algorithm = algorithm
        key = loaded
    }

    deinit { EVP_PKEY_free(key) }

    public var isRSA: Bool { EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA }
    /// The RSA modulus length in bytes (the input and output length of the raw operation).
    public var modulusLength: Int { Int(EVP_PKEY_get_size(key)) }

    /// RSA: the raw private operation on a block of the modulus length. EC: an ECDSA
    /// signature (DER) over `input`, a digest. Nil when the input is not acceptable.
    public func privateOperation(_ input: [UInt8]) -> [UInt8]? {
        guard let context = EVP_PKEY_CTX_new(key, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        if isRSA {
            guard input.count == modulusLength, EVP_PKEY_decrypt_init(context) == 1,
                  EVP_PKEY_CTX_set_rsa_padding(context, RSA_NO_PADDING) == 1 else { return nil }
            return run { EVP_PKEY_decrypt(context, $0, $1, input, input.count) }
        }
        guard !input.isEmpty, EVP_PKEY_sign_init(context) == 1 else { return nil }
        return run { EVP_PKEY_sign(context, $0, $1, input, input.count) }
    }

    /// ECDH: the shared secret (the x coordinate) with the peer's uncompressed point.
    public func derive(peerPoint: [UInt8]) -> [UInt8]? {
        guard !isRSA, let peer = peerKey(peerPoint), let context = EVP_PKEY_CTX_new(key, nil) else { return nil }
        defer {
            EVP_PKEY_CTX_free(context)
            EVP_PKEY_free(peer)
        }
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer(context, peer) == 1 else { return nil }
        return run { EVP_PKEY_derive(context, $0, $1) }
    }

    /// Runs an OpenSSL call twice: once for the length, once for the bytes.
    private func run(_ call: (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>) -> Int32) -> [UInt8]? {
        var length = 0
        guard call(nil, &length) == 1 else { return nil }
        var output = [UInt8](repeating: 0, count: length)
        guard output.withUnsafeMutableBufferPointer({ call($0.baseAddress, &length) }) == 1 else { return nil }
        return Array(output.prefix(length))
    }

    /// The peer's point as a key on this key's curve (SubjectPublicKeyInfo built around it).
    private func peerKey(_ point: [UInt8]) -> OpaquePointer? {
        let curve: [UInt64] = algorithm == 0x11 ? [1, 2, 840, 10045, 3, 1, 7] : [1, 3, 132, 0, 34]  // P-256, P-384
        let algorithmID = DER.sequence([DER.objectIdentifier([1, 2, 840, 10045, 2, 1]), DER.objectIdentifier(curve)])  // id-ecPublicKey
        let spki = DER.sequence([algorithmID, DER.bitString(point)])
        return spki.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PUBKEY(nil, &cursor, buffer.count)
        }
    }
}

