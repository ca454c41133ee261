import Foundation
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// A stand-in agent on the module's socket: a double for an agent that misbehaves, which a real
/// `signet-agent` never does on purpose. It answers the handshake, then each request the way its
/// mode says. It runs on a thread of the test process, with the protocol's own encoder.
final class StandInAgent: @unchecked Sendable {
    enum Mode: String, CaseIterable {
        /// Interim notices every 0.1 s, never a final answer.
        case noticesForever
        /// One token; its object listing's `next` repeats the page's own start.
        case repeatingPages
        /// One token; its object listing's `next` moves on by one, for ever.
        case endlessPages
        /// A length prefix of 2 GiB.
        case oversized
        /// A frame whose body is not a response.
        case malformed
        /// The connection closed right after the client's hello.
        case closeAfterHello
    }

    let mode: Mode
    let path: String
    private let listener: Int32
    private let stopped = BlockingLock(false)
    private let done = Gate<Void>()

    init(path: String, mode: Mode) throws {
        self.path = path
        self.mode = mode
        unlink(path)
        listener = try UnixSocket.listen(path)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// Stops accepting, removes the socket, and waits for the serving thread.
    func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        _ = done.wait
        close(listener)
        unlink(path)
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    private func serve() {
        defer { done.open(()) }
        while !isStopped {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { if isStopped { return }; continue }
            let connection = Thread { [self] in handle(fd); close(fd) }
            connection.start()
        }
    }

    private func send(_ fd: Int32, _ response: AgentResponse, id: UInt32) -> Bool {
        let frame = AgentFrame.encode(response, id: id)
        do throws(SocketError) {
            try frame.withUnsafeBytes { (bytes) throws(SocketError) in try UnixSocket.writeAll(fd, bytes) }
            return true
        } catch { return false }
    }

    private func sendRaw(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { raw in try? UnixSocket.writeAll(fd, raw) }
    }

    private func readRequest(_ fd: Int32) -> (id: UInt32, request: AgentRequest?)? {
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { prefix.deallocate() }
        guard (try? UnixSocket.readExactly(fd, into: prefix, timeout: 60)) != nil,
              let length = try? AgentFrame.bodyLength(UnsafeRawBufferPointer(prefix)) else { return nil }
        let body = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
        defer { body.deallocate() }
        guard (try? UnixSocket.readExactly(fd, into: body, timeout: 10)) != nil else { return nil }
        return try? AgentFrame.decodeRequest(UnsafeRawBufferPointer(body))
    }

    static let token = TokenEntry(uri: "pkcs11:model=Stand-in;manufacturer=Signet%20tests;serial=0001;token=Hostile", label: "Hostile",
                                  manufacturer: "Signet tests", model: "Stand-in", serial: "0001", software: true, unlocked: true,
                                  failures: 0, triesLeft: 3, lockedSeconds: nil, tokenCounter: "ok", ledgerDamage: nil)

    private func handle(_ fd: Int32) {
        while !isStopped, let (id, request) = readRequest(fd) {
            switch request {
            case .hello? where mode == .closeAfterHello:
                return
            case .hello?:
                guard send(fd, .hello(version: AgentProtocol.version, agentVersion: "stand-in", pid: UInt32(getpid())), id: id) else { return }
            case .clientEnvironment?:
                guard send(fd, .ok(message: ""), id: id) else { return }
            case .listTokens? where mode == .repeatingPages || mode == .endlessPages:
                guard send(fd, .tokens([Self.token]), id: id) else { return }
            case .listObjectPage(_, let start, _)? where mode == .repeatingPages || mode == .endlessPages:
                let entry = ObjectEntry(uri: Self.token.uri + ";id=%\(String(format: "%02x", start % 256));type=private", kind: .privateKey,
                                        label: "key \(start)", id: [UInt8(start % 256)], keyType: .rsa, bits: 2048, usages: .sign)
                let next = mode == .repeatingPages ? start : start &+ 1
                guard send(fd, .objectPage(ObjectPage(objects: [entry], values: [[]], next: next)), id: id) else { return }
            default:
                switch mode {
                case .noticesForever, .repeatingPages, .endlessPages:
                    while !isStopped, send(fd, .notice(.presentToken, message: "Present \"Hostile\" (stand-in)"), id: id) { usleep(100_000) }
                    return
                case .oversized:
                    sendRaw(fd, [0x7F, 0xFF, 0xFF, 0xFF, 0x83, 0, 0, 0, 1])
                    return
                case .closeAfterHello:
                    return
                case .malformed:
                    sendRaw(fd, [0, 0, 0, 7, 0xEE, UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF), 1, 2])
                    usleep(200_000)
                    return
                }
            }
        }
    }
}

/// The module against a misbehaving agent, and when it may start an agent (docs/pkcs11-module.md,
/// "A misbehaving agent" and "When the module starts the agent"). The host is pkcs11-tool.
@Suite("PKCS#11 module: a misbehaving agent, and starting the agent", .serialized)
final class HostileAgentTests {
    func pkcs11Tool(_ fixture: ModuleFixture, _ arguments: [String], timeout: TimeInterval = 120) throws -> (Run.Result, Double) {
        let started = MonotonicClock.seconds()
        let result = try fixture.run("pkcs11-tool", ["--module", fixture.module] + arguments, timeout: timeout)
        return (result, MonotonicClock.seconds() - started)
    }

    @Test("Each hostile mode fails the call with a clear CKR_* within its bound; the real agent back, the next call succeeds",
          arguments: StandInAgent.Mode.allCases)
    func hostileAgent(_ mode: StandInAgent.Mode) async throws {
        try await offPool {
            let fixture = try ModuleFixture()
            defer { fixture.stop() }
            fixture.agent.stop()
            let standIn = try StandInAgent(path: fixture.agent.socketPath, mode: mode)
            // Stopped before the fixture's own stop (defers run last first), which talks to whatever is on the socket.
            var standInRunning = true
            defer { if standInRunning { standIn.stop() } }
            // The listing (C_GetSlotList, then C_FindObjectsInit on the stand-in's token when it lists one).
            let (result, seconds) = try self.pkcs11Tool(fixture, ["--list-objects"], timeout: 90)
            standIn.stop()
            standInRunning = false
            let output = result.output + result.errors
            // listTokens is bounded at 20 s in all (notices included), an object listing at 60 s and 4096 pages.
            #expect(seconds < 40, "\(mode): \(seconds) s\n\(output)")
            #expect(!output.contains("Private Key Object"), "\(mode): \(output)")
            switch mode {
            case .repeatingPages, .endlessPages:
                #expect(output.contains("CKR_DEVICE_ERROR"), "\(mode): \(output)")
            case .noticesForever, .oversized, .malformed, .closeAfterHello:
                // The agent's answer is unusable: no token shows, as when no agent runs.
                #expect(result.status != 0 || output.contains("No slot") || output.contains("token not present") || !output.contains("Hostile"),
                        "\(mode): \(output)")
            }
            try fixture.agent.start()
            try fixture.unlock()
            let (again, _) = try self.pkcs11Tool(fixture, ["--list-objects"])
            #expect(again.status == 0 && again.output.contains("Private Key Object"), "\(mode), after: \(again.output)\(again.errors)")
        }
    }

    @Test("A client whose handshake fails closes its socket once (a second close could take a descriptor the host opened since)")
    func handshakeFailureClosesOnce() async throws {
        try await offPool {
            let agent = try AgentFixture()
            defer { agent.stop() }
            try FileManager.default.createDirectory(atPath: (agent.socketPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            chmod((agent.socketPath as NSString).deletingLastPathComponent, 0o700)
            let standIn = try StandInAgent(path: agent.socketPath, mode: .closeAfterHello)
            defer { standIn.stop() }
            let trace = agent.home.appendingPathComponent("strace.log").path
            let signet = TestPaths.binaries.appendingPathComponent("signet").path
            let result = try Run.command("strace", ["-f", "-e", "trace=close", "-o", trace, signet, "status", "--no-start"],
                                         environment: agent.environment, timeout: 60)
            let log = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
            #expect(result.status != 0, "\(result.output)\(result.errors)")
            #expect(log.contains("close("), "\(log)")
            #expect(!log.contains("EBADF"), "a descriptor closed twice:\n\(log)")
        }
    }

    @Test("As root the module starts no agent: a root pkcs11-tool with no agent running lists no token and leaves no agent behind")
    func noRootAgent() async throws {
        try await offPool {
            let agent = try AgentFixture()
            defer { agent.stop() }
            let module = ModuleFixture.module
            // As root here, or as root of a user namespace (unshare) when the tests run as a user: getuid() is 0 in both.
            let command = getuid() == 0 ? ["pkcs11-tool", "--module", module, "--list-slots"]
                                        : ["unshare", "--map-root-user", "pkcs11-tool", "--module", module, "--list-slots"]
            let result = try Run.command("/usr/bin/env", command, environment: agent.environment, timeout: 60)
            #expect((result.output + result.errors).contains("No slots"), "\(result.output)\(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: agent.socketPath), "an agent was started at \(agent.socketPath)")
            #expect(!FileManager.default.fileExists(atPath: agent.paths.state + "/agent.log"), "an agent was started (agent.log)")
        }
    }

    @Test("Where systemd's socket unit owns the agent the module starts none; in the same home without the unit it starts one")
    func noAgentBehindSystemd() async throws {
        try await offPool {
            // As an ordinary user: as root the module starts no agent at all (above), so a root test run drops to nobody.
            let root = getuid() == 0
            let home = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("signet-unit-\(UUID().uuidString)")
            let runtime = home.appendingPathComponent("run"), units = home.appendingPathComponent("config/systemd/user")
            try FileManager.default.createDirectory(at: runtime.appendingPathComponent("systemd"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: units, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: home) }
            // A systemd user manager serving this runtime directory leaves its private socket there; the module only looks.
            _ = FileManager.default.createFile(atPath: runtime.appendingPathComponent("systemd/private").path, contents: nil)
            _ = FileManager.default.createFile(atPath: units.appendingPathComponent("signet-agent.socket").path, contents: Data("[Socket]\n".utf8))
            let environment = ["PATH": "/usr/bin:/bin", "HOME": home.path, "XDG_RUNTIME_DIR": runtime.path,
                               "XDG_CONFIG_HOME": home.appendingPathComponent("config").path, "XDG_STATE_HOME": home.appendingPathComponent("state").path,
                               "XDG_DATA_HOME": home.appendingPathComponent("data").path, "XDG_CACHE_HOME": home.appendingPathComponent("cache").path,
                               "SIGNET_AGENT": TestPaths.binaries.appendingPathComponent("signet-agent").path]
            func listSlots() throws -> String {
                if root { _ = try Run.command("/usr/bin/chown", ["-R", "65534:65534", home.path]) }
                chmod(runtime.path, 0o700)
                let command = (root ? ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] : [])
                    + ["pkcs11-tool", "--module", ModuleFixture.module, "--list-slots"]
                let result = try Run.command("/usr/bin/env", command, environment: environment, timeout: 60)
                return result.output + result.errors
            }
            let agentLog = home.appendingPathComponent("state/signet/agent.log").path
            let listed = try listSlots()
            #expect(listed.contains("No slots"), "\(listed)")
            #expect(!FileManager.default.fileExists(atPath: agentLog), "an agent was started behind systemd's back")
            #expect(!FileManager.default.fileExists(atPath: runtime.appendingPathComponent("signet/agent.sock").path))

            // The control: the same home without the unit, and the module starts the agent (which is stopped here).
            try FileManager.default.removeItem(at: units.appendingPathComponent("signet-agent.socket"))
            _ = try listSlots()
            let pidFile = runtime.appendingPathComponent("signet/agent.pid").path
            defer {
                if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    kill(pid, SIGTERM)
                }
            }
            #expect(FileManager.default.fileExists(atPath: agentLog), "the module started no agent where it may")
        }
    }
}
