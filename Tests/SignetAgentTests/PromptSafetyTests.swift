import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Synchronization
import Testing

/// Issue 24's prompt findings, end to end against a real agent: text from tokens reaches the terminal
/// escaped (#7), a prompt's words cannot be forged by a program's path (#5), a prompt never opens on a
/// terminal that has become another user's (#4), and confirm prompts take turns and grant exactly the
/// button chosen, with the real pinentry programs (#3).
@Suite("Prompts and messages grant and show exactly what they say", .serialized)
struct PromptSafetyTests {
    /// Whether `text` holds a raw control that a terminal acts on (ESC, CR, C1, bidi), newlines aside.
    static func holdsRawControls(_ text: String) -> Bool {
        text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) }
    }

    @Test("A token label with a newline in the agent's \"several tokens match\" error is printed as \\n, on the error's own line")
    func rawLabelInAmbiguity() throws {
        let agent = try AgentFixture()
        try agent.start()
        try agent.makeToken("i\nLayer 1: good signature")
        try agent.makeToken("Second")
        let unlock = try agent.signet(["unlock", "--code-fd", "0"], stdin: "123456\n")
        #expect(unlock.status != 0)
        let lines = unlock.errors.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        #expect(lines.count == 1, "the label's newline made a line of its own: \(lines)")
        #expect(!lines.contains { $0.hasPrefix("Layer 1") }, "\(lines)")
        #expect(unlock.errors.contains(#"i\nLayer 1: good signature"#), "\(unlock.errors)")
        #expect(unlock.errors.contains("tokens match"), "\(unlock.errors)")
        #expect(!Self.holdsRawControls(unlock.errors))

        // The same through the protocol: the agent's message itself is one line, for every client.
        let client = try agent.client()
        do throws(AgentClientError) {
            _ = try client.call(.unlock(token: nil, code: SharedSecret(SecretBytes(copying: Array("123456".utf8))), finalTry: false))
            Issue.record("two tokens, and no token named: the unlock succeeded")
        } catch {
            guard case .agent(let code, let message) = error else { Issue.record("\(error)"); return }
            #expect(code == .tokenAmbiguous)
            #expect(!message.contains("\n") && message.contains(#"i\nLayer 1"#), "\(message)")
        }
    }

    /// A second local user for the tests that need another uid (created once; `useradd -m` is skipped when it exists).
    static func secondUser(_ name: String = "sigp-other") throws -> String {
        if (try Run.command("/usr/bin/id", ["-u", name])).status != 0 {
            let made = try Run.command("/usr/sbin/useradd", ["-m", "-s", "/bin/sh", name])
            let exists = try Run.command("/usr/bin/id", ["-u", name]).status == 0
            guard made.status == 0 || exists else {
                throw TestFailure("useradd \(name) failed: \(made.errors)")
            }
        }
        return name
    }

    /// Another user who opens pseudo-terminals until one is `/dev/pts/N` (`path`), makes it world-writable,
    /// says "GOT", then records what reaches it until its standard input closes, and prints it ("READ hex").
    final class TerminalThief {
        let process = Process()
        let input = Pipe(), output = Pipe()
        private var text = ""

        init(user: String, path: String) throws {
            let script = """
            import os, sys, select
            want = sys.argv[1]
            held = []
            for i in range(400):
                m, s = os.openpty()
                if os.ttyname(s) == want:
                    os.chmod(want, 0o666)
                    print("GOT", want, flush=True)
                    data = b""
                    while True:
                        r, _, _ = select.select([m, 0], [], [])
                        if m in r:
                            try: data += os.read(m, 4096)
                            except OSError: pass
                        if 0 in r and not os.read(0, 1): break
                    print("READ", data.hex(), flush=True)
                    sys.exit(0)
                held.append((m, s))
            print("MISSED", flush=True)
            """
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", "/usr/bin/python3", "-c", script, path]
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        /// The next line it prints (waits for it; empty when it ended without one).
        func line() -> String {
            while !text.contains("\n") {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            guard let newline = text.firstIndex(of: "\n") else { defer { text = "" }; return text }
            defer { text = String(text[text.index(after: newline)...]) }
            return String(text[..<newline])
        }

        /// What reached the terminal, once its standard input is closed.
        func finish() -> String {
            try? input.fileHandleForWriting.close()
            let read = line()
            process.waitUntilExit()
            guard read.hasPrefix("READ ") else { return read }
            let hex = Array(read.dropFirst(5).utf8)
            var bytes: [UInt8] = []
            var index = 0
            while index + 1 < hex.count {
                bytes.append(UInt8(String(decoding: hex[index...index + 1], as: UTF8.self), radix: 16) ?? 0)
                index += 2
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    @Test("A terminal that was closed and opened again by another user is refused when the prompt would start: no pinentry runs on it, the audit log says why")
    func reusedTerminalIsRefused() throws {
        let other = try Self.secondUser()
        // The agent chooses the pinentry itself: pinentry-tty, for a client with a terminal and no screen.
        let agent = try AgentFixture(config: "pinentry-timeout-seconds = 5")
        try agent.start()
        let uri = try agent.makeToken("Victim Token", code: "right-code")
        let terminal = try PseudoTerminal()
        let client = try agent.client()
        guard case .ok(let accepted) = try client.call(.clientEnvironment(entries: [("tty", terminal.path), ("TERM", "xterm")])) else {
            throw TestFailure("clientEnvironment refused")
        }
        #expect(accepted.isEmpty, "the terminal was accepted when it arrived: \(accepted)")
        // The victim's terminal closes; its connection stays. Another user gets the same /dev/pts/N.
        terminal.close()
        let thief = try TerminalThief(user: other, path: terminal.path)
        let got = thief.line()
        try #require(got == "GOT \(terminal.path)", "the other user did not get \(terminal.path): \(got)")
        var owner = stat()
        #expect(stat(terminal.path, &owner) == 0 && owner.st_uid != getuid())

        let start = Date()
        let response = try client.call(.unlockAsking(token: uri), timeout: 60)
        let elapsed = Date().timeIntervalSince(start)
        let shown = thief.finish()
        guard case .access(let outcome) = response else { Issue.record("unlockAsking answered \(response)"); return }
        #expect(outcome.kind == .nowhereToAsk, "\(outcome)")
        #expect(outcome.message.contains("Signet did not prompt") && outcome.message.contains(terminal.path)
                && outcome.message.contains("belongs to uid"), "\(outcome.message)")
        #expect(elapsed < 3, "answered after \(elapsed) s")
        #expect(!shown.contains("Unlock the token"), "the prompt appeared on the other user's terminal: \(shown.debugDescription)")
        #expect(shown.isEmpty, "something reached the other user's terminal: \(shown.debugDescription)")
        #expect(RealPinentryTests.pinentries(of: agent.pid).isEmpty)
        let refused = agent.auditEntries.filter { $0["action"] as? String == "unlock" }
        #expect(refused.map { $0["result"] as? String } == ["prompt-refused"], "\(refused)")
        #expect((refused.first?["detail"] as? String)?.contains("belongs to uid") == true, "\(refused)")
    }

    /// A protocol client in Python that asks from its terminal: `SOCKET KEY` connects, says hello, names the
    /// terminal of its standard input (or `DISPLAY`) in `clientEnvironment`, signs with `KEY`, and prints
    /// `signed` or `error CODE MESSAGE`.
    static let askingClient = #"""
    import os, socket, struct, sys

    def frame(kind, rid, body):
        return struct.pack(">IBI", 5 + len(body), kind, rid) + body

    def text(s):
        b = s.encode()
        return struct.pack(">I", len(b)) + b

    def exact(s, n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                sys.exit("closed")
            data += chunk
        return data

    def read(s):
        (n,) = struct.unpack(">I", exact(s, 4))
        body = exact(s, n)
        return body[0], body[5:]

    entries = []
    if os.environ.get("DISPLAY"):
        entries.append(("DISPLAY", os.environ["DISPLAY"]))
    else:
        entries.append(("tty", os.ttyname(0)))
        entries.append(("TERM", os.environ.get("TERM", "dumb")))
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(frame(1, 1, b"signet-agent" + struct.pack(">HH", 1, 1) + text("prompt-test")))
    read(s)
    s.sendall(frame(0x1C, 2, struct.pack(">I", len(entries)) + b"".join(text(a) + text(b) for a, b in entries)))
    read(s)
    s.sendall(frame(8, 3, text(sys.argv[2]) + struct.pack(">QQQI", 0x1041, 0, 0, 0) + struct.pack(">I", 0) + struct.pack(">I", 32) + bytes(32)))
    kind, rest = read(s)
    while kind == 0x8E:
        kind, rest = read(s)
    if kind == 0xFF:
        (code,) = struct.unpack(">H", rest[:2])
        (length,) = struct.unpack(">I", rest[2:6])
        print("error %d %s" % (code, rest[6:6 + length].decode()), flush=True)
    elif kind == 0x88:
        print("signed", flush=True)
    else:
        print("answer %#x" % kind, flush=True)
    """#

    /// A real agent whose `clients` rule asks before every signature, an unlocked token with the keys `first` and
    /// `second`, and the asking client copied to `first.py`, `second.py` and `third.py` (three programs).
    final class ConfirmSetup {
        let agent: AgentFixture
        let keys: [String: String]
        let directory: URL

        init(config: String = "") throws {
            agent = try AgentFixture(config: config)
            directory = agent.home.appendingPathComponent("programs")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for name in ["first", "second", "third"] {
                try PromptSafetyTests.askingClient.write(to: directory.appendingPathComponent("\(name).py"), atomically: true, encoding: .utf8)
            }
            try "confirm program=* operations=sign\n".write(toFile: agent.paths.config + "/clients", atomically: true, encoding: .utf8)
            chmod(agent.paths.config + "/clients", 0o600)
            try agent.start()
            let token = try agent.makeToken("Confirm Token")
            let client = try agent.client()
            guard try agent.unlock(client, token: token, code: "123456").kind == .unlocked else { throw TestFailure("unlock failed") }
            var keys: [String: String] = [:]
            for (index, label) in ["first", "second"].enumerated() {
                guard case .keyPair(_, let privateKey, _) = try client.call(.generateKeyPair(token: token, keyType: .ec, bits: 0, curve: "P-256",
                                                                                              id: [UInt8(index + 1)], label: label)) else {
                    throw TestFailure("no key pair")
                }
                keys[label] = privateKey
            }
            self.keys = keys
        }

        /// The shell command that runs `program` (first, second, third) signing with `key`, its answer in `NAME.out`.
        func command(_ program: String, key: String, output: String) -> String {
            "/usr/bin/python3 \(directory.path)/\(program).py \(agent.socketPath) '\(keys[key]!)' > \(directory.path)/\(output).out 2>&1"
        }

        /// What `NAME.out` says once it says something.
        func answer(_ output: String, timeout: Duration = .seconds(60)) throws -> String {
            let path = directory.appendingPathComponent("\(output).out").path
            var text = ""
            guard eventually(timeout: timeout, {
                text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                return text.hasSuffix("\n")
            }) else { throw TestFailure("\(output) did not answer within \(timeout): \(text)") }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The sign records of the audit log: (result, detail).
        var signs: [(result: String, detail: String)] {
            agent.auditEntries.filter { $0["action"] as? String == "sign" }.map { ($0["result"] as? String ?? "", $0["detail"] as? String ?? "") }
        }
    }

    /// A terminal whose shell runs each `cmd.*` file dropped in `directory`, in the background (so several
    /// programs share the terminal, as jobs of one shell do).
    static func commandTerminal(_ setup: ConfirmSetup) throws -> TerminalSession {
        let script = setup.directory.appendingPathComponent("terminal.sh").path
        try """
        #!/bin/sh
        cd "\(setup.directory.path)"
        terminal=$(tty)
        while :; do
          for f in cmd.*; do [ -e "$f" ] || continue; mv "$f" "run.$f"; sh "run.$f" < "$terminal" & done
          sleep 0.05
        done

        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        var environment = setup.agent.environment
        for name in ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"] { environment[name] = nil }
        return try TerminalSession(script, socketDirectory: setup.directory.path, environment: environment)
    }

    static func run(_ command: String, in setup: ConfirmSetup, as name: String) throws {
        try (command + "\n").write(to: setup.directory.appendingPathComponent("cmd.\(name)"), atomically: true, encoding: .utf8)
    }

    /// Clears the terminal (a `clear` run there) and waits until the screen is empty of prompts.
    static func clear(_ terminal: TerminalSession, _ setup: ConfirmSetup) throws {
        try run("clear", in: setup, as: "clear")
        #expect(eventually(timeout: .seconds(20)) { !terminal.screen.contains("Allow") }, "\(terminal.screen)")
    }

    @Test("pinentry-tty in a terminal: each button has its own key ([ad5]); `a` allows once, two prompts take turns and each answer goes to the one shown, a queued one past its timeout is refused")
    func pinentryTTYConfirms() throws {
        let setup = try ConfirmSetup(config: "pinentry-program = /usr/bin/pinentry-tty\nconfirm-seconds = 60")
        let terminal = try Self.commandTerminal(setup)
        let tty = try terminal.tty

        // One prompt: the keys are distinct, and `a` is "Allow once": a single use, not 5 minutes.
        try Self.run(setup.command("first", key: "first", output: "once"), in: setup, as: "once")
        let once: String
        do { once = try terminal.waitFor("[ad5]") } catch {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: setup.directory.path)) ?? []
            let outs = files.filter { $0.hasSuffix(".out") }.map { "\($0): " + ((try? String(contentsOfFile: setup.directory.path + "/" + $0, encoding: .utf8)) ?? "") }
            throw TestFailure("\(error)\nfiles: \(files)\n\(outs)\n\(setup.agent.agentLog)\n\(setup.agent.auditLog)")
        }
        #expect(once.contains("first.py") && once.contains("wants to sign with") && once.contains("key \"first\""), "\(once)")
        #expect(once.contains("Allow once") && once.contains("Allow for 5 minutes") && once.contains("Deny"), "\(once)")
        try terminal.send("a")
        #expect(try setup.answer("once") == "signed")
        #expect(setup.signs.last?.detail.contains("5 minutes") == false, "\(setup.signs)")
        try Self.clear(terminal, setup)

        // Two programs at once on this terminal: the second waits while the first is shown; `d` answers the first only.
        try Self.run(setup.command("first", key: "first", output: "first"), in: setup, as: "first")
        let first = try terminal.waitFor("first.py")
        #expect(try terminal.waitFor("[ad5]").contains("first.py"))
        try Self.run(setup.command("second", key: "second", output: "second"), in: setup, as: "second")
        #expect(eventually(timeout: .seconds(30)) { setup.agent.agentLog.contains("waits for its turn at \(tty)") }, "\(setup.agent.agentLog)")
        #expect(!terminal.screen.contains("second.py"), "two prompts at once:\n\(first)")
        try terminal.send("d")
        let denied = try setup.answer("first")
        #expect(denied.hasPrefix("error") && denied.contains("refused at the prompt"), "\(denied)")
        let second = try terminal.waitFor("second.py")
        #expect(second.contains("key \"second\""), "\(second)")
        try terminal.send("5")
        // The 5 minutes are asked once more, with only that and Deny.
        let wider = try terminal.waitFor("[5d]")
        #expect(wider.contains("for the next 5 minutes?"), "\(wider)")
        try terminal.send("5")
        #expect(try setup.answer("second") == "signed")
        #expect(setup.signs.last?.detail == "allowed for 5 minutes", "\(setup.signs)")
        try Self.clear(terminal, setup)

        // A prompt queued behind one nobody answers is refused when its own time is up, and never shown.
        try Self.run(setup.command("first", key: "first", output: "holder"), in: setup, as: "holder")
        try terminal.waitFor("[ad5]")
        var config = try String(contentsOfFile: setup.agent.paths.config + "/config", encoding: .utf8)
        config = config.replacingOccurrences(of: "confirm-seconds = 60", with: "confirm-seconds = 2")
        try config.write(toFile: setup.agent.paths.config + "/config", atomically: true, encoding: .utf8)
        // `signet agent reload` returns once the new confirm time is in force.
        let reload = try setup.agent.signet(["agent", "reload"])
        #expect(reload.status == 0 && reload.output.contains("confirm-seconds = 2"), "\(reload.output)\(reload.errors)")
        try Self.run(setup.command("third", key: "first", output: "third"), in: setup, as: "third")
        let refused = try setup.answer("third", timeout: .seconds(30))
        #expect(refused.hasPrefix("error") && refused.contains("was not shown"), "\(refused)")
        #expect(!terminal.screen.contains("third.py"))
        let record = try #require(setup.signs.last)
        #expect(record.result == "prompt-timed-out", "\(setup.signs)")
        #expect(record.result == "prompt-timed-out" && record.detail.contains("behind a prompt for") && record.detail.contains("first.py on \(tty)")
                && record.detail.contains("not shown"), "\(record)")
        try terminal.send("a")
        #expect(try setup.answer("holder") == "signed")
    }

    @Test("pinentry-curses in a terminal: Enter on the first button allows once; Tab to \"Allow for 5 minutes\", then OK of its own question, allows 5 minutes")
    func pinentryCursesConfirms() throws {
        let setup = try ConfirmSetup(config: "pinentry-program = /usr/bin/pinentry-curses\nconfirm-seconds = 60")
        let terminal = try Self.commandTerminal(setup)

        try Self.run(setup.command("first", key: "first", output: "once"), in: setup, as: "once")
        let once = try terminal.waitFor("<Deny>")
        #expect(once.contains("<Allow once>") && once.contains("<Allow for 5 minutes>") && !once.contains("_"), "\(once)")
        try terminal.send("Enter")
        #expect(try setup.answer("once") == "signed")
        #expect(setup.signs.last?.detail.contains("5 minutes") == false, "\(setup.signs)")

        try Self.run(setup.command("second", key: "second", output: "five"), in: setup, as: "five")
        try terminal.waitFor("second.py")
        try terminal.send("Tab")
        try terminal.send("Enter")
        let wider = try terminal.waitFor("for the next 5 minutes?")
        #expect(!wider.contains("<Allow once>"), "\(wider)")
        try terminal.send("Enter")
        #expect(try setup.answer("five") == "signed")
        #expect(setup.signs.last?.detail == "allowed for 5 minutes", "\(setup.signs)")
    }

    @Test("pinentry-gtk2 under Xvfb: Alt+5 then Alt+5 allows 5 minutes, Alt+D denies, each in the window of the program that asked")
    func pinentryGTKConfirms() throws {
        let setup = try ConfirmSetup(config: "pinentry-program = /usr/bin/pinentry-gtk-2\nconfirm-seconds = 60")
        let number = try #require((71...79).first { !FileManager.default.fileExists(atPath: "/tmp/.X11-unix/X\($0)") && !FileManager.default.fileExists(atPath: "/tmp/.X\($0)-lock") })
        let xvfb = try AgentFixture.spawn("/usr/bin/Xvfb", [":\(number)", "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
                                          environment: ["PATH": "/usr/bin:/bin"], log: setup.agent.home.path + "/xvfb.log")
        defer {
            // SIGKILL: Xvfb inherits the test runner's blocked signals, SIGTERM among them.
            kill(xvfb, SIGKILL)
            var status: Int32 = 0
            waitpid(xvfb, &status, 0)
            unlink("/tmp/.X\(number)-lock")
            unlink("/tmp/.X11-unix/X\(number)")
        }
        let x = ["DISPLAY": ":\(number)", "PATH": "/usr/bin:/bin"]
        #expect(eventually(timeout: .seconds(20)) {
            ((try? Run.command("/usr/bin/xdotool", ["getdisplaygeometry"], environment: x, timeout: 10))?.status ?? 1) == 0
        })
        /// The visible windows whose title matches `name`.
        func windows(_ name: String) -> Set<String> {
            let found = try? Run.command("/usr/bin/xdotool", ["search", "--onlyvisible", "--name", name], environment: x, timeout: 10)
            return Set((found?.output ?? "").split(whereSeparator: \.isNewline).map(String.init))
        }
        /// The pinentry the agent runs now, once its window is shown under `name`.
        func shownPinentry(_ name: String, not previous: pid_t? = nil) -> pid_t? {
            var found: pid_t?
            _ = eventually(timeout: .seconds(30)) {
                let running = RealPinentryTests.pinentries(of: setup.agent.pid).filter { $0 != previous }
                guard running.count == 1, !windows(name).isEmpty else { return false }
                found = running.first
                return true
            }
            return found
        }
        /// Presses `keys` while the pinentry `pid` runs, until it has ended (its window grabs the keyboard
        /// once mapped, a moment after it is visible: a press before that is lost, never sent elsewhere).
        func press(_ keys: String, ending pid: pid_t) -> Bool {
            func running() -> Bool { RealPinentryTests.pinentries(of: setup.agent.pid).contains(pid) }
            for _ in 0..<20 where running() {
                _ = try? Run.command("/usr/bin/xdotool", ["key", keys], environment: x, timeout: 10)
                if eventually(timeout: .seconds(1), { !running() }) { return true }
            }
            return !running()
        }
        var environment = setup.agent.environment
        environment["DISPLAY"] = ":\(number)"
        func start(_ program: String, key: String, output: String) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", setup.command(program, key: key, output: output)]
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        // Alt+5 is "Allow for 5 minutes"; a second window asks for exactly that, and its Alt+5 is its OK.
        try start("first", key: "first", output: "five")
        let first = try #require(shownPinentry("first.py asks"))
        #expect(press("alt+5", ending: first))
        let second = try #require(shownPinentry("first.py asks", not: first))
        // Nothing granted yet: the client still waits for its answer.
        #expect(((try? String(contentsOfFile: setup.directory.appendingPathComponent("five.out").path, encoding: .utf8)) ?? "").isEmpty)
        #expect(press("alt+5", ending: second))
        #expect(try setup.answer("five") == "signed")
        #expect(setup.signs.last?.detail == "allowed for 5 minutes", "\(setup.signs)")

        // Alt+D is Deny.
        try start("second", key: "second", output: "deny")
        let third = try #require(shownPinentry("second.py asks"))
        #expect(press("alt+d", ending: third))
        let denied = try setup.answer("deny")
        #expect(denied.hasPrefix("error") && denied.contains("refused at the prompt"), "\(denied)")
    }
}
