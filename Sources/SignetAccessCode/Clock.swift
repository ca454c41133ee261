#if canImport(Glibc)
import Glibc
#endif
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

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
