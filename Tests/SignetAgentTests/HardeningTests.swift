import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL
import SignetTestSupport
import Testing

/// Findings of the security review (issue 19) in the agent, tested on a running `signet-agent`.
@Suite("Hardening: the agent")
struct AgentHardeningTests {
    @Test("Out-of-range and non-finite settings are refused with their file and line, and the agent runs on the defaults")
    func outOfRangeConfigurationIsRefused() async throws {
        try await offPool {
            // Lines 1 and 2 of the fixture's config name the module; these are lines 3 to 5.
            let agent = try AgentFixture(config: "max-connections = 1e300\npresence-wait-seconds = 1e300\nidle-lock-minutes = inf")
            try "lock-minutes = inf\n".write(toFile: agent.paths.config + "/policy", atomically: true, encoding: .utf8)
            try agent.start()
            defer { agent.stop() }
            guard case .status = try agent.client().call(.status) else { Issue.record("no status"); return }
            let config = agent.paths.config + "/config", policy = agent.paths.config + "/policy"
            let log = agent.agentLog
            #expect(log.contains("\(config) line 3: max-connections = 1e300 is not a number from 1 to 65536; using 512"), "\(log)")
            #expect(log.contains("\(config) line 4: presence-wait-seconds = 1e300 is not a number from 0 to 86400; using 30"))
            #expect(log.contains("\(config) line 5: idle-lock-minutes = inf is not a number from 0 to 525600; using 15"))
            #expect(log.contains("\(policy) line 1: lock-minutes = inf is not a number from 0 to 525600; it is ignored"))
            #expect(agent.isRunning)
        }
    }

    @Test("The agent is not dumpable and may dump no core: its /proc files belong to root although it runs as another user")
    func agentIsUndumpable() async throws {
        try await offPool {
            // Run as nobody: a root process's /proc files are root's whether it is dumpable or not.
            let agent = try AgentFixture()
            let nobody: UInt32 = 65534
            let chowned = try Run.command("chown", ["-R", "\(nobody):\(nobody)", agent.home.path])
            try #require(chowned.status == 0, "\(chowned.errors)")
            let pid = try AgentFixture.spawn("/usr/bin/setpriv", ["--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", AgentFixture.agentBinary],
                                     environment: agent.environment, log: agent.agentLogPath)
            defer {
                kill(pid, SIGTERM)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
            let deadline = Date().addingTimeInterval(20)
            while !FileManager.default.fileExists(atPath: agent.socketPath) && Date() < deadline { usleep(20_000) }
            try #require(FileManager.default.fileExists(atPath: agent.socketPath), "the agent did not start: \(agent.agentLog)")
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            #expect(status.contains("\nUid:\t\(nobody)\t\(nobody)\t"), "the agent runs as nobody")
            var info = stat()
            #expect(stat("/proc/\(pid)/mem", &info) == 0)
            #expect(info.st_uid == 0, "a dumpable process's /proc/PID/mem belongs to its own user")
            let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
            let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") }.map { $0.split(separator: " ") } ?? []
            #expect(core.count >= 6 && core[4] == "0" && core[5] == "0", "\(limits)")
        }
    }

    @Test("A crash leaves nothing unlocked: after kill -9, the next agent reports the token locked")
    func crashLeavesTokenLocked() async throws {
        try await offPool {
            let agent = try AgentFixture()
            try agent.start()
            defer { agent.stop() }
            let uri = try agent.makeToken("Crash")
            #expect(try agent.unlock(agent.client(), token: uri, code: "123456").kind == .unlocked)
            guard case .status(let before) = try agent.client().call(.status) else { Issue.record("no status"); return }
            #expect(before.tokens.first { $0.label == "Crash" }?.unlocked == true)
            agent.kill9()
            try agent.start()
            guard case .status(let after) = try agent.client().call(.status) else { Issue.record("no status"); return }
            #expect(after.tokens.first { $0.label == "Crash" }?.unlocked == false)
        }
    }

    @Test("decrypt of a 40 MB message made of nested content pieces is refused in flat memory (it took 282 MB)")
    func nestedPiecesDecryptInFlatMemory() async throws {
        try await offPool {
            let agent = try AgentFixture()
            let peer = try OpenSSLPeer()
            try agent.start()
            defer { agent.stop() }
            let code = "decrypt-1234"
            _ = try agent.makeToken("Mail", code: code)
            let bob = TestPaths.testData.appendingPathComponent("thunderbird-smime/smime/Bob.p12").path
            let imported = try agent.signet(["import", bob, "--password-fd", "0", "--code-fd", "0"], stdin: "nss\n\(code)\n")
            try #require(imported.status == 0, "\(imported.errors)")
            try Run.checked("openssl", ["pkcs12", "-in", bob, "-passin", "pass:nss", "-nokeys", "-clcerts", "-legacy", "-out", peer.path("bob.pem")])
            let plain = try peer.file("plain.txt", text: "Content-Type: text/plain\r\n\r\nhello\r\n")
            try Run.checked("openssl", ["cms", "-encrypt", "-binary", "-stream", "-outform", "DER", "-aes256", "-recip", peer.path("bob.pem"),
                                        "-in", plain, "-out", peer.path("small.der")])
            // OpenSSL's own message, with its content pieces wrapped in 10,000,000 constructed OCTET STRINGs (40 MB).
            let bytes = try peer.read("small.der")
            let reader = BERReader(ArraySource(bytes))
            let stream = try EnvelopeStream(reader)
            let start = reader.position
            var scratch = [UInt8](repeating: 0, count: 4096)
            while try scratch.withUnsafeMutableBytes({ try stream.readContent(into: $0) }) > 0 {}
            let end = reader.position
            try #require(bytes[end - 2..<end] == [0, 0], "OpenSSL's content has an indefinite length")
            let depth = 10_000_000
            var message = Array(bytes[..<start])
            message.reserveCapacity(bytes.count + 4 * depth)
            for _ in 0..<depth { message += [0x24, 0x80] }
            message += bytes[start..<end - 2]
            message += [UInt8](repeating: 0, count: 2 * depth)
            message += bytes[(end - 2)...]
            let nested = try peer.file("nested.der", message)
            let peak = peer.path("nested.peak")
            let result = try agent.signet(["decrypt", "--in", nested, "-o", peer.path("nested.out")], measuringPeakMemoryTo: peak)
            #expect(result.status == 10 && result.errors.contains("nests BER deeper than \(BERReader.depthLimit) levels"), "\(result.status): \(result.errors)")
            let kib = Int(try String(contentsOfFile: peak, encoding: .utf8).split(separator: "\n").last ?? "") ?? .max
            #expect(kib < 40 << 10, "peak memory \(kib) KiB")
        }
    }

    @Test("300 failing requests naming 60 KB URIs do not flush the audit log: fields are cut, failures past a burst are counted in one record")
    func auditLogIsNotFlushed() async throws {
        try await offPool {
            let agent = try AgentFixture()
            try agent.start()
            let client = try agent.client()
            let uri = "pkcs11:token=" + String(repeating: "A", count: 60_000)
            for _ in 0..<300 {
                #expect(throws: AgentClientError.self) { try client.call(.lock(token: uri)) }
            }
            agent.stop()  // its agent-stop record brings the count of those held back
            #expect(!FileManager.default.fileExists(atPath: agent.auditLogPath + ".1"), "the log was rotated")
            let lines = agent.auditLog.split(separator: "\n")
            #expect(lines.allSatisfy { $0.utf8.count < 6 * 1024 }, "longest line \(lines.map(\.utf8.count).max() ?? 0) bytes")
            let entries = agent.auditEntries
            #expect(entries.first?["action"] as? String == "agent-start")
            let written = entries.filter { $0["action"] as? String == "lock" }.count
            let summary = try #require(entries.first { $0["action"] as? String == "audit-suppressed" })
            let detail = summary["detail"] as? String ?? ""
            #expect(written >= 100 && written <= 101)
            #expect(detail.hasPrefix("\(300 - written) records of failed client requests since ") && detail.contains("(lock \(300 - written))"), "\(detail)")
            #expect(entries.last?["action"] as? String == "agent-stop")
        }
    }

    @Test("URIs longer than 2 KiB are refused with their length, so 30 connections naming 64 URIs of 60 KB each leave the agent small (it reached 257 MB)")
    func longURIsAreRefused() async throws {
        try await offPool {
            let agent = try AgentFixture()
            try agent.start()
            defer { agent.stop() }
            let long = "pkcs11:token=" + String(repeating: "A", count: 3000)
            #expect {
                try agent.client().call(.lock(token: long))
            } throws: { error in
                "\(error)".contains("The PKCS#11 URI is 3013 bytes, longer than the 2048 Signet accepts")
            }
            var clients: [AgentClient] = []
            for connection in 0..<30 {
                let client = try agent.client()
                for index in 0..<64 {
                    let uri = "pkcs11:serial=\(connection)-\(index);token=" + String(repeating: "B", count: 60_000)
                    _ = try? client.call(.lock(token: uri))
                }
                clients.append(client)  // kept open: each connection's cache lives as long as it does
            }
            let resident = residentKilobytes(agent.pid)
            #expect(resident > 0 && resident < 60_000, "agent RSS \(resident) kB with 30 connections that named 1,920 URIs of 60 KB")
            #expect(clients.count == 30)
        }
    }
}
