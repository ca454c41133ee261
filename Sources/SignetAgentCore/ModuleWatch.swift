#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// Calls into token modules that are under way, so a module that stops answering is noticed.
///
/// A module can hang for good: OpenSC 0.23, when a card vanishes between two commands at the
/// wrong moment, leaves its card mutex locked and every later call waits on it forever. No
/// thread can be taken back from inside a C library, so the agent's answer is to stop (the
/// next `signet` command, or systemd's socket, starts a fresh one) rather than leave every
/// client waiting. See `Watchdog`.
final class ModuleWatch: Sendable {
    static let shared = ModuleWatch()

    /// What a module is doing: a request's work on one token, or a scan of every module's slots.
    enum Activity: Sendable, CustomStringConvertible {
        case request(token: String)
        case scan

        var description: String {
            switch self {
            case .request(let token): "\(token): a request"
            case .scan: "scanning the token modules' slots"
            }
        }
    }

    private struct Call {
        let activity: Activity
        let since: Double
    }
    private let calls = Mutex<(next: UInt64, open: [UInt64: Call])>((0, [:]))

    /// Runs `body`, recorded as `activity` while it runs.
    func watching<R, E: Error>(_ activity: Activity, _ body: () throws(E) -> R) throws(E) -> R {
        let since = MonotonicClock.seconds()
        let id = calls.withLock { state -> UInt64 in
            state.next += 1
            state.open[state.next] = Call(activity: activity, since: since)
            return state.next
        }
        defer { _ = calls.withLock { $0.open.removeValue(forKey: id) } }
        return try body()
    }

    /// The call under way the longest, and for how many seconds.
    func oldest(now: Double = MonotonicClock.seconds()) -> (activity: Activity, seconds: Double)? {
        calls.withLock { state in
            state.open.values.min { $0.since < $1.since }.map { ($0.activity, now - $0.since) }
        }
    }
}

/// Checks `ModuleWatch` every second on its own thread; when a module call has run longer
/// than the limit (`module-timeout-seconds`), records it and stops the agent.
struct Watchdog: Sendable {
    let handler: RequestHandler
    let socketPath: String
    let onStuck: @Sendable (String) -> Void

    func start() {
        _ = DetachedThread.start { [self] in
            while !handler.stopping.load(ordering: .relaxed) {
                sleep(1)
                let limit = handler.currentSettings.moduleTimeout
                guard limit > 0, let (what, seconds) = ModuleWatch.shared.oldest(), seconds > limit else { continue }
                let message = "a token module has not answered for \(Int(seconds)) s (\(what)); "
                    + "the agent stops so that a fresh one can start (remove and re-insert the card if it happens again)"
                onStuck(message)
                handler.record(.agentStop, result: "error:module-stuck", peer: nil, start: MonotonicClock.seconds(), detail: message)
                // The stuck thread holds the module's locks: no clean shutdown can finish, so leave now.
                unlink(socketPath)
                _exit(70)
            }
        }
    }
}
