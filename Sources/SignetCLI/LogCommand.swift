import ArgumentParser
import SignetDiagnostics

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

    func run() throws {
        let cutoff = try since.map { text in
            guard let cutoff = AuditRecords.cutoff(since: text) else {
                throw ValidationError("--since takes 30m, 2h, 7d or a time such as 2026-11-22T10:00 (UTC).")
            }
            return cutoff
        }
        let selected = AuditRecords.select(AuditRecords.lines(), cutoff: cutoff, actions: action, limit: limit)
        if json {
            for entry in selected { print(entry.line) }
            return
        }
        if selected.isEmpty { print("No audit entries\(since.map { " since \($0)" } ?? "")."); return }
        for (_, entry) in selected { print(AuditRecords.text(entry, wide: wide)) }
    }
}
