import Foundation
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// What docs/protocol.md promises about frames and the handshake, held to the letter (issue 19 #15).
@Suite("Frame timing and the handshake", .serialized)
struct ProtocolTimingTests {
    @Test("A client that sends part of a length prefix is timed out after request-seconds, not connection-idle-seconds")
    func partialPrefixTimesOut() throws {
        let agent = try AgentFixture(config: "request-seconds = 1\nconnection-idle-seconds = 600")
        try agent.start()
        let slow = try RawClient.connect(agent.socketPath)
        defer { close(slow) }
        RawClient.write(slow, Array(RawClient.hello.prefix(2)))
        let started = Date()
        guard case .error(let code, _)? = RawClient.readResponse(slow, timeout: 8) else {
            Issue.record("no timeout within 8 s of half a length prefix"); return
        }
        #expect(code == .timeout)
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(RawClient.isClosed(slow))
    }

    @Test("A well-formed frame of an unknown kind before hello gets handshake-required and the connection is closed")
    func unknownKindBeforeHello() throws {
        let agent = try AgentFixture()
        try agent.start()
        let fd = try RawClient.connect(agent.socketPath)
        defer { close(fd) }
        // Kind 0x7E, id 9, no fields.
        RawClient.write(fd, [0, 0, 0, 5, 0x7E, 0, 0, 0, 9])
        guard case .error(let code, _)? = RawClient.readResponse(fd, timeout: 5) else { Issue.record("no answer"); return }
        #expect(code == .handshakeRequired)
        #expect(RawClient.isClosed(fd, timeout: 5))
        // After hello, an unknown kind is answered and the connection stays open (newer clients may probe).
        let greeted = try RawClient.connect(agent.socketPath)
        defer { close(greeted) }
        RawClient.write(greeted, RawClient.hello)
        guard case .hello? = RawClient.readResponse(greeted) else { Issue.record("no hello"); return }
        RawClient.write(greeted, [0, 0, 0, 5, 0x7E, 0, 0, 0, 9])
        guard case .error(let unknown, _)? = RawClient.readResponse(greeted) else { Issue.record("no answer after hello"); return }
        #expect(unknown == .unknownRequest)
        #expect(!RawClient.isClosed(greeted, timeout: 0.3))
    }

    @Test("agent-start is the first audit record even when a request is served while a slow module loads")
    func agentStartComesFirst() throws {
        let flags = try TestPaths.temporaryDirectory("signet-wrapper-flags")
        _ = FileManager.default.createFile(atPath: flags.appendingPathComponent("slow-initialize").path, contents: nil)
        let agent = try AgentFixture(countingCodes: true, extraEnvironment: ["SIGNET_WRAPPER_FLAGS_DIR": flags.path])
        try agent.start()
        let client = try agent.client()
        // Refused at once (the URI does not parse), and audited, while C_Initialize is still sleeping.
        #expect(throws: (any Error).self) { try client.call(.lock(token: "not a URI")) }
        guard case .status = try client.call(.status) else { Issue.record("no status"); return }  // waits for the modules
        let actions = agent.auditEntries.compactMap { $0["action"] as? String }
        #expect(actions.first == "agent-start", "\(actions)")
        #expect(actions.contains("lock"), "\(actions)")
    }

    @Test("allow-uid is refused with its file and line; the agent serves its own uid only")
    func allowUIDRefused() throws {
        let agent = try AgentFixture(config: "allow-uid = 65534")
        try agent.start()
        let client = try agent.client()
        guard case .status = try client.call(.status) else { Issue.record("no status"); return }
        #expect(agent.agentLog.contains("line 3: allow-uid is not supported"), "\(agent.agentLog)")
        // A raw client (`signet` itself refuses another user's agent before it connects, issue 24 #1): the agent's answer.
        let rawClient = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        sys.stdout.write(data.decode('utf-8', 'replace'))
        """
        let other = try Run.command("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_override",
                                                "--ambient-caps=+dac_override", "/usr/bin/python3", "-c", rawClient, agent.socketPath],
                                    environment: agent.environment)
        #expect(other.output.contains("uid 65534 may not use it"), "\(other.output) \(other.errors)")
    }
}
