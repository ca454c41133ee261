import COpenSSL
import Foundation

/// Builds CMS messages (RFC 5652) that OpenSSL 3.0's CMS code cannot make: Ed25519 signers (RFC 8419, with and
/// without signed attributes), several signers of different kinds, signature algorithms Signet does not know,
/// and ChaCha20-Poly1305 authEnveloped data (RFC 8103). The DER is written here; every signature, key transport
/// and encryption is libcrypto's (EVP). Not a test double: the messages are real, and python3-cryptography checks
/// the Ed25519 signatures independently (`PythonCheck`).
public enum CMSBuilder {
    // MARK: DER

    public static func tlv(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] {
        var length: [UInt8]
        if body.count < 0x80 {
            length = [UInt8(body.count)]
        } else {
            var bytes: [UInt8] = []
            var count = body.count
            while count > 0 { bytes.insert(UInt8(count & 0xFF), at: 0); count >>= 8 }
            length = [0x80 | UInt8(bytes.count)] + bytes
        }
        return [tag] + length + body
    }

    public static func sequence(_ parts: [UInt8]...) -> [UInt8] { tlv(0x30, parts.flatMap { $0 }) }
    /// A DER SET OF: elements sorted by their encodings.
    public static func set(_ parts: [[UInt8]]) -> [UInt8] { tlv(0x31, parts.sorted { $0.lexicographicallyPrecedes($1) }.flatMap { $0 }) }
    public static func octets(_ bytes: [UInt8]) -> [UInt8] { tlv(0x04, bytes) }
    public static func integer(_ value: UInt8) -> [UInt8] { tlv(0x02, [value]) }

    /// An object identifier from its dotted form.
    public static func oid(_ dotted: String) -> [UInt8] {
        let arcs = dotted.split(separator: ".").map { UInt64($0)! }
        var body: [UInt8] = [UInt8(arcs[0] * 40 + arcs[1])]
        for arc in arcs.dropFirst(2) {
            var chunk: [UInt8] = [UInt8(arc & 0x7F)]
            var rest = arc >> 7
            while rest > 0 { chunk.insert(UInt8(rest & 0x7F) | 0x80, at: 0); rest >>= 7 }
            body += chunk
        }
        return tlv(0x06, body)
    }

    public static func algorithm(_ dotted: String, parameters: [UInt8]? = nil) -> [UInt8] { sequence(oid(dotted), parameters ?? []) }

    public static let data = "1.2.840.113549.1.7.1"
    public static let signedData = "1.2.840.113549.1.7.2"
    public static let authEnvelopedData = "1.2.840.113549.1.9.16.1.23"
    public static let sha256 = "2.16.840.1.101.3.4.2.1"
    public static let sha512 = "2.16.840.1.101.3.4.2.3"
    public static let rsaEncryption = "1.2.840.113549.1.1.1"
    public static let ed25519 = "1.3.101.112"
    public static let chacha20Poly1305 = "1.2.840.113549.1.9.16.3.18"

    // MARK: Keys and certificates

    /// A private key (PEM file) and its certificate (PEM file), read with libcrypto.
    public final class Identity {
        let key: OpaquePointer
        let certificate: OpaquePointer

        public init(key keyPath: String, certificate certificatePath: String) throws {
            guard let keyFile = fopen(keyPath, "r"), let certificateFile = fopen(certificatePath, "r") else { throw TestFailure("cannot open \(keyPath)") }
            defer { fclose(keyFile); fclose(certificateFile) }
            guard let key = PEM_read_PrivateKey(keyFile, nil, nil, nil), let certificate = PEM_read_X509(certificateFile, nil, nil, nil) else {
                throw TestFailure("cannot read \(keyPath) or \(certificatePath)")
            }
            self.key = key
            self.certificate = certificate
        }

        deinit { EVP_PKEY_free(key); X509_free(certificate) }

        public var certificateDER: [UInt8] { der { i2d_X509(certificate, $0) } }
        /// IssuerAndSerialNumber.
        public var issuerAndSerial: [UInt8] {
            sequence(der { i2d_X509_NAME(X509_get_issuer_name(certificate), $0) }, der { i2d_ASN1_INTEGER(X509_get_serialNumber(certificate), $0) })
        }

        /// A signature with this key over `message`: `digest` nil for PureEdDSA.
        public func sign(_ message: [UInt8], digest: OpaquePointer?) throws -> [UInt8] {
            let context = EVP_MD_CTX_new()
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestSignInit(context, nil, digest, nil, key) == 1 else { throw TestFailure("EVP_DigestSignInit") }
            var length = 0
            guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else { throw TestFailure("EVP_DigestSign") }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else { throw TestFailure("EVP_DigestSign") }
            return Array(signature.prefix(length))
        }

        /// `secret` encrypted to this certificate's RSA key (PKCS#1 v1.5).
        public func encryptToCertificate(_ secret: [UInt8]) throws -> [UInt8] {
            guard let publicKey = X509_get0_pubkey(certificate), let context = EVP_PKEY_CTX_new(publicKey, nil) else { throw TestFailure("EVP_PKEY_CTX_new") }
            defer { EVP_PKEY_CTX_free(context) }
            guard EVP_PKEY_encrypt_init(context) == 1 else { throw TestFailure("EVP_PKEY_encrypt_init") }
            var length = 0
            guard EVP_PKEY_encrypt(context, nil, &length, secret, secret.count) == 1 else { throw TestFailure("EVP_PKEY_encrypt") }
            var out = [UInt8](repeating: 0, count: length)
            guard EVP_PKEY_encrypt(context, &out, &length, secret, secret.count) == 1 else { throw TestFailure("EVP_PKEY_encrypt") }
            return Array(out.prefix(length))
        }
    }

    public static func der(_ encode: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) -> [UInt8] {
        let length = encode(nil)
        var bytes = [UInt8](repeating: 0, count: Int(max(length, 0)))
        bytes.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = encode(&cursor)
        }
        return bytes
    }

    public static func digest(_ name: String, _ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        _ = EVP_Digest(bytes, bytes.count, &out, &length, EVP_get_digestbyname(name), nil)
        return Array(out.prefix(Int(length)))
    }

    // MARK: Signed data

    /// How one signer signs.
    public struct Signer {
        public var identity: Identity
        /// "SHA256" or "SHA512" (Ed25519: SHA-512, RFC 8419 §3).
        public var digest: String
        /// The signatureAlgorithm written in the SignerInfo, and its parameters (nil: absent).
        public var signatureAlgorithm: String
        public var parameters: [UInt8]?
        public var signedAttributes = true
        /// PureEdDSA (no digest given to EVP) instead of a hash-then-sign algorithm.
        public var pure = false
        /// Whether the signer's certificate goes into the message.
        public var includeCertificate = true
        /// The signing time, as UTCTime text: now.
        public var signingTime: String = {
            var now = time(nil)
            var parts = tm()
            gmtime_r(&now, &parts)
            var text = [CChar](repeating: 0, count: 16)
            strftime(&text, 16, "%y%m%d%H%M%SZ", &parts)
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }()

        public static func rsa(_ identity: Identity, digest: String = "SHA256") -> Signer {
            Signer(identity: identity, digest: digest, signatureAlgorithm: rsaEncryption, parameters: [0x05, 0x00])
        }

        public static func ed25519(_ identity: Identity, signedAttributes: Bool = true) -> Signer {
            Signer(identity: identity, digest: "SHA512", signatureAlgorithm: CMSBuilder.ed25519, parameters: nil, signedAttributes: signedAttributes, pure: true)
        }

        public var digestOID: String { digest == "SHA512" ? sha512 : sha256 }
    }

    /// SignedData over `content` (encapsulated unless `detached`), one SignerInfo per signer, DER.
    public static func signed(_ content: [UInt8], signers: [Signer], detached: Bool = false) throws -> [UInt8] {
        var infos: [[UInt8]] = []
        for signer in signers {
            let digestAlgorithm = algorithm(signer.digestOID)
            var signedAttributes: [UInt8] = []
            let signature: [UInt8]
            if signer.signedAttributes {
                let attributes = [
                    sequence(oid("1.2.840.113549.1.9.3"), set([oid(data)])),
                    sequence(oid("1.2.840.113549.1.9.5"), set([tlv(0x17, Array(signer.signingTime.utf8))])),
                    sequence(oid("1.2.840.113549.1.9.4"), set([octets(digest(signer.digest, content))])),
                ]
                let encoded = set(attributes)  // signed as a SET (RFC 5652 §5.4), sent as [0] IMPLICIT
                signature = try signer.identity.sign(encoded, digest: signer.pure ? nil : EVP_get_digestbyname(signer.digest))
                signedAttributes = [0xA0] + encoded.dropFirst()
            } else {
                signature = try signer.identity.sign(content, digest: signer.pure ? nil : EVP_get_digestbyname(signer.digest))
            }
            infos.append(sequence(integer(1), signer.identity.issuerAndSerial, digestAlgorithm, signedAttributes,
                                  algorithm(signer.signatureAlgorithm, parameters: signer.parameters), octets(signature)))
        }
        let certificates = signers.filter(\.includeCertificate).map(\.identity.certificateDER)
        let encapsulated = detached ? sequence(oid(data)) : sequence(oid(data), tlv(0xA0, octets(content)))
        let body = sequence(integer(1), set(Array(Set(signers.map { algorithm($0.digestOID) }))), encapsulated,
                            certificates.isEmpty ? [] : tlv(0xA0, certificates.flatMap { $0 }), set(infos))
        return sequence(oid(signedData), tlv(0xA0, body))
    }

    // MARK: AuthEnveloped data

    /// AuthEnvelopedData (RFC 5083) with ChaCha20-Poly1305 content encryption (RFC 8103), the key sent to
    /// `recipient` by RSA key transport. `tamper` changes the ciphertext after the tag was computed.
    public static func chacha20Poly1305(_ content: [UInt8], to recipient: Identity, tamper: Bool = false) throws -> [UInt8] {
        var key = [UInt8](repeating: 0, count: 32), nonce = [UInt8](repeating: 0, count: 12)
        guard RAND_bytes(&key, 32) == 1, RAND_bytes(&nonce, 12) == 1 else { throw TestFailure("RAND_bytes") }
        let context = EVP_CIPHER_CTX_new()
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_EncryptInit_ex(context, EVP_chacha20_poly1305(), nil, key, nonce) == 1 else { throw TestFailure("EVP_EncryptInit_ex") }
        var ciphertext = [UInt8](repeating: 0, count: content.count + 16)
        var length: Int32 = 0, final: Int32 = 0
        guard EVP_EncryptUpdate(context, &ciphertext, &length, content, Int32(content.count)) == 1,
              EVP_EncryptFinal_ex(context, &ciphertext[Int(length)], &final) == 1 else { throw TestFailure("EVP_Encrypt") }
        ciphertext = Array(ciphertext.prefix(Int(length + final)))
        var tag = [UInt8](repeating: 0, count: 16)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, &tag) == 1 else { throw TestFailure("tag") }
        if tamper, !ciphertext.isEmpty { ciphertext[0] ^= 0x01 }
        let recipientInfo = sequence(integer(0), recipient.issuerAndSerial, algorithm(rsaEncryption, parameters: [0x05, 0x00]),
                                     octets(try recipient.encryptToCertificate(key)))
        let contentInfo = sequence(oid(data), algorithm(chacha20Poly1305, parameters: octets(nonce)), tlv(0x80, ciphertext))
        let body = sequence(integer(0), set([recipientInfo]), contentInfo, octets(tag))
        return sequence(oid(authEnvelopedData), tlv(0xA0, body))
    }
}

/// Makes test identities with the `openssl` tool: a root, and people certified by it for mail.
public struct TestPKI {
    public let peer: OpenSSLPeer
    public let root: String

    public init() throws {
        peer = try OpenSSLPeer()
        root = peer.path("root.pem")
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", peer.path("root.key"), "-out", root,
                                    "-subj", "/CN=Verdict Test Root", "-days", "30"])
    }

    /// A person with a key of `algorithm` ("rsa:2048", "ed25519", "ec") certified for mail.
    public func person(_ name: String, algorithm: String) throws -> CMSBuilder.Identity {
        let key = peer.path("\(name).key"), request = peer.path("\(name).csr"), certificate = peer.path("\(name).pem")
        var keyArguments = ["-newkey", algorithm]
        if algorithm == "ec" { keyArguments = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] }
        try Run.checked("openssl", ["req", "-new", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=\(name)"] + keyArguments)
        let extensions = try peer.file("\(name).cnf", text: "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n"
                                       + "subjectAltName=email:\(name.lowercased())@example.org\n")
        try Run.checked("openssl", ["x509", "-req", "-in", request, "-CA", root, "-CAkey", peer.path("root.key"), "-CAcreateserial",
                                    "-days", "10", "-extfile", extensions, "-out", certificate])
        return try CMSBuilder.Identity(key: key, certificate: certificate)
    }
}
