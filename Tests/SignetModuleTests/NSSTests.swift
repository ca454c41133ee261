import Foundation
import SignetTestSupport
import Testing

/// libsignet-pkcs11.so in NSS (Debian's NSS 3.87, the engine of Chromium and Evolution; Thunderbird's own
/// NSS is driven in ThunderbirdTests), added to a fresh database by modutil, with OpenSSL checking the results.
@Suite("PKCS#11 module: NSS", .serialized)
final class NSSTests {
    var fixture: ModuleFixture!
    var db = ""

    // Every test runs off Swift's cooperative pool (offPool): these block for seconds in subprocesses,
    // and on two cores that starved the async PC/SC tests beside them (events seen after 3.5 s).
    func prepare() throws {
        fixture = try ModuleFixture()
        db = try fixture.nssDatabase()
    }

    @Test("certutil lists the token's certificates with the token locked, and no code is asked for")
    func listWithoutLogin() async throws { try await offPool { try self.prepare(); try self.listWithoutLoginBody() } }
    func listWithoutLoginBody() throws {
        try fixture.lock()
        let result = try fixture.run("certutil", ["-L", "-d", db, "-h", "all"], stdin: "")
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("Module Test:Alice rsa"), "\(result.output)")
        #expect(result.output.contains("Module Test:Alice ec"), "\(result.output)")
        #expect(!result.errors.contains("password") && !result.output.contains("password"), "\(result.output)\(result.errors)")
    }

    @Test("cmsutil -S signs with the RSA and the EC key, and openssl cms -verify accepts both")
    func sign() async throws { try await offPool { try self.prepare(); try self.signBody() } }
    func signBody() throws {
        for name in ["rsa", "ec"] {
            let signed = "signed-\(name).p7m"
            let result = try fixture.run("cmsutil", ["-S", "-N", "Module Test:Alice \(name)", "-H", "SHA256", "-d", db,
                                                     "-i", "message.txt", "-o", signed], stdin: "")
            #expect(result.status == 0, "\(name): \(result.errors)")
            let verify = try fixture.run("openssl", ["cms", "-verify", "-inform", "DER", "-in", signed, "-CAfile", "ca.pem",
                                                     "-purpose", "smimesign", "-out", "verified-\(name).txt"])
            #expect(verify.status == 0, "\(name): \(verify.errors)")
            #expect(try String(contentsOfFile: fixture.path("verified-\(name).txt"), encoding: .utf8).contains("PKCS#11 module test"))
        }
    }

    @Test("cmsutil -D decrypts a message OpenSSL encrypted to the token's RSA certificate")
    func decrypt() async throws { try await offPool { try self.prepare(); try self.decryptBody() } }
    func decryptBody() throws {
        let encrypt = try fixture.run("openssl", ["cms", "-encrypt", "-aes256", "-in", "message.txt", "-outform", "DER",
                                                  "-out", "to-rsa.p7m", "rsa.pem"])
        #expect(encrypt.status == 0, "\(encrypt.errors)")
        let result = try fixture.run("cmsutil", ["-D", "-d", db, "-i", "to-rsa.p7m"], stdin: "")
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("Hello from the PKCS#11 module test."), "\(result.output)")
    }

    @Test("A locked token: cmsutil fails at once, without a prompt loop or a hang")
    func locked() async throws { try await offPool { try self.prepare(); try self.lockedBody() } }
    func lockedBody() throws {
        try fixture.lock()
        let start = Date()
        let result = try fixture.run("cmsutil", ["-S", "-N", "Module Test:Alice rsa", "-d", db, "-i", "message.txt", "-o", "x.p7m"],
                                     stdin: "", timeout: 30)
        #expect(result.status != 0)
        #expect(Date().timeIntervalSince(start) < 10)
    }
}
