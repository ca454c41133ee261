#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// Who is on the other end of a connection, from `SO_PEERCRED` and `/proc` (see `Caller`).
public struct PeerProcess: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    /// The executable's path (`/proc/PID/exe`), without the kernel's " (deleted)"; empty when it could not be read.
    public var executable: String
    /// The executable was deleted or replaced after the program started (an upgrade, or a copy removed).
    public var deleted: Bool
    /// For a script run by an interpreter (python3, perl, sh, …): the script's absolute path (from
    /// `/proc/PID/cmdline` and `/proc/PID/cwd`), or `-c`/`-e`/`-m NAME` for inline code and modules.
    public var script: String?
    /// The process's start time (field 22 of `/proc/PID/stat`, clock ticks since boot): with the pid, it
    /// names one process, since a pid can be reused but not at the same start time.
    public var startTime: UInt64?
    /// The process that connected has exited (or was never seen alive): the connection is held by
    /// a process Signet cannot name, which only `program=*` rules match.
    public var exited: Bool
    /// What the process was when it connected, when it has since executed another program.
    public var connectedAs: String?

    public init(pid: Int32, uid: UInt32, executable: String, deleted: Bool = false, script: String? = nil, startTime: UInt64? = nil,
                exited: Bool = false, connectedAs: String? = nil) {
        self.pid = pid; self.uid = uid; self.executable = executable; self.deleted = deleted; self.script = script
        self.startTime = startTime; self.exited = exited; self.connectedAs = connectedAs
    }

    /// The program as a person reads it: the executable, or interpreter and script, flagged when deleted.
    public var program: String {
        if exited { return "(pid \(pid), exited)" }
        var text = executable.isEmpty ? "(unknown program)" : executable
        if deleted { text += " (deleted)" }
        if let script { text += " " + script }
        return text
    }

    /// Identifies `pid` from `/proc` without a pidfd (the in-process tests' peer, and old kernels).
    public static func describe(pid: Int32, uid: UInt32) -> PeerProcess {
        Caller.identify(pid: pid, uid: uid, pidfd: -1)
    }

    /// Whether `other` is the same program (executable and script), whatever its pid.
    func sameProgram(as other: PeerProcess) -> Bool {
        executable == other.executable && script == other.script && deleted == other.deleted && exited == other.exited
    }
}

/// One audit record. Never holds an access code or message content: the
/// fields are names, URIs, numbers and outcomes only.
public struct AuditEvent: Sendable {
    public var action: String
    public var result: String
    public var token: String?
    public var key: String?
    public var peer: PeerProcess?
    public var durationMilliseconds: Double?
    public var detail: String?
    /// For a key operation under a `clients` rule: `allowed`, `confirmed`, `denied`, `prompt-cancelled`,
    /// `prompt-timed-out` or `nowhere-to-ask` (nil when no rule applied: the default allows).
    public var decision: String?
    /// The rule that decided, as `FILE:LINE`.
    public var rule: String?

    public init(action: String, result: String, token: String? = nil, key: String? = nil, peer: PeerProcess? = nil,
                durationMilliseconds: Double? = nil, detail: String? = nil, decision: String? = nil, rule: String? = nil) {
        self.action = action; self.result = result; self.token = token; self.key = key; self.peer = peer
        self.durationMilliseconds = durationMilliseconds; self.detail = detail; self.decision = decision; self.rule = rule
    }

    /// A wrong access code or a lockout: always recorded, and a warning in the journal.
    var isCodeFailure: Bool { ["wrong-code", "card-final-try", "card-blocked", "locked"].contains(result) }
}

/// The audit log: one JSON object per line in `$XDG_STATE_HOME/signet/audit.log`,
/// rotated to `audit.log.1` … when it passes `maximumBytes`.
///
/// Every line is written with one `write(2)` on an `O_APPEND` descriptor, so
/// lines from concurrent writers never interleave.
///
/// Each record written also goes to the journal as a structured entry when the agent runs under journald
/// (`JournalAudit`); the file stays what `signet log` reads.
///
/// A client must not be able to flush the history: fields are cut at `fieldLimit` bytes, and the
/// records of failed requests, which a client can cause without end, pass at a limited rate (see `FailureBudget`).
public final class AuditLog: Sendable {
    public let path: String
    public let maximumBytes: Int
    public let keptFiles: Int
    /// Where the records also go as journal entries (nil: the file alone).
    public let journal: JournalAudit?
    private let state: Mutex<(fd: Int32, budget: FailureBudget)>

    /// Longest text kept in one field (URI, executable, detail). A token or key URI a person uses is a
    /// few hundred bytes; 40 requests naming 60 KB URIs once rotated every file out.
    public static let fieldLimit = 1024

    /// - Parameters:
    ///   - maximumBytes: size after which the file is rotated (default 1 MiB).
    ///   - keptFiles: rotated files kept besides the current one.
    ///   - failureBurst, failureInterval: failure records from clients written at once, and then one per this many seconds.
    ///   - journal: the journal to send the records to as well (default: journald's socket when it is there).
    public init(directory: String, maximumBytes: Int = 1 << 20, keptFiles: Int = 3, failureBurst: Int = 100, failureInterval: Double = 10,
                journal: JournalAudit? = JournalAudit.detect()) {
        self.journal = journal
        _ = FileIO.makeDirectories(directory)
        path = directory + "/audit.log"
        self.maximumBytes = maximumBytes
        self.keptFiles = keptFiles
        state = Mutex((open(directory + "/audit.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600),
                       FailureBudget(burst: failureBurst, interval: failureInterval)))
    }

    deinit {
        state.withLock { if $0.fd >= 0 { close($0.fd) } }
    }

    /// Appends `event` with the current time; a failure record over the budget is only counted, and
    /// the count is written, as one `audit-suppressed` record, before the next record that is written.
    public func record(_ event: AuditEvent) {
        let time = AuditLog.timestamp()
        let now = MonotonicClock.seconds()
        let limited = FailureBudget.applies(to: event)
        // Formatted before the lock, which every connection takes for every signature: under it,
        // only the budget and the write.
        let eventLine = limited ? nil : AuditLog.line(event, time: time) + "\n"
        let summary: AuditEvent?? = state.withLock { state in
            if limited, !state.budget.admit(now: now) {
                state.budget.suppress(event.action, time: time)
                return nil
            }
            var line = ""
            let summary = state.budget.takeSummary()
            if let summary { line = AuditLog.line(summary, time: time) + "\n" }
            line += eventLine ?? AuditLog.line(event, time: time) + "\n"
            write(line, to: &state.fd)
            return .some(summary)
        }
        // The journal gets what the file got, in the same order, outside the lock (a datagram each).
        guard let journal, let summary else { return }
        if let summary { journal.send(summary) }
        journal.send(event)
    }

    /// Appends `line` with one write(2), rotating first when it would pass `maximumBytes`.
    private func write(_ line: String, to fd: inout Int32) {
        if fd < 0 { fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { return }
        var info = stat()
        if fstat(fd, &info) == 0, Int(info.st_size) + line.utf8.count > maximumBytes {
            close(fd)
            rotate()
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return }
        }
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    private func rotate() {
        for index in stride(from: keptFiles - 1, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        if keptFiles > 0 { rename(path, "\(path).1") } else { unlink(path) }
    }

    /// The JSON line for `event`, keys in a fixed order, each text cut at `fieldLimit` bytes.
    static func line(_ event: AuditEvent, time: String) -> String {
        let quote = { (text: String) in JSONText.quote(clip(text)) }
        var fields: [(String, String)] = [("time", JSONText.quote(time)), ("action", quote(event.action)), ("result", quote(event.result))]
        if let token = event.token { fields.append(("token", quote(token))) }
        if let key = event.key { fields.append(("key", quote(key))) }
        if let peer = event.peer {
            fields.append(("uid", "\(peer.uid)"))
            fields.append(("pid", "\(peer.pid)"))
            fields.append(("exe", quote(peer.exited ? "" : peer.executable + (peer.deleted ? " (deleted)" : ""))))
            if let script = peer.script { fields.append(("script", quote(script))) }
            if peer.exited { fields.append(("exited", "true")) }
            if let connectedAs = peer.connectedAs { fields.append(("connected_as", quote(connectedAs))) }
        }
        if let decision = event.decision { fields.append(("decision", quote(decision))) }
        if let rule = event.rule { fields.append(("rule", quote(rule))) }
        if let duration = event.durationMilliseconds {
            fields.append(("duration_ms", "\((duration * 1000).rounded() / 1000)"))
        }
        if let detail = event.detail { fields.append(("detail", quote(detail))) }
        return "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    /// `text`, or its start and its length when it is longer than `fieldLimit` bytes.
    static func clip(_ text: String) -> String {
        guard text.utf8.count > fieldLimit else { return text }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            if bytes > fieldLimit - 64 { break }
            kept.append(scalar)
        }
        return String(kept) + "… (cut: \(text.utf8.count) bytes)"
    }

    /// UTC time with milliseconds, ISO 8601 ("2026-11-22T10:15:30.123Z").
    public static func timestamp(_ wall: Double? = nil) -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UTCTime.format(wall ?? (Double(now.tv_sec) + Double(now.tv_nsec) / 1e9), milliseconds: true)
    }
}

/// The rate at which failure records from clients are written. Malformed, refused or failing requests
/// cost a client nothing and are recorded each time, so without a budget a client could rotate the
/// history out of the log. Wrong codes and lockouts are always written: the lockout bounds them, and
/// they are the records that matter most. Records of the agent's own (no peer) and successes are never held back.
struct FailureBudget {
    let burst: Int
    let interval: Double
    private var available: Double
    private var refilled: Double?
    private var suppressed: [String: Int] = [:]
    private var firstSuppressed: String?

    init(burst: Int, interval: Double) {
        self.burst = burst
        self.interval = interval
        available = Double(burst)
    }

    static func applies(to event: AuditEvent) -> Bool {
        event.peer != nil && event.result != "ok" && !event.isCodeFailure
    }

    /// Whether a failure record may be written now (and spends one from the budget).
    mutating func admit(now: Double) -> Bool {
        if let refilled { available = min(Double(burst), available + (now - refilled) / interval) }
        refilled = now
        guard available >= 1 else { return false }
        available -= 1
        return true
    }

    mutating func suppress(_ action: String, time: String) {
        suppressed[action, default: 0] += 1
        if firstSuppressed == nil { firstSuppressed = time }
    }

    /// The record that sums up what was held back since the last one, if anything was.
    mutating func takeSummary() -> AuditEvent? {
        guard let since = firstSuppressed else { return nil }
        let total = suppressed.values.reduce(0, +)
        let actions = suppressed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        suppressed = [:]
        firstSuppressed = nil
        return AuditEvent(action: "audit-suppressed", result: "suppressed",
                          detail: "\(total) records of failed client requests since \(since) were not written (\(actions)): "
                              + "more than \(burst) at once, or more than one per \(Int(interval)) s")
    }
}

/// JSON string quoting without Foundation.
public enum JSONText {
    public static func quote(_ text: String) -> String {
        // Most fields (URIs, paths, results) need no escape: one pass over the bytes, one copy.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + text + "\""
        }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
