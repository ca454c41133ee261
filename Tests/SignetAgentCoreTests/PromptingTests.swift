import Foundation
import SignetCore
import Synchronization
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

    /// The test process, as the agent identifies a caller: the prompts' places are checked against it.
    let me = PeerProcess.describe(pid: getpid(), uid: getuid())

    func question(_ program: String = "/usr/bin/thunderbird") -> ConfirmQuestion {
        ConfirmQuestion(program: program, pid: 4242, operation: "sign", key: "mail", token: "Demo")
    }

    @Test("confirm answers allow, allow for 5 minutes and deny for OK, the not-OK button and cancel; each button has its own accelerator")
    func confirmButtons() throws {
        let (program, directory) = try fake(["ok", "notok", "ok", "cancel", "notok", "cancel"])
        let display = try StandInDisplay()
        let screen = ClientEnvironment(display: display.name)
        let queue = PromptQueue()
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 5, program: program) == .allow)
        // The 5-minute button, then the OK of the question that asks for exactly that.
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 5, program: program) == .allowFor5Minutes)
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 5, program: program) == .deny)
        // The 5-minute button, then Deny at the second question.
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 5, program: program) == .deny)
        let log = try String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)
        for line in ["SETDESC /usr/bin/thunderbird (pid 4242) wants to sign with the key \"mail\" on Demo.", "SETOK _Allow once",
                     "SETNOTOK Allow for _5 minutes", "SETCANCEL _Deny", "SETTIMEOUT 5", "CONFIRM", "SETOK Allow for _5 minutes",
                     "SETDESC /usr/bin/thunderbird (pid 4242) wants to sign with the key \"mail\" on Demo.%0A%0AAllow this program to sign with this key, without asking, for the next 5 minutes?"] {
            #expect(log.contains(line + "\n"), "\(line) missing from \(log)")
        }
    }

    @Test("A pinentry that answers \"not confirmed\" without showing anything (pinentry-tty on a terminal it cannot open) grants nothing")
    func notConfirmedGrantsNothing() throws {
        let (program, directory) = try fake(["notok", "notok"])
        let display = try StandInDisplay()
        #expect(Prompting.confirm(question(), for: ClientEnvironment(display: display.name), caller: me, queue: PromptQueue(), timeout: 5,
                                  program: program) == .deny)
        #expect(lines(directory).filter { $0 == "CONFIRM" }.count == 2)
    }

    @Test("The accelerators are distinct: the letter after each _ differs, so no key answers for two buttons")
    func distinctAccelerators() {
        let letters = [Prompting.allowLabel, Prompting.allowFor5MinutesLabel, Prompting.denyLabel].map { label -> Character? in
            guard let mark = label.firstIndex(of: "_") else { return nil }
            return label[label.index(after: mark)].lowercased().first
        }
        #expect(!letters.contains(nil))
        #expect(Set(letters).count == 3, "\(letters)")
    }

    @Test("confirm times out (the pinentry killed), fails as cancelled when the pinentry dies, and answers nowhere-to-ask at once without a screen or terminal")
    func confirmEnds() throws {
        let (program, _) = try fake(["hang", "die"])
        let display = try StandInDisplay()
        let screen = ClientEnvironment(display: display.name)
        let queue = PromptQueue()
        let start = Date()
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 1, program: program) == .timedOut)
        #expect(Date().timeIntervalSince(start) < 6)
        #expect(Prompting.confirm(question(), for: screen, caller: me, queue: queue, timeout: 5, program: program) == .cancelled)
        let quick = Date()
        #expect(Prompting.confirm(question(), for: .none, caller: me, queue: queue, timeout: 5, program: program) == .nowhereToAsk)
        #expect(Date().timeIntervalSince(quick) < 1)
    }

    @Test("A program path with a newline, %0A and U+202E reaches the pinentry's SETDESC and title escaped, on one line")
    func spoofedProgramPath() throws {
        let (program, directory) = try fake(["cancel"])
        let display = try StandInDisplay()
        let forged = "/tmp/x\nSignet: verified mail program /usr/lib/thunderbird/thunderbird%0A\u{202E}gis.exe"
        let answer = Prompting.confirm(ConfirmQuestion(program: forged, pid: 7, operation: "sign", key: "k\ney", token: "T\u{1B}[2Jok"),
                                       for: ClientEnvironment(display: display.name), caller: me, queue: PromptQueue(), timeout: 5, program: program)
        #expect(answer == .deny)
        let log = try String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)
        let description = try #require(log.split(separator: "\n").first { $0.hasPrefix("SETDESC ") })
        // What pinentry receives: Console.safe's visible escapes, then Assuan's (%25 for the path's own %).
        #expect(description == #"SETDESC /tmp/x\nSignet: verified mail program /usr/lib/thunderbird/thunderbird%250A\u{202E}gis.exe (pid 7) wants to sign with the key "k\ney" on T\e[2Jok."#,
                "\(description)")
        #expect(!description.contains("%0A") && !description.contains("\u{202E}"))
        let title = try #require(log.split(separator: "\n").first { $0.hasPrefix("SETTITLE ") })
        #expect(!title.contains("%0A") && title.contains(#"\n"#), "\(title)")
    }

    /// The fake pinentry's log, one command a line.
    func lines(_ directory: URL) -> [String] {
        ((try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test("Two confirms for one screen: the second pinentry starts only after the first has ended, and each answer goes to its own")
    func confirmsTakeTurns() throws {
        let (program, directory) = try fake(["slowok 1.5", "notok", "ok"])
        let display = try StandInDisplay()
        let screen = ClientEnvironment(display: display.name)
        let queue = PromptQueue()
        let answers = Mutex<[String: ConfirmAnswer]>([:])
        let first = Thread {
            let answer = Prompting.confirm(self.question("/usr/bin/first"), for: screen, caller: self.me, queue: queue, timeout: 10, program: program)
            answers.withLock { $0["first"] = answer }
        }
        first.start()
        #expect(eventually(timeout: .seconds(10)) { self.lines(directory).contains("CONFIRM") })
        let second = Prompting.confirm(question("/usr/bin/second"), for: screen, caller: me, queue: queue, timeout: 10, program: program)
        #expect(eventually(timeout: .seconds(10)) { answers.withLock { $0["first"] } != nil })
        #expect(answers.withLock { $0["first"] } == .allow)
        #expect(second == .allowFor5Minutes)
        // One pinentry at a time: the second started after the first said goodbye, and each showed its own program.
        let log = lines(directory)
        let starts = log.indices.filter { log[$0].hasPrefix("start") }
        #expect(starts.count == 3, "one for the first, two for the second (its 5 minutes are asked again)")
        let bye = try #require(log.firstIndex(of: "BYE"))
        #expect(starts.count == 3 && bye < starts[1], "\(log)")
        #expect(log[..<bye].contains { $0.hasPrefix("SETDESC /usr/bin/first ") } && log[bye...].contains { $0.hasPrefix("SETDESC /usr/bin/second ") })
    }

    @Test("A confirm queued behind another prompt past its timeout is refused and never shown")
    func queuedConfirmTimesOut() throws {
        let (program, directory) = try fake(["hang", "ok"])
        let display = try StandInDisplay()
        let screen = ClientEnvironment(display: display.name)
        let queue = PromptQueue()
        let done = Mutex<ConfirmAnswer?>(nil)
        let holder = Thread {
            let answer = Prompting.confirm(self.question("/usr/bin/holder"), for: screen, caller: self.me, queue: queue, timeout: 4, program: program)
            done.withLock { $0 = answer }
        }
        holder.start()
        #expect(eventually(timeout: .seconds(10)) { self.lines(directory).contains("CONFIRM") })
        let start = Date()
        let queued = Prompting.confirm(question("/usr/bin/queued"), for: screen, caller: me, queue: queue, timeout: 1, program: program)
        #expect(Date().timeIntervalSince(start) < 3)
        guard case .timedOutWaiting(let why) = queued else { Issue.record("answered \(queued)"); return }
        #expect(why.contains("behind a prompt for /usr/bin/holder on display \(display.name)") || why.contains("behind a prompt for"), "\(why)")
        #expect(lines(directory).filter { $0.hasPrefix("start") }.count == 1, "the queued prompt was shown")
        #expect(eventually(timeout: .seconds(10)) { done.withLock { $0 } != nil })
        #expect(done.withLock { $0 } == .timedOut)
    }

    @Test("Different places do not wait for each other; :N, :N.0 and unix:N are one place")
    func placesAreIndependent() throws {
        let queue = PromptQueue()
        let a = try queue.turn(at: ClientEnvironment(display: ":71").places, for: "a", until: MonotonicClock.seconds() + 1)
        let b = try queue.turn(at: ClientEnvironment(tty: "/dev/pts/99").places, for: "b", until: MonotonicClock.seconds() + 1)
        #expect(throws: PromptQueue.Waited.self) { try queue.turn(at: ClientEnvironment(display: "unix:71.0").places, for: "c", until: MonotonicClock.seconds() + 0.2) }
        a.end()
        let c = try queue.turn(at: ClientEnvironment(display: ":71.0").places, for: "c", until: MonotonicClock.seconds() + 1)
        c.end(); b.end()
    }

    @Test("At the prompt's start, a terminal must be the caller's own and still its own; a display must have a live socket of the caller's or root's")
    func placesCheckedAtStart() throws {
        // A terminal this process holds open: the caller's.
        let terminal = try PseudoTerminal()
        let name = terminal.path
        #expect(PromptPlaces.terminalReason(name, caller: me) == nil)
        // Another uid's caller: not its terminal.
        var other = me
        other.uid = me.uid + 1
        #expect(PromptPlaces.terminalReason(name, caller: other)?.contains("belongs to uid") == true)
        // Closed: gone, or (reused by then) no longer this process's.
        terminal.close()
        #expect(PromptPlaces.terminalReason(name, caller: me) != nil)
        // A process that has exited (its start time moved) is asked nothing.
        var gone = me
        gone.startTime = (me.startTime ?? 0) + 1
        let (kept, refused) = PromptPlaces.recheck(ClientEnvironment(tty: "/dev/null"), caller: gone)
        #expect(kept.tty == nil && refused.first?.contains("has exited") == true, "\(refused)")

        let display = try StandInDisplay()
        #expect(PromptPlaces.displayReason(display.name, uid: me.uid) == nil)
        #expect(PromptPlaces.displayReason("unix" + display.name + ".0", uid: me.uid) == nil)
        #expect(PromptPlaces.displayReason("mail.example.org:0", uid: me.uid)?.contains("another host") == true)
        #expect(PromptPlaces.displayReason(":7999", uid: me.uid)?.contains("does not exist") == true)
        // A socket file nobody listens on (a server that died) is not a screen.
        let stale = try TestPaths.temporaryDirectory("signet-stale").appendingPathComponent("sock").path
        let fd = try UnixSocket.listen(stale)
        close(fd)
        #expect(!PromptPlaces.listening(stale))
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
