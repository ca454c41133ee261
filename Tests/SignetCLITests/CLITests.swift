import Foundation
import SignetCLI
import SignetPKCS11
import SignetTestSupport
import Testing

/// The `signet` binary run as a user would, with its own HOME and XDG directories.
@Suite("signet command line")
final class CLITests {
    let home: URL
    let environment: [String: String]
    /// SoftHSM2's module, the only one these tests load.
    let softhsm: String
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-home")
        var env = TestPaths.userEnvironment(home: home)
        env["SOFTHSM2_CONF"] = nil
        env["SIGNET_AGENT"] = TestPaths.binaries.appendingPathComponent("signet-agent").path
        environment = env
        // Only SoftHSM2, not every module registered with p11-kit: OpenSC would also list (and open) the
        // virtual PIV card that the PC/SC suite inserts into vpcd while these tests run alongside it.
        // Seen in CI: this suite counted the card as a second token.
        guard let module = SoftwareTokens.installedModulePath() else { throw TestFailure("SoftHSM2 is not installed") }
        softhsm = module
        let config = home.appendingPathComponent("config/signet")
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        try "p11-kit-modules = no\npkcs11-module = \(softhsm)\n".write(to: config.appendingPathComponent("config"), atomically: true, encoding: .utf8)
    }

    /// Commands start an agent for this home; stop it when the test ends.
    deinit {
        _ = try? Run.command(signet, ["agent", "stop"], environment: environment, timeout: 30)
    }

    func tokens() throws -> [[String: Any]] {
        let result = try Run.checked(signet, ["tokens", "--json"], environment: environment)
        let listing = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        return try #require(listing["tokens"] as? [[String: Any]])
    }

    @Test("token init --software creates a token under the data directory that `signet tokens --json` lists with flags")
    func initAndList() throws {
        // Both codes on standard input, one line each; the newline is not part of the code.
        let result = try Run.checked(signet, ["token", "init", "--software", "--label", "Demo Token", "--code-fd", "0", "--so-code-fd", "0"],
                                     stdin: Data("1234-abcd\nso-code-99\n".utf8), environment: environment)
        #expect(result.output.contains("Created software token \"Demo Token\""))
        #expect(result.output.contains("SOFTWARE token"))
        #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("data/signet/softhsm/softhsm2.conf").path))

        let listed = try tokens()
        #expect(listed.count == 1)
        let token = try #require(listed.first)
        #expect(token["label"] as? String == "Demo Token")
        #expect(token["software"] as? Bool == true)
        #expect((token["uri"] as? String)?.hasPrefix("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=") == true)
        #expect((token["flags"] as? [String])?.contains("CKF_USER_PIN_INITIALIZED") == true)
        let userCode = try #require(token["userCode"] as? [String: Any])
        #expect(userCode["locked"] as? Bool == false)
        #expect(userCode["finalTry"] as? Bool == false)
        #expect(userCode["minLength"] as? Int == 4)

        // The code set is exactly the bytes given: OpenSC's pkcs11-tool logs in with it.
        let text = try Run.checked(signet, ["tokens"], environment: environment).output
        #expect(text.contains("[SOFTWARE TOKEN"))
    }

    @Test("The access code is exactly the line given, checked by an independent PKCS#11 client")
    func codeIsExact() throws {
        try Run.checked(signet, ["token", "init", "--software", "--label", "Exact", "--code-fd", "0", "--so-code-fd", "0"],
                        stdin: Data("Ab Cd 12\nso-code-99\n".utf8), environment: environment)
        var env = environment
        env["SOFTHSM2_CONF"] = home.appendingPathComponent("data/signet/softhsm/softhsm2.conf").path
        let module = softhsm
        // pkcs11-tool takes the code in argv; acceptable for a throw-away test token only.
        let good = try Run.command("pkcs11-tool", ["--module", module, "--token-label", "Exact", "--login", "--pin", "Ab Cd 12", "--list-objects"], environment: env)
        #expect(good.status == 0, "\(good.errors)")
        let wrongCase = try Run.command("pkcs11-tool", ["--module", module, "--token-label", "Exact", "--login", "--pin", "ab cd 12", "--list-objects"], environment: env)
        #expect(wrongCase.status != 0)
    }

    @Test("A second token with the same label is refused with a clear message")
    func duplicateLabel() throws {
        let input = Data("1234-abcd\nso-code-99\n".utf8)
        try Run.checked(signet, ["token", "init", "--software", "--label", "Twice", "--code-fd", "0", "--so-code-fd", "0"], stdin: input, environment: environment)
        let again = try Run.command(signet, ["token", "init", "--software", "--label", "Twice", "--code-fd", "0", "--so-code-fd", "0"], stdin: input, environment: environment)
        #expect(again.status != 0)
        #expect(again.errors.contains("exists already; choose another --label"))
        #expect(try tokens().count == 1)
    }

    @Test("Without --software, token init refuses and says why")
    func needsSoftware() throws {
        let result = try Run.command(signet, ["token", "init", "--label", "X"], environment: environment)
        #expect(result.status != 0)
        #expect(result.errors.contains("pass --software"))
    }

    @Test("An empty code, or none on a closed descriptor, is refused and nothing is created")
    func badCodes() throws {
        let empty = try Run.command(signet, ["token", "init", "--software", "--label", "E", "--code-fd", "0", "--so-code-fd", "0"],
                                    stdin: Data("\nso-code-99\n".utf8), environment: environment)
        #expect(empty.status != 0)
        #expect(empty.errors.contains("the access code is empty"))
        let closed = try Run.command(signet, ["token", "init", "--software", "--label", "E", "--code-fd", "987", "--so-code-fd", "0"],
                                     stdin: Data("x\n".utf8), environment: environment)
        #expect(closed.status != 0)
        #expect(closed.errors.contains("file descriptor 987"))
        #expect(try tokens().isEmpty)
    }

    @Test("Codes never appear in output or errors")
    func noCodeInOutput() throws {
        let result = try Run.checked(signet, ["token", "init", "--software", "--label", "Quiet", "--code-fd", "0", "--so-code-fd", "0"],
                                     stdin: Data("Sekr1t-Code\nS0-Sekr1t\n".utf8), environment: environment)
        let everything = result.output + result.errors + (try Run.checked(signet, ["tokens", "--json"], environment: environment).output)
        #expect(!everything.contains("Sekr1t"))
    }

    @Test("signet-agent starts, logs, reloads on SIGHUP (systemd's ExecReload) and stops cleanly on SIGTERM")
    func agentStartsAndStops() throws {
        let agent = TestPaths.binaries.appendingPathComponent("signet-agent").path
        let log = home.appendingPathComponent("agent.log").path
        let pid = try AgentFixture.spawn(agent, [], environment: environment, log: log)
        var status: Int32 = 0
        var exited = false
        defer { if !exited { kill(pid, SIGKILL); waitpid(pid, &status, 0) } }
        let text = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        // Each signal once the agent shows it is ready for it (it takes signals with sigwait once listening).
        try #require(eventually(timeout: .seconds(20)) { text().contains("signet-agent \(SignetCommand.version) listening") }, "\(text())")
        kill(pid, SIGHUP)
        #expect(eventually(timeout: .seconds(10)) { text().contains("SIGHUP: configuration reloaded") }, "\(text())")
        kill(pid, SIGTERM)
        exited = eventually(timeout: .seconds(20)) { waitpid(pid, &status, WNOHANG) == pid }
        #expect(exited && status == 0, "\(status)")
        #expect(text().contains("signet-agent stopped"), "\(text())")
    }
}

@Suite("signet pin")
struct PinCLITests {
    let base = try! CLITests()
    var signet: String { base.signet }

    func makeToken() throws {
        try Run.checked(signet, ["token", "init", "--software", "--label", "Pins", "--code-fd", "0", "--so-code-fd", "0"],
                        stdin: Data("1234-abcd\nso-code-99\n".utf8), environment: base.environment)
    }

    @Test("Three wrong codes lock the token: exit status 3 and a message with the time left")
    func lockout() throws {
        try makeToken()
        for expected: Int32 in [2, 2] {
            let result = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                         stdin: Data("wrong-1\nnew-code-1\n".utf8), environment: base.environment)
            #expect(result.status == expected)
            #expect(result.errors.contains("Wrong access code."))
        }
        let third = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                    stdin: Data("wrong-1\nnew-code-1\n".utf8), environment: base.environment)
        #expect(third.status == 3)
        #expect(third.errors.contains("Token locked for 15 min (until "))
        let right = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                    stdin: Data("1234-abcd\nnew-code-1\n".utf8), environment: base.environment)
        #expect(right.status == 3, "the right code is refused while locked")
        let status = try Run.checked(signet, ["pin", "status", "--json"], environment: base.environment)
        let json = try #require(try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any])
        #expect(json["triesLeft"] as? Int == 0)
        #expect((json["lockedSeconds"] as? Int ?? 0) > 890)

        let unblock = try Run.command(signet, ["pin", "unblock", "--so-code-fd", "0", "--new-code-fd", "0"],
                                      stdin: Data("so-code-99\nfresh-code-2\n".utf8), environment: base.environment)
        #expect(unblock.status == 0, "\(unblock.errors)")
        #expect(unblock.output.contains("Unblocked"))
        let change = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                     stdin: Data("fresh-code-2\nnewer-code-3\n".utf8), environment: base.environment)
        #expect(change.status == 0, "\(change.errors)")
        #expect(change.output.contains("Access code changed."))
    }

    @Test("A damaged ledger keeps the token locked until repair-ledger, which starts a full lock")
    func repair() throws {
        try makeToken()
        _ = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                            stdin: Data("wrong-1\nnew-code-1\n".utf8), environment: base.environment)
        let ledgerDirectory = base.home.appendingPathComponent("state/signet/ledger")
        for name in try FileManager.default.contentsOfDirectory(atPath: ledgerDirectory.path) where name.hasSuffix(".ledger") {
            try Data("garbage\n".utf8).write(to: ledgerDirectory.appendingPathComponent(name))
        }
        let damaged = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                      stdin: Data("1234-abcd\nnew-code-1\n".utf8), environment: base.environment)
        #expect(damaged.status == 1)
        #expect(damaged.errors.contains("signet pin repair-ledger"))
        let repaired = try Run.checked(signet, ["pin", "repair-ledger"], environment: base.environment)
        #expect(repaired.output.contains("locked for 15 min"))
        let after = try Run.command(signet, ["pin", "change", "--code-fd", "0", "--new-code-fd", "0"],
                                    stdin: Data("1234-abcd\nnew-code-1\n".utf8), environment: base.environment)
        #expect(after.status == 3)
    }
}
