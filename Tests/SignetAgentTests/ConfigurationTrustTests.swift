import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// Issue 24 #2: a configuration that others can write is not obeyed. With `~/.config/signet/config` group- or
/// world-writable, another user appended `pinentry-program = <their script>` and the agent ran it as the user.
@Suite("Hardening: configuration others can write is not obeyed")
final class ConfigurationTrustTests {
    let agent: AgentFixture
    let marker: String
    let script: String
    var configFile: String { agent.paths.config + "/config" }
    let token: String
    /// A screen for the prompt: the agent starts a pinentry only for a display whose X socket is the caller's.
    let display: StandInDisplay

    init() throws {
        display = try StandInDisplay()
        let directory = try TestPaths.temporaryDirectory("signet-config-trust")
        marker = directory.appendingPathComponent("pinentry-ran").path
        script = directory.appendingPathComponent("their-pinentry").path
        // What another user's program would do: anything, as this user. Here: leave a mark.
        try "#!/bin/sh\necho ran >> '\(marker)'\nexit 1\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        agent = try AgentFixture(config: "pinentry-program = \(script)")
        chmod(agent.paths.config + "/config", 0o644)
        try agent.start()
        let client = try agent.client()
        let created = try client.call(.initSoftwareToken(label: "Trust", userCode: SharedSecret(SecretBytes(copying: Array("123456".utf8))),
                                                         soCode: SharedSecret(SecretBytes(copying: Array("so-code-12".utf8)))))
        guard case .stored(let uri) = created else { throw TestFailure("token init answered \(created)") }
        token = uri
    }

    deinit { agent.stop() }

    /// Sends SIGHUP and waits until the agent says it read its configuration again.
    func reload() throws {
        let before = agent.agentLog.components(separatedBy: "SIGHUP: configuration reloaded").count
        kill(agent.pid, SIGHUP)
        try #require(eventually(timeout: .seconds(10)) { agent.agentLog.components(separatedBy: "SIGHUP: configuration reloaded").count > before },
                     "the agent did not reload")
    }

    /// `unlockAsking` from a client with a screen, which makes the agent start its pinentry.
    func askForTheCode() throws -> Result<AgentResponse, AgentClientError> {
        let client = try agent.client()
        _ = try client.call(.clientEnvironment(entries: [("DISPLAY", display.name)]))
        do throws(AgentClientError) {
            return .success(try client.call(.unlockAsking(token: token), timeout: 60))
        } catch {
            return .failure(error)
        }
    }

    @Test("signet agent reload returns once the files are in force: it names a refused config with the reason and fails, then shows the fixed one's settings")
    func reloadCommandReportsRefusal() throws {
        chmod(configFile, 0o666)
        let refused = try agent.signet(["agent", "reload"])
        #expect(refused.status == 1, "\(refused.output)\(refused.errors)")
        #expect(refused.errors.contains("\(configFile): is writable by group or others (mode 666)"), "\(refused.errors)")
        #expect(refused.output.contains("pinentry-program = (chosen by"), "the refused file's pinentry is not in force: \(refused.output)")
        // In force when the command returned: the next request is refused, with no wait.
        guard case .failure(.agent(let code, _)) = try askForTheCode() else { Issue.record("unlockAsking was not refused"); return }
        #expect(code == .deniedByPolicy)

        chmod(configFile, 0o644)
        let fixed = try agent.signet(["agent", "reload"])
        #expect(fixed.status == 0, "\(fixed.output)\(fixed.errors)")
        #expect(fixed.output.contains("pinentry-program = \(script)"), "\(fixed.output)")
        #expect(!agent.agentLog.contains("SIGHUP"), "the command asked with the reload request, not a signal")
    }

    @Test("A world-writable config naming a pinentry-program: the program never runs, status, the log and the refusal say why; fixed and reloaded, it is obeyed",
          arguments: [0o666, 0o664] as [mode_t])
    func writableConfigIsNotObeyed(mode: mode_t) throws {
        chmod(configFile, mode)
        try reload()
        let refused = try askForTheCode()
        #expect(!FileManager.default.fileExists(atPath: marker), "the program named by a writable configuration ran")
        guard case .failure(.agent(let code, let message)) = refused else { Issue.record("unlockAsking answered \(refused)"); return }
        #expect(code == .deniedByPolicy)
        #expect(message.contains("\(configFile): is writable by group or others (mode \(String(mode, radix: 8)))")
                && message.contains("signet agent reload"), "\(message)")

        let status = try agent.signet(["status"])
        #expect(status.status == 0, "\(status.errors)")
        #expect(status.output.contains("configuration: \(configFile): is writable by group or others"), "\(status.output)")
        #expect(agent.agentLog.contains("configuration: \(configFile): is writable by group or others"), "\(agent.agentLog)")
        // Status and lock still answer, so the person can see why and carry on.
        #expect(try agent.signet(["lock"]).status == 0)

        chmod(configFile, 0o644)
        try reload()
        _ = try askForTheCode()
        #expect(FileManager.default.fileExists(atPath: marker), "once fixed and reloaded, the configuration is obeyed")
        let fixed = try agent.signet(["status"])
        #expect(!fixed.output.contains("configuration:"), "\(fixed.output)")
    }

    @Test("A config directory others can write: the config in it is refused too (they could replace the file)")
    func writableDirectoryIsNotTrusted() throws {
        chmod(agent.paths.config, 0o777)
        defer { chmod(agent.paths.config, 0o755) }
        try reload()
        let refused = try askForTheCode()
        #expect(!FileManager.default.fileExists(atPath: marker), "the program named by a configuration in a writable directory ran")
        guard case .failure(.agent(_, let message)) = refused else { Issue.record("unlockAsking answered \(refused)"); return }
        #expect(message.contains("\(agent.paths.config): is writable by group or others (mode 777)"), "\(message)")
    }
}
