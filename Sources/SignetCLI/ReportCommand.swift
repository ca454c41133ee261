#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetDiagnostics
import SignetDirectory
import SignetMail

/// `signet report`: one archive a helpdesk can read.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a support bundle (versions and PKCS#11 modules, OS, readers, tokens, configuration without secrets, recent log and errors) as one .tar.gz.",
        discussion: "Access codes and keys are never in it: Signet does not store codes, and configuration lines whose names mention a code, PIN, password or secret are blanked."
    )
    @Option(name: .shortAndLong, help: "Where to write the archive (default: ./signet-report-<time>.tar.gz).")
    var output: String?

    func run() throws {
        let paths = SignetPaths.current
        let stamp = AuditRecords.timestamp(Date().timeIntervalSince1970).prefix(19).filter { $0 != ":" }
        let destination = output ?? "signet-report-\(stamp).tar.gz"
        let staging = try bundle { try SupportBundle.Staging() }
        defer { staging.remove() }
        func write(_ name: String, _ text: String) throws { try bundle { try staging.write(name, text) } }

        let machine = (FileIO.readText("/proc/version", limit: 4096) ?? "unknown").split(separator: "\n").first.map(String.init) ?? ""
        try write("version.txt", """
        \(Versions.lines().joined(separator: "\n"))
        kernel: \(machine)

        \(FileIO.readText("/etc/os-release", limit: 1 << 16) ?? "no /etc/os-release")
        """)

        // Readers and tokens from the agent, which alone loads pcsc-lite and the modules; a report does not start one.
        let client = try? AgentLauncher.connect(start: false)
        var readers = ""
        if let client {
            do throws(AgentClientError) {
                if case .readers(let list) = try client.call(.listReaders) {
                    for reader in list {
                        readers += "\(reader.name): card \(reader.cardPresent ? "present" : "absent"), \(reader.state.joined(separator: ",")), ATR \(reader.atr.map { Hex.encode($0, separator: " ", uppercase: true) } ?? "-")\n"
                    }
                }
                if readers.isEmpty { readers = "no readers\n" }
            } catch {
                readers = "PC/SC: \(error)\n"
            }
        } else {
            readers = "agent: not running, so readers are not listed\n"
        }
        try write("readers.txt", readers)

        var tokens = ""
        if let client {
            tokens += "agent: version \(client.agentVersion), pid \(client.agentPID)\n"
            if case .status(let status)? = try? client.call(.status) {
                for token in status.tokens {
                    tokens += "\(token.label) \(token.software ? "[SOFTWARE] " : "")\(token.uri)\n  unlocked \(token.unlocked), failures \(token.failures), tries left \(token.triesLeft), locked \(token.lockedSeconds.map { "\($0) s" } ?? "no"), token counter \(token.tokenCounter)\(token.ledgerDamage.map { ", ledger damaged: \($0)" } ?? "")\n"
                }
            }
        } else {
            tokens = "agent: not running\n"
        }
        try write("tokens.txt", tokens)

        var configuration = ""
        for file in ["/etc/signet/config", "/etc/signet/policy", paths.config + "/config", paths.config + "/policy"] {
            guard let text = FileIO.readText(file, limit: 1 << 20) else { continue }
            configuration += "# \(file)\n" + SupportBundle.redacted(text) + "\n"
        }
        try write("configuration.txt", configuration.isEmpty ? "no configuration files\n" : configuration)
        // The directory and revocation settings as Signet reads them (where a password comes from, never the password).
        let directory = (try? DirectorySettings(config: SignetConfig.load()).reportLines.joined(separator: "\n")) ?? "the directory settings do not parse"
        try write("directory.txt", directory + "\n")

        let lines = AuditRecords.lines(paths)
        let recent = lines.suffix(2000)
        try write("audit-log.jsonl", recent.joined(separator: "\n") + (recent.isEmpty ? "" : "\n"))
        let errors = AuditRecords.recentErrors(lines)
        try write("errors.txt", errors.isEmpty ? "no errors in the audit log\n" : errors.joined(separator: "\n") + "\n")
        let agentLog = (FileIO.readText(paths.state + "/agent.log", limit: 1 << 22) ?? "").split(separator: "\n", omittingEmptySubsequences: false).suffix(500)
        try write("agent-log.txt", agentLog.joined(separator: "\n"))

        // tar writes to standard output, a file opened as every -o is (MailOutput): a random temporary name beside
        // the destination, renamed over it at the end, so a symlink planted at a guessable name
        // (./signet-report-<time>.tar.gz in a shared directory) is replaced, never written through.
        let archive = try MailOutput(destination, mode: 0o600)
        let status = try bundle { try SupportBundle.tar(["-czf", "-", "-C", staging.path, "signet-report"], output: archive.fd) }
        guard status == 0 else { throw CLIError(description: "tar failed (exit \(status)) writing \(destination)") }
        try archive.commit()
        print("Wrote \(destination). It holds versions and PKCS#11 modules, readers, tokens, configuration (codes and secrets blanked), "
              + "the last \(recent.count) audit entries and \(errors.count) recent error\(errors.count == 1 ? "" : "s") from them.")
    }

    /// `body`, its `SupportBundle.Failure` as the command line's error.
    private func bundle<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let failure as SupportBundle.Failure { throw CLIError(description: failure.description) }
    }
}
