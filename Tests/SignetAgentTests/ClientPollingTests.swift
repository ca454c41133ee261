import Foundation
@testable import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// A stand-in agent on a real socket (a real agent cannot be made to answer slowly on cue): it speaks
/// the real protocol and answers a request to sign `[0]` at once, and one to sign `[1]` after `slow` seconds.
private func slowAgent(at path: String, slow: Double) throws -> Int32 {
    let listener: Int32
    do { listener = try UnixSocket.listen(path) } catch { throw TestFailure("listen: \(error)") }
    Thread.detachNewThread {
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return }
        defer { close(fd) }
        while true {
            var prefix = [UInt8](repeating: 0, count: 4)
            guard prefix.withUnsafeMutableBytes({ (try? UnixSocket.readExactly(fd, into: $0, timeout: 10)) != nil }),
                  let length = prefix.withUnsafeBytes({ try? AgentFrame.bodyLength($0) }) else { return }
            var body = [UInt8](repeating: 0, count: length)
            guard body.withUnsafeMutableBytes({ (try? UnixSocket.readExactly(fd, into: $0, timeout: 10)) != nil }),
                  let (id, request) = body.withUnsafeBytes({ try? AgentFrame.decodeRequest($0) }) else { return }
            if case .sign(_, _, [1]) = request { usleep(UInt32(slow * 1e6)) }
            let response: AgentResponse
            if case .hello = request { response = .hello(version: AgentProtocol.version, agentVersion: "test", pid: 1) } else { response = .signature([1]) }
            let frame = AgentFrame.encode(response, id: id).bytes
            frame.withUnsafeBytes { _ = try? UnixSocket.writeAll(fd, $0) }
        }
    }
    return listener
}

@Suite("The client's wait for an answer")
struct ClientPollingTests {
    @Test("A client stops polling for answers after one that took longer than the window, and polls again after a quick one")
    func pollingFollowsTheAnswers() throws {
        let directory = try TestPaths.temporaryDirectory("signet-polling")
        chmod(directory.path, 0o700)  // the client trusts a socket only in a directory of its user's that no one else can use
        let path = directory.appendingPathComponent("agent.sock").path
        let slow = AgentClient.spinWindow * 25
        let listener = try slowAgent(at: path, slow: slow)
        defer { close(listener) }
        let client = try AgentClient(socketPath: path, clientName: "test")
        func sign(slowly: Bool) throws {
            _ = try client.call(.sign(key: "pkcs11:id=%01", mechanism: WireMechanism(type: 0x1041), data: [slowly ? 1 : 0]))
        }
        for _ in 0..<2 {
            try sign(slowly: true)
            #expect(!client.spinning, "an answer that took \(slow) s")
            // An answer sent at once arrives within the window unless this machine is very busy: a few tries.
            for _ in 0..<50 where !client.spinning { try sign(slowly: false) }
            #expect(client.spinning, "no answer sent at once arrived within \(AgentClient.spinWindow) s")
        }
    }
}
