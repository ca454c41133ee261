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
}
