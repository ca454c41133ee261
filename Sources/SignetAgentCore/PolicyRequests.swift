#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// The per-client policy: the `policy` request (what `signet policy` lists), and the check every
/// key operation passes before its key is used (`ClientGuard`). Rules: `ClientPolicy`; format: `docs/clients.md`.
enum PolicyRequests: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        guard case .policy = request else { return nil }
        return Route { (context) throws(AgentFailure) in
            .policy(context.agent.currentSettings.clients.report(recent: context.agent.recentUses.list))
        }
    }
}

/// How a key use was let through, for its audit line.
struct PolicyVerdict {
    /// `allowed` or `confirmed`; nil when no rule applied (the default allows).
    var decision: PolicyReport.Decision?
    /// The rule, `FILE:LINE`.
    var rule: String?
    /// The key as a person names it: its label when known.
    var keyName: String
    var detail: String?
}

/// "Allow for 5 minutes" answers, per program (executable and script) and key.
final class Confirmations: Sendable {
    private let until = Mutex<[String: Double]>([:])

    func identity(_ peer: PeerProcess, token: String, key: String) -> String {
        [peer.executable, peer.script ?? "", token, key].joined(separator: "\u{0}")
    }

    func allowed(_ identity: String) -> Bool {
        let now = MonotonicClock.seconds()
        return until.withLock { ($0[identity] ?? 0) > now }
    }

    func allow(_ identity: String, for seconds: Double) {
        let now = MonotonicClock.seconds()
        until.withLock { entries in
            if entries.count >= 256 { entries = entries.filter { $0.value > now } }
            entries[identity] = now + seconds
        }
    }

    /// Forgets every answer (the rules were reloaded).
    func clear() { until.withLock { $0.removeAll() } }
}

/// The programs that used keys recently, for `signet policy`: one entry per program, key, operation
/// and decision, the latest first, at most `limit`.
final class RecentUses: Sendable {
    static let limit = 64
    private let entries = Mutex<[PolicyReport.Use]>([])

    func note(_ peer: PeerProcess, key: String, operation: KeyOperation, decision: PolicyReport.Decision) {
        let time = AuditLog.timestamp()
        let program = peer.program
        entries.withLock { entries in
            var count: UInt32 = 1
            if let index = entries.firstIndex(where: {
                $0.program == program && $0.key == key && $0.operation == operation.rawValue && $0.verdict == decision
            }) {
                count = entries[index].count &+ 1
                entries.remove(at: index)
            }
            entries.insert(PolicyReport.Use(program: program, pid: UInt32(bitPattern: peer.pid), key: key, operation: operation.rawValue,
                                            verdict: decision, time: time, count: count), at: 0)
            if entries.count > RecentUses.limit { entries.removeLast() }
        }
    }

    var list: [PolicyReport.Use] { entries.withLock { $0 } }
}
