import Foundation
import SignetCore
import SignetTestSupport
import Testing
@testable import SignetAgentCore

/// `Prompting.confirm` (what the client policy asks with) and the pieces of the pinentry client,
/// in process, against the scripted pinentry (`Tests/testdata/pinentry/fake-pinentry`).
@Suite("Prompting through pinentry, in process")
struct PromptingTests {
    /// A copy of the fake pinentry in a directory of its own, with `plan`.
    func fake(_ plan: [String]) throws -> (program: String, directory: URL) {
        let directory = try TestPaths.temporaryDirectory("signet-confirm")
        let program = directory.appendingPathComponent("fake-pinentry").path
        try TestPaths.copyExecutable(TestPaths.testData.appendingPathComponent("pinentry/fake-pinentry").path, to: program)
        try plan.map { $0 + "\n" }.joined().write(to: directory.appendingPathComponent("plan"), atomically: true, encoding: .utf8)
        return (program, directory)
    }

    @Test("confirm answers allow, allow for 5 minutes and deny for OK, the not-OK button and cancel; the buttons are named")
    func confirmButtons() throws {
        let (program, directory) = try fake(["ok", "notok", "cancel"])
        let screen = ClientEnvironment(display: ":99")
        #expect(Prompting.confirm("Allow thunderbird to sign?", for: screen, timeout: 5, program: program) == .allow)
        #expect(Prompting.confirm("Allow thunderbird to sign?", for: screen, timeout: 5, program: program) == .allowFor5Minutes)
        #expect(Prompting.confirm("Allow thunderbird to sign?", for: screen, timeout: 5, program: program) == .deny)
        let log = try String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)
        for line in ["SETDESC Allow thunderbird to sign?", "SETOK Allow", "SETNOTOK Allow for 5 minutes", "SETCANCEL Deny", "SETTIMEOUT 5", "CONFIRM"] {
            #expect(log.contains(line + "\n"), "\(line) missing from \(log)")
        }
    }

    @Test("confirm times out (the pinentry killed), fails as cancelled when the pinentry dies, and answers nowhere-to-ask at once without a screen or terminal")
    func confirmEnds() throws {
        let (program, _) = try fake(["hang", "die"])
        let screen = ClientEnvironment(display: ":99")
        let start = Date()
        #expect(Prompting.confirm("Allow?", for: screen, timeout: 1, program: program) == .timedOut)
        #expect(Date().timeIntervalSince(start) < 6)
        #expect(Prompting.confirm("Allow?", for: screen, timeout: 5, program: program) == .cancelled)
        let quick = Date()
        #expect(Prompting.confirm("Allow?", for: .none, timeout: 5, program: program) == .nowhereToAsk)
        #expect(Date().timeIntervalSince(quick) < 1)
    }

    @Test("Assuan arguments escape %, CR, LF and other control bytes, and are cut at a whole character to fit 1000 bytes")
    func escaping() {
        #expect(PinentrySession.line("SETDESC", "50% off\r\nnext\u{1}") == "SETDESC 50%25 off%0D%0Anext%01")
        let long = PinentrySession.line("SETDESC", String(repeating: "é", count: 600))
        #expect(long.utf8.count <= 999 && long.hasSuffix("é"))
        #expect(PinentrySession.classify("ERR 83886179 Operation cancelled <Pinentry>") == .cancelled)
        #expect(PinentrySession.classify("ERR 83886142 Timeout <Pinentry>") == .timedOut)
        #expect(PinentrySession.classify("ERR 83918950 Inappropriate ioctl for device <Pinentry>") == .noTerminal("Inappropriate ioctl for device <Pinentry>"))
    }

    @Test("A client's environment is checked: a tty must be a terminal of the caller's, a Wayland socket a socket, names well formed")
    func environmentChecks() throws {
        let uid = getuid()
        let good = ClientEnvironment(entries: [("tty", "/dev/null"), ("DISPLAY", ":0.0"), ("TERM", "xterm-256color")], uid: uid)
        // /dev/null is a character device of root's: a terminal of the caller's only when the caller is root.
        #expect((good.tty != nil) == (uid == 0))
        #expect(good.display == ":0.0" && good.term == "xterm-256color")
        let bad = ClientEnvironment(entries: [("tty", "/etc/hostname"), ("DISPLAY", "host:0; rm"), ("TERM", "x\u{1b}[2J"),
                                              ("WAYLAND_DISPLAY", "../../etc"), ("XAUTHORITY", "relative"), ("LD_PRELOAD", "/x.so")],
                                    uid: uid, runtimeDirectory: "/tmp")
        #expect(bad == ClientEnvironment(runtimeDirectory: "/tmp").with(refused: bad.refused))
        #expect(bad.refused.count == 6, "\(bad.refused)")
        let other = ClientEnvironment(entries: [("tty", "/dev/null")], uid: uid + 1)
        #expect(other.tty == nil && other.refused.first?.contains("belongs to uid") == true)
        #expect(Prompting.program(configured: nil, for: bad) == nil)
    }
}

extension ClientEnvironment {
    func with(refused: [String]) -> ClientEnvironment {
        var copy = self
        copy.refused = refused
        return copy
    }
}
