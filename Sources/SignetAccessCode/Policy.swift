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
        var problems: [String] = []
        return applying(config, onlyStricter: onlyStricter, problems: &problems)
    }

    /// The same, adding to `problems` each value refused (naming its file and line): a value that is
    /// not a number, or out of range (`lock-minutes = inf` once trapped converting to milliseconds),
    /// is ignored. Up to a year of lock and 1,000 tries: beyond that a policy is no longer a lockout rule.
    public func applying(_ config: SignetConfig, onlyStricter: Bool, problems: inout [String]) -> LockoutPolicy {
        var result = self
        do throws(SignetConfig.BadValue) {
            if let value = try config.integer("max-failures", in: 1...1000) {
                result.maximumFailures = onlyStricter ? min(maximumFailures, value) : value
            }
        } catch { problems.append("\(error); it is ignored") }
        do throws(SignetConfig.BadValue) {
            if let minutes = try config.number("lock-minutes", in: 0...525_600) {
                let duration = Duration.milliseconds(Int64(minutes * 60_000))
                result.lockDuration = onlyStricter ? max(lockDuration, duration) : duration
            }
        } catch { problems.append("\(error); it is ignored") }
        return result
    }

    /// The policy in force: Signet's standard, then `/etc/signet/policy`
    /// (the administrator's, which may set any values), then the user's
    /// `$XDG_CONFIG_HOME/signet/policy`, which can only make it stricter.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet") -> LockoutPolicy {
        var problems: [String] = []
        return load(paths: paths, systemDirectory: systemDirectory, problems: &problems)
    }

    /// The same, adding to `problems` each value refused, naming its file and line.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet", problems: inout [String]) -> LockoutPolicy {
        var refusals: [String] = []
        return load(paths: paths, systemDirectory: systemDirectory, problems: &problems, refusals: &refusals)
    }

    /// The same, adding to `refusals` the problems of a policy file others could have written (`ProtectedFile`),
    /// which is not read: the administrator's would loosen the lockout.
    public static func load(paths: SignetPaths = .current, systemDirectory: String = "/etc/signet", problems: inout [String],
                            refusals: inout [String]) -> LockoutPolicy {
        var policy = LockoutPolicy.standard
        let administrator = systemDirectory + "/policy", user = paths.config + "/policy"
        let risk = "change how many wrong access codes lock your token"
        switch ProtectedFile.read(administrator, owner: .administrator, limit: 1 << 16, risk: risk) {
        case .absent: break
        case .refused(let found): refusals += found
        case .text(let text): policy = policy.applying(SignetConfig(parsing: text, file: administrator), onlyStricter: false, problems: &problems)
        }
        switch ProtectedFile.read(user, owner: .user, limit: 1 << 16, risk: risk) {
        case .absent: break
        case .refused(let found): refusals += found
        case .text(let text): policy = policy.applying(SignetConfig(parsing: text, file: user), onlyStricter: true, problems: &problems)
        }
        return policy
    }
}
