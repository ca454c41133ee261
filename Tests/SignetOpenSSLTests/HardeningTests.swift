import Foundation
import SignetCore
import SignetOpenSSL
import SignetTestSupport
import Testing

/// PKCS#12 files that cost the importer CPU per password try (issue 19 #13).
@Suite("Hardening: PKCS#12 iteration counts")
struct PKCS12HardeningTests {
    /// A .p12 made by `openssl pkcs12 -export` with `iterations` MAC rounds; its bags are not encrypted, so only the MAC costs.
    func file(iterations: Int) throws -> [UInt8] {
        let peer = try OpenSSLPeer()
        let key = peer.path("key.pem"), cert = peer.path("cert.pem"), p12 = peer.path("file.p12")
        let made = try peer.run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                                 "-subj", "/CN=Iterations", "-keyout", key, "-out", cert])
        try #require(made.status == 0, "\(made.errors)")
        let exported = try peer.run(["pkcs12", "-export", "-in", cert, "-inkey", key, "-keypbe", "NONE", "-certpbe", "NONE",
                                     "-iter", "\(iterations)", "-passout", "pass:pw", "-out", p12])
        try #require(exported.status == 0, "\(exported.errors)")
        return try peer.read("file.p12")
    }

    @Test("A MAC asking for more rounds than the cap is refused, with the count, before any password is tried")
    func tooManyIterationsAreRefused() throws {
        let bytes = try file(iterations: PKCS12File.maximumMACIterations + 1)
        #expect(throws: PKCS12File.Failure.tooManyIterations(PKCS12File.maximumMACIterations + 1)) {
            try PKCS12File.open(bytes, password: SecretBytes(copying: Array("pw".utf8)))
        }
        #expect(PKCS12File.Failure.tooManyIterations(2_000_001).description.contains("2000001 rounds of password hashing"))
    }

    @Test("A MAC at the cap still opens")
    func iterationsAtTheCapOpen() throws {
        let bytes = try file(iterations: PKCS12File.maximumMACIterations)
        let contents = try PKCS12File.open(bytes, password: SecretBytes(copying: Array("pw".utf8)))
        #expect(contents.certificate.subject.contains("Iterations"))
    }
}
