import Foundation

/// The second local users of the tests that need one (another user's socket, directory or listener), made
/// once per process, idempotently, with useradd. The tests run as root (CI and scripts/test do).
public enum SecondUser {
    /// The other user: plants sockets and directories, listens where it should not be reached.
    public static let name = "sigc-mallory"
    /// A user who is not root, for what must hold for one (root's agent is not theirs).
    public static let victimName = "sigc-victim"
    nonisolated(unsafe) private static var made: [String: (uid: uid_t, gid: gid_t)] = [:]
    private static let lock = NSLock()

    /// `name`'s uid and gid, made first when it does not exist.
    public static func ensure(_ name: String) throws -> (uid: uid_t, gid: gid_t) {
        lock.lock()
        defer { lock.unlock() }
        if let known = made[name] { return known }
        if getpwnam(name) == nil {
            let added = try Run.command("/usr/sbin/useradd", ["-m", name])
            // 9: the name exists (another test process made it meanwhile).
            guard added.status == 0 || added.status == 9 else { throw TestFailure("useradd \(name): \(added.errors)") }
        }
        guard let entry = getpwnam(name) else { throw TestFailure("\(name) does not exist after useradd") }
        made[name] = (entry.pointee.pw_uid, entry.pointee.pw_gid)
        return made[name]!
    }

    /// Makes the other user; throws when the tests do not run as root.
    public static func require() throws {
        guard getuid() == 0 else { throw TestFailure("this test makes a second local user and must run as root (CI and scripts/test do)") }
        _ = try ensure(name)
    }

    /// The other user's uid (after `require`).
    public static var uid: uid_t { (try? ensure(name).uid) ?? 0 }
    /// The user who is not root.
    public static func victim() throws -> (uid: uid_t, gid: gid_t) { try ensure(victimName) }
}
