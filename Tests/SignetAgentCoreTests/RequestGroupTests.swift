import Foundation
import SignetAgentProtocol
import SignetCore
import SignetPCSC
import SignetPKCS11
import SignetProtocolSamples
import SignetTestSupport
import Testing
@testable import SignetAgentCore

private func secret(_ bytes: [UInt8]) -> SharedSecret { SharedSecret(SecretBytes(copying: bytes)) }

/// A request handler with its own state directory over the shared SoftHSM2 fixture: the agent's
/// request code driven in this process, with no socket.
final class InProcessAgent {
    let directory: URL
    let handler: RequestHandler
    let fixture = SoftHSMFixture.shared
    let peer = PeerProcess(pid: getpid(), uid: getuid(), executable: "SignetAgentCoreTests")

    init() throws {
        directory = try TestPaths.temporaryDirectory("signet-agent-core")
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_STATE_HOME"] = directory.appendingPathComponent("state").path
        environment["XDG_CONFIG_HOME"] = directory.appendingPathComponent("config").path
        environment["XDG_DATA_HOME"] = directory.appendingPathComponent("data").path
        environment["XDG_RUNTIME_DIR"] = directory.appendingPathComponent("run").path
        let paths = SignetPaths(environment: environment)
        let settings = AgentSettings.load(paths: paths, systemDirectory: directory.appendingPathComponent("etc").path)
        handler = RequestHandler(audit: AuditLog(directory: paths.state), settings: settings, connectionCount: { 1 })
        handler.install(TokenRegistry(context: fixture.context, stateDirectory: paths.state))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Answers `request` as a connection would, collecting interim notices.
    @discardableResult
    func call(_ request: AgentRequest) -> AgentResponse {
        handler.handle(request, peer: peer) { _ in }
    }

    /// A new token the registry knows, and its URI.
    func token(_ prefix: String) throws -> (Token, String) {
        let token = try fixture.makeToken(prefix)
        handler.registry.refresh()
        return (token, token.uri.description)
    }

    func unlock(_ uri: String) throws {
        guard case .access(let outcome) = call(.unlock(token: uri, code: secret(SoftHSMFixture.userCode), finalTry: false)), outcome.succeeded else {
            throw TestFailure("unlock failed")
        }
    }

    /// The audit log's lines so far.
    var auditLines: [String] {
        (FileIO.readText(handler.currentSettings.paths.state + "/audit.log", limit: 1 << 20) ?? "").split(separator: "\n").map(String.init)
    }
}

@Suite("Request groups, in process")
struct RequestGroupTests {
    @Test("Every request kind is routed by the group `group(for:)` names, and by no other")
    func everyRequestHasOneGroup() {
        // The samples hold every kind, with fields (`ProtocolTableTests` checks that they cover the table).
        for request in ProtocolSamples.everyRequest {
            let named = RequestHandler.group(for: request.messageKind)
            #expect(named.route(request) != nil, "\(request.name) goes to \(named), whose route does not take it")
            let takers = RequestHandler.groups.filter { $0.route(request) != nil }
            #expect(takers.count == 1, "\(request.name) is routed by \(takers.count) groups")
        }
        #expect(Set(ProtocolSamples.everyRequest.map(\.messageKind)) == Set(AgentRequest.Kind.allCases))
    }

    @Test("tokenDetails lists a token with its module, slot, flags and code lengths, without logging in")
    func tokenDetails() throws {
        let agent = try InProcessAgent()
        let (token, uri) = try agent.token("details")
        guard case .tokenDetails(let tokens, _) = agent.call(.tokenDetails) else { throw TestFailure("no token details") }
        let detail = try #require(tokens.first { $0.entry.uri == uri })
        #expect(detail.entry.label == token.info.label)
        #expect(detail.entry.software && !detail.entry.unlocked)
        #expect(detail.module.path == agent.fixture.modulePath)
        #expect(!detail.module.description.isEmpty)
        #expect(detail.flags.contains("CKF_USER_PIN_INITIALIZED"))
        #expect(detail.userCode.minLength == 4)
        #expect(!detail.userCode.locked && !detail.soCode.locked)
    }

    @Test("repairLedger rebuilds the ledger on the agent: the token is then locked for the full time, and it is audited")
    func repairLedger() throws {
        let agent = try InProcessAgent()
        let (_, uri) = try agent.token("repair")
        guard case .ok(let message) = agent.call(.repairLedger(token: uri)) else { throw TestFailure("repair did not answer ok") }
        #expect(message.contains("locked for 15 min"), "\(message)")
        guard case .access(let outcome) = agent.call(.unlock(token: uri, code: secret(SoftHSMFixture.userCode), finalTry: false)) else {
            throw TestFailure("unlock did not answer")
        }
        #expect(outcome.kind == .locked)
        #expect(agent.auditLines.contains { $0.contains("\"action\":\"ledger-repaired\"") && $0.contains("\"result\":\"ok\"") })
    }

    @Test("repairLedger with a URI that selects no token fails with no-token and is audited as a failed repair")
    func repairLedgerNoToken() throws {
        let agent = try InProcessAgent()
        guard case .error(let code, _) = agent.call(.repairLedger(token: "pkcs11:serial=no-such-serial")) else { throw TestFailure("no error") }
        #expect(code == .noToken)
        #expect(agent.auditLines.contains { $0.contains("\"action\":\"ledger-repaired\"") && $0.contains("error:no-token") })
    }

    @Test("listReaders answers what PC/SC reports in this process")
    func listReaders() throws {
        let agent = try InProcessAgent()
        let response = agent.call(.listReaders)
        let direct: Result<[ReaderStatus], PCSCError>
        do throws(PCSCError) { direct = .success(try PCSCContext().readerStatuses()) } catch { direct = .failure(error) }
        switch (direct, response) {
        case (.success(let statuses), .readers(let readers)):
            #expect(readers.map(\.name) == statuses.map(\.name))
            #expect(readers.map(\.cardPresent) == statuses.map(\.cardPresent))
        case (.failure, .error(let code, let message)):
            #expect(code == .unsupported && message.hasPrefix("PC/SC:"))
        default:
            Issue.record("PC/SC here gave \(direct) but the agent answered \(response)")
        }
    }

    @Test("versions names p11-kit and pcsc-lite with their files, and the agent's version")
    func versions() throws {
        let agent = try InProcessAgent()
        guard case .versions(let versions) = agent.call(.versions) else { throw TestFailure("no versions") }
        #expect(versions.agentVersion == AgentMain.version)
        #expect(versions.libraries.map(\.name) == ["p11-kit", "pcsc-lite"])
        #expect(versions.libraries.first?.version.contains("libp11-kit.so") == true, "\(versions.libraries)")
        #expect(versions.libraries.last?.version.contains("built with") == true, "\(versions.libraries)")
        #expect(versions.modules.allSatisfy { !$0.path.isEmpty && !$0.cryptokiVersion.isEmpty })
    }

    @Test("A generated key is sensitive and not extractable, from the one template in SignetPKCS11")
    func generatedKeyTemplate() throws {
        let agent = try InProcessAgent()
        let (token, uri) = try agent.token("template")
        try agent.unlock(uri)
        guard case .keyPair(_, let privateURI, let spki) = agent.call(.generateKeyPair(token: uri, keyType: .ec, bits: 0, curve: "P-256",
                                                                                         id: [7], label: "tpl")) else {
            throw TestFailure("no key pair")
        }
        #expect(!spki.isEmpty && privateURI.contains("type=private"))
        // Same process as the agent's code: this session shares its login (PKCS#11 logs in per application).
        let session = try token.openSession()
        let key = try #require(try session.findObjects([Attribute(.objectClass, .privateKey), Attribute(.id, bytes: [7])], limit: 2).first)
        let values = try session.attributes(key, [.sensitive, .extractable, .sign, .derive])
        #expect(values[.sensitive]?.ckBool == true)
        #expect(values[.extractable]?.ckBool == false)
        #expect(values[.sign]?.ckBool == true && values[.derive]?.ckBool == true)
        #expect(agent.auditLines.contains { $0.contains("\"action\":\"key-generated\"") })
    }

    @Test("reload answers once the new configuration, policy and client rules are in force, and names a refused file with the reason")
    func reloadAnswersOnceInForce() throws {
        let agent = try InProcessAgent()
        let (_, uri) = try agent.token("reload")
        let config = agent.handler.currentSettings.paths.config
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try "idle-lock-minutes = 2\n".write(toFile: config + "/config", atomically: true, encoding: .utf8)
        try "max-failures = 2\n".write(toFile: config + "/policy", atomically: true, encoding: .utf8)
        try "deny program=* key=* operations=sign\n".write(toFile: config + "/clients", atomically: true, encoding: .utf8)
        guard case .reloaded(let report) = agent.call(.reload) else { throw TestFailure("reload did not answer reloaded") }
        #expect(report.settings.contains(ReloadReport.Setting(name: "idle-lock-minutes", value: "2")), "\(report.settings)")
        #expect(report.settings.contains(ReloadReport.Setting(name: "max-failures", value: "2")), "\(report.settings)")
        #expect(report.clientRules == 1)
        #expect(report.refusals.isEmpty && report.problems.isEmpty, "\(report.problems)")
        // In force when the answer came: the handler's settings, the access-code manager's policy and the rules.
        #expect(agent.handler.currentSettings.idleLock == 120)
        #expect(agent.handler.manager.policy.maximumFailures == 2)
        #expect(agent.handler.currentSettings.clients.rules.count == 1)

        // A configuration others could write is refused with the reason; unlocking is then refused until it is fixed.
        chmod(config + "/config", 0o666)
        guard case .reloaded(let refused) = agent.call(.reload) else { throw TestFailure("reload did not answer reloaded") }
        #expect(refused.refusals.count == 1)
        #expect(refused.refusals.first?.contains(config + "/config") == true && refused.refusals.first?.contains("mode 666") == true,
                "\(refused.refusals)")
        #expect(refused.settings.contains(ReloadReport.Setting(name: "idle-lock-minutes", value: "15")), "the refused file is not read")
        guard case .error(let code, _) = agent.call(.unlock(token: uri, code: secret(SoftHSMFixture.userCode), finalTry: false)) else {
            throw TestFailure("unlock was not refused")
        }
        #expect(code == .deniedByPolicy)
        chmod(config + "/config", 0o600)
        guard case .reloaded(let fixed) = agent.call(.reload) else { throw TestFailure("reload did not answer reloaded") }
        #expect(fixed.refusals.isEmpty)
        try agent.unlock(uri)
    }
}
