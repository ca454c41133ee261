import SignetAgentClient
import SignetCore
import SignetOpenSSL

/// The versions a helpdesk asks for, for `signet version` and `signet report`: Signet and OpenSSL
/// (this process), then what the agent loaded (`TokenReports.agentVersions`).
enum Versions {
    /// The lines `signet version` prints.
    static func lines() -> [String] {
        ["signet \(SignetCommand.version)", "OpenSSL: \(OpenSSLVersion.text)"] + TokenReports.agentVersions()
    }
}
