import SignetAccessCode
import Synchronization

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

