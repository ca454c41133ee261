@testable import SignetSetup
import Testing

/// The marked-line editing of gpg-agent.conf and gnupg-pkcs11-scd.conf, on bytes: every byte of the user's
/// survives adding and removing Signet's block.
@Suite("Setup: marked lines")
struct MarkedLinesTests {
    let lines = ["scdaemon-program /usr/bin/gnupg-pkcs11-scd"]

    /// Adds Signet's block to `original`, then removes it from what was written: the bytes must come back.
    func roundTrip(_ original: [UInt8]) -> (added: [UInt8], removed: [UInt8]) {
        let added = MarkedLines(bytes: original).bytes(with: lines)
        let reread = MarkedLines(bytes: added)
        #expect(reread.block == lines)
        return (added, reread.bytes(with: nil))
    }

    @Test("LF file: the block is appended, and removing it gives the file back")
    func plain() {
        let original = Array("# mine\ndefault-cache-ttl 600\n".utf8)
        let (added, removed) = roundTrip(original)
        #expect(String(decoding: added, as: UTF8.self) == "# mine\ndefault-cache-ttl 600\n\(MarkedLines.begin)\n\(lines[0])\n\(MarkedLines.end)\n")
        #expect(removed == original)
    }

    @Test("CRLF file: the user's lines are seen one by one, the block gets CRLF, and removing it gives the file back")
    func crlf() {
        let original = Array("# mine\r\nscdaemon-program /usr/lib/gnupg/scdaemon\r\n".utf8)
        #expect(MarkedLines(bytes: original).outsideValue(of: "scdaemon-program") == "/usr/lib/gnupg/scdaemon")
        let (added, removed) = roundTrip(original)
        #expect(String(decoding: added, as: UTF8.self).hasSuffix("\r\n\(lines[0])\r\n\(MarkedLines.end)\r\n"))
        #expect(removed == original)
    }

    @Test("Latin-1 bytes (not UTF-8) are kept as bytes, not turned into U+FFFD")
    func latin1() {
        let original: [UInt8] = [0x23, 0x20, 0x47, 0x72, 0xFC, 0xDF, 0x65, 0x0A]  // "# Grüße\n" in Latin-1
        let (added, removed) = roundTrip(original)
        #expect(Array(added.prefix(original.count)) == original)
        #expect(removed == original)
    }

    @Test("A last line without its line end: the block ends it, says so in its mark, and removing it takes the line end away again")
    func unendedLastLine() {
        let original = Array("default-cache-ttl 600".utf8)
        let (added, removed) = roundTrip(original)
        #expect(String(decoding: added, as: UTF8.self).hasPrefix("default-cache-ttl 600\n\(MarkedLines.beginAfterUnended)\n"))
        #expect(removed == original)
        #expect(roundTrip([]).removed == [])
    }

    @Test("Replacing the block keeps its place between the user's lines")
    func replaceInPlace() {
        let text = "a 1\n\(MarkedLines.begin)\nold line\n\(MarkedLines.end)\nb 2\n"
        let file = MarkedLines(bytes: Array(text.utf8))
        #expect(file.block == ["old line"])
        #expect(String(decoding: file.bytes(with: ["new line"]), as: UTF8.self) == "a 1\n\(MarkedLines.begin)\nnew line\n\(MarkedLines.end)\nb 2\n")
        #expect(String(decoding: file.bytes(with: nil), as: UTF8.self) == "a 1\nb 2\n")
    }

    @Test("A begin mark without its end is the user's text: no block, nothing removed")
    func beginWithoutEnd() {
        let text = Array("a 1\n\(MarkedLines.begin)\nmine\n".utf8)
        let file = MarkedLines(bytes: text)
        #expect(file.block == nil)
        #expect(file.bytes(with: nil) == text)
    }

    @Test("A key's value: the user's last line for it, not a comment, not a longer key, not one inside Signet's block")
    func values() {
        let text = "#scdaemon-program /commented\nscdaemon-programs /other\nscdaemon-program  /first \nscdaemon-program\t/second\n"
            + "\(MarkedLines.begin)\nscdaemon-program /ours\n\(MarkedLines.end)\n"
        #expect(MarkedLines(bytes: Array(text.utf8)).outsideValue(of: "scdaemon-program") == "/second")
        #expect(ConfigLines.value(of: "module", in: "# c\r\nmodule: /a.so\r\ncritical: no\r\n", separator: ":") == "/a.so")
    }
}
