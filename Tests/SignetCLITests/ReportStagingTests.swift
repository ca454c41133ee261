import Foundation
import SignetTestSupport
import Testing

/// `signet report` gathers its files in a private directory (issue 19 #2). It used `$TMPDIR/signet-report-<pid>`,
/// so another user could pre-create it with a symlink inside and read or change the audit log, agent log and
/// configuration before `tar` ran, or have the report written over files of the victim's.
@Suite("Report staging: a private directory")
final class ReportStagingTests {
    let home: URL
    let environment: [String: String]
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }
    var tmp: String { home.appendingPathComponent("tmp").path }

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-home")
        var env = TestPaths.userEnvironment(home: home)
        env["TMPDIR"] = home.appendingPathComponent("tmp").path
        environment = env
        for directory in ["tmp", "config/signet", "state/signet", "victim"] {
            try FileManager.default.createDirectory(at: home.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        chmod(tmp, 0o1777)
        try "p11-kit-modules = no\n# the user's configuration\n".write(toFile: home.appendingPathComponent("config/signet/config").path, atomically: true, encoding: .utf8)
        try "{\"time\":\"2026-11-22T12:57:06.801Z\",\"action\":\"unlock\",\"result\":\"wrong-code\"}\n"
            .write(toFile: home.appendingPathComponent("state/signet/audit.log").path, atomically: true, encoding: .utf8)
    }

    @Test("A pre-created signet-report-<pid> directory whose folder is a symlink to another directory changes nothing there, and the archive holds the real content")
    func plantedDirectoryIsNotUsed() throws {
        let victim = home.appendingPathComponent("victim").path
        try "the victim's own file\n".write(toFile: victim + "/configuration.txt", atomically: true, encoding: .utf8)
        let archive = home.appendingPathComponent("report.tar.gz").path
        // The old name is predictable: the shell plants it for its own pid, then becomes `signet` (exec keeps the pid).
        let script = """
            planted="$TMPDIR/signet-report-$$"
            mkdir -m 777 "$planted" && ln -s "$1" "$planted/signet-report" && exec "$0" report -o "$2"
            """
        let result = try Run.command("/bin/sh", ["-c", script, signet, victim, archive], environment: environment, timeout: 60)
        #expect(result.status == 0, "\(result.errors)")
        #expect((try? String(contentsOfFile: victim + "/configuration.txt", encoding: .utf8)) == "the victim's own file\n")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: victim)) == ["configuration.txt"])

        let listing = try Run.checked("/bin/tar", ["-xzOf", archive, "signet-report/configuration.txt", "signet-report/audit-log.jsonl"]).output
        #expect(listing.contains("# the user's configuration"), "\(listing)")
        #expect(listing.contains("\"action\":\"unlock\""), "\(listing)")
        #expect(!listing.contains("the victim's own file"))
    }

    @Test("A symlink planted at the archive's name is replaced by the archive (0600), not written through")
    func plantedArchiveNameIsReplaced() throws {
        let victim = home.appendingPathComponent("victim/own.txt").path
        try "the victim's own file\n".write(toFile: victim, atomically: true, encoding: .utf8)
        let archive = home.appendingPathComponent("signet-report.tar.gz").path
        #expect(symlink(victim, archive) == 0)
        let result = try Run.command(signet, ["report", "-o", archive], environment: environment, timeout: 60)
        #expect(result.status == 0, "\(result.errors)")
        #expect((try? String(contentsOfFile: victim, encoding: .utf8)) == "the victim's own file\n")
        var info = stat()
        #expect(lstat(archive, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && (info.st_mode & 0o777) == 0o600)
        #expect(try Run.checked("/bin/tar", ["-tzf", archive]).output.contains("signet-report/configuration.txt"))
    }

    @Test("The report's folder and files are private (0700, 0600 in the archive), and nothing is left in TMPDIR")
    func stagingIsPrivateAndRemoved() throws {
        let archive = home.appendingPathComponent("report.tar.gz").path
        let result = try Run.command(signet, ["report", "-o", archive], environment: environment, timeout: 60)
        #expect(result.status == 0, "\(result.errors)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: tmp)) == [], "nothing left in TMPDIR")
        let members = try Run.checked("/bin/tar", ["-tzvf", archive]).output
        #expect(members.contains("drwx------") && members.contains("signet-report/"), "\(members)")
        #expect(members.split(separator: "\n").filter { $0.hasPrefix("-") }.allSatisfy { $0.hasPrefix("-rw-------") }, "\(members)")
    }
}
