/// The actions the audit log names. A struct rather than an enum so that a
/// request group declares the action it records next to its handler
/// (`extension AuditAction { static let … }`); the name is what the log says.
struct AuditAction: RawRepresentable, Hashable, Sendable {
    let rawValue: String
    init(rawValue: String) { self.rawValue = rawValue }

    static let connectionRefused = AuditAction(rawValue: "connection-refused")
    static let agentStart = AuditAction(rawValue: "agent-start")
    static let agentStop = AuditAction(rawValue: "agent-stop")
    static let lockoutStart = AuditAction(rawValue: "lockout-start")
    static let lockoutEnd = AuditAction(rawValue: "lockout-end")
    /// A token logged out, on request or after `idle-lock-minutes`.
    static let lock = AuditAction(rawValue: "lock")
}
