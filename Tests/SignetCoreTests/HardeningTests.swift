import Foundation
import SignetCore
import SignetTestSupport
import Testing

/// `FileIO.writeAtomically` in a directory other users can write to (issue 19 #1): names they can guess and plant.
@Suite("Hardening: atomic writes in a shared directory")
struct AtomicWriteHardeningTests {
    let directory: String
    /// The temporary name Signet used to write `out` through: the one an attacker plants.
    var predictable: String { directory + "/out.tmp.\(getpid())" }
    var out: String { directory + "/out" }

    init() throws {
        directory = try TestPaths.temporaryDirectory("signet-shared").path
        chmod(directory, 0o1777)
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    /// The victim's own file, and a symlink to it planted at `link`.
    func plantVictim(at link: String) throws -> String {
        let victim = directory + "/victim"
        try "the victim's own file\n".write(toFile: victim, atomically: false, encoding: .utf8)
        #expect(symlink(victim, link) == 0)
        return victim
    }

    @Test("A symlink planted at the old temporary name is not followed: the victim's file keeps its content")
    func plantedSymlinkIsNotFollowed() throws {
        let victim = try plantVictim(at: predictable)
        #expect(FileIO.writeAtomically(out, text: "plaintext\n"))
        #expect(FileIO.readText(victim, limit: 100) == "the victim's own file\n")
        #expect(FileIO.readText(out, limit: 100) == "plaintext\n")
        #expect(mode(out) == 0o600)
    }

    @Test("A file open to all, pre-created at the old temporary name, is not used: the output is a new 0600 file")
    func precreatedFileIsNotUsed() throws {
        #expect(FileIO.writeAtomically(predictable, text: ""))
        #expect(chmod(predictable, 0o666) == 0)
        var planted = stat()
        #expect(stat(predictable, &planted) == 0)
        #expect(FileIO.writeAtomically(out, text: "plaintext\n"))
        var written = stat()
        #expect(stat(out, &written) == 0)
        #expect(written.st_ino != planted.st_ino)
        #expect(mode(out) == 0o600)
        #expect(FileIO.readText(predictable, limit: 100) == "")
    }

    @Test("A symlink planted at the output's own name is replaced, not written through")
    func symlinkAtTheDestinationIsReplaced() throws {
        let victim = try plantVictim(at: out)
        #expect(FileIO.writeAtomically(out, text: "plaintext\n"))
        #expect(FileIO.readText(victim, limit: 100) == "the victim's own file\n")
        #expect(mode(out) == 0o600)
        #expect(FileIO.names(in: directory).sorted() == ["out", "victim"])
    }

    @Test("Temporary files get distinct random names and never reuse an existing one")
    func temporaryNamesAreFresh() throws {
        var names: Set<String> = []
        for _ in 0..<20 {
            let made = try #require(FileIO.createTemporary(beside: out, mode: 0o600))
            close(made.fd)
            #expect(made.path != out + ".tmp.\(getpid())" && made.path != out + ".signet-\(getpid()).tmp")
            names.insert(made.path)
        }
        #expect(names.count == 20)
    }
}

/// Configuration numbers (issue 19 #11): `inf` and huge values once trapped converting to integers.
@Suite("Hardening: configuration values")
struct ConfigurationHardeningTests {
    let config = SignetConfig(parsing: "# comment\n\nwait = 30\nhuge = 1e300\nforever = inf\nnothing = nan\ncount = 12x\n", file: "/etc/signet/config")

    @Test("A number in range is read; a missing key is nil")
    func numberInRange() throws {
        #expect(try config.number("wait", in: 0...60) == 30)
        #expect(try config.number("absent", in: 0...60) == nil)
        #expect(try config.integer("wait", in: 1...100) == 30)
    }

    @Test("Huge, infinite, NaN and malformed values are refused, naming the file and the line")
    func badNumbersAreRefused() {
        for (key, line) in [("huge", 4), ("forever", 5), ("nothing", 6), ("count", 7)] {
            #expect {
                try config.number(key, in: 0...86_400)
            } throws: { error in
                "\(error)".hasPrefix("/etc/signet/config line \(line): \(key) = ") && "\(error)".hasSuffix(" is not a number from 0 to 86400")
            }
        }
        #expect(throws: SignetConfig.BadValue.self) { try config.integer("huge", in: 1...100) }
        #expect(throws: SignetConfig.BadValue.self) { try config.integer("wait", in: 1...10) }
    }
}
