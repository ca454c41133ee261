import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// The versions a helpdesk asks for, for `signet version` and `signet report`: Signet and OpenSSL
/// (this process), then p11-kit, pcsc-lite and the PKCS#11 modules with what each says about itself
/// (CK_INFO), which the agent reports because it alone loads them. Nothing here fails: what cannot
/// be found is reported as such.
///
/// An agent that is not running is not started: `signet version` is what a person runs when something
/// is wrong, and starting an agent loads every module (a hanging module would hang the very command
/// meant to describe it). Signet's and OpenSSL's versions are printed either way.
enum Versions {
    /// The lines `signet version` prints.
    static func lines() -> [String] {
        ["signet \(SignetCommand.version)", "OpenSSL: \(OpenSSLVersion.text)"] + agentLines()
    }

    /// What the running agent loaded, or why that part is missing.
    static func agentLines() -> [String] {
        let client: AgentClient
        do throws(AgentClientError) {
            client = try AgentLauncher.connect(start: false)
        } catch {
            return ["signet-agent: not running, so p11-kit, pcsc-lite and PKCS#11 module versions are unavailable "
                    + "(any command that uses a token starts it, e.g. `signet status`)"]
        }
        let versions: AgentVersions
        do throws(AgentClientError) {
            guard case .versions(let answer) = try client.call(.versions) else {
                return ["signet-agent \(client.agentVersion): unexpected answer to the versions request"]
            }
            versions = answer
        } catch {
            return ["signet-agent \(client.agentVersion): \(error.description)"]
        }
        var lines = ["signet-agent: \(versions.agentVersion) (pid \(client.agentPID))"]
        lines += versions.libraries.map { "\($0.name): \($0.version)" }
        lines.append("PKCS#11 modules: \(versions.modules.isEmpty ? "none" : "\(versions.modules.count)")")
        for module in versions.modules {
            lines.append("  \(module.name) (\(module.path)): \(module.description) \(module.libraryVersion), "
                         + "by \(module.manufacturer), Cryptoki \(module.cryptokiVersion)")
        }
        for failure in versions.moduleFailures { lines.append("  \(failure.path): could not be loaded (\(failure.reason))") }
        return lines
    }
}
