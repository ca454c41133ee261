import Foundation
import SignetAgentClient
import SignetAgentProtocol
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
}
