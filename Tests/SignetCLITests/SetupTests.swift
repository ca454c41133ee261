import Foundation
import SignetTestSupport
import Testing

/// `signet setup` in a home of its own, with real NSS databases made by certutil and checked with modutil.
/// The module it registers is a copy of SoftHSM2 named libsignet-pkcs11.so: modutil loads what it adds,
/// so it has to be a real PKCS#11 module (Signet's own front end is built by another target).
@Suite("signet setup")
final class SetupTests {
    let home: URL
    let environment: [String: String]
    let module: String
    var signet: String { TestPaths.binaries.appendingPathComponent("signet").path }

    /// The profiles made: a Thunderbird one (a database and profiles.ini), a flatpak Thunderbird one
    /// (a database, listed in its profiles.ini), a classic Firefox one (no database yet, but installs.ini names
    /// it as its install's default), and a Firefox one under $XDG_CONFIG_HOME laid out as Firefox ESR 153 makes
    /// its first profile: profiles.ini names it and a legacy `*.default` profile that holds only times.json.
    var thunderbird: String { home.path + "/.thunderbird/x.default-esr" }
    var flatpakThunderbird: String { home.path + "/.var/app/org.mozilla.Thunderbird/.thunderbird/z.default" }
    var firefox: String { home.path + "/.mozilla/firefox/y.default-release" }
    var xdgFirefoxBase: String { home.path + "/config/mozilla/firefox" }
    var xdgFirefox: String { xdgFirefoxBase + "/w.default-esr" }
    /// Named in profiles.ini but never opened by Firefox: setup makes no database here.
    var legacyFirefox: String { xdgFirefoxBase + "/l.default" }
    /// A folder with a database that no profiles.ini names: setup leaves it alone.
    var strayThunderbird: String { home.path + "/.var/app/org.mozilla.Thunderbird/.thunderbird/stray.old" }
    var chromium: String { home.path + "/.pki/nssdb" }
    var databases: [String] { [thunderbird, flatpakThunderbird, firefox, xdgFirefox, chromium] }
    var agentConfig: String { home.path + "/.gnupg/gpg-agent.conf" }
    let ownAgentLines = "# my settings\ndefault-cache-ttl 600\npinentry-program /usr/bin/pinentry-tty\n"

    init() throws {
        home = try TestPaths.temporaryDirectory("signet-setup-home")
        let files = FileManager.default
        try files.createDirectory(atPath: home.path + "/tokens", withIntermediateDirectories: true)
        try "directories.tokendir = \(home.path)/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
            .write(toFile: home.path + "/softhsm2.conf", atomically: true, encoding: .utf8)
        module = home.path + "/lib/libsignet-pkcs11.so"
        try files.createDirectory(atPath: home.path + "/lib", withIntermediateDirectories: true)
        let softhsm = URL(fileURLWithPath: "/usr/lib/softhsm/libsofthsm2.so").resolvingSymlinksInPath().path
        try files.copyItem(atPath: softhsm, toPath: module)

        var env = TestPaths.userEnvironment(home: home)
        env["SOFTHSM2_CONF"] = home.path + "/softhsm2.conf"
        env["SIGNET_FRONTEND_MODULE"] = module
        env["GNUPGHOME"] = nil
        environment = env

        for profile in [thunderbird, flatpakThunderbird, firefox, xdgFirefox, legacyFirefox, strayThunderbird] {
            try files.createDirectory(atPath: profile, withIntermediateDirectories: true)
        }
        for database in [thunderbird, flatpakThunderbird, xdgFirefox, strayThunderbird] {
            try Run.checked("certutil", ["-N", "--empty-password", "-d", "sql:" + database], environment: env)
        }
        try "[General]\nStartWithLastProfile=1\n\n[Profile0]\nName=default-esr\nIsRelative=1\nPath=x.default-esr\nDefault=1\n"
            .write(toFile: home.path + "/.thunderbird/profiles.ini", atomically: true, encoding: .utf8)
        try "[Profile0]\r\nName=default\r\nIsRelative=1\r\nPath=z.default\r\n"
            .write(toFile: home.path + "/.var/app/org.mozilla.Thunderbird/.thunderbird/profiles.ini", atomically: true, encoding: .utf8)
        try "[Profile0]\nName=default-release\nIsRelative=1\nPath=y.default-release\n"
            .write(toFile: home.path + "/.mozilla/firefox/profiles.ini", atomically: true, encoding: .utf8)
        try "[4F96D1932A9F858E]\nDefault=y.default-release\nLocked=1\n"
            .write(toFile: home.path + "/.mozilla/firefox/installs.ini", atomically: true, encoding: .utf8)
        // Firefox ESR 153's own first-run files, as it wrote them in a fresh home (profile names shortened).
        try """
            [Profile1]
            Name=default
            IsRelative=1
            Path=l.default
            Default=1

            [Profile0]
            Name=default-esr
            IsRelative=1
            Path=w.default-esr

            [General]
            StartWithLastProfile=1
            Version=2

            [Install3B6073811A6ABF12]
            Default=w.default-esr
            Locked=1

            """.write(toFile: xdgFirefoxBase + "/profiles.ini", atomically: true, encoding: .utf8)
        try "".write(toFile: legacyFirefox + "/times.json", atomically: true, encoding: .utf8)
        try files.createDirectory(atPath: home.path + "/.gnupg", withIntermediateDirectories: true)
        try ownAgentLines.write(toFile: agentConfig, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(at: home) }

    func setup(_ arguments: [String] = []) throws -> Run.Result {
        try Run.command(signet, ["setup"] + arguments, environment: environment, timeout: 60)
    }

    /// How many modules named Signet `modutil -list` shows in the database (0 when there is none).
    func signetEntries(_ directory: String) throws -> Int {
        guard FileManager.default.fileExists(atPath: directory + "/cert9.db") else { return 0 }
        let listing = try Run.checked("modutil", ["-list", "-dbdir", "sql:" + directory], environment: environment).output
        return listing.split(separator: "\n").filter { $0.range(of: #"^\s+\d+\. Signet$"#, options: .regularExpression) != nil }.count
    }

    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// A process that stays alive for the test (a Thunderbird stand-in), killed at the end by the caller.
    func sleeper() throws -> pid_t {
        try AgentFixture.spawn("/bin/sleep", ["120"], environment: environment, log: home.path + "/sleep.log")
    }

    @Test("setup registers Signet once in every NSS database (profiles, the flatpak one, one listed only in profiles.ini, ~/.pki/nssdb); again, it stays once")
    func registersOnce() throws {
        let first = try setup()
        #expect(first.status == 0, "\(first.errors)")
        for database in databases { #expect(try signetEntries(database) == 1, "\(database): \(first.output)") }
        #expect(first.output.contains("Thunderbird profile x.default-esr: registered"), "\(first.output)")
        #expect(first.output.contains("Thunderbird (flatpak) profile z.default: registered"), "\(first.output)")
        #expect(first.output.contains("Firefox profile y.default-release: registered"), "\(first.output)")
        #expect(first.output.contains("Firefox profile w.default-esr: registered"), "\(first.output)")
        #expect(first.output.contains("~/.pki/nssdb: created, registered"), "\(first.output)")

        let second = try setup()
        #expect(second.status == 0, "\(second.errors)")
        for database in databases { #expect(try signetEntries(database) == 1, "\(database): \(second.output)") }
        #expect(second.output.contains("Thunderbird profile x.default-esr: already registered"), "\(second.output)")
        #expect(second.output.contains("~/.pki/nssdb: already registered"), "\(second.output)")
    }

    @Test("An entry for libsignet-pkcs11.so elsewhere (an older install) is replaced, not kept beside the new one")
    func replacesStaleEntry() throws {
        let old = home.path + "/old/libsignet-pkcs11.so"  // found by what Signet wrote (its library's file name), not by its name
        try FileManager.default.createDirectory(atPath: home.path + "/old", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: module, toPath: old)
        try Run.checked("modutil", ["-dbdir", "sql:" + thunderbird, "-add", "Signet", "-libfile", old, "-force"], environment: environment)
        let result = try setup()
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("Thunderbird profile x.default-esr: registered (replaced the entry for \(old))"), "\(result.output)")
        let listing = try Run.checked("modutil", ["-list", "-dbdir", "sql:" + thunderbird], environment: environment).output
        #expect(listing.contains("library name: \(module)") && !listing.contains("library name: \(old)"), "\(listing)")
        #expect(try signetEntries(thunderbird) == 1)
    }

    @Test("A profile whose Thunderbird runs (its lock names a live pid) is refused and left untouched; the others are registered, and the exit status is 1")
    func refusesRunningProfile() throws {
        let pid = try sleeper()
        defer { kill(pid, SIGKILL); waitpid(pid, nil, 0) }
        try FileManager.default.createSymbolicLink(atPath: thunderbird + "/lock", withDestinationPath: "127.0.0.1:+\(pid)")
        let before = read(thunderbird + "/pkcs11.txt")
        let result = try setup()
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("Thunderbird profile x.default-esr: in use by Thunderbird (pid \(pid)): quit Thunderbird first"), "\(result.output)")
        #expect(result.errors.contains("1 of 8 targets was left as it was"), "\(result.errors)")
        #expect(read(thunderbird + "/pkcs11.txt") == before)
        #expect(try signetEntries(thunderbird) == 0)
        for database in [flatpakThunderbird, firefox, xdgFirefox, chromium] { #expect(try signetEntries(database) == 1, "\(database)") }
    }

    @Test("A lock left by a Thunderbird that is gone (a dead pid) does not stop setup")
    func staleLockIgnored() throws {
        let pid = try AgentFixture.spawn("/bin/true", [], environment: environment, log: home.path + "/true.log")
        waitpid(pid, nil, 0)
        try FileManager.default.createSymbolicLink(atPath: thunderbird + "/lock", withDestinationPath: "127.0.0.1:+\(pid)")
        let result = try setup()
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(try signetEntries(thunderbird) == 1)
    }

    @Test("Only the profiles a profiles.ini names and its program uses get an entry: no database is made in Firefox's unused legacy profile or in a folder no profiles.ini names")
    func onlyUsedProfiles() throws {
        let strayBefore = try Data(contentsOf: URL(fileURLWithPath: strayThunderbird + "/pkcs11.txt"))
        let result = try setup()
        #expect(result.status == 0, "\(result.errors)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: legacyFirefox) == ["times.json"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: strayThunderbird + "/pkcs11.txt")) == strayBefore)
        #expect(!result.output.contains("l.default") && !result.output.contains("stray.old"), "\(result.output)")
    }

    /// A PATH holding only the NSS tools setup runs (links to them), so that no Firefox or Thunderbird is found.
    func pathWithoutPrograms() throws -> String {
        let bin = home.path + "/tools"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["modutil", "certutil"] { try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: "/usr/bin/" + tool) }
        return bin
    }

    @Test("A program with no profile gets a line: installed and never started, 'no profile yet'; not installed, 'not installed'")
    func programWithoutProfile() throws {
        try FileManager.default.removeItem(atPath: xdgFirefoxBase)
        try FileManager.default.removeItem(atPath: home.path + "/.mozilla")
        // Debian's firefox-esr (scripts/setup-debian installs it) is the installed Firefox.
        let installed = try setup()
        #expect(installed.status == 0, "\(installed.errors)")
        #expect(installed.output.contains("Firefox: no profile yet — start Firefox once, then run `signet setup` again"), "\(installed.output)")

        var environment = environment
        environment["PATH"] = try pathWithoutPrograms()
        let absent = try Run.command(signet, ["setup"], environment: environment, timeout: 60)
        #expect(absent.status == 0, "\(absent.errors)")
        #expect(absent.output.contains("Firefox: not installed (no firefox or firefox-esr in PATH, no snap or flatpak of it)"), "\(absent.output)")
        #expect(!absent.output.contains("Thunderbird:"), "\(absent.output)")
    }

    @Test("The p11-kit module file names the module, is not critical, and is disabled in signet-agent and signet")
    func p11KitModuleFile() throws {
        let result = try setup()
        #expect(result.status == 0, "\(result.errors)")
        let text = try #require(read(home.path + "/config/pkcs11/modules/signet.module"))
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("module: \(module)"), "\(text)")
        #expect(lines.contains("critical: no"), "\(text)")
        #expect(lines.contains("disable-in: signet-agent signet"), "\(text)")
        #expect(lines.allSatisfy { $0.hasPrefix("#") || $0.contains(": ") }, "\(text)")

        let system = try setup(["--system-file", "-"])
        #expect(system.status == 0, "\(system.errors)")
        #expect(system.output.contains("module: \(module)\ncritical: no\ndisable-in: signet-agent signet\n"), "\(system.output)")
    }

    @Test("gnupg-pkcs11-scd.conf names the module as provider signet, gpg-agent.conf gains scdaemon-program, and the user's own lines stay")
    func gnupgLines() throws {
        let result = try setup()
        #expect(result.status == 0, "\(result.errors)")
        let daemon = try #require(read(home.path + "/.gnupg/gnupg-pkcs11-scd.conf"))
        #expect(daemon.split(separator: "\n").contains("providers signet"), "\(daemon)")
        #expect(daemon.split(separator: "\n").contains("provider-signet-library \(module)"), "\(daemon)")
        let agent = try #require(read(agentConfig))
        #expect(agent.hasPrefix(ownAgentLines), "\(agent)")
        #expect(agent.split(separator: "\n").filter { $0 == "scdaemon-program /usr/bin/gnupg-pkcs11-scd" }.count == 1, "\(agent)")
        _ = try setup()
        #expect(read(agentConfig) == agent)
    }

    @Test("A scdaemon-program of the user's own is not replaced, and setup says so")
    func ownScdaemonKept() throws {
        let own = ownAgentLines + "scdaemon-program /usr/lib/gnupg/scdaemon\n"
        try own.write(toFile: agentConfig, atomically: true, encoding: .utf8)
        let result = try setup()
        #expect(result.status == 0, "\(result.errors)")
        #expect(read(agentConfig) == own)
        #expect(result.output.contains("gpg-agent (~/.gnupg/gpg-agent.conf): uses scdaemon-program /usr/lib/gnupg/scdaemon (a line of your own); left as it is"), "\(result.output)")
    }

    @Test("setup --undo removes every registration and Signet's lines, and keeps the user's own")
    func undoRemovesAll() throws {
        #expect(try setup().status == 0)
        let undo = try setup(["--undo"])
        #expect(undo.status == 0, "\(undo.output)\(undo.errors)")
        for database in databases { #expect(try signetEntries(database) == 0, "\(database): \(undo.output)") }
        #expect(!FileManager.default.fileExists(atPath: home.path + "/config/pkcs11/modules/signet.module"))
        #expect(!FileManager.default.fileExists(atPath: home.path + "/.gnupg/gnupg-pkcs11-scd.conf"))
        #expect(read(agentConfig) == ownAgentLines)
        let again = try setup(["--undo"])
        #expect(again.status == 0)
        #expect(again.output.contains("Thunderbird profile x.default-esr: not registered"), "\(again.output)")
    }

    /// A root CA made by openssl: its PEM file and SHA-1 fingerprint (40 hex digits).
    func makeRoot(_ name: String) throws -> (pem: String, sha1: String) {
        let pem = home.path + "/\(name).pem"
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", home.path + "/\(name).key", "-out", pem,
                                    "-subj", "/O=\(name)/CN=\(name) Root", "-days", "5"])
        let fingerprint = try Run.checked("openssl", ["x509", "-in", pem, "-noout", "-fingerprint", "-sha1"]).output
        return (pem, String(fingerprint.split(separator: "=").last ?? "").filter(\.isHexDigit).uppercased())
    }

    /// `certutil -L`: nickname → trust, for the database's own certificates.
    func nssCertificates(_ directory: String) throws -> [String: String] {
        let listing = try Run.checked("certutil", ["-L", "-d", "sql:" + directory], environment: environment).output
        var found: [String: String] = [:]
        for line in listing.split(separator: "\n").dropFirst(2) {  // after the two header lines
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let trust = words.last else { continue }
            found[words.dropLast().joined(separator: " ")] = String(trust)
        }
        return found
    }

    /// `AB:CD:…`, as gpg-agent writes trustlist.txt.
    func colons(_ hex: String) -> String {
        stride(from: 0, to: hex.count, by: 2).map { String(Array(hex)[$0..<$0 + 2]) }.joined(separator: ":")
    }

    func keyboxHas(_ sha1: String) throws -> Bool {
        let listed = try Run.command("gpgsm", ["--batch", "--with-colons", "--list-keys", sha1], environment: environment, timeout: 30)
        return listed.status == 0 && listed.output.contains("fpr:::::::::\(sha1):")
    }

    @Test("--trust-roots adds Signet's roots to every NSS database (,C,), the trustlist (S) and gpgsm's keybox; --undo takes out exactly those, and a root the user had stays as it was")
    func trustRoots() throws {
        defer { _ = try? Run.command("gpgconf", ["--kill", "all"], environment: environment, timeout: 30) }
        let organisation = try makeRoot("Organisation"), users = try makeRoot("Users")
        // The user already has the second root: in one NSS database under a nickname and trust of their own, in
        // gpg-agent's trustlist, and in gpgsm's keybox.
        try Run.checked("certutil", ["-A", "-d", "sql:" + thunderbird, "-n", "My Corp Root", "-t", "CT,C,C", "-a", "-i", users.pem], environment: environment)
        let trustList = home.path + "/.gnupg/trustlist.txt"
        let ownTrustList = "# mine\r\n\(users.sha1) S relax\r\n"
        try ownTrustList.write(toFile: trustList, atomically: true, encoding: .utf8)
        try Run.checked("gpgsm", ["--batch", "--import", users.pem], environment: environment)
        for root in [organisation, users] {
            let added = try Run.command(signet, ["trust", "add", root.pem], environment: environment, timeout: 60)
            #expect(added.status == 0, "\(added.errors)")
        }

        let setUp = try setup(["--trust-roots"])
        #expect(setUp.status == 0, "\(setUp.output)\(setUp.errors)")
        for database in databases {
            let listed = try nssCertificates(database)
            let ours = listed.filter { $0.key.hasPrefix("Signet root ") }
            // Both roots, but in Thunderbird's database, which had the user's: only the organisation's.
            #expect(ours.count == (database == thunderbird ? 1 : 2) && ours.values.allSatisfy { $0 == ",C," }, "\(database): \(listed)\n\(setUp.output)")
        }
        let thunderbirdListed = try nssCertificates(thunderbird)
        #expect(thunderbirdListed["My Corp Root"] == "CT,C,C", "\(thunderbirdListed) \(setUp.output)")
        let listedTrust = try #require(read(trustList))
        #expect(listedTrust.contains(colons(organisation.sha1) + " S\r\n"), "\(listedTrust)")
        #expect(!listedTrust.contains(colons(users.sha1)), "\(listedTrust)")
        #expect(try keyboxHas(organisation.sha1) && keyboxHas(users.sha1))
        // Again: nothing more is added.
        let again = try setup(["--trust-roots"])
        #expect(again.status == 0 && again.output.contains("~/.pki/nssdb roots: already trusted"), "\(again.output)")
        #expect(try nssCertificates(chromium).filter { $0.key.hasPrefix("Signet root ") }.count == 2)

        let undo = try setup(["--undo"])
        #expect(undo.status == 0, "\(undo.output)\(undo.errors)")
        for database in databases {
            #expect(try nssCertificates(database).keys.allSatisfy { !$0.hasPrefix("Signet root ") }, "\(database): \(undo.output)")
        }
        #expect(try nssCertificates(thunderbird)["My Corp Root"] == "CT,C,C")
        #expect(read(trustList) == ownTrustList)
        #expect(try !keyboxHas(organisation.sha1))
        #expect(try keyboxHas(users.sha1))
        #expect(!FileManager.default.fileExists(atPath: home.path + "/state/signet/setup-roots"))
    }

    @Test("--trust-roots-for-web trusts the roots for web sites as well (C,C,), changing the trust of an entry it added before")
    func trustRootsForWeb() throws {
        let organisation = try makeRoot("Organisation")
        #expect(try Run.command(signet, ["trust", "add", organisation.pem], environment: environment, timeout: 60).status == 0)
        #expect(try setup(["--trust-roots"]).status == 0)
        let web = try setup(["--trust-roots-for-web"])
        #expect(web.status == 0, "\(web.output)\(web.errors)")
        #expect(web.output.contains("~/.pki/nssdb roots: now trusts O=Organisation,CN=Organisation Root for e-mail and web sites"), "\(web.output)")
        #expect(try nssCertificates(chromium).filter { $0.key.hasPrefix("Signet root ") }.values.first == "C,C,")
    }

    @Test("--trust-roots with no root in Signet's trust store says how to add one, and fails")
    func trustRootsEmpty() throws {
        let result = try setup(["--trust-roots"])
        #expect(result.status == 1)
        #expect(result.output.contains("roots: Signet's trust store has no root CA to add (add yours with `signet trust add ROOT.pem`)"), "\(result.output)")
    }

    @Test("--dry-run says what it would do and changes nothing")
    func dryRun() throws {
        let result = try setup(["--dry-run"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.contains("Thunderbird profile x.default-esr: would register"), "\(result.output)")
        for database in databases { #expect(try signetEntries(database) == 0) }
        #expect(read(agentConfig) == ownAgentLines)
        #expect(!FileManager.default.fileExists(atPath: home.path + "/config/pkcs11/modules/signet.module"))
    }

    @Test("Without the module, setup refuses and names where it looked")
    func moduleMissing() throws {
        var environment = environment
        environment["SIGNET_FRONTEND_MODULE"] = home.path + "/nowhere/libsignet-pkcs11.so"
        let result = try Run.command(signet, ["setup"], environment: environment, timeout: 60)
        #expect(result.status == 1)
        #expect(result.errors.contains("SIGNET_FRONTEND_MODULE is \(home.path)/nowhere/libsignet-pkcs11.so, which is not a file"), "\(result.errors)")
        #expect(try signetEntries(thunderbird) == 0)
    }
}
