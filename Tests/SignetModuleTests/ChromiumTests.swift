import Foundation
import SignetTestSupport
import Testing

/// Debian's Chromium, headless, with the module registered by `signet setup` in a fresh home: it
/// loads the module with no agent running (where it died with SIGTRAP before the module answered
/// the Swift runtime's `malloc_usable_size` itself), then logs in to an `openssl s_server` that
/// requires a client certificate, with the token's, picked by an `AutoSelectCertificateForUrls`
/// policy; then, with the token locked, Chromium with a window on an Xvfb display shows its own
/// "Unlock Security Device" dialog (typed into with xdotool, as a person would), NSS logs in with no code
/// under the protected path, and the agent's (scripted) pinentry gives the code (Tests/chromium/run and
/// cr_locked.py: their own agent, token, CA, servers and X display; about 6 s).
@Suite("PKCS#11 module: Chromium")
struct ChromiumTests {
    @Test("Chromium loads the module without an agent, then logs in to a TLS server with the token's certificate, unlocked and locked")
    func chromium() async throws {
        let script = TestPaths.repository.appendingPathComponent("Tests/chromium/run").path
        let result = try await offPool {
            try Run.command("/bin/bash", [script, TestPaths.binaries.path], timeout: 300)
        }
        let output = result.output + result.errors
        #expect(result.status == 0, "\(output.suffix(4000))")
        #expect(output.contains("chromium test: no agent: Chromium loaded the module and a page, no trap"))
        #expect(output.contains("chromium test: unlocked: logged in with the token's certificate"))
        #expect(output.contains("chromium test: locked: logged in with the token's certificate, the agent's pinentry asked once"))
    }
}
