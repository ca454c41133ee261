#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

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
        var script: String?
        var connected_as: String?
        var duration_ms: Double?
        var detail: String?
        var decision: String?
        var rule: String?
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
    /// The line is escaped (`Console.safe`): a client chooses the URIs and labels it sends, and the path of
    /// the program it runs as, so they may hold terminal controls (also `%1B`, `%0A` in a URI's label).
    static func text(_ entry: Entry, wide: Bool) -> String {
        var parts: [String] = []
        parts.append(String((entry.time ?? "").map { $0 == "T" ? " " : $0 }).replacing("Z", with: " UTC"))
        let name = entry.action ?? "?"
        parts.append(name + String(repeating: " ", count: max(0, 22 - name.count)))
        parts.append(entry.result ?? "?")
        if let token = entry.token { parts.append("token=\(wide ? token : shortToken(token))") }
        if let key = entry.key { parts.append("key=\(wide ? key : shortKey(key))") }
        if let pid = entry.pid {
            var program = wide ? entry.exe ?? "" : programName(entry.exe ?? "")
            if let script = entry.script { program += " " + (wide ? script : programName(script)) }
            parts.append("by pid \(pid) \(program) uid \(entry.uid.map(String.init) ?? "?")")
            if let before = entry.connected_as { parts.append("(connected as \(wide ? before : programName(before)))") }
        }
        if let decision = entry.decision { parts.append("\(decision)\(entry.rule.map { " by \($0)" } ?? "")") }
        if let duration = entry.duration_ms { parts.append("\(oneDecimal(duration)) ms") }
        if let detail = entry.detail { parts.append("(\(detail))") }
        return Console.safe(parts.joined(separator: "  "))
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
