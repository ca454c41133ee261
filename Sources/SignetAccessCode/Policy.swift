import SignetCore

/// The lockout rule: `maximumFailures` wrong codes in a row lock the token for `lockDuration`.
public struct LockoutPolicy: Sendable, Equatable {
    public var maximumFailures: Int
    public var lockDuration: Duration

    /// Signet's promise: three wrong codes in a row lock the token for 15 minutes.
    public static let standard = LockoutPolicy(maximumFailures: 3, lockDuration: .seconds(15 * 60))

    public init(maximumFailures: Int, lockDuration: Duration) {
        self.maximumFailures = max(1, maximumFailures)
        self.lockDuration = lockDuration < .zero ? .zero : lockDuration
    }

    /// The stricter of two policies: fewer tries and a longer lock.
    public func stricter(_ other: LockoutPolicy) -> LockoutPolicy {
        LockoutPolicy(maximumFailures: min(maximumFailures, other.maximumFailures),
                      lockDuration: max(lockDuration, other.lockDuration))
    }

    /// Applies `max-failures` and `lock-minutes` from a configuration on top of `base`.
    /// - Parameter onlyStricter: a user's configuration may tighten the policy, never loosen it.
    public func applying(_ config: SignetConfig, onlyStricter: Bool) -> LockoutPolicy {
        var result = self
        if let text = config.value("max-failures"), let value = Int(text), value >= 1 {
            result.maximumFailures = onlyStricter ? min(maximumFailures, value) : value
        }
        if let text = config.value("lock-minutes"), let minutes = Double(text), minutes >= 0 {
            let duration = Duration.milliseconds(Int64(minutes * 60_000))
            result.lockDuration = onlyStricter ? max(lockDuration, duration) : duration
        }
        return result
    }

    /// The policy in force: Signet's standard, then `/etc/signet/policy`
    /// (the administrator's, which may set any values), then the user's
    /// `$XDG_CONFIG_HOME/signet/policy`, which can only make it stricter.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet") -> LockoutPolicy {
        var policy = LockoutPolicy.standard
        if let text = FileIO.readText(systemDirectory + "/policy", limit: 1 << 16) {
            policy = policy.applying(SignetConfig(parsing: text), onlyStricter: false)
        }
        if let text = FileIO.readText(paths.config + "/policy", limit: 1 << 16) {
            policy = policy.applying(SignetConfig(parsing: text), onlyStricter: true)
        }
        return policy
    }
}
