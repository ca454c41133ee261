import COpenSSL
import CSignetCrypto
import FoundationEssentials
import SignetCore

/// Reads the certificate files CAs hand out: PEM (one or many), DER, and
/// PKCS#7 certs-only bundles (`.p7b`/`.p7c`, DER or PEM, BER with indefinite
/// lengths), including a PKCS#7 bundle mislabelled as `BEGIN CERTIFICATE`.
public enum CertificateFile {
    /// Largest file read: a bundle of certificates is a few kilobytes; this bounds hostile input.
    public static let maximumSize = 1 << 20

    /// What a file turned out to be.
    public struct Contents {
        public var certificates: [Certificate]
        /// How the file was read, for messages ("PEM, 2 certificates", "DER PKCS#7 bundle").
        public var format: String
    }

    /// A file that could not be read as certificates.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses `bytes`.
    /// - Throws: `Failure` naming what was expected, for empty, oversized or unreadable input.
    public static func read(_ bytes: [UInt8]) throws(Failure) -> Contents {
        guard bytes.count <= maximumSize else {
            throw Failure(description: "The file is \(bytes.count) bytes; a certificate file is at most \(maximumSize) bytes. Is this the right file?")
        }
        guard !bytes.isEmpty else { throw Failure(description: "The file is empty.") }
        OpenSSLError.drain()
        defer { OpenSSLError.drain() }
        if let text = String(validating: bytes, as: UTF8.self), text.contains("-----BEGIN ") {
            return try readPEM(text)
        }
        if let certificate = try? Certificate(der: bytes) { return Contents(certificates: [certificate], format: "DER certificate") }
        if let certificates = pkcs7Certificates(bytes) {
            return Contents(certificates: certificates, format: "PKCS#7 bundle (DER/BER), \(certificates.count) certificate(s)")
        }
        if isPKCS12(bytes) {
            throw Failure(description: "This is a PKCS#12 (.p12/.pfx) file with a private key; import it with `signet import FILE`.")
        }
        throw Failure(description: "This is neither a PEM file nor a DER certificate nor a PKCS#7 (.p7b/.p7c) bundle.")
    }

    private static func readPEM(_ text: String) throws(Failure) -> Contents {
        var certificates: [Certificate] = []
        var kinds: [String] = []
        for block in PEMBlocks.parse(text) {
            switch block.label {
            case "CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE":
                if let certificate = try? Certificate(der: block.der) {
                    certificates.append(certificate)
                    kinds.append("certificate")
                } else if let bundle = pkcs7Certificates(block.der) {
                    // Some CAs send a PKCS#7 bundle under a CERTIFICATE label.
                    certificates += bundle
                    kinds.append("PKCS#7 bundle labelled CERTIFICATE")
                } else {
                    throw Failure(description: "A BEGIN \(block.label) block holds neither a certificate nor a PKCS#7 bundle.")
                }
            case "PKCS7", "PKCS #7 SIGNED DATA", "CMS":
                guard let bundle = pkcs7Certificates(block.der) else {
                    throw Failure(description: "A BEGIN \(block.label) block is not a PKCS#7 bundle of certificates.")
                }
                certificates += bundle
                kinds.append("PKCS#7 bundle")
            default:
                // Keys and requests are not certificates; say so rather than skip silently.
                throw Failure(description: "The file holds a \(block.label) block; expected certificates (CERTIFICATE or PKCS7).")
            }
        }
        guard !certificates.isEmpty else { throw Failure(description: "The PEM file holds no certificate.") }
        let described = Dictionary(grouping: kinds, by: { $0 }).map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
        return Contents(certificates: certificates, format: "PEM (\(described))")
    }

    static func isPKCS12(_ der: [UInt8]) -> Bool {
        der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let file = d2i_PKCS12(nil, &cursor, buffer.count) else { return false }
            PKCS12_free(file)
            return true
        }
    }

    /// The certificates in a PKCS#7 SignedData (DER or BER); nil when `der` is not one or holds none.
    static func pkcs7Certificates(_ der: [UInt8]) -> [Certificate]? {
        der.withUnsafeBufferPointer { buffer -> [Certificate]? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let pkcs7 = d2i_PKCS7(nil, &cursor, buffer.count) else { return nil }
            defer { PKCS7_free(pkcs7) }
            guard let stack = CSignetCrypto_pkcs7Certificates(pkcs7) else { return nil }
            let count = CSignetCrypto_certificateCount(stack)
            guard count > 0 else { return nil }
            return (0..<count).compactMap { index in
                guard let x509 = CSignetCrypto_certificateAt(stack, index) else { return nil }
                X509_up_ref(x509)
                return Certificate(owning: x509)
            }
        }
    }
}

/// PEM blocks (RFC 7468): label and decoded bytes. Text outside blocks is ignored.
public enum PEMBlocks {
    public struct Block {
        public var label: String
        public var der: [UInt8]
    }

    /// The blocks in `text`; a block whose base64 does not decode is returned with empty bytes.
    public static func parse(_ text: String) -> [Block] {
        var blocks: [Block] = []
        var label: String?
        var body = ""
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = rawLine.trimmingSpaces()
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                label = String(line.dropFirst(11).dropLast(5))
                body = ""
            } else if let current = label, line.hasPrefix("-----END "), line.hasSuffix("-----") {
                blocks.append(Block(label: current, der: Data(base64Encoded: body).map { Array($0) } ?? []))
                label = nil
            } else if label != nil, !line.contains(":") {
                body += line
            }
        }
        return blocks
    }
}
