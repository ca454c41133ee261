import Foundation
import SignetCore
import SignetOpenSSL
import SignetTestSupport
import Testing

/// PKCS#12 files that cost the importer CPU per password try (issue 19 #13).
@Suite("Hardening: PKCS#12 iteration counts")
struct PKCS12HardeningTests {
    /// A .p12 made by `openssl pkcs12 -export -iter iterations`; by default its bags are not encrypted, so only the MAC costs.
    func file(iterations: Int, options: [String] = ["-keypbe", "NONE", "-certpbe", "NONE"]) throws -> [UInt8] {
        let peer = try OpenSSLPeer()
        let key = peer.path("key.pem"), cert = peer.path("cert.pem"), p12 = peer.path("file.p12")
        let made = try peer.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                 "-subj", "/CN=Iterations", "-keyout", key, "-out", cert])
        try #require(made.status == 0, "\(made.errors)")
        let exported = try peer.run(["pkcs12", "-export", "-in", cert, "-inkey", key] + options
                                    + ["-iter", "\(iterations)", "-passout", "pass:pw", "-out", p12])
        try #require(exported.status == 0, "\(exported.errors)")
        return try peer.read("file.p12")
    }

    @Test("A MAC asking for more rounds than the cap is refused, with the count, before any password is tried")
    func tooManyIterationsAreRefused() throws {
        let bytes = try file(iterations: PKCS12File.maximumIterations + 1)
        #expect(throws: PKCS12File.Failure.tooManyIterations(PKCS12File.maximumIterations + 1)) {
            try PKCS12File.open(bytes, password: SecretBytes(copying: Array("pw".utf8)))
        }
        #expect(PKCS12File.Failure.tooManyIterations(2_000_001).description.contains("2000001 rounds of password hashing"))
    }

    /// `bytes` (a PFX: version, authSafe, macData) without its MAC; OpenSSL 3.0's `-nomac` still writes one with `-iter`.
    func withoutMAC(_ bytes: [UInt8]) throws -> [UInt8] {
        let pfx = try DER.readTLV(bytes[...], tag: 0x30).contents
        let version = try DER.readTLV(pfx, tag: 0x02)
        let authSafe = try DER.readTLV(version.rest, tag: 0x30)
        try #require(authSafe.rest.first == 0x30, "the file has a MAC to remove")
        return DER.tlv(0x30, Array(pfx[pfx.startIndex..<authSafe.rest.startIndex]))
    }

    @Test("Without a MAC, encrypted parts asking for more rounds than the cap are refused before any is decrypted (PBES2 and legacy PBE)",
          arguments: [[String](), ["-legacy"]])
    func tooManyEncryptionIterationsAreRefused(_ options: [String]) throws {
        let bytes = try withoutMAC(try file(iterations: PKCS12File.maximumIterations + 1, options: options))
        #expect(throws: PKCS12File.Failure.tooManyIterations(PKCS12File.maximumIterations + 1)) {
            try PKCS12File.open(bytes, password: SecretBytes(copying: Array("pw".utf8)))
        }
    }

    @Test("A MAC at the cap still opens")
    func iterationsAtTheCapOpen() throws {
        let bytes = try file(iterations: PKCS12File.maximumIterations)
        let contents = try PKCS12File.open(bytes, password: SecretBytes(copying: Array("pw".utf8)))
        #expect(contents.certificate.subject.contains("Iterations"))
    }
}
