import Foundation
import SignetTestSupport
import Testing

/// The real Thunderbird (Debian's ESR, with its own NSS), headless under Marionette, with the module
/// registered by `signet setup`: it sees the token's certificates as its user's, signs a message that
/// OpenSSL verifies, and decrypts messages OpenSSL encrypted to the token's RSA and P-256 keys
/// (Tests/thunderbird: the driver, its own agent and token; about 6 s).
@Suite("PKCS#11 module: Thunderbird")
struct ThunderbirdTests {
    @Test("Thunderbird signs and decrypts (RSA and ECDH) through libsignet-pkcs11.so")
    func thunderbird() async throws {
        let script = TestPaths.repository.appendingPathComponent("Tests/thunderbird/run").path
        let result = try await offPool {
            try Run.command("/bin/bash", [script, "--signet", TestPaths.binaries.path], timeout: 360)
        }
        let output = result.output + result.errors
        #expect(result.status == 0, "\(output.suffix(4000))")
        #expect(output.contains("tb_smime: PASS"))
        #expect(output.contains("Thunderbird decrypted to-alice-ec with the token's key"))
        #expect(output.contains("openssl cms -verify accepts Thunderbird's signature"))
    }
}
