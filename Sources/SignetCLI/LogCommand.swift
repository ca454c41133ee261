#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPCSC
import SignetPKCS11

/// The audit log's files, oldest first: `audit.log.N` … `audit.log.1`, `audit.log`.
enum AuditFiles {
    static func paths(_ paths: SignetPaths = .current) -> [String] {
        let base = paths.state + "/audit.log"
        return (1...9).reversed().map { "\(base).\($0)" }.filter(FileIO.exists) + (FileIO.exists(base) ? [base] : [])
    }

    /// Every line, oldest first.
    static func lines(_ paths: SignetPaths = .current) -> [String] {
        AuditFiles.paths(paths).flatMap { path in
            (FileIO.readText(path, limit: 16 << 20) ?? "").split(separator: "\n").map(String.init)
        }
    }
}

/// `signet log`: what the agent did, when, for whom.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show the audit log: unlocks, signatures, decryptions, lockouts, refused connections.",
        discussion: "The log is $XDG_STATE_HOME/signet/audit.log (JSON lines, rotated at 1 MiB). It never holds an access code or message content. Lines name tokens and keys by label and programs by name; --wide or --json shows the full URIs and paths."
    )
    @Option(name: .long, help: "Only entries newer than this: 30m, 2h, 7d, or a time such as 2026-11-22T10:00.")
    var since: String?
    @Option(name: .long, help: "Only this action (unlock, lock, sign, decrypt, derive, lockout-start, connection-refused, …); repeatable.")
    var action: [String] = []
    @Option(name: .long, help: "Show at most this many of the newest entries.")
    var limit: Int?
    @Flag(name: .long, help: "Show the full token and key URIs and program paths (by default: labels and program names).")
    var wide = false
    @Flag(name: .long, help: "Print the JSON lines as stored (with the full URIs and paths).")
    var json = false

    /// One audit line's fields (see `AuditLog.line`).
    struct Entry: Decodable {
        var time: String?
        var action: String?
        var result: String?
        var token: String?
        var key: String?
        var uid: Int?
        var pid: Int?
        var exe: String?
        var duration_ms: Double?
        var detail: String?
    }

    func run() throws {
        let cutoff = try since.map(LogCommand.parseSince)
        var selected: [(line: String, entry: Entry)] = []
        let decoder = JSONDecoder()
        for line in AuditFiles.lines() {
            guard let entry = try? decoder.decode(Entry.self, from: Data(line.utf8)) else { continue }
            let time = entry.time ?? ""
            if let cutoff, time < cutoff { continue }
            if !action.isEmpty, !action.contains(entry.action ?? "") { continue }
            selected.append((line, entry))
        }
        if let limit, selected.count > limit { selected = Array(selected.suffix(limit)) }
        if json {
            for entry in selected { print(entry.line) }
            return
        }
        if selected.isEmpty { print("No audit entries\(since.map { " since \($0)" } ?? "")."); return }
        for (_, entry) in selected { print(LogCommand.text(entry, wide: wide)) }
    }

    /// One entry as a line: labels and program names, or with `wide` the full URIs and paths.
    static func text(_ entry: Entry, wide: Bool) -> String {
        var parts: [String] = []
        parts.append(String((entry.time ?? "").map { $0 == "T" ? " " : $0 }).replacing("Z", with: " UTC"))
        let name = entry.action ?? "?"
        parts.append(name + String(repeating: " ", count: max(0, 22 - name.count)))
        parts.append(entry.result ?? "?")
        if let token = entry.token { parts.append("token=\(wide ? token : shortToken(token))") }
        if let key = entry.key { parts.append("key=\(wide ? key : shortKey(key))") }
        if let pid = entry.pid {
            let program = wide ? entry.exe ?? "" : programName(entry.exe ?? "")
            parts.append("by pid \(pid) \(program) uid \(entry.uid.map(String.init) ?? "?")")
        }
        if let duration = entry.duration_ms { parts.append("\(oneDecimal(duration)) ms") }
        if let detail = entry.detail { parts.append("(\(detail))") }
        return parts.joined(separator: "  ")
    }

    /// `12.345` → `12.3` (what `%.1f` prints, for non-negative values).
    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((max(0, value) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// The label of a token URI, or the URI.
    static func shortToken(_ uri: String) -> String {
        guard let label = (try? PKCS11URI(parsing: uri))?.value("token") else { return uri }
        return String(decoding: label, as: UTF8.self)
    }

    /// A key URI as its label (`object=`), else its id in hex, else the URI.
    static func shortKey(_ text: String) -> String {
        guard let uri = try? PKCS11URI(parsing: text) else { return text }
        if let label = uri.value("object"), !label.isEmpty { return String(decoding: label, as: UTF8.self) }
        if let id = uri.value("id"), !id.isEmpty { return "id:" + Hex.encode(id) }
        return text
    }

    /// The program's file name (`/usr/bin/signet` → `signet`); "?" when the agent could not read it.
    static func programName(_ path: String) -> String {
        guard let name = path.split(separator: "/").last else { return "?" }
        return String(name)
    }

    /// "30m", "2h", "7d", "45s" become a UTC timestamp that far back; an ISO time is taken as UTC.
    static func parseSince(_ text: String) throws -> String {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value >= 0 {
            return LogCommand.timestamp(Date().timeIntervalSince1970 - value * scale)
        }
        let pattern = String(text.map { $0 == " " ? "T" : $0 })
        guard pattern.count >= 10, pattern.prefix(4).allSatisfy(\.isNumber) else {
            throw ValidationError("--since takes 30m, 2h, 7d or a time such as 2026-11-22T10:00 (UTC).")
        }
        return pattern
    }

    static func timestamp(_ seconds: Double) -> String { UTCTime.format(seconds, milliseconds: true) }
}

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
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("signet-report-\(getpid())")
        let folder = work.appendingPathComponent("signet-report")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        func write(_ name: String, _ text: String) throws {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        let machine = (FileIO.readText("/proc/version", limit: 4096) ?? "unknown").split(separator: "\n").first.map(String.init) ?? ""
        try write("version.txt", """
        \(Versions.lines().joined(separator: "\n"))
        kernel: \(machine)

        \(FileIO.readText("/etc/os-release", limit: 1 << 16) ?? "no /etc/os-release")
        """)

        var readers = ""
        do {
            for status in try PCSCContext().readerStatuses() {
                readers += "\(status.name): card \(status.cardPresent ? "present" : "absent"), \(status.state.words.joined(separator: ",")), ATR \(status.atr.map { Hex.encode($0, separator: " ", uppercase: true) } ?? "-")\n"
            }
            if readers.isEmpty { readers = "no readers\n" }
        } catch {
            readers = "PC/SC: \(error)\n"
        }
        try write("readers.txt", readers)

        var tokens = ""
        if let client = try? AgentLauncher.connect(start: false) {
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

        let lines = AuditFiles.lines(paths)
        let recent = lines.suffix(2000)
        try write("audit-log.jsonl", recent.joined(separator: "\n") + (recent.isEmpty ? "" : "\n"))
        let errors = ReportCommand.recentErrors(lines)
        try write("errors.txt", errors.isEmpty ? "no errors in the audit log\n" : errors.joined(separator: "\n") + "\n")
        let agentLog = (FileIO.readText(paths.state + "/agent.log", limit: 1 << 22) ?? "").split(separator: "\n", omittingEmptySubsequences: false).suffix(500)
        try write("agent-log.txt", agentLog.joined(separator: "\n"))

        let status = try ReportCommand.tar(["-czf", destination, "-C", work.path, "signet-report"])
        guard status == 0 else { throw CLIError(description: "tar failed (exit \(status)) writing \(destination)").reported() }
        print("Wrote \(destination). It holds versions and PKCS#11 modules, readers, tokens, configuration (codes and secrets blanked), "
              + "the last \(recent.count) audit entries and \(errors.count) recent error\(errors.count == 1 ? "" : "s") from them.")
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

    /// Runs /bin/tar and waits (posix_spawn and waitpid; Foundation's Process was seen to hang here).
    static func tar(_ arguments: [String]) throws -> Int32 {
        let argv = (["/bin/tar"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/tar", nil, nil, argv, environ)
        guard result == 0 else { throw CLIError(description: "cannot run /bin/tar: \(String(cString: strerror(result)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
