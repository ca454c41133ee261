import Foundation
import SignetTestSupport
import Testing

/// The module's protected path and a `confirm` rule, end to end: pkcs11-tool loads libsignet-pkcs11.so,
/// which sends the host's DISPLAY to the agent; the agent asks through pinentry. The pinentry is the
/// scripted one (Tests/testdata/pinentry/fake-pinentry), standing in for a person at a screen; the
/// real pinentry-tty and pinentry-gtk2 are driven in SignetAgentTests' RealPinentryTests.
@Suite("PKCS#11 module: prompting through the agent", .serialized)
final class ModulePromptTests {
    var fixture: ModuleFixture!
    var pinentry = ""
    /// The screen pkcs11-tool names: a stand-in X socket, which the agent checks before a prompt starts.
    var display: StandInDisplay!

    func prepare() throws {
        let directory = try TestPaths.temporaryDirectory("signet-module-pinentry")
        pinentry = directory.appendingPathComponent("fake-pinentry").path
        try TestPaths.copyExecutable(TestPaths.testData.appendingPathComponent("pinentry/fake-pinentry").path, to: pinentry)
        fixture = try ModuleFixture(countingCodes: true, config: "pinentry-program = \(pinentry)")
        display = try StandInDisplay()
    }

    func plan(_ lines: [String]) throws {
        let directory = (pinentry as NSString).deletingLastPathComponent
        try lines.map { $0 + "\n" }.joined().write(toFile: directory + "/plan", atomically: true, encoding: .utf8)
    }

    var pinentryLog: String {
        (try? String(contentsOfFile: (pinentry as NSString).deletingLastPathComponent + "/log", encoding: .utf8)) ?? ""
    }

    func hex(_ text: String) -> String { text.utf8.map { String(format: "%02x", $0) }.joined() }

    /// pkcs11-tool as Thunderbird logs in: C_Login(CKU_USER, NULL, 0), from a program with a screen.
    func login(_ extra: [String] = ["--list-objects"]) throws -> Run.Result {
        try fixture.run("pkcs11-tool", ["--module", fixture.module, "--login"] + extra, environment: ["DISPLAY": display.name])
    }

    func logins() -> Int {
        ((try? String(contentsOfFile: fixture.agent.wrapperLog, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("C_Login USER") }.count
    }

    @Test("C_Login(NULL) on a locked token: the agent asks; a wrong code, then the right one, unlocks it")
    func protectedPath() async throws { try await offPool { try self.prepare(); try self.protectedPathBody() } }
    func protectedPathBody() throws {
        try fixture.lock()
        let before = logins()
        try plan(["code \(hex("wrong-code"))", "code \(hex(fixture.code))"])
        let result = try login()
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("Private Key Object"), "\(result.output)")
        #expect(logins() - before == 2)
        #expect(pinentryLog.contains("SETERROR"), "\(pinentryLog)")
        #expect(pinentryLog.contains("pkcs11-tool"), "the prompt names the calling program: \(pinentryLog)")
    }

    @Test("C_Login(NULL) cancelled at the prompt: CKR_FUNCTION_CANCELED, and no code reached the token")
    func cancelled() async throws { try await offPool { try self.prepare(); try self.cancelledBody() } }
    func cancelledBody() throws {
        try fixture.lock()
        let before = logins()
        try plan(["cancel"])
        let result = try login()
        #expect(result.status != 0)
        #expect((result.output + result.errors).contains("CKR_FUNCTION_CANCELED"), "\(result.output)\(result.errors)")
        #expect(logins() == before)
    }

    @Test("A confirm rule for pkcs11-tool: Allow signs, Deny is CKR_FUNCTION_REJECTED; the prompt comes through pinentry")
    func confirmRule() async throws { try await offPool { try self.prepare(); try self.confirmRuleBody() } }
    func confirmRuleBody() throws {
        let rules = fixture.environment["XDG_CONFIG_HOME"]! + "/signet/clients"
        try "confirm program=/usr/bin/pkcs11-tool operations=sign\n".write(toFile: rules, atomically: true, encoding: .utf8)
        chmod(rules, 0o600)
        // `signet agent reload` returns once the agent has the rule in force.
        let reload = try fixture.agent.signet(["agent", "reload"])
        #expect(reload.status == 0, "\(reload.errors)")
        #expect(reload.output.contains("client rules: 1"), "\(reload.output)")
        try fixture.write("data.bin", "to be signed")
        let sign = ["--sign", "--id", "01", "--mechanism", "SHA256-RSA-PKCS", "--input-file", "data.bin", "--output-file", "sig.bin"]
        try plan(["ok"])
        let allowed = try login(sign)
        #expect(allowed.status == 0, "\(allowed.output)\(allowed.errors)")
        #expect(pinentryLog.contains("CONFIRM"), "\(pinentryLog)")
        try plan(["cancel"])  // the Deny button
        let denied = try login(sign)
        #expect(denied.status != 0)
        // pkcs11-tool 0.23 has no name for CKR_FUNCTION_REJECTED (0x200).
        #expect((denied.output + denied.errors).contains("(0x200)"), "\(denied.output)\(denied.errors)")
    }
}
