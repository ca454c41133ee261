import Foundation
import SignetTestSupport
import Testing

/// libsignet-pkcs11.so in a long-running C host (signet-module-probe): what a mail program lives
/// through and a one-shot tool cannot show.
@Suite("PKCS#11 module: a long-running host", .serialized)
final class ProbeTests {
    var fixture: ModuleFixture!
    static var probe: String { TestPaths.binaries.appendingPathComponent("signet-module-probe").path }

    // Every test runs off Swift's cooperative pool (offPool): these block for seconds in subprocesses,
    // and on two cores that starved the async PC/SC tests beside them (events seen after 3.5 s).
    func prepare() throws { fixture = try ModuleFixture() }

    func probe(_ arguments: [String], timeout: TimeInterval = 60) throws -> Run.Result {
        try fixture.run(Self.probe, [fixture.module] + arguments, timeout: timeout)
    }

    /// Starts the probe in the background; its output goes to `log`.
    func spawn(_ arguments: [String], log: String) throws -> pid_t {
        try AgentFixture.spawn(Self.probe, [fixture.module] + arguments, environment: fixture.environment, log: log)
    }

    func waitFor(_ text: String, in log: String, seconds: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let content = try? String(contentsOfFile: log, encoding: .utf8), content.contains(text) { return true }
            usleep(50_000)
        }
        return false
    }

    func exitStatus(_ pid: pid_t, seconds: Double = 30) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { return (status >> 8) & 0xFF }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return nil
    }

    @Test("No key material: private keys answer CKA_PRIVATE_EXPONENT, the primes and CKA_VALUE with CKR_ATTRIBUTE_SENSITIVE")
    func sensitive() async throws { try await offPool { try self.prepare(); try self.sensitiveBody() } }
    func sensitiveBody() throws {
        let result = try probe(["sensitive"])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("rsa CKA_PRIVATE_EXPONENT: CKR_ATTRIBUTE_SENSITIVE"))
        #expect(result.output.contains("ec CKA_VALUE: CKR_ATTRIBUTE_SENSITIVE"))
        #expect(result.output.contains("rsa CKA_SENSITIVE=1 CKA_EXTRACTABLE=0"))
    }

    @Test("The agent killed and restarted under a running host: old sessions are invalid, new ones sign after the unlock")
    func agentRestart() async throws { try await offPool { try self.prepare(); try self.agentRestartBody() } }
    func agentRestartBody() throws {
        let log = fixture.path("probe-restart.log"), go = fixture.path("go")
        let pid = try spawn(["restart", go], log: log)
        #expect(waitFor("READY", in: log), "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        fixture.agent.kill9()
        try fixture.agent.start()
        try fixture.unlock()
        _ = FileManager.default.createFile(atPath: go, contents: Data())
        let status = exitStatus(pid)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(output)")
        #expect(output.contains("before: CKR_OK 256"))
        #expect(output.contains("old session: CKR_SESSION_HANDLE_INVALID") || output.contains("old session: CKR_DEVICE_REMOVED"), "\(output)")
        #expect(output.contains("new session: CKR_OK"))
        #expect(output.contains("key handle unchanged"))
        #expect(output.contains("after: CKR_OK 256"), "\(output)")
    }

    @Test("A certificate deleted with signet while a host runs: the host's next search no longer finds it")
    func cacheFollowsChanges() async throws { try await offPool { try self.prepare(); try self.cacheFollowsChangesBody() } }
    func cacheFollowsChangesBody() throws {
        let log = fixture.path("probe-watch.log"), go = fixture.path("go-watch")
        let pid = try spawn(["watch", go], log: log)
        #expect(waitFor("READY", in: log))
        let list = try fixture.agent.signet(["cert", "list"])
        let id = list.output.split(separator: "\n").first { $0.contains("Alice ec") }?.split(separator: " ").first.map(String.init)
        #expect(id != nil, "\(list.output)")
        let delete = try fixture.agent.signet(["cert", "delete", id ?? "none", "--yes"])
        #expect(delete.status == 0, "\(delete.output)\(delete.errors)")
        _ = FileManager.default.createFile(atPath: go, contents: Data())
        #expect(exitStatus(pid) == 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("before: 2 certificates") && output.contains("after: 1 certificates"), "\(output)")
    }

    @Test("Eight threads sign with RSA and P-256 at once through one module, each answer the right length")
    func threads() async throws { try await offPool { try self.prepare(); try self.threadsBody() } }
    func threadsBody() throws {
        let result = try probe(["threads", "8", "40"])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.contains("8 threads, 320 signatures, 0 failed"))
    }

    @Test("A host killed while signing leaves the agent serving the next one")
    func killedMidOperation() async throws { try await offPool { try self.prepare(); try self.killedMidOperationBody() } }
    func killedMidOperationBody() throws {
        for round in 0..<3 {
            let log = fixture.path("probe-loop-\(round).log")
            let pid = try spawn(["loop"], log: log)
            #expect(waitFor("SIGNING", in: log))
            usleep(UInt32(50_000 + round * 70_000))
            kill(pid, SIGKILL)
            _ = exitStatus(pid)
        }
        let result = try probe(["threads", "2", "10"])
        #expect(result.output.contains("2 threads, 20 signatures, 0 failed"), "\(result.output)")
    }

    @Test("ECDH through C_DeriveKey with CKD_SHA256_KDF gives the key OpenSSL derives (X9.63) from the same points")
    func ecdhDerive() async throws { try await offPool { try self.prepare(); try self.ecdhDeriveBody() } }
    func ecdhDeriveBody() throws {
        // The peer's side: a new P-256 key, the shared secret with the token's certificate key, then X9.63.
        let ok = { (result: Run.Result) in result.status == 0 }
        #expect(ok(try fixture.run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "peer.key"])))
        #expect(ok(try fixture.run("openssl", ["x509", "-in", "ec.pem", "-pubkey", "-noout", "-out", "token-ec.pub"])))
        #expect(ok(try fixture.run("openssl", ["pkeyutl", "-derive", "-inkey", "peer.key", "-peerkey", "token-ec.pub", "-out", "z.bin"])))
        let z = try Data(contentsOf: URL(fileURLWithPath: fixture.path("z.bin"))).map { String(format: "%02x", $0) }.joined()
        #expect(z.count == 64)
        let info = "3015300b0609608648016503040105a2060404000000803a"
        let kdf = try fixture.run("openssl", ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA256", "-kdfopt", "hexsecret:\(z)",
                                              "-kdfopt", "hexinfo:\(info)", "X963KDF"])
        let expected = kdf.output.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ":", with: "").lowercased()
        let point = try fixture.run("openssl", ["ec", "-in", "peer.key", "-pubout", "-conv_form", "uncompressed", "-outform", "DER"])
        let peerPoint = point.stdout.suffix(65).map { String(format: "%02x", $0) }.joined()
        let derived = try probe(["derive", peerPoint, info, "32"])
        #expect(derived.status == 0, "\(derived.output)")
        #expect(!expected.isEmpty && derived.output.trimmingCharacters(in: .whitespacesAndNewlines) == expected,
                "module \(derived.output) openssl \(expected)")
    }
}
