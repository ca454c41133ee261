import SignetAgentClient
import SignetAgentProtocol
import Testing

/// `TokenReports`: what `signet status`, `signet pin status` and `signet tokens` say of a token's access codes.
@Suite("Token reports")
struct TokenReportsTests {
    func token(failures: UInt32 = 0, triesLeft: UInt32 = 3, lockedSeconds: UInt32? = nil, ledgerDamage: String? = nil) -> TokenEntry {
        TokenEntry(uri: "pkcs11:token=Work", label: "Work", manufacturer: "m", model: "x", serial: "1", software: false, unlocked: false,
                   failures: failures, triesLeft: triesLeft, lockedSeconds: lockedSeconds, tokenCounter: "ok", ledgerDamage: ledgerDamage)
    }

    @Test("Signet's tries left (one try, several), its lock with the time left, a damaged ledger first; then the token's own counter")
    func accessState() {
        #expect(TokenReports.accessState(token()) == ["  signet:  3 tries left before a lock", "  token:   ok"])
        #expect(TokenReports.accessState(token(failures: 2, triesLeft: 1))[0] == "  signet:  1 try left before a lock")
        #expect(TokenReports.accessState(token(failures: 3, triesLeft: 0, lockedSeconds: 900))[0]
                == "  signet:  locked for 15 min after 3 wrong access codes")
        #expect(TokenReports.accessState(token(lockedSeconds: 900, ledgerDamage: "bad MAC"))[0]
                == "  signet:  ledger damaged (bad MAC); run `signet pin repair-ledger`")
    }

    @Test("A code's state in words: blocked says how to unblock; final try before a recent wrong code; must change, PIN pad, lengths")
    func codeWords() {
        func words(_ flags: CodeFlags) -> String {
            let module = ModuleEntry(name: "m", path: "/m.so", description: "", libraryVersion: "1", manufacturer: "", cryptokiVersion: "2.40")
            return TokenReports.Entry(TokenDetail(entry: token(), slot: "0", module: module, flags: [], userCode: flags, soCode: flags)).userCode.words
        }
        #expect(words(CodeFlags(countLow: false, finalTry: false, locked: false, toBeChanged: false, protectedAuthenticationPath: false,
                                minLength: 4, maxLength: 8)) == "ok; 4–8 characters")
        #expect(words(CodeFlags(countLow: true, finalTry: true, locked: false, toBeChanged: true, protectedAuthenticationPath: true,
                                minLength: nil, maxLength: nil)) == "final try left on the token; must be changed; entered on the reader's PIN pad")
        #expect(words(CodeFlags(countLow: true, finalTry: false, locked: false, toBeChanged: false, protectedAuthenticationPath: false,
                                minLength: nil, maxLength: nil)) == "a wrong code was entered recently")
        #expect(words(CodeFlags(countLow: true, finalTry: true, locked: true, toBeChanged: false, protectedAuthenticationPath: false,
                                minLength: 4, maxLength: 8)) == "BLOCKED on the token — unblock it with the administrator code or PUK")
    }

    @Test("An object of `signet keys`: its kind, key type and size, id in hex, usages by name")
    func object() {
        let key = ObjectEntry(uri: "pkcs11:id=%0a", kind: .privateKey, label: "mail", id: [0x0a, 0xff], keyType: .rsa, bits: 2048,
                              usages: [.sign, .decrypt])
        let shown = TokenReports.Object(key)
        #expect(shown.kind == "private-key" && shown.keyType == "RSA" && shown.id == "0aff" && shown.usages == KeyUsages([.sign, .decrypt]).names)
        let certificate = ObjectEntry(uri: "pkcs11:id=%0a", kind: .certificate, label: "mail", id: [0x0a], keyType: nil, bits: 0, usages: [])
        #expect(TokenReports.Object(certificate).kind == "certificate" && TokenReports.Object(certificate).keyType == nil)
    }

    @Test("The status of an agent that is not running, and of one that is, as JSON shapes")
    func status() {
        #expect(TokenReports.Status.notRunning.agent.running == false && TokenReports.Status.notRunning.tokens.isEmpty)
        let status = TokenReports.Status(AgentStatus(agentVersion: "0.3.0", pid: 7, uptimeSeconds: 60, connections: 2, tokens: [token(failures: 1, triesLeft: 2)]))
        #expect(status.agent.running && status.agent.pid == 7 && status.agent.problems == [])
        #expect(status.tokens.map(\.triesLeft) == [2] && status.tokens.allSatisfy(\.present))
    }
}

/// `signet version`'s lines for what the agent loaded.
@Suite("Agent versions report")
struct AgentVersionsReportTests {
    @Test("The agent, its libraries, each module with its CK_INFO, and each module that could not be loaded")
    func lines() {
        let versions = AgentVersions(
            agentVersion: "0.3.0", libraries: [.init(name: "p11-kit", version: "0.24.1")],
            modules: [ModuleEntry(name: "softhsm2", path: "/usr/lib/softhsm/libsofthsm2.so", description: "Implementation of PKCS11",
                                  libraryVersion: "2.6", manufacturer: "SoftHSM", cryptokiVersion: "2.40")],
            moduleFailures: [ModuleFailure(path: "/nonexistent/libmissing.so", reason: "no such file")])
        #expect(TokenReports.versionLines(versions, pid: 42) == [
            "signet-agent: 0.3.0 (pid 42)", "p11-kit: 0.24.1", "PKCS#11 modules: 1",
            "  softhsm2 (/usr/lib/softhsm/libsofthsm2.so): Implementation of PKCS11 2.6, by SoftHSM, Cryptoki 2.40",
            "  /nonexistent/libmissing.so: could not be loaded (no such file)",
        ])
        #expect(TokenReports.versionLines(AgentVersions(agentVersion: "0.3.0", libraries: [], modules: [], moduleFailures: []), pid: 1)
                == ["signet-agent: 0.3.0 (pid 1)", "PKCS#11 modules: none"])
    }
}

/// `TokenReports.one`: the token `signet pin status --token URI` means.
@Suite("Choosing one token")
struct TokenChoiceTests {
    func token(_ label: String, serial: String) -> TokenEntry {
        TokenEntry(uri: "pkcs11:token=\(label);serial=\(serial)", label: label, manufacturer: "m", model: "x", serial: serial, software: false,
                   unlocked: false, failures: 0, triesLeft: 3, lockedSeconds: nil, tokenCounter: "ok", ledgerDamage: nil)
    }

    func refusal(_ tokens: [TokenEntry], _ uri: String?) -> String? {
        do throws(TokenReports.Refusal) { _ = try TokenReports.one(of: tokens, selectedBy: uri); return nil } catch { return error.description }
    }

    @Test("The only token, or the one the URI selects by label or serial; none or two are refused, naming what to do")
    func choose() throws {
        let work = token("Work", serial: "1"), spare = token("Work", serial: "2")
        #expect(try TokenReports.one(of: [work], selectedBy: nil) == work)
        #expect(try TokenReports.one(of: [work, spare], selectedBy: "pkcs11:serial=2") == spare)
        #expect(refusal([], nil) == "No token is present. Insert your token or tap it on the reader.")
        #expect(refusal([work], "pkcs11:token=Home")?.hasPrefix("No token is present that matches pkcs11:token=Home") == true)
        #expect(refusal([work, spare], "pkcs11:token=Work")?.contains("Work serial 1") == true)
    }
}
