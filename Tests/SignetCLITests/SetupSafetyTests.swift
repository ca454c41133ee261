import Foundation
import SignetTestSupport
import Testing

/// `signet setup` never loses a user's file (issue 28, item 7): each case compares the file's bytes before and
/// after, and `setup --undo` leaves every file it touched byte for byte as it was.
extension SetupTests {
    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Every file setup may touch, by path, with its bytes (nil: absent).
    func snapshot() -> [String: Data?] {
        var files = [home.path + "/config/pkcs11/modules/signet.module", agentConfig, home.path + "/.gnupg/gnupg-pkcs11-scd.conf"]
        files += [thunderbird, flatpakThunderbird, xdgFirefox, strayThunderbird].map { $0 + "/pkcs11.txt" }
        return Dictionary(uniqueKeysWithValues: files.map { ($0, bytes($0)) })
    }

    @Test("setup then --undo leaves every file byte for byte as it was: pkcs11.txt of each profile, the module file, both GnuPG files")
    func undoRestoresEveryByte() throws {
        let before = snapshot()
        #expect(try setup().status == 0)
        #expect(snapshot() != before)
        let undo = try setup(["--undo"])
        #expect(undo.status == 0, "\(undo.output)\(undo.errors)")
        for (path, data) in snapshot() { #expect(data == before[path]!, "\(path) differs after undo") }
    }

    @Test("A gpg-agent.conf over 1 MiB is left as it is, byte for byte, and setup says so (exit 1)")
    func largeAgentConfigKept() throws {
        let large = Data(repeating: UInt8(ascii: "#"), count: (1 << 20) + 10) + Data("\n".utf8)
        try large.write(to: URL(fileURLWithPath: agentConfig))
        let result = try setup()
        #expect(result.status == 1, "\(result.output)")
        #expect(bytes(agentConfig) == large)
        #expect(result.output.contains("gpg-agent (~/.gnupg/gpg-agent.conf): ~/.gnupg/gpg-agent.conf is larger than 1 MiB, more than setup edits; left as it is"),
                "\(result.output)")
        let undo = try setup(["--undo"])
        #expect(bytes(agentConfig) == large, "\(undo.output)")
    }

    @Test("An unreadable gpg-agent.conf is left as it is and named, not replaced by Signet's lines")
    func unreadableAgentConfigKept() throws {
        let own = Data(ownAgentLines.utf8)
        chmod(agentConfig, 0)
        defer { chmod(agentConfig, 0o600) }
        // As root (CI), read permission is not checked: setup runs without the capabilities that skip it.
        let (program, arguments) = getuid() == 0
            ? ("/usr/bin/setpriv", ["--bounding-set", "-dac_override,-dac_read_search", signet, "setup"])
            : (signet, ["setup"])
        let result = try Run.command(program, arguments, environment: environment, timeout: 60)
        #expect(result.status == 1, "\(result.output)\(result.errors)")
        #expect(result.output.contains("gpg-agent (~/.gnupg/gpg-agent.conf): ~/.gnupg/gpg-agent.conf cannot be read (Permission denied); left as it is"),
                "\(result.output)")
        chmod(agentConfig, 0o600)
        #expect(bytes(agentConfig) == own)
    }

    @Test("CRLF files: the user's own scdaemon-program and providers lines are seen, and the files are not changed")
    func crlfOwnLinesSeen() throws {
        let agent = Data("# mine\r\nscdaemon-program /usr/lib/gnupg/scdaemon\r\n".utf8)
        let daemon = Data("providers own\r\nprovider-own-library /usr/lib/own.so\r\n".utf8)
        try agent.write(to: URL(fileURLWithPath: agentConfig))
        try daemon.write(to: URL(fileURLWithPath: home.path + "/.gnupg/gnupg-pkcs11-scd.conf"))
        let result = try setup()
        #expect(result.output.contains("uses scdaemon-program /usr/lib/gnupg/scdaemon (a line of your own); left as it is"), "\(result.output)")
        #expect(result.output.contains("has a providers line of your own (own); left as it is"), "\(result.output)")
        #expect(bytes(agentConfig) == agent)
        #expect(bytes(home.path + "/.gnupg/gnupg-pkcs11-scd.conf") == daemon)
    }

    @Test("A CRLF gpg-agent.conf gains Signet's lines with CRLF, and undo gives back its bytes")
    func crlfBlockUndone() throws {
        let agent = Data("# mine\r\ndefault-cache-ttl 600\r\n".utf8)
        try agent.write(to: URL(fileURLWithPath: agentConfig))
        #expect(try setup().status == 0)
        let text = try #require(bytes(agentConfig))
        #expect(String(decoding: text, as: UTF8.self).contains("\r\nscdaemon-program /usr/bin/gnupg-pkcs11-scd\r\n"))
        #expect(try setup(["--undo"]).status == 0)
        #expect(bytes(agentConfig) == agent)
    }

    @Test("A Latin-1 gpg-agent.conf whose last line has no line end survives setup and undo byte for byte")
    func latin1Undone() throws {
        let agent = Data([0x23, 0x20, 0x47, 0x72, 0xFC, 0xDF, 0x65, 0x0A]) + Data("default-cache-ttl 600".utf8)  // "# Grüße\n…" in Latin-1
        try agent.write(to: URL(fileURLWithPath: agentConfig))
        #expect(try setup().status == 0)
        let registered = try #require(bytes(agentConfig))
        #expect(registered.prefix(agent.count) == agent)
        #expect(String(decoding: registered, as: UTF8.self).split(separator: "\n").contains("scdaemon-program /usr/bin/gnupg-pkcs11-scd"))
        #expect(try setup(["--undo"]).status == 0)
        #expect(bytes(agentConfig) == agent)
    }

    @Test("A module of the user's own named Signet (another library) is kept by setup and by undo; Signet's entry gets another name")
    func ownModuleNamedSignetKept() throws {
        let own = home.path + "/own/libmytoken.so"
        try FileManager.default.createDirectory(atPath: home.path + "/own", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: module, toPath: own)
        try Run.checked("modutil", ["-dbdir", "sql:" + thunderbird, "-add", "Signet", "-libfile", own, "-force"], environment: environment)
        let before = bytes(thunderbird + "/pkcs11.txt")
        let result = try setup()
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let listing = try Run.checked("modutil", ["-list", "-dbdir", "sql:" + thunderbird], environment: environment).output
        #expect(listing.contains("library name: \(own)") && listing.contains("library name: \(module)"), "\(listing)")
        #expect(listing.contains("Signet (agent)"), "\(listing)")
        let undo = try setup(["--undo"])
        #expect(undo.status == 0, "\(undo.output)\(undo.errors)")
        #expect(bytes(thunderbird + "/pkcs11.txt") == before)
    }

    @Test("~/.pki/nssdb with key4.db but no cert9.db: setup finishes (no tool waits on a terminal) and registers")
    func keyDatabaseOnly() throws {
        try FileManager.default.createDirectory(atPath: chromium, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: thunderbird + "/key4.db", toPath: chromium + "/key4.db")
        let result = try setup()
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(try signetEntries(chromium) == 1)
    }

    @Test("A second setup while one runs is refused at once and changes nothing")
    func secondSetupRefused() throws {
        let lockPath = home.path + "/state/signet/setup.lock"
        try FileManager.default.createDirectory(atPath: home.path + "/state/signet", withIntermediateDirectories: true)
        // The lock as a running setup holds it: an fcntl write lock, here held by the test's own process.
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        #expect(fcntl(fd, F_SETLK, &lock) == 0)
        let before = snapshot()
        let result = try setup()
        #expect(result.status == 1, "\(result.output)\(result.errors)")
        #expect(result.errors.contains("Another `signet setup` is running (pid \(getpid())); nothing was changed."), "\(result.errors)")
        for (path, data) in snapshot() { #expect(data == before[path]!, "\(path) changed") }
        #expect(try signetEntries(thunderbird) == 0)
    }

    @Test("A full disk during undo: modutil exits 0 but empties pkcs11.txt; setup sees it, puts the file back and fails")
    func fullDiskUndo() throws {
        // ~/.pki is a 400 KiB tmpfs of its own (a mount namespace: no root needed), filled before the undo.
        let script = """
            set -u
            mount -t tmpfs -o size=400k tmpfs "$HOME/.pki" || exit 97
            mkdir "$HOME/.pki/nssdb"
            modutil -dbdir "sql:$HOME/.pki/nssdb" -add "Own token" -libfile "$OWN" -force </dev/null >/dev/null || exit 98
            "$SIGNET" setup >"$HOME/setup.out" 2>&1 || exit 99
            cp "$HOME/.pki/nssdb/pkcs11.txt" "$HOME/registered.txt"
            dd if=/dev/zero of="$HOME/.pki/fill" bs=4k 2>/dev/null
            "$SIGNET" setup --undo >"$HOME/undo.out" 2>&1
            echo "undo status $?" >>"$HOME/undo.out"
            cp "$HOME/.pki/nssdb/pkcs11.txt" "$HOME/after.txt"
            """
        try FileManager.default.createDirectory(atPath: home.path + "/.pki", withIntermediateDirectories: true)
        let own = home.path + "/own-token.so"
        try FileManager.default.copyItem(atPath: module, toPath: own)
        var environment = environment
        environment["SIGNET"] = signet
        environment["OWN"] = own
        let run = try Run.command("/usr/bin/unshare", ["--user", "--map-root-user", "--mount", "/bin/bash", "-c", script], environment: environment, timeout: 120)
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        let undo = try String(contentsOfFile: home.path + "/undo.out", encoding: .utf8)
        #expect(undo.contains("undo status 1"), "\(undo)")
        #expect(undo.contains("~/.pki/nssdb: modutil -delete Signet reported success, but pkcs11.txt does not list what it should"), "\(undo)")
        #expect(undo.contains("~/.pki/nssdb/pkcs11.txt was put back as it was"), "\(undo)")
        let registered = try #require(bytes(home.path + "/registered.txt"))
        #expect(String(decoding: registered, as: UTF8.self).contains("name=Own token"))
        #expect(bytes(home.path + "/after.txt") == registered)
    }
}
