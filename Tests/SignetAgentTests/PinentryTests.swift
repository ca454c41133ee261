import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Synchronization
import Testing

/// A real agent whose prompts go to the scripted pinentry (`Tests/testdata/pinentry/fake-pinentry`, a
/// test double for the corner cases a person cannot type reliably: `%`, newlines, 256 bytes, a
/// pinentry that dies or hangs), over a software token behind the counting wrapper, so the codes
/// that reached the token are counted at the module boundary.
final class PromptedAgent: @unchecked Sendable {
    let agent: AgentFixture
    /// Where the fake pinentry runs from: its plan, log, pids, argv.PID and environ.PID files.
    let directory: URL
    let uri: String
    let serial: String
    /// The screen the clients name: a stand-in X socket, which the agent checks before a prompt starts.
    let display: StandInDisplay

    init(code: [UInt8], plan: [String] = [], config: String = "", label: String = "Prompted") throws {
        display = try StandInDisplay()
        let home = try TestPaths.temporaryDirectory("signet-pinentry")
        directory = home
        let fake = home.appendingPathComponent("fake-pinentry").path
        try TestPaths.copyExecutable(TestPaths.testData.appendingPathComponent("pinentry/fake-pinentry").path, to: fake)
        agent = try AgentFixture(config: "pinentry-program = \(fake)\n\(config)", countingCodes: true)
        try agent.start()
        let client = try agent.client()
        let created = try client.call(.initSoftwareToken(label: label, userCode: SharedSecret(SecretBytes(copying: code)),
                                                         soCode: SharedSecret(SecretBytes(copying: Array("so-code-12".utf8)))))
        guard case .stored(let uri) = created else { throw TestFailure("token init answered \(created)") }
        self.uri = uri
        guard case .tokens(let tokens) = try client.call(.listTokens), let entry = tokens.first(where: { $0.uri == uri }) else {
            throw TestFailure("the new token is not listed")
        }
        serial = entry.serial
        try self.plan(plan)
    }

    deinit { agent.stop() }

    func plan(_ lines: [String]) throws {
        try lines.map { $0 + "\n" }.joined().write(to: directory.appendingPathComponent("plan"), atomically: true, encoding: .utf8)
    }

    /// A client that said where it can be asked (the stand-in display, unless `environment` says otherwise).
    func client(environment: [(String, String)]? = nil) throws -> AgentClient {
        let environment = environment ?? [("DISPLAY", display.name)]
        let client = try agent.client()
        guard case .ok = try client.call(.clientEnvironment(entries: environment)) else { throw TestFailure("clientEnvironment refused") }
        return client
    }

    func ask(_ client: AgentClient) throws -> AccessOutcome {
        let response = try client.call(.unlockAsking(token: uri), timeout: 120)
        guard case .access(let outcome) = response else { throw TestFailure("unlockAsking answered \(response)") }
        return outcome
    }

    /// What the fake pinentry received, one command a line ("start PID" when one starts, "plan X" per answer).
    var log: [String] { ((try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
    /// Codes presented to the token, counted by the wrapper module.
    var codesAtToken: Int {
        ((try? String(contentsOfFile: agent.wrapperLog, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0 == "C_Login USER \(serial)" }.count
    }
    var triesLeft: UInt32? {
        guard let client = try? agent.client(), case .tokens(let tokens)? = try? client.call(.listTokens) else { return nil }
        return tokens.first { $0.uri == uri }?.triesLeft
    }
    /// The pids the fake pinentry wrote, with their process groups.
    var pinentryPIDs: [(pid: pid_t, group: pid_t)] {
        ((try? String(contentsOf: directory.appendingPathComponent("pids"), encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            let parts = $0.split(separator: " ").compactMap { pid_t($0) }
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }
    }
}

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
private func hex(_ text: String) -> String { hex(Array(text.utf8)) }

@Suite("The agent asks for the access code through pinentry", .serialized)
struct PinentryTests {
    @Test("A 255-byte code with %, %0A, a newline, a CR and non-ASCII bytes, sent in several D lines, reaches the token as typed")
    func awkwardCode() throws {
        var code = Array("50%25 off\n%0A\r\u{e9}t\u{e9}".utf8)
        code += Array(repeating: UInt8(ascii: "%"), count: 255 - code.count)
        let prompted = try PromptedAgent(code: code, plan: ["code \(hex(code))"])
        let outcome = try prompted.ask(try prompted.client())
        #expect(outcome.kind == .unlocked, "\(outcome.message)")
        #expect(prompted.codesAtToken == 1)
        // The D lines were several (64 characters each): the agent joined them.
        #expect(prompted.log.contains("plan code"))
    }

    @Test("A 256-byte code is refused before it is counted (SoftHSM2 takes 255), and asked for again in the same pinentry")
    func tooLongCode() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["code \(hex([UInt8](repeating: 0x41, count: 256)))", "cancel"])
        let outcome = try prompted.ask(try prompted.client())
        #expect(outcome.kind == .cancelled)
        #expect(prompted.codesAtToken == 0)
        #expect(prompted.triesLeft == 3)
        let log = prompted.log
        #expect(log.filter { $0.hasPrefix("start") }.count == 1)
        #expect(log.filter { $0 == "GETPIN" }.count == 2)
        #expect(log.contains { $0.hasPrefix("SETERROR") && $0.contains("at most 255") }, "\(log)")
    }

    @Test("Cancel and pinentry's own timeout end the prompt and use no try")
    func cancelAndTimeout() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["cancel", "timeout"])
        let client = try prompted.client()
        let cancelled = try prompted.ask(client)
        #expect(cancelled.kind == .cancelled)
        let timedOut = try prompted.ask(client)
        #expect(timedOut.kind == .timedOut, "\(timedOut.message)")
        #expect(prompted.codesAtToken == 0)
        #expect(prompted.triesLeft == 3)
        #expect(prompted.log.contains { $0.hasPrefix("SETTIMEOUT 60") })
        let results = prompted.agent.auditEntries.filter { $0["action"] as? String == "unlock" }.compactMap { $0["result"] as? String }
        #expect(results == ["prompt-cancelled", "prompt-timed-out"])
    }

    @Test("A pinentry that never answers is killed, with its process group, when Signet's limit passes")
    func hungPinentryIsKilled() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["hang"], config: "pinentry-timeout-seconds = 1")
        let start = Date()
        let outcome = try prompted.ask(try prompted.client())
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome.kind == .timedOut)
        #expect(elapsed >= 2.5 && elapsed < 8, "answered after \(elapsed) s")
        let pids = prompted.pinentryPIDs
        #expect(pids.count == 1)
        for (pid, group) in pids {
            #expect(pid == group, "the pinentry runs in its own process group")
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "the pinentry \(pid) is still there")
            #expect(kill(-group, 0) == -1 && errno == ESRCH, "its group \(group) is still there")
        }
        #expect(prompted.codesAtToken == 0)
        #expect(prompted.triesLeft == 3)
    }

    @Test("A pinentry that dies mid-prompt ends it, with no try used; the next prompt works")
    func pinentryDies() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["die", "code \(hex("right-code"))"])
        let client = try prompted.client()
        let died = try prompted.ask(client)
        #expect(died.kind == .cancelled)
        #expect(died.message.contains("ended without an answer"), "\(died.message)")
        #expect(prompted.triesLeft == 3)
        #expect(try prompted.ask(client).kind == .unlocked)
        #expect(prompted.codesAtToken == 1)
    }

    @Test("A wrong code, then the right one, in one pinentry: the prompt shows the tries left, SETERROR the wrong code")
    func wrongThenRight() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["code \(hex("wrong-code"))", "code \(hex("right-code"))"],
                                         label: "Mail Token")
        let outcome = try prompted.ask(try prompted.client())
        #expect(outcome.kind == .unlocked)
        #expect(prompted.codesAtToken == 2)
        let log = prompted.log
        #expect(log.filter { $0.hasPrefix("start") }.count == 1)
        let descriptions = log.filter { $0.hasPrefix("SETDESC ") }
        #expect(descriptions.first?.contains("Unlock the token \"Mail Token\" (serial \(prompted.serial))") == true, "\(descriptions)")
        #expect(descriptions.first?.contains("(pid ") == true)
        #expect(descriptions.first?.contains("%0A%0A3 of 3 tries left before a 15-minute lock.") == true, "\(descriptions)")
        #expect(descriptions.last?.contains("2 of 3 tries left before a 15-minute lock.") == true)
        #expect(log.contains("SETERROR Wrong access code — 2 tries left before the token is locked for 15 minutes"), "\(log)")
        #expect(log.contains("SETTITLE Signet: unlock Mail Token"))
    }

    @Test("Three wrong codes through prompts: exactly 3 reach the token, then the lock is shown with MESSAGE and no GETPIN")
    func lockoutThroughPrompts() throws {
        let wrong = (1...3).map { "code \(hex("wrong-\($0)"))" }
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: wrong + ["code \(hex("right-code"))"])
        let client = try prompted.client()
        let first = try prompted.ask(client)
        #expect(first.kind == .locked, "\(first.message)")
        #expect(prompted.log.contains("SETERROR Wrong access code — 1 try left before the token is locked for 15 minutes"))
        // Asked again while locked: a new pinentry shows the lock and asks for nothing.
        let again = try prompted.ask(client)
        #expect(again.kind == .locked)
        #expect(prompted.codesAtToken == 3)
        let log = prompted.log
        let secondStart = try #require(log.lastIndex { $0.hasPrefix("start") })
        let second = Array(log[secondStart...])
        #expect(!second.contains("GETPIN"), "\(second)")
        #expect(second.contains("MESSAGE"))
        let locked = try #require(second.first { $0.hasPrefix("SETDESC Locked for ") })
        #expect(locked.range(of: #"Locked for 1[45] min( \d+ s)? \(until \d\d:\d\d\) after 3 wrong access codes"#, options: .regularExpression) != nil, "\(locked)")
        #expect(log.filter { $0 == "GETPIN" }.count == 3)
    }

    @Test("Two clients asking at once for one token share one prompt")
    func concurrentRequestsShareOnePrompt() throws {
        let prompted = try PromptedAgent(code: Array("right-code".utf8), plan: ["slow 1.5 \(hex("right-code"))", "cancel"])
        let outcomes = Mutex<[AccessOutcome.Kind]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            // The second client asks once the first one's prompt has started.
            if index == 1 { _ = eventually(timeout: .seconds(20)) { prompted.log.contains { $0.hasPrefix("start") } } }
            guard let client = try? prompted.client(), let outcome = try? prompted.ask(client) else { return }
            outcomes.withLock { $0.append(outcome.kind) }
        }
        #expect(outcomes.withLock { $0 } == [.unlocked, .unlocked])
        #expect(prompted.log.filter { $0.hasPrefix("start") }.count == 1)
        #expect(prompted.codesAtToken == 1)
    }

    @Test("With no screen and no terminal, the answer is the clear error within 1 s; a tty that is not a terminal does not count")
    func nowhereToAsk() throws {
        let agent = try AgentFixture(countingCodes: true)  // no pinentry-program: the agent chooses
        try agent.start()
        let uri = try agent.makeToken("Nowhere")
        for environment in [[], [("tty", "/etc/hostname")], [("tty", "/dev/../etc/hostname"), ("WAYLAND_DISPLAY", "../../x")]] as [[(String, String)]] {
            let client = try agent.client()
            _ = try client.call(.clientEnvironment(entries: environment))
            let start = Date()
            let response = try client.call(.unlockAsking(token: uri))
            #expect(Date().timeIntervalSince(start) < 1)
            guard case .access(let outcome) = response else { Issue.record("answered \(response)"); continue }
            #expect(outcome.kind == .nowhereToAsk)
            #expect(outcome.message == "No screen or terminal to ask for the access code — run `signet unlock`")
        }
        // The command line says it too, and fails.
        var environment = agent.environment
        for name in ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"] { environment[name] = nil }
        let start = Date()
        let cli = try Run.command("/usr/bin/setsid", [AgentFixture.signet, "unlock", "--pinentry"], environment: environment, timeout: 20)
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(cli.status == 1)
        #expect(cli.errors.contains("No screen or terminal to ask for the access code — run `signet unlock`"), "\(cli.errors)")
    }

    @Test("No code appears in the pinentry's argv or environment, the audit log, the agent log or `signet report`")
    func noCodeInAnyOutput() throws {
        let right = "Rt-7Qx-code", wrong = "Wr-9Zk-code"
        let prompted = try PromptedAgent(code: Array(right.utf8), plan: ["code \(hex(wrong))", "code \(hex(right))"])
        #expect(try prompted.ask(try prompted.client()).kind == .unlocked)
        let files = try FileManager.default.contentsOfDirectory(atPath: prompted.directory.path)
        let copies = files.filter { $0.hasPrefix("argv.") || $0.hasPrefix("environ.") }
        #expect(copies.count == 2)
        var texts = try copies.map { try Data(contentsOf: prompted.directory.appendingPathComponent($0)) }
        // The environment is only what the agent passes.
        let environ = try #require(files.first { $0.hasPrefix("environ.") })
        let names = try Data(contentsOf: prompted.directory.appendingPathComponent(environ)).split(separator: 0)
            .compactMap { String(decoding: $0, as: UTF8.self).split(separator: "=").first.map(String.init) }
        #expect(Set(names).isSubset(of: ["PATH", "LANG", "TERM", "DISPLAY"]), "\(names)")
        texts.append(contentsOf: [Data(prompted.agent.auditLog.utf8), Data(prompted.agent.agentLog.utf8), Data(prompted.log.joined(separator: "\n").utf8)])
        let archive = prompted.directory.appendingPathComponent("report.tar.gz").path
        let report = try prompted.agent.signet(["report", "-o", archive])
        #expect(report.status == 0, "\(report.errors)")
        let unpacked = prompted.directory.appendingPathComponent("report")
        try FileManager.default.createDirectory(at: unpacked, withIntermediateDirectories: true)
        #expect(try Run.command("tar", ["xzf", archive, "-C", unpacked.path]).status == 0)
        let enumerator = FileManager.default.enumerator(atPath: unpacked.path)
        var reported = 0
        while let name = enumerator?.nextObject() as? String {
            if let data = FileManager.default.contents(atPath: unpacked.appendingPathComponent(name).path) { texts.append(data); reported += 1 }
        }
        #expect(reported > 0)
        texts.append(contentsOf: [report.stdout, report.stderr])
        for text in texts {
            for code in [right, wrong] { #expect(text.range(of: Data(code.utf8)) == nil, "\(code) found") }
        }
    }
}

/// The real pinentry programs, driven as a person would: pinentry-tty in a tmux terminal, and
/// pinentry-gtk2 under Xvfb typed with xdotool (both installed by `scripts/setup-debian`).
@Suite("Real pinentry programs", .serialized)
struct RealPinentryTests {
    /// The pids of the pinentry programs the agent runs now (children of `agent`).
    static func pinentries(of agent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[1]) == agent && stat.contains("(pinentry")
        }
    }

    /// Greps what a running pinentry was given (argv, environment) for `codes`.
    static func expectNoCodes(_ codes: [String], inPinentriesOf agent: pid_t) {
        let running = pinentries(of: agent)
        #expect(!running.isEmpty, "no pinentry is running")
        for pid in running {
            for file in ["cmdline", "environ"] {
                guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(file)") else { Issue.record("cannot read /proc/\(pid)/\(file)"); continue }
                for code in codes { #expect(data.range(of: Data(code.utf8)) == nil, "\(code) in /proc/\(pid)/\(file)") }
            }
        }
    }

    // No skip when a program is missing: scripts/setup-debian installs pinentry-tty, pinentry-gtk2, xvfb and
    // xdotool, and a run without them must fail rather than pass without these tests.
    @Test("pinentry-tty in a terminal: a wrong code then the right one; later 3 wrong codes lock the token, and the next prompt shows the lock without asking")
    func pinentryTTY() throws {
        let agent = try AgentFixture(countingCodes: true)
        try agent.start()
        try agent.makeToken("Terminal Token", code: "right-code")
        var environment = agent.environment
        for name in ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"] { environment[name] = nil }
        let directory = agent.home.path
        let script = directory + "/unlocks.sh"
        let clear = #"printf '\033[2J\033[H'"#
        // Each phase clears the screen only once the test has read the last one's exit status and made its go file.
        let go = { (phase: Int) in #"i=0; while [ ! -e "\#(directory)/go\#(phase)" ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.05; done"# }
        try """
        #!/bin/sh
        signet="\(AgentFixture.signet)"
        "$signet" unlock --pinentry; echo "EXIT1=$?"
        "$signet" lock >/dev/null; \(go(2)); \(clear); echo PHASE2
        "$signet" unlock --pinentry; echo "EXIT2=$?"
        \(go(3)); \(clear); echo PHASE3
        "$signet" unlock --pinentry; echo "EXIT3=$?"
        sleep 60

        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        func codes() -> Int {
            ((try? String(contentsOfFile: agent.wrapperLog, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("C_Login USER") }.count
        }
        let terminal = try TerminalSession(script, socketDirectory: directory, environment: environment)

        try terminal.waitFor("3 of 3 tries left before a 15-minute lock")
        #expect(terminal.screen.contains("Unlock the token \"Terminal Token\""))
        try terminal.send("wrong-code", "Enter")
        try terminal.waitFor("Wrong access code — 2 tries left before the token is locked for 15 minutes")
        RealPinentryTests.expectNoCodes(["wrong-code", "right-code"], inPinentriesOf: agent.pid)
        try terminal.send("right-code", "Enter")
        try terminal.waitFor("EXIT1=0")
        #expect(codes() == 2)
        #expect(FileManager.default.createFile(atPath: directory + "/go2", contents: nil))

        try terminal.waitFor("PHASE2")
        try terminal.waitFor("3 of 3 tries left")
        for (index, next) in ["2 tries left before the token", "1 try left before the token", "after 3 wrong access codes"].enumerated() {
            try terminal.send("wrong-\(index)", "Enter")
            try terminal.waitFor(next)
        }
        #expect(terminal.screen.range(of: #"Locked for 1[45] min( \d+ s)? \(until \d\d:\d\d\)"#, options: .regularExpression) != nil, "\(terminal.screen)")
        try terminal.send("Enter")
        try terminal.waitFor("EXIT2=3")
        #expect(codes() == 5, "exactly 3 codes reached the token in the lockout")
        #expect(FileManager.default.createFile(atPath: directory + "/go3", contents: nil))

        try terminal.waitFor("PHASE3")
        let locked = try terminal.waitFor("after 3 wrong access codes")
        #expect(!locked.contains("Access code:"), "a locked token was asked for a code:\n\(locked)")
        try terminal.send("Enter")
        try terminal.waitFor("EXIT3=3")
        #expect(codes() == 5)
    }

    @Test("pinentry-gtk2 under Xvfb: one unlock typed into the window")
    func pinentryGTK() throws {
        let agent = try AgentFixture(countingCodes: true)
        try agent.start()
        try agent.makeToken("Window Token", code: "gui-code-1")
        // A display number of our own: the first free one from 70.
        let number = try #require((71..<200).first { !FileManager.default.fileExists(atPath: "/tmp/.X11-unix/X\($0)") && !FileManager.default.fileExists(atPath: "/tmp/.X\($0)-lock") })
        let xvfb = try AgentFixture.spawn("/usr/bin/Xvfb", [":\(number)", "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
                                          environment: ["PATH": "/usr/bin:/bin"], log: agent.home.path + "/xvfb.log")
        defer {
            // SIGKILL: Xvfb inherits the test runner's blocked signals, SIGTERM among them.
            kill(xvfb, SIGKILL)
            var status: Int32 = 0
            waitpid(xvfb, &status, 0)
            unlink("/tmp/.X\(number)-lock")
            unlink("/tmp/.X11-unix/X\(number)")
        }
        #expect(eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: "/tmp/.X11-unix/X\(number)") })
        // The socket is there before the server answers (under load, seconds before): a pinentry-gtk2 that
        // cannot open the display falls back to a terminal it does not have. Wait until a client gets in.
        let ready = ["DISPLAY": ":\(number)", "PATH": "/usr/bin:/bin"]
        #expect(eventually(timeout: .seconds(20)) {
            ((try? Run.command("/usr/bin/xdotool", ["getdisplaygeometry"], environment: ready, timeout: 10))?.status ?? 1) == 0
        })
        var environment = agent.environment
        environment["DISPLAY"] = ":\(number)"
        for name in ["WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"] { environment[name] = nil }
        let result = Mutex<Run.Result?>(nil)
        let unlockEnvironment = environment
        let unlock = Thread {
            let run = try? Run.command("/usr/bin/setsid", [AgentFixture.signet, "unlock", "--pinentry"], environment: unlockEnvironment, timeout: 90)
            result.withLock { $0 = run }
        }
        unlock.start()
        let x = ["DISPLAY": ":\(number)", "PATH": "/usr/bin:/bin"]
        #expect(eventually(timeout: .seconds(30)) {
            ((try? Run.command("/usr/bin/xdotool", ["search", "--name", "Signet: unlock Window Token"], environment: x, timeout: 10))?.status ?? 1) == 0
        })
        RealPinentryTests.expectNoCodes(["gui-code-1"], inPinentriesOf: agent.pid)
        usleep(300_000)  // the window takes the keyboard once mapped
        #expect(try Run.command("/usr/bin/xdotool", ["type", "--delay", "30", "gui-code-1"], environment: x, timeout: 20).status == 0)
        #expect(try Run.command("/usr/bin/xdotool", ["key", "Return"], environment: x, timeout: 10).status == 0)
        #expect(eventually(timeout: .seconds(30)) { result.withLock { $0 } != nil })
        let run = try #require(result.withLock { $0 })
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output == "Unlocked.\n")
        let status = try agent.signet(["status", "--json"])
        #expect(status.output.contains("\"unlocked\" : true"), "\(status.output)")
    }
}
