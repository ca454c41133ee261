import COpenSSL
import CSignetCrypto
import SignetAgentProtocol
import SignetCore

/// Opens `.p12`/`.pfx` files for import onto a token.
///
/// The file is decrypted in the `signet` process (never in the agent, which
/// parses no untrusted files); the private key's components go straight
/// into zeroing buffers and travel to the agent in an `import-key` request.
public enum PKCS12File {
    /// Largest file read.
    public static let maximumSize = 1 << 20
    /// Most rounds of password hashing accepted, for the MAC and for each encrypted part. Files from
    /// Windows, NSS and OpenSSL use 2,000 to 10⁶; this is twice the most seen, 0.15 s per password
    /// try here. Uncapped, a file asking for 2³¹ rounds cost about three minutes of CPU per try.
    public static let maximumIterations = 2_000_000

    /// What a file held.
    public struct Contents {
        /// The private key, in zeroing buffers.
        public var key: ImportedKey
        /// The certificate that belongs to the key.
        public var certificate: Certificate
        /// The other certificates (issuers) in the file.
        public var chain: [Certificate]
        /// How the file is encrypted ("PBES2 AES-256-CBC; PBES2 AES-128-CBC").
        public var encryption: String
        /// Whether it uses pre-2013 PKCS#12 encryption (3DES, RC2), which OpenSSL 3 opens with its legacy provider.
        public var legacy: Bool
    }

    /// Why a file could not be opened.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case tooLarge(Int)
        case notPKCS12
        case wrongPassword
        case unsupported(String)
        case noKey
        case noCertificate
        case unsupportedKey(String)
        case tooManyIterations(Int)

        public var description: String {
            switch self {
            case .tooLarge(let size): "The file is \(size) bytes; a PKCS#12 file is at most \(PKCS12File.maximumSize) bytes."
            case .notPKCS12: "This is not a PKCS#12 (.p12/.pfx) file."
            case .wrongPassword: "The password for this file is wrong; nothing was imported. Try again, or ask whoever made the file."
            case .unsupported(let why): "The file's encryption is not supported here (\(why)); re-export it with AES (PBES2)."
            case .noKey: "The file holds no private key; to install a certificate alone use `signet cert import`."
            case .noCertificate: "The file holds a private key but no certificate for it."
            case .unsupportedKey(let why): "The key in the file cannot go on a token: \(why)."
            case .tooManyIterations(let count):
                "The file asks for \(count) rounds of password hashing; real files use at most 1,000,000 and Signet accepts "
                    + "\(PKCS12File.maximumIterations), so that a password try takes under a second. If the file is yours, "
                    + "export it again with fewer (openssl pkcs12 -export -iter 10000); otherwise it was made to waste time."
            }
        }
    }

    /// Decrypts and parses `bytes` with `password`.
    /// - Throws: `Failure`; `.wrongPassword` when the integrity check or decryption fails.
    public static func open(_ bytes: [UInt8], password: borrowing SecretBytes) throws(Failure) -> Contents {
        guard bytes.count <= maximumSize else { throw .tooLarge(bytes.count) }
        OpenSSLError.drain()
        defer { OpenSSLError.drain() }
        let file: OpaquePointer? = bytes.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PKCS12(nil, &cursor, buffer.count)
        }
        guard let file else { throw .notPKCS12 }
        defer { PKCS12_free(file) }
        if PKCS12_mac_present(file) == 1 {
            var iterations: UnsafePointer<ASN1_INTEGER>?
            PKCS12_get0_mac(nil, nil, nil, &iterations, file)
            var count: Int64 = 1  // absent: the default, 1
            if let iterations, ASN1_INTEGER_get_int64(&count, iterations) != 1 { count = .max }  // 2⁶³ or more
            guard count <= maximumIterations else { throw .tooManyIterations(Int(count)) }
            guard count >= 1 else { throw .notPKCS12 }
        }

        var description = [CChar](repeating: 0, count: 256)
        var encryptionIterations: Int64 = 0
        let legacy = CSignetCrypto_pkcs12Describe(file, &description, description.count, &encryptionIterations) == 1
        guard encryptionIterations <= maximumIterations else { throw .tooManyIterations(Int(encryptionIterations)) }
        let encryption = text(description)
        return legacy ? try LegacyProvider.whileCurrent { () throws(Failure) in try open(file, password: password, encryption: encryption, legacy: true) }
            : try open(file, password: password, encryption: encryption, legacy: false)
    }

    private static func open(_ file: OpaquePointer, password: borrowing SecretBytes, encryption: String, legacy: Bool) throws(Failure) -> Contents {

        // A NUL-terminated copy of the password for OpenSSL, wiped after use.
        let passwordLength = password.count
        let passwordBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: passwordLength + 1, alignment: 1)
        defer { SecretBytes.wipe(passwordBuffer); passwordBuffer.deallocate() }
        password.withUnsafeBytes { passwordBuffer.copyMemory(from: $0) }
        passwordBuffer[passwordLength] = 0
        let passwordText = passwordBuffer.baseAddress!.assumingMemoryBound(to: CChar.self)

        if PKCS12_mac_present(file) == 1, PKCS12_verify_mac(file, passwordText, Int32(passwordLength)) != 1 {
            throw .wrongPassword
        }
        var pkey: OpaquePointer?
        var x509: OpaquePointer?
        var extra: OpaquePointer?
        guard PKCS12_parse(file, passwordText, &pkey, &x509, &extra) == 1 else {
            let reasons = OpenSSLError("PKCS12_parse").reasons
            if reasons.contains(where: { $0.contains("unsupported") }) { throw .unsupported(encryption) }
            throw .wrongPassword
        }
        defer { EVP_PKEY_free(pkey) }
        var chain: [Certificate] = []
        if let extra {
            for index in 0..<CSignetCrypto_certificateCount(extra) {
                guard let certificate = CSignetCrypto_certificateAt(extra, index) else { continue }
                X509_up_ref(certificate)
                chain.append(Certificate(owning: certificate))
            }
            CSignetCrypto_freeCertificates(extra)
        }
        guard let pkey else { if let x509 { X509_free(x509) }; throw .noKey }
        guard let x509 else { throw .noCertificate }
        let certificate = Certificate(owning: x509)
        let key = try components(pkey)
        return Contents(key: key, certificate: certificate, chain: chain, encryption: encryption.isEmpty ? "unencrypted" : encryption, legacy: legacy)
    }

    /// The key's components in zeroing buffers.
    static func components(_ pkey: OpaquePointer) throws(Failure) -> ImportedKey {
        func number(_ name: String, pad: Int? = nil) throws(Failure) -> SharedSecret {
            var bn: OpaquePointer?
            guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else { throw .unsupportedKey("it has no \(name) component") }
            defer { BN_clear_free(bn) }
            let length = pad ?? Int((BN_num_bits(bn) + 7) / 8)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 1)
            defer { SecretBytes.wipe(buffer); buffer.deallocate() }
            guard BN_bn2binpad(bn, buffer.baseAddress, Int32(length)) == Int32(length) else { throw .unsupportedKey("\(name) does not fit") }
            return SharedSecret(copying: UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        }
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA:
            let bits = Int(EVP_PKEY_get_bits(pkey))
            guard bits >= 2048 else { throw .unsupportedKey("RSA-\(bits) is below the 2048 bits Signet accepts") }
            let names: [(ImportedKey.Component, String)] = [
                (.modulus, "n"), (.publicExponent, "e"), (.privateExponent, "d"), (.prime1, "rsa-factor1"), (.prime2, "rsa-factor2"),
                (.exponent1, "rsa-exponent1"), (.exponent2, "rsa-exponent2"), (.coefficient, "rsa-coefficient1"),
            ]
            var components: [(ImportedKey.Component, SharedSecret)] = []
            for (component, name) in names { components.append((component, try number(name))) }
            return ImportedKey(keyType: .rsa, components: components)
        case EVP_PKEY_EC:
            var groupName = [CChar](repeating: 0, count: 64)
            guard EVP_PKEY_get_utf8_string_param(pkey, "group", &groupName, 64, nil) == 1 else { throw .unsupportedKey("its curve is unnamed") }
            let group = text(groupName)
            guard let curve = Curve.byGroup[group] else { throw .unsupportedKey("the curve \(group) is not P-256, P-384 or P-521") }
            var point = [UInt8](repeating: 0, count: 1 + 2 * curve.length)
            var pointLength = 0
            guard EVP_PKEY_get_octet_string_param(pkey, "encoded-pub-key", &point, point.count, &pointLength) == 1,
                  pointLength == point.count, point.first == 0x04 else {
                throw .unsupportedKey("its public point is not in uncompressed form")
            }
            let parameters = DER.objectIdentifier(curve.oid)
            return ImportedKey(keyType: .ec, components: [
                (.ecParameters, parameters.withUnsafeBytes { SharedSecret(copying: $0) }),
                (.ecPrivateValue, try number("priv", pad: curve.length)),
                (.ecPoint, point.withUnsafeBytes { SharedSecret(copying: $0) }),
            ])
        default:
            throw .unsupportedKey("only RSA and EC keys are supported")
        }
    }
}

/// The curves Signet puts on tokens, by OpenSSL group name.
struct Curve {
    /// The name people read ("P-256").
    var name: String
    var oid: [UInt64]
    /// Bytes of one field element.
    var length: Int

    static let byGroup: [String: Curve] = [
        "prime256v1": Curve(name: "P-256", oid: [1, 2, 840, 10045, 3, 1, 7], length: 32),
        "secp384r1": Curve(name: "P-384", oid: [1, 3, 132, 0, 34], length: 48),
        "secp521r1": Curve(name: "P-521", oid: [1, 3, 132, 0, 35], length: 66),
    ]
}

/// OpenSSL 3's legacy provider (RC2, RC4, single DES, for old PKCS#12 files), in a library
/// context of its own next to a default provider, made the first time it is needed.
///
/// Loading a provider into OpenSSL's global context while another thread fetches an algorithm
/// there can make that fetch fail (openssl/openssl#17633, OpenSSL 3.0): the test run saw a
/// modern `.p12` opened in parallel report a wrong password. So the global context is never
/// changed; a legacy file is opened with this context as the thread's default.
enum LegacyProvider {
    nonisolated(unsafe) private static let context: OpaquePointer? = {
        guard let context = OSSL_LIB_CTX_new() else { return nil }
        guard OSSL_PROVIDER_load(context, "legacy") != nil, OSSL_PROVIDER_load(context, "default") != nil else {
            OSSL_LIB_CTX_free(context)
            return nil
        }
        return context
    }()

    /// Runs `body` with the legacy context as this thread's default OpenSSL context (as it is,
    /// when the legacy provider is not installed: OpenSSL then reports the algorithm unsupported).
    static func whileCurrent<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard let context else { return try body() }
        let previous = OSSL_LIB_CTX_set0_default(context)
        defer { OSSL_LIB_CTX_set0_default(previous) }
        return try body()
    }
}
