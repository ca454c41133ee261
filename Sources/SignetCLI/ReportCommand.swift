#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
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
        let stamp = LogCommand.timestamp(Date().timeIntervalSince1970).prefix(19).filter { $0 != ":" }
        let destination = output ?? "signet-report-\(stamp).tar.gz"
        let staging = try Staging()
        defer { staging.remove() }
        func write(_ name: String, _ text: String) throws { try staging.write(name, text) }

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
            configuration += "# \(file)\n" + ReportCommand.redacted(text) + "\n"
        }
        try write("configuration.txt", configuration.isEmpty ? "no configuration files\n" : configuration)
        // The directory and revocation settings as Signet reads them (where a password comes from, never the password).
        let directory = (try? DirectorySettings(config: SignetConfig.load()).reportLines.joined(separator: "\n")) ?? "the directory settings do not parse"
        try write("directory.txt", directory + "\n")

        let lines = AuditFiles.lines(paths)
        let recent = lines.suffix(2000)
        try write("audit-log.jsonl", recent.joined(separator: "\n") + (recent.isEmpty ? "" : "\n"))
        let errors = ReportCommand.recentErrors(lines)
        try write("errors.txt", errors.isEmpty ? "no errors in the audit log\n" : errors.joined(separator: "\n") + "\n")
        let agentLog = (FileIO.readText(paths.state + "/agent.log", limit: 1 << 22) ?? "").split(separator: "\n", omittingEmptySubsequences: false).suffix(500)
        try write("agent-log.txt", agentLog.joined(separator: "\n"))

        // tar writes to standard output, a file opened as every -o is (MailOutput): a random temporary name beside
        // the destination, renamed over it at the end, so a symlink planted at a guessable name
        // (./signet-report-<time>.tar.gz in a shared directory) is replaced, never written through.
        let archive = try MailOutput(destination, mode: 0o600)
        let status = try ReportCommand.tar(["-czf", "-", "-C", staging.path, "signet-report"], output: archive.fd)
        guard status == 0 else { throw CLIError(description: "tar failed (exit \(status)) writing \(destination)") }
        try archive.commit()
        print("Wrote \(destination). It holds versions and PKCS#11 modules, readers, tokens, configuration (codes and secrets blanked), "
              + "the last \(recent.count) audit entries and \(errors.count) recent error\(errors.count == 1 ? "" : "s") from them.")
    }

    /// The directory the report's files are gathered in before `tar` packs them: made by `mkdtemp` (0700,
    /// a fresh random name), its files created inside it through directory descriptors with `O_EXCL|O_NOFOLLOW`.
    /// A fixed name (`/tmp/signet-report-<pid>`) let another user pre-create it with symlinks inside and read or
    /// change the audit log, agent log and configuration before `tar` ran.
    final class Staging {
        /// The private directory; the files are in its `signet-report` folder.
        let path: String
        private let folder: Int32

        /// - Throws: `CLIError` when the temporary directory cannot be made.
        init() throws {
            let base = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            var template = Array((base + "/signet-report-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                throw CLIError(description: "cannot make a private directory in \(base) for the report: \(String(cString: strerror(errno))). Set TMPDIR to a directory you can write.")
            }
            path = String(cString: made)
            let work = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            defer { if work >= 0 { close(work) } }
            guard work >= 0, mkdirat(work, "signet-report", 0o700) == 0 else {
                let reason = String(cString: strerror(errno))
                rmdir(path)
                throw CLIError(description: "cannot prepare \(path) for the report: \(reason)")
            }
            folder = openat(work, "signet-report", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard folder >= 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: path)
                throw CLIError(description: "cannot prepare \(path) for the report: \(reason)")
            }
        }

        /// Creates `name` (0600; never an existing file or a symlink) and writes `text` to it.
        /// - Throws: `CLIError` when the file cannot be created or written.
        func write(_ name: String, _ text: String) throws {
            let fd = openat(folder, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CLIError(description: "cannot create \(name) in \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let failure = Array(text.utf8).withUnsafeBytes { bytes -> (any Error)? in
                do { try FileIO.writeAll(fd, bytes); return nil } catch { return error }
            }
            if let failure { throw CLIError(description: "cannot write \(name) in \(path): \(failure)") }
        }

        /// Removes the directory and what is in it.
        func remove() {
            close(folder)
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// The newest audit entries (up to `limit`) whose result is not "ok", as `signet log --wide` prints them.
    static func recentErrors(_ lines: [String], limit: Int = 100) -> [String] {
        let decoder = JSONDecoder()
        let failed = lines.compactMap { line -> LogCommand.Entry? in
            guard let entry = try? decoder.decode(LogCommand.Entry.self, from: Data(line.utf8)), entry.result != "ok" else { return nil }
            return entry
        }
        return failed.suffix(limit).map { LogCommand.text($0, wide: true) }
    }

    /// Blanks the values of keys that name a code or a secret.
    static func redacted(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let lower = line.lowercased()
            guard let eq = line.firstIndex(of: "="), !lower.hasPrefix("#"),
                  ["pin", "code", "password", "passphrase", "secret", "token-key"].contains(where: { lower[..<lower.index(lower.startIndex, offsetBy: line.distance(from: line.startIndex, to: eq))].contains($0) })
            else { return String(line) }
            return String(line[...eq]) + " [removed]"
        }.joined(separator: "\n")
    }

    /// Runs /bin/tar with its standard output on `output` and waits (posix_spawn and waitpid; Foundation's
    /// Process was seen to hang here).
    static func tar(_ arguments: [String], output: Int32) throws -> Int32 {
        let argv = (["/bin/tar"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/tar", &actions, nil, argv, environ)
        guard result == 0 else { throw CLIError(description: "cannot run /bin/tar: \(String(cString: strerror(result)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
