import Foundation
@testable import SignetSetup
import SignetTestSupport
import Testing

/// The NSS module lists, the tool runner's bounds, and where the module is looked for.
@Suite("Setup: NSS entries, tools, module path")
struct SetupToolTests {
    @Test("pkcs11.txt entries (as NSS writes them, and with CRLF), and which are Signet's: by library, not by name")
    func nssEntries() {
        let text = "library=\nname=NSS Internal PKCS #11 Module\nparameters=x\n\nlibrary=/opt/mine/libmine.so\nname=Signet\r\n\r\n"
            + "library=/usr/lib/x86_64-linux-gnu/pkcs11/libsignet-pkcs11.so\nname=Signet (agent)\n"
        let entries = NSSModules.parse(pkcs11Text: text)
        #expect(entries.map(\.name) == ["NSS Internal PKCS #11 Module", "Signet", "Signet (agent)"])
        #expect(entries.filter { NSSModules.isSignet($0, module: nil) }.map(\.library) == ["/usr/lib/x86_64-linux-gnu/pkcs11/libsignet-pkcs11.so"])
        #expect(NSSModules.isSignet(.init(name: "x", library: "/build/other-name.so"), module: "/build/other-name.so"))
        #expect(NSSModules.freeName(in: []) == "Signet")
        #expect(NSSModules.freeName(in: entries) == "Signet (agent) 2")
    }

    @Test("A tool that opens the terminal gets none (a session of its own), and reads /dev/null")
    func noTerminal() {
        // A session of its own (its session id is its pid) has no controlling terminal, whatever the caller has.
        let session = SetupTool.run("/bin/sh", ["-c", "echo $$ $(cut -d' ' -f6 /proc/$$/stat)"], timeout: 10)
        let ids = session.output.split(separator: " ")
        #expect(ids.count == 2 && ids[0] == ids[1], "\(session.output)")
        let tty = SetupTool.run("/bin/sh", ["-c", "(: </dev/tty) 2>/dev/null && echo opened || echo no terminal"], timeout: 10)
        #expect(tty.output == "no terminal", "\(tty.output)")
        let input = SetupTool.run("/bin/sh", ["-c", "cat; echo end"], timeout: 10)
        #expect(input.status == 0 && input.output == "end", "\(input.output)")
    }

    @Test("A tool that runs past its bound is stopped, with the processes it started, and says so")
    func bounded() {
        let started = Date()
        let result = SetupTool.run("/bin/sh", ["-c", "sleep 30 & sleep 30; echo never"], timeout: 1)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(result.status == -1)
        #expect(result.output.hasPrefix("sh did not finish within 1 s and was stopped"), "\(result.output)")
    }

    @Test("p11-kit's module directory is found from the multiarch directory, and is the one p11-kit's pkg-config names")
    func moduleDirectory() throws {
        let expected = try Run.checked("pkg-config", ["--variable", "p11_module_path", "p11-kit-1"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(FrontEndModule.p11KitModuleDirectory() == expected)
        let arm = "ffff-ffff r-xp 0 fe:00 1 /lib/aarch64-linux-gnu/libc.so.6\n"
        #expect(FrontEndModule.p11KitModuleDirectory(maps: arm) == "/usr/lib/aarch64-linux-gnu/pkcs11")
        #expect(FrontEndModule.p11KitModuleDirectory(maps: "0-1 r-xp 0 0:0 1 /usr/lib/libc.so.6\n") == nil)
    }
}
