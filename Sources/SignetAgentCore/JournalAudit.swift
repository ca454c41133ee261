#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// The audit events as structured journal entries, for an organisation that collects the journal (journald
/// forwarding, `systemd-journal-upload`, rsyslog's imjournal): `SIGNET_ACTION=`, `SIGNET_RESULT=`,
/// `SIGNET_TOKEN=`, `SIGNET_KEY=`, the caller's `SIGNET_CLIENT_EXE=`, `SIGNET_CLIENT_PID=` and
/// `SIGNET_CLIENT_UID=` (journald's own `_PID=`/`_UID=` are the agent's), and a `MESSAGE=` a person reads.
///
/// Written with journald's native protocol (systemd's "Native Journal Protocol": one datagram on
/// `/run/systemd/journal/socket`, `KEY=value` lines, or `KEY`, a 64-bit little-endian length and the bytes
/// for a value that holds a newline), which needs no library: libsystemd's `sd_journal_send` writes the
/// same datagram, and linking it would add a dependency to every program that loads the module's libraries.
/// The same fields as the audit file, which stays what `signet log` reads: names, URIs, numbers and outcomes,
/// never an access code or message content.
///
/// A datagram is sent without waiting (`MSG_DONTWAIT`): when journald is behind, the entry is dropped rather
/// than holding up a signature; the audit file has every record.
public final class JournalAudit: Sendable {
    /// journald's native socket, where it listens on every systemd machine.
    public static let standardSocket = "/run/systemd/journal/socket"
    /// Identifies Signet's audit entries (`journalctl MESSAGE_ID=…`), whatever their action.
    public static let messageID = "d98ac1f0dca54b4493b9181f41d933a1"

    public let socketPath: String
    /// One unconnected datagram socket for every record (`sendto` names journald's socket each time, so a
    /// restarted journald is found again; concurrent `sendto` calls on one socket are safe).
    private let fd: Int32

    public init(socketPath: String) {
        self.socketPath = socketPath
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The journal when the agent runs where journald does: its stderr goes to the journal (`JOURNAL_STREAM`,
    /// set by systemd for the user unit) or journald's native socket is there. Nil otherwise (a container, a
    /// machine without systemd): the audit file alone.
    public static func detect() -> JournalAudit? {
        if getenv("JOURNAL_STREAM") != nil || access(standardSocket, F_OK) == 0 {
            return JournalAudit(socketPath: standardSocket)
        }
        return nil
    }

    /// Sends `event` as one journal entry; false when journald did not take it (not running, busy, too large).
    @discardableResult
    public func send(_ event: AuditEvent) -> Bool {
        let datagram = JournalAudit.datagram(event)
        guard fd >= 0 else { return false }
        guard var address = UnixSocket.address(socketPath) else { return false }
        let sent = datagram.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0,
                           socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return sent == datagram.count
    }

    /// The entry's fields in the order they are sent (texts cut as in the audit file).
    static func fields(_ event: AuditEvent) -> [(String, String)] {
        let clip = AuditLog.clip
        var fields: [(String, String)] = [
            ("MESSAGE", message(event)),
            ("MESSAGE_ID", messageID),
            ("PRIORITY", String(priority(event))),
            ("SYSLOG_IDENTIFIER", "signet-agent"),
            ("SIGNET_ACTION", clip(event.action)),
            ("SIGNET_RESULT", clip(event.result)),
        ]
        if let token = event.token { fields.append(("SIGNET_TOKEN", clip(token))) }
        if let key = event.key { fields.append(("SIGNET_KEY", clip(key))) }
        if let peer = event.peer {
            fields.append(("SIGNET_CLIENT_EXE", clip(peer.exited ? "" : peer.executable + (peer.deleted ? " (deleted)" : ""))))
            fields.append(("SIGNET_CLIENT_PID", String(peer.pid)))
            fields.append(("SIGNET_CLIENT_UID", String(peer.uid)))
            if let script = peer.script { fields.append(("SIGNET_CLIENT_SCRIPT", clip(script))) }
        }
        if let decision = event.decision { fields.append(("SIGNET_DECISION", clip(decision))) }
        if let rule = event.rule { fields.append(("SIGNET_RULE", clip(rule))) }
        if let duration = event.durationMilliseconds { fields.append(("SIGNET_DURATION_MS", "\((duration * 1000).rounded() / 1000)")) }
        if let detail = event.detail { fields.append(("SIGNET_DETAIL", clip(detail))) }
        return fields
    }

    /// The native protocol's datagram: `KEY=value\n`, or `KEY\n`, the length (64-bit little-endian), the
    /// value and `\n` when the value holds a newline.
    static func datagram(_ event: AuditEvent) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, value) in fields(event) {
            bytes += name.utf8
            let text = Array(value.utf8)
            if text.contains(UInt8(ascii: "\n")) {
                bytes.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(text.count).littleEndian) { bytes += $0 }
            } else {
                bytes.append(UInt8(ascii: "="))
            }
            bytes += text
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// "unlock ok: pkcs11:token=… by /usr/bin/thunderbird (pid 4242, uid 1000)".
    static func message(_ event: AuditEvent) -> String {
        var text = "\(event.action) \(event.result)"
        if let subject = event.key ?? event.token { text += ": " + AuditLog.clip(subject) }
        if let peer = event.peer { text += " by \(AuditLog.clip(peer.program)) (pid \(peer.pid), uid \(peer.uid))" }
        if let decision = event.decision { text += ", \(decision)" + (event.rule.map { " by \($0)" } ?? "") }
        if let detail = event.detail { text += ": " + AuditLog.clip(detail) }
        return text
    }

    /// syslog priority: a wrong code or a lockout is a warning (4), another failure a notice (5), success info (6).
    static func priority(_ event: AuditEvent) -> Int {
        if event.isCodeFailure { return 4 }
        return event.result == "ok" ? 6 : 5
    }
}
