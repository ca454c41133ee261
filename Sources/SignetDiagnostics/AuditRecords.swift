import FoundationEssentials
import SignetCore

/// The agent's audit log read back (`signet log`, `signet report`): its files, its entries, which to show, and
/// each as a line. The log is JSON lines, written by the agent (`AuditLog` in SignetAgentCore).
public enum AuditRecords {
    /// One audit line's fields (see `AuditLog.line`).
    public struct Entry: Decodable {
        public var time: String?
        public var action: String?
        public var result: String?
        public var token: String?
        public var key: String?
        public var uid: Int?
        public var pid: Int?
        public var exe: String?
        public var script: String?
        public var connected_as: String?
        public var duration_ms: Double?
        public var detail: String?
        public var decision: String?
        public var rule: String?
    }

    /// The audit log's files, oldest first: `audit.log.N` … `audit.log.1`, `audit.log`.
    public static func files(_ paths: SignetPaths = .current) -> [String] {
        let base = paths.state + "/audit.log"
        return (1...9).reversed().map { "\(base).\($0)" }.filter(FileIO.exists) + (FileIO.exists(base) ? [base] : [])
    }

    /// Every line, oldest first.
    public static func lines(_ paths: SignetPaths = .current) -> [String] {
        files(paths).flatMap { path in
            (FileIO.readText(path, limit: 16 << 20) ?? "").split(separator: "\n").map(String.init)
        }
    }

    /// The entries of `lines` (JSON lines) at or after `cutoff` (a UTC timestamp) whose action is one of `actions`
    /// (any when empty), the newest `limit` of them; lines that are not entries are skipped.
    public static func select(_ lines: [String], cutoff: String?, actions: [String], limit: Int?) -> [(line: String, entry: Entry)] {
        var selected: [(line: String, entry: Entry)] = []
        let decoder = JSONDecoder()
        for line in lines {
            guard let entry = try? decoder.decode(Entry.self, from: Data(line.utf8)) else { continue }
            if let cutoff, entry.time ?? "" < cutoff { continue }
            if !actions.isEmpty, !actions.contains(entry.action ?? "") { continue }
            selected.append((line, entry))
        }
        if let limit, selected.count > limit { selected = Array(selected.suffix(limit)) }
        return selected
    }

    /// One entry as a line: labels and program names, or with `wide` the full URIs and paths.
    /// The line is escaped (`Console.safe`): a client chooses the URIs and labels it sends, and the path of
    /// the program it runs as, so they may hold terminal controls (also `%1B`, `%0A` in a URI's label).
    public static func text(_ entry: Entry, wide: Bool) -> String {
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

    /// The newest audit entries (up to `limit`) whose result is not "ok", as `signet log --wide` prints them.
    public static func recentErrors(_ lines: [String], limit: Int = 100) -> [String] {
        let decoder = JSONDecoder()
        let failed = lines.compactMap { line -> Entry? in
            guard let entry = try? decoder.decode(Entry.self, from: Data(line.utf8)), entry.result != "ok" else { return nil }
            return entry
        }
        return failed.suffix(limit).map { text($0, wide: true) }
    }

    /// "30m", "2h", "7d", "45s" become a UTC timestamp that far back; an ISO time is taken as UTC.
    /// - Returns: nil when `text` is neither.
    public static func cutoff(since text: String) -> String? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value >= 0 {
            return timestamp(Date().timeIntervalSince1970 - value * scale)
        }
        let pattern = String(text.map { $0 == " " ? "T" : $0 })
        guard pattern.count >= 10, pattern.prefix(4).allSatisfy(\.isNumber) else { return nil }
        return pattern
    }

    public static func timestamp(_ seconds: Double) -> String { UTCTime.format(seconds, milliseconds: true) }
}
