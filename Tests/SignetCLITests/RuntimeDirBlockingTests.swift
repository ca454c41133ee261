import Foundation
import SignetTestSupport
import Testing

/// With XDG_RUNTIME_DIR unset, another user who makes `$TMPDIR/signet-<uid>` first (or a symlink there)
/// no longer keeps the agent from starting: agent and client both move to `~/.cache/signet/run` (issue 19 #12).
@Suite("Runtime directory: a planted /tmp/signet-<uid> does not block the agent")
final class RuntimeDirBlockingTests {
    let agent: AgentFixture
    let environment: [String: String]
    var shared: String { agent.home.appendingPathComponent("tmp/signet-\(getuid())").path }

    init() throws {
        agent = try AgentFixture()
        var env = agent.environment
        env["XDG_RUNTIME_DIR"] = nil
        env["XDG_CACHE_HOME"] = nil
        env["TMPDIR"] = agent.home.appendingPathComponent("tmp").path
        environment = env
        try FileManager.default.createDirectory(at: agent.home.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        chmod(agent.home.appendingPathComponent("tmp").path, 0o1777)
    }

    deinit { _ = try? Run.command(AgentFixture.signet, ["agent", "stop"], environment: environment, timeout: 30) }

    func signet(_ arguments: [String]) throws -> Run.Result {
        try Run.command(AgentFixture.signet, arguments, environment: environment, timeout: 60)
    }

    func expectAgentReachable() throws {
        let status = try signet(["status"])
        #expect(status.status == 0, "\(status.errors)")
        #expect(status.output.hasPrefix("Agent: running"), "\(status.output)")
        #expect(status.errors.contains("Note: \(shared) ") && status.errors.contains("the agent's socket is in \(agent.home.path)/.cache/signet/run instead"),
                "\(status.errors)")
        #expect(FileManager.default.fileExists(atPath: agent.home.path + "/.cache/signet/run/agent.sock"))
        let again = try signet(["status", "--no-start"])
        #expect(again.status == 0 && again.output.hasPrefix("Agent: running"), "the client finds the agent it started: \(again.output) \(again.errors)")
    }

    @Test("A directory owned by another uid (nobody) at $TMPDIR/signet-<uid>: the agent starts elsewhere and the client reaches it")
    func otherOwner() throws {
        try #require(mkdir(shared, 0o700) == 0 && chown(shared, 65534, 65534) == 0, "the tests run as root")
        try expectAgentReachable()
    }

    @Test("A symlink at $TMPDIR/signet-<uid>: the agent starts elsewhere and the client reaches it")
    func symlinked() throws {
        let elsewhere = agent.home.appendingPathComponent("elsewhere").path
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try #require(symlink(elsewhere, shared) == 0)
        try expectAgentReachable()
        #expect((try? FileManager.default.contentsOfDirectory(atPath: elsewhere)) == [], "nothing was made through the link")
    }
}
