import Foundation
import SignetCore
import SignetTestSupport
import Testing

/// Issue 24 #2: the configuration is read only when no one but its owner could have written it (`ProtectedFile`),
/// the rule the clients file had.
@Suite("Configuration files others could write are refused")
struct ProtectedFileTests {
    let directory: URL
    let paths: SignetPaths
    let system: String

    init() throws {
        directory = try TestPaths.temporaryDirectory("signet-protected")
        paths = SignetPaths(environment: ["HOME": directory.path])
        system = directory.appendingPathComponent("etc").path
        try FileManager.default.createDirectory(atPath: paths.config, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: system, withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode)
    }

    @Test("A safe user config is read; group- or world-writable, or another uid's, it is refused as a whole with the reason")
    func userConfig() throws {
        let file = paths.config + "/config"
        try write(file, "pinentry-program = /tmp/theirs\nidle-lock-minutes = 5\n")
        #expect(SignetConfig.load(paths: paths, systemDirectory: system).value("pinentry-program") == "/tmp/theirs")
        for mode: mode_t in [0o664, 0o646, 0o666] {
            chmod(file, mode)
            let config = SignetConfig.load(paths: paths, systemDirectory: system)
            #expect(config.entries.isEmpty, "mode \(String(mode, radix: 8)): \(config.entries)")
            #expect(config.refusals.first?.contains("\(file): is writable by group or others (mode \(String(mode, radix: 8)))") == true, "\(config.refusals)")
        }
        chmod(file, 0o644)
        try #require(chown(file, 65534, 65534) == 0, "the tests run as root")
        let foreign = SignetConfig.load(paths: paths, systemDirectory: system)
        #expect(foreign.entries.isEmpty && foreign.refusals.first?.contains("\(file): belongs to uid 65534") == true, "\(foreign.refusals)")
    }

    @Test("The administrator's config must be root's; a directory on the path others can write is refused unless sticky")
    func administratorConfigAndDirectories() throws {
        let file = system + "/config"
        try write(file, "pkcs11-module = /tmp/theirs.so\n")
        #expect(SignetConfig.load(paths: paths, systemDirectory: system).values("pkcs11-module") == ["/tmp/theirs.so"])
        try #require(chown(file, 65534, 65534) == 0)
        let notRoot = SignetConfig.load(paths: paths, systemDirectory: system)
        #expect(notRoot.entries.isEmpty && notRoot.refusals.first?.contains("belongs to uid 65534, not to root") == true, "\(notRoot.refusals)")
        try #require(chown(file, 0, 0) == 0)

        chmod(system, 0o777)
        let open = SignetConfig.load(paths: paths, systemDirectory: system)
        #expect(open.entries.isEmpty && open.refusals.first?.contains("\(system): is writable by group or others (mode 777)") == true, "\(open.refusals)")
        chmod(system, 0o1777)  // sticky, like /tmp: others cannot rename or remove what is in it
        #expect(SignetConfig.load(paths: paths, systemDirectory: system).refusals.isEmpty)
    }

    @Test("A config that is a symbolic link into a safe directory is read; into a directory others can write, refused")
    func symlinkedConfig() throws {
        let elsewhere = directory.appendingPathComponent("dotfiles").path
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        try write(elsewhere + "/signet-config", "notify = sign\n")
        try #require(symlink(elsewhere + "/signet-config", paths.config + "/config") == 0)
        #expect(SignetConfig.load(paths: paths, systemDirectory: system).value("notify") == "sign")
        chmod(elsewhere, 0o777)
        let open = SignetConfig.load(paths: paths, systemDirectory: system)
        #expect(open.entries.isEmpty && open.refusals.contains { $0.hasPrefix("\(elsewhere): is writable by group or others") }, "\(open.refusals)")
    }
}
