import Foundation
import SignetCore
import SignetTestSupport
import Testing

/// Without XDG_RUNTIME_DIR the agent's directory is `$TMPDIR/signet-<uid>` only when it is ours and private;
/// another user could otherwise block the agent by making it first (issue 19 #12).
@Suite("Runtime directory without XDG_RUNTIME_DIR")
struct RuntimeDirTests {
    static func paths(tmp: String, home: String) -> SignetPaths { SignetPaths(environment: ["HOME": home, "TMPDIR": tmp]) }

    @Test("An absent or private directory of ours is used; one of another uid, a symlink, or one open to others is not")
    func fallbackDecision() throws {
        let root = try TestPaths.temporaryDirectory("signet-runtime").path
        let tmp = root + "/tmp", home = root + "/home"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let shared = tmp + "/signet-\(getuid())"
        let private_ = home + "/.cache/signet/run"

        #expect(Self.paths(tmp: tmp, home: home).runtime == shared)
        #expect(Self.paths(tmp: tmp, home: home).runtimeNote == nil)
        #expect(mkdir(shared, 0o700) == 0)
        #expect(Self.paths(tmp: tmp, home: home).runtime == shared)

        chmod(shared, 0o777)
        #expect(Self.paths(tmp: tmp, home: home).runtime == private_)
        #expect(Self.paths(tmp: tmp, home: home).runtimeNote?.contains("is open to other users (mode 777)") == true)

        chmod(shared, 0o700)
        try #require(chown(shared, 65534, 65534) == 0, "the tests run as root")
        let other = Self.paths(tmp: tmp, home: home)
        #expect(other.runtime == private_)
        #expect(other.runtimeNote?.hasPrefix("\(shared) belongs to uid 65534, not to you (uid \(getuid())), so it is not used") == true, "\(other.runtimeNote ?? "")")

        rmdir(shared)
        try FileManager.default.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        #expect(symlink(root + "/elsewhere", shared) == 0)
        #expect(Self.paths(tmp: tmp, home: home).runtime == private_)
        #expect(Self.paths(tmp: tmp, home: home).runtimeNote?.contains("is a symbolic link") == true)
    }

    @Test("XDG_RUNTIME_DIR, when set, decides alone")
    func runtimeDirWins() {
        let paths = SignetPaths(environment: ["HOME": "/nonexistent", "XDG_RUNTIME_DIR": "/run/user/4242", "TMPDIR": "/nonexistent"])
        #expect(paths.runtime == "/run/user/4242/signet" && paths.runtimeNote == nil)
    }
}
