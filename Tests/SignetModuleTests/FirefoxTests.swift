import Foundation
import SignetTestSupport
import Testing

/// The real Firefox ESR (Debian's), headless under Marionette, in a fresh home where it makes its own first
/// profile (under $XDG_CONFIG_HOME/mozilla/firefox); `signet setup` alone registers libsignet-pkcs11.so, and
/// Firefox logs into `openssl s_server -Verify 1 -www` with the token's certificate ("Select Automatically"),
/// unlocked, then locked with the agent asking a scripted pinentry, then locked with nowhere to ask, where the
/// page must end rather than wait (Tests/firefox: the driver; about 40 s).
@Suite("PKCS#11 module: Firefox")
struct FirefoxTests {
    @Test("Firefox's first-run profile is registered by signet setup, and its TLS client-certificate login uses the token, unlocked and locked; with nowhere to ask, the page ends")
    func firefoxLogin() async throws {
        let script = TestPaths.repository.appendingPathComponent("Tests/firefox/run").path
        let result = try await offPool {
            try Run.command("/bin/bash", [script, TestPaths.binaries.path], timeout: 480)
        }
        let output = result.output + result.errors
        #expect(result.status == 0, "\(output.suffix(4000))")
        #expect(output.contains("ff_login: PASS"))
        #expect(output.contains("ok: signet setup registered Firefox's profile"))
        #expect(output.contains("ok: unlocked: the server's page shows the token certificate's subject CN=Alice Login Test"))
        #expect(output.contains("ok: the pinentry was asked once"))
        // Locked with nowhere to ask (no DISPLAY, no terminal): the page ends, three times out of three (issue 28, item 6).
        #expect(output.contains("ok: nowhere to ask, round 3: the token is still locked"), "\(output.suffix(4000))")
    }
}
