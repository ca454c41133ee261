import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Synchronization
import Testing

@Suite("signet unlock, status and lock through the agent", .serialized)
struct AgentAccessTests {
    @Test("The CLI starts the agent; unlock, status and lock work as a person would use them")
    func journey() throws {
        let agent = try AgentFixture()
        // No agent yet: the first command starts one.
        let created = try agent.signet(["token", "init", "--software", "--label", "Journey", "--code-fd", "0", "--so-code-fd", "0"],
                                       stdin: "Open-Sesame 1\nso-code-12\n")
        #expect(created.status == 0, "\(created.errors)")
        let pidText = try String(contentsOfFile: agent.paths.agentPIDFile, encoding: .utf8)
        let started = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer {
            kill(started, SIGTERM)
            for _ in 0..<100 where kill(started, 0) == 0 { usleep(20_000) }
        }

        let locked = try agent.signet(["status"])
        #expect(locked.output.contains("Agent: running"))
        #expect(locked.output.contains("Journey  [SOFTWARE TOKEN]"))
        #expect(locked.output.contains("locked (`signet unlock`)"))
        #expect(locked.output.contains("3 tries left"))

        let unlocked = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Open-Sesame 1\n")
        #expect(unlocked.status == 0)
        #expect(unlocked.output == "Unlocked.\n")
        let json = try agent.signet(["status", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let tokens = try #require(report["tokens"] as? [[String: Any]])
        #expect(tokens.first?["unlocked"] as? Bool == true)
        #expect((report["agent"] as? [String: Any])?["pid"] as? Int == Int(started))

        let lock = try agent.signet(["lock"])
        #expect(lock.output == "Locked.\n")
        #expect(try agent.signet(["status"]).output.contains("locked (`signet unlock`)"))

        let stop = try agent.signet(["agent", "stop"])
        #expect(stop.output.contains("stopped"))
        #expect(try agent.signet(["status", "--no-start"]).output.contains("Agent: not running"))
    }

    @Test("Three wrong codes lock the token through the socket; the lock survives kill -9 of the agent; the log names it and holds no code")
    func lockoutSurvivesCrash() throws {
        let agent = try AgentFixture()
        try agent.start()
        try agent.makeToken("Lockout", code: "Right-Code-1")
        let first = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Wrong-Code-A\n")
        #expect(first.status == 2)
        #expect(first.errors.contains("Wrong access code. 2 tries left"))
        let second = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Wrong-Code-B\n")
        #expect(second.errors.contains("1 try left"))
        let third = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Wrong-Code-C\n")
        #expect(third.status == 3)
        #expect(third.errors.contains("Token locked for 15 min (until "))

        agent.kill9()
        try agent.start()
        let right = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Right-Code-1\n")
        #expect(right.status == 3, "the right code is refused while locked, after a restart too")
        #expect(right.errors.contains("Token locked for 1"))
        let status = try agent.signet(["status", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any])
        let token = try #require((report["tokens"] as? [[String: Any]])?.first)
        #expect((token["lockedSeconds"] as? Int ?? 0) > 880)

        let actions = agent.auditEntries.compactMap { entry -> String? in
            guard let action = entry["action"] as? String else { return nil }
            return action == "unlock" ? "unlock:\(entry["result"] as? String ?? "")" : action
        }
        #expect(actions.filter { $0 == "unlock:wrong-code" }.count == 3)
        #expect(actions.contains("lockout-start"))
        #expect(actions.contains("unlock:refused-locked"))
        let unlockEntry = try #require(agent.auditEntries.first { $0["action"] as? String == "unlock" })
        #expect((unlockEntry["exe"] as? String ?? "").hasSuffix("/signet"))
        #expect(unlockEntry["pid"] as? Int != nil)

        for code in ["Right-Code-1", "Wrong-Code-A", "Wrong-Code-B", "Wrong-Code-C", "so-code-12"] {
            #expect(!agent.auditLog.contains(code), "the audit log holds a code")
            #expect(!agent.agentLog.contains(code), "the agent log holds a code")
        }
        let log = try agent.signet(["log", "--action", "lockout-start"])
        #expect(log.output.contains("lockout-start"))
        #expect(!log.output.contains("unlock "))
    }

    @Test("Thirty clients unlocking at once with wrong codes: at most 3 codes reach the token")
    func concurrentUnlocks() throws {
        let agent = try AgentFixture(countingCodes: true)
        try agent.start()
        let uri = try agent.makeToken("Race")
        let serial = try #require(uri.split(separator: ";").first { $0.hasPrefix("serial=") }).dropFirst(7)
        let outcomes = Mutex<[AccessOutcome.Kind]>([])
        DispatchQueue.concurrentPerform(iterations: 30) { index in
            guard let client = try? agent.client(),
                  let outcome = try? agent.unlock(client, token: uri, code: "wrong-\(index)") else { return }
            outcomes.withLock { $0.append(outcome.kind) }
        }
        let kinds = outcomes.withLock { $0 }
        #expect(kinds.count == 30)
        #expect(kinds.filter { $0 == .wrongCode }.count == 2)
        #expect(kinds.filter { $0 == .locked }.count == 28)
        let log = (try? String(contentsOfFile: agent.wrapperLog, encoding: .utf8)) ?? ""
        let presented = log.split(separator: "\n").filter { $0 == "C_Login USER \(serial)" }.count
        #expect(presented == 3, "codes that reached the token: \(presented)")
    }

    /// An agent whose one token is known and then pulled (the test wrapper's `absent` flag stands in
    /// for the pull, which SoftHSM2 cannot do); returns the fixture, its token URI and the flag's path.
    func pulledToken(_ label: String, wait: Int) throws -> (AgentFixture, String, String) {
        let flags = try TestPaths.temporaryDirectory("signet-presence").path
        let agent = try AgentFixture(config: "presence-wait-seconds = \(wait)", countingCodes: true, extraEnvironment: ["SIGNET_WRAPPER_FLAGS_DIR": flags])
        try agent.start()
        let uri = try agent.makeToken(label)
        let flag = flags + "/absent"
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        let client = try agent.client()
        #expect(try eventually { if case .tokens(let tokens) = try client.call(.listTokens) { tokens.isEmpty } else { false } })
        return (agent, uri, flag)
    }

    @Test("A request for a known token that is absent asks the client to present it, waits, and completes when it returns")
    func presenceWait() throws {
        let (agent, _, flag) = try pulledToken("Arrives", wait: 20)
        let waiting = try agent.client()
        let id = try waiting.send(.unlock(token: "pkcs11:token=Arrives", code: SharedSecret(SecretBytes(copying: Array("123456".utf8))), finalTry: false))
        let (noticeID, notice) = try waiting.receive(timeout: 10)
        #expect(noticeID == id)
        guard case .notice(.presentToken, let message) = notice else { Issue.record("no notice: \(notice)"); return }
        #expect(message.contains("Present \"Arrives\""))
        try FileManager.default.removeItem(atPath: flag)  // the token is presented again
        let (answerID, answer) = try waiting.receive(timeout: 20)
        #expect(answerID == id)
        guard case .access(let outcome) = answer else { Issue.record("no answer: \(answer)"); return }
        #expect(outcome.kind == .unlocked)
    }

    @Test("A request for a known token that never returns fails cleanly after the wait")
    func presenceTimeout() throws {
        let (agent, uri, _) = try pulledToken("Away", wait: 1)
        let client = try agent.client()
        let started = Date()
        do {
            _ = try client.call(.sign(key: uri + ";id=%01", mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: 0, count: 32)), onNotice: { _, _ in })
            Issue.record("signed without a token")
        } catch {
            #expect(error.code == .tokenAbsent)
            #expect(error.description.contains("was not presented within 1 s"))
        }
        #expect(Date().timeIntervalSince(started) < 5)
        guard case .status = try client.call(.status) else { Issue.record("the connection did not survive"); return }
    }

    @Test("A URI that matches no token this user has used fails at once, naming the known tokens; known ones are remembered across restarts")
    func unknownTokenFailsAtOnce() throws {
        let agent = try AgentFixture(config: "presence-wait-seconds = 20")
        try agent.start()
        let client = try agent.client()
        let started = Date()
        do {
            _ = try client.call(.sign(key: "pkcs11:token=Never;id=%01", mechanism: WireMechanism(type: CKM.ecdsa), data: Array(repeating: 0, count: 32)),
                                onNotice: { _, message in Issue.record("asked to present a token never used: \(message)") })
            Issue.record("signed without a token")
        } catch {
            #expect(error.code == .noToken)
            #expect(error.description.contains("No token has been seen yet"), "\(error.description)")
        }
        try agent.makeToken("Mine")
        agent.stop()
        try agent.start()
        let unlock = try agent.signet(["unlock", "--token", "pkcs11:token=Typo", "--code-fd", "0"], stdin: "123456\n")
        #expect(unlock.status == 5, "\(unlock.errors)")
        #expect(unlock.errors.contains("No token you have used matches pkcs11:token=Typo"), "\(unlock.errors)")
        #expect(unlock.errors.contains("Known tokens: \"Mine\""), "\(unlock.errors)")
        #expect(!unlock.errors.contains("Present"), "\(unlock.errors)")
        #expect(Date().timeIntervalSince(started) < 15, "it failed at once")
    }

    @Test("signet report writes one archive with versions, tokens and the log, and no code")
    func report() throws {
        let agent = try AgentFixture()
        try agent.start()
        try agent.makeToken("Reported", code: "Report-Code-9")
        _ = try agent.signet(["unlock", "--code-fd", "0"], stdin: "Report-Code-9\n")
        let archive = agent.home.appendingPathComponent("bundle.tar.gz").path
        let result = try agent.signet(["report", "--output", archive])
        #expect(result.status == 0, "\(result.errors)")
        let listing = try Run.checked("tar", ["-tzf", archive]).output
        for name in ["version.txt", "readers.txt", "tokens.txt", "configuration.txt", "audit-log.jsonl"] {
            #expect(listing.contains("signet-report/\(name)"))
        }
        let contents = try Run.checked("tar", ["-xzOf", archive]).output
        #expect(contents.contains("Reported"))
        #expect(contents.contains("\"action\":\"unlock\""))
        #expect(!contents.contains("Report-Code-9"))
    }
}
