#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// The clocks the lockout is measured with. Injectable so tests can jump time.
public protocol AccessClock: Sendable {
    /// Seconds since the Unix epoch: the wall clock, which a user can set.
    func wallSeconds() -> Double
    /// Seconds on a clock that never jumps within a boot and counts suspend (`CLOCK_BOOTTIME`).
    func bootSeconds() -> Double
    /// This boot's identity (`/proc/sys/kernel/random/boot_id`).
    func bootID() -> String
}

/// The system's clocks.
public struct SystemClock: AccessClock {
    private static let currentBootID: String = {
        let text = FileIO.readText("/proc/sys/kernel/random/boot_id", limit: 128) ?? ""
        let trimmed = text.filter { !$0.isWhitespace }
        return trimmed.isEmpty ? "unknown-boot" : trimmed
    }()

    public init() {}

    public func wallSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public func bootSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public func bootID() -> String { SystemClock.currentBootID }
}

/// A clock tests move by hand: `advance` moves both clocks (time passing),
/// `setWall` moves only the wall clock (someone changing the time), `reboot`
/// starts a new boot.
public final class ManualClock: AccessClock {
    private struct State {
        var wall: Double
        var boot: Double
        var bootID: String
        var reboots = 0
    }
    private let state: Mutex<State>

    public init(wall: Double = 1_800_000_000, boot: Double = 1000, bootID: String = "boot-0") {
        state = Mutex(State(wall: wall, boot: boot, bootID: bootID))
    }

    public func wallSeconds() -> Double { state.withLock { $0.wall } }
    public func bootSeconds() -> Double { state.withLock { $0.boot } }
    public func bootID() -> String { state.withLock { $0.bootID } }

    /// Time passes: both clocks move.
    public func advance(_ duration: Duration) {
        let seconds = duration.seconds
        state.withLock { $0.wall += seconds; $0.boot += seconds }
    }

    /// Someone sets the wall clock: only it moves.
    public func setWall(by duration: Duration) {
        let seconds = duration.seconds
        state.withLock { $0.wall += seconds }
    }

    /// A reboot: a new boot ID and a boot clock starting near zero; `downtime` of wall time passes.
    public func reboot(downtime: Duration = .zero) {
        let seconds = downtime.seconds
        state.withLock {
            $0.reboots += 1
            $0.bootID = "boot-\($0.reboots)"
            $0.boot = 5
            $0.wall += seconds
        }
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
