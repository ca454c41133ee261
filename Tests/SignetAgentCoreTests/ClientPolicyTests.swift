import Foundation
import Synchronization
import SignetAgentProtocol
import SignetCore
import SignetPKCS11
import SignetTestSupport
import Testing
@testable import SignetAgentCore

/// A stand-in for the pinentry `CONFIRM` prompt that the prompting work builds (issue 18, parts 1–3):
/// it answers as the test scripted, in order, and keeps the texts it was shown. It exists because
/// that prompt is not in this branch; once merged, the agent's own confirmer is the real pinentry.
final class ScriptedConfirmer: Confirming, Sendable {
    private let state: Mutex<(answers: [ConfirmAnswer], shown: [String])>

    init(_ answers: [ConfirmAnswer]) { state = Mutex((answers, [])) }

    func confirm(_ question: ConfirmQuestion, connection: ConnectionState, peer: PeerProcess, timeout: Double) -> ConfirmAnswer {
        state.withLock { state in
            state.shown.append(question.description)
            return state.answers.isEmpty ? .cancelled : state.answers.removeFirst()
        }
    }

    var shown: [String] { state.withLock { $0.shown } }
}

/// The agent's request code in this process with a `clients` file and a scripted confirmer; the peer is
/// this test process, identified from `/proc` as a connection's would be.
final class PolicyAgent {
    let directory: URL
    let handler: RequestHandler
    let peer = PeerProcess.describe(pid: getpid(), uid: getuid())
    let paths: SignetPaths
    let systemDirectory: String

    init(clients: String, confirmer: any Confirming = NoConfirmer()) throws {
        directory = try TestPaths.temporaryDirectory("signet-policy")
        var environment = ProcessInfo.processInfo.environment
        for (name, sub) in [("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_RUNTIME_DIR", "run")] {
            environment[name] = directory.appendingPathComponent(sub).path
        }
        paths = SignetPaths(environment: environment)
        systemDirectory = directory.appendingPathComponent("etc").path
        try FileManager.default.createDirectory(atPath: paths.config, withIntermediateDirectories: true)
        try clients.write(toFile: paths.config + "/clients", atomically: true, encoding: .utf8)
        chmod(paths.config + "/clients", 0o600)
        let settings = AgentSettings.load(paths: paths, systemDirectory: systemDirectory)
        handler = RequestHandler(audit: AuditLog(directory: paths.state), settings: settings, confirmer: confirmer, connectionCount: { 1 })
        handler.install(TokenRegistry(context: SoftHSMFixture.shared.context, stateDirectory: paths.state))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    @discardableResult
    func call(_ request: AgentRequest) -> AgentResponse { handler.handle(request, peer: peer) { _ in } }

    /// A new unlocked token with a P-256 key labelled `mail`; the key's URI.
    func key(_ prefix: String) throws -> String {
        let token = try SoftHSMFixture.shared.makeToken(prefix)
        handler.registry.refresh()
        let uri = token.uri.description
        guard case .access(let outcome) = call(.unlock(token: uri, code: SharedSecret(SecretBytes(copying: SoftHSMFixture.userCode)), finalTry: false)),
              outcome.succeeded else { throw TestFailure("unlock failed") }
        guard case .keyPair(_, let privateKey, _) = call(.generateKeyPair(token: uri, keyType: .ec, bits: 0, curve: "P-256", id: [9], label: "mail")) else {
            throw TestFailure("no key pair")
        }
        return privateKey
    }

    func sign(_ key: String) -> AgentResponse {
        call(.sign(key: key, mechanism: WireMechanism(type: 0x1041), data: Array(repeating: 1, count: 32)))
    }

    var auditLines: [String] {
        (FileIO.readText(paths.state + "/audit.log", limit: 1 << 20) ?? "").split(separator: "\n").map(String.init)
    }

    /// The sign records' decision fields, in order ("-" when absent).
    var signDecisions: [String] {
        auditLines.filter { $0.contains("\"action\":\"sign\"") }.map { line in
            guard let range = line.range(of: "\"decision\":\"") else { return "-" }
            return String(line[range.upperBound...].prefix { $0 != "\"" })
        }
    }
}

private func errorCode(_ response: AgentResponse) -> AgentErrorCode? {
    if case .error(let code, _) = response { return code }
    return nil
}

private func message(_ response: AgentResponse) -> String {
    if case .error(_, let message) = response { return message }
    return ""
}

@Suite("Client rules, in process", .serialized)
struct ClientPolicyTests {
    @Test("A confirm rule asks each time: Allow signs, Deny refuses, and every decision is in the audit log")
    func confirmAllowDeny() throws {
        let confirmer = ScriptedConfirmer([.allow, .deny, .cancelled, .timedOut, .nowhereToAsk])
        let exe = PeerProcess.describe(pid: getpid(), uid: getuid()).executable
        let agent = try PolicyAgent(clients: "confirm program=\"\(exe)\" key=label:mail operations=sign\n", confirmer: confirmer)
        let key = try agent.key("confirm")
        guard case .signature = agent.sign(key) else { throw TestFailure("Allow did not sign") }
        let denied = agent.sign(key)
        #expect(errorCode(denied) == .deniedByPolicy)
        #expect(message(denied).contains("refused at the prompt") && message(denied).contains(":1"), "\(message(denied))")
        #expect(errorCode(agent.sign(key)) == .notConfirmed)
        #expect(errorCode(agent.sign(key)) == .notConfirmed)
        let nowhere = agent.sign(key)
        #expect(errorCode(nowhere) == .notConfirmed && message(nowhere).contains("no screen or terminal"), "\(message(nowhere))")
        #expect(confirmer.shown.count == 5)
        #expect(confirmer.shown.first?.contains("wants to sign with the key \"mail\"") == true, "\(confirmer.shown)")
        #expect(agent.signDecisions == ["confirmed", "denied", "prompt-cancelled", "prompt-timed-out", "nowhere-to-ask"], "\(agent.auditLines)")
        #expect(agent.auditLines.filter { $0.contains("\"rule\":\"\(agent.paths.config)/clients:1\"") }.count == 5)
    }

    @Test("Allow for 5 minutes is remembered for that program and key: the next uses are not asked")
    func allowForFiveMinutes() throws {
        let confirmer = ScriptedConfirmer([.allowFor5Minutes])
        let agent = try PolicyAgent(clients: "confirm program=* key=*\n", confirmer: confirmer)
        let key = try agent.key("five")
        for _ in 0..<3 {
            guard case .signature = agent.sign(key) else { throw TestFailure("a sign within the 5 minutes was refused") }
        }
        #expect(confirmer.shown.count == 1)
        #expect(agent.signDecisions == ["confirmed", "confirmed", "confirmed"])
        #expect(agent.auditLines.filter { $0.contains("allowed for 5 minutes at an earlier prompt") }.count == 2)
    }

    @Test("A deny rule refuses with its file and line (a rule for another operation before it does not apply), and the listing has both rules")
    func denyRule() throws {
        let agent = try PolicyAgent(clients: "# no decrypting here\n\ndeny program=* operations=derive\ndeny program=* key=label:mail operations=sign\n")
        let key = try agent.key("deny")
        let response = agent.sign(key)
        #expect(errorCode(response) == .deniedByPolicy)
        #expect(message(response).contains("may not sign with the key \"mail\" (rule at \(agent.paths.config)/clients:4)"), "\(message(response))")
        #expect(agent.signDecisions == ["denied"])
        guard case .policy(let report) = agent.call(.policy) else { throw TestFailure("no policy report") }
        #expect(report.rules.map(\.line) == [3, 4])
        #expect(report.recent.first?.decision == "denied" && report.recent.first?.operation == "sign")
    }

    @Test("With no clients files every program may use every key, and the audit lines are as before rules existed")
    func defaultAllows() throws {
        let agent = try PolicyAgent(clients: "# only comments\n")
        let key = try agent.key("default")
        guard case .signature = agent.sign(key) else { throw TestFailure("the default policy refused") }
        #expect(agent.signDecisions == ["-"])
    }

    @Test("An unknown name in a clients file is an error with its file and line, and the file is refused")
    func unknownName() throws {
        let (rules, problems) = ClientPolicy.parse("allow program=*\ndeny program=* colour=blue\nallw program=*\n", file: "/x/clients")
        #expect(rules.count == 1)
        #expect(problems == ["/x/clients:2: unknown name \"colour\" (known: program, script, key, operations)",
                             "/x/clients:3: a rule starts with allow, confirm or deny, not \"allw\""])
        let agent = try PolicyAgent(clients: "allow program=* keys=*\n")
        let key = try agent.key("unknown")
        let response = agent.sign(key)
        #expect(errorCode(response) == .deniedByPolicy && message(response).contains("clients:1: unknown name \"keys\""), "\(message(response))")
    }

    @Test("A clients file writable by others, or owned by another user, is refused with the reason")
    func unsafeFile() throws {
        let directory = try TestPaths.temporaryDirectory("signet-policy-file")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("clients").path
        try "allow program=*\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o666)
        let open = ClientPolicy.loadFile(path, administrator: false)
        #expect(open.rules.isEmpty && open.problems.count == 1)
        #expect(open.problems.first?.contains("is writable by group or others (mode 666)") == true, "\(open.problems)")
        chmod(path, 0o644)
        #expect(!ClientPolicy.loadFile(path, administrator: false).refused)
        chown(path, 65534, 65534)
        let foreign = ClientPolicy.loadFile(path, administrator: false)
        #expect(foreign.problems.first?.contains("belongs to uid 65534") == true, "\(foreign.problems)")
        #expect(ClientPolicy.load(administrator: path, user: directory.appendingPathComponent("none").path).decide(
            PeerProcess(pid: 1, uid: 0, executable: "/bin/true"), .sign, nil).action == .deny)
    }

    @Test("The administrator's deny or confirm wins over the user's allow; the user's deny wins over the administrator's allow")
    func administratorWins() throws {
        let directory = try TestPaths.temporaryDirectory("signet-policy-admin")
        defer { try? FileManager.default.removeItem(at: directory) }
        let admin = directory.appendingPathComponent("admin").path, user = directory.appendingPathComponent("user").path
        let peer = PeerProcess(pid: 1, uid: 0, executable: "/usr/bin/thunderbird")
        func decide(_ adminText: String, _ userText: String) throws -> PolicyDecision {
            try adminText.write(toFile: admin, atomically: true, encoding: .utf8)
            try userText.write(toFile: user, atomically: true, encoding: .utf8)
            chmod(admin, 0o644); chmod(user, 0o600)
            return ClientPolicy.load(administrator: admin, user: user).decide(peer, .sign, nil)
        }
        let denied = try decide("deny program=/usr/bin/thunderbird\n", "allow program=*\n")
        #expect(denied.action == .deny && denied.rule?.origin == "\(admin):1")
        #expect(try decide("confirm program=*\n", "allow program=/usr/bin/thunderbird\n").action == .confirm)
        let tighter = try decide("allow program=*\n", "\n# mine\ndeny program=/usr/bin/thunderbird operations=sign\n")
        #expect(tighter.action == .deny && tighter.rule?.origin == "\(user):3")
        #expect(try decide("", "").action == .allow)
    }

    @Test("A script run by an interpreter is the interpreter plus the script, resolved against the working directory")
    func interpreterScripts() {
        #expect(Interpreters.isInterpreter("/usr/bin/python3.11") && Interpreters.isInterpreter("/bin/bash") && !Interpreters.isInterpreter("/usr/bin/thunderbird"))
        #expect(Interpreters.script(["python3", "-u", "sign.py", "x"], cwd: "/nonexistent/dir") == "/nonexistent/dir/sign.py")
        #expect(Interpreters.script(["python3", "-m", "http.server"], cwd: "/") == "-m http.server")
        #expect(Interpreters.script(["bash", "-c", "echo"], cwd: "/") == "-c")
        #expect(Interpreters.script(["python3"], cwd: "/") == nil)
        let me = PeerProcess.describe(pid: getpid(), uid: getuid())
        #expect(!me.executable.isEmpty && me.startTime != nil && !me.exited)
        #expect(Interpreters.isInterpreter("/usr/bin/node-20") && Interpreters.isInterpreter("sh") && !Interpreters.isInterpreter("/usr/bin/")
            && !Interpreters.isInterpreter("/opt/python3/bin/signet") && !Interpreters.isInterpreter("3.11"))
    }

    @Test("The start time is field 22 of /proc/PID/stat, also when the command's name holds spaces and parentheses")
    func startTime() throws {
        let directory = try TestPaths.temporaryDirectory("signet-stat")
        defer { try? FileManager.default.removeItem(at: directory) }
        let program = directory.path + "/x) 1 2 3 (y"
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: program)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: program)
        child.arguments = ["30"]
        try child.run()
        defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        var stat = ""
        for _ in 0..<200 where !stat.contains("(x) 1 2 3 (y)") {  // until the child has executed the copy
            stat = (try? String(contentsOfFile: "/proc/\(child.processIdentifier)/stat", encoding: .utf8)) ?? ""
            usleep(10_000)
        }
        #expect(stat.contains("(x) 1 2 3 (y)"))
        // The kernel's own layout: after the last ')', fields 3, 4, … one space apart.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        #expect(Caller.startTime(child.processIdentifier) == UInt64(fields[19]))
        #expect(Caller.startTime(child.processIdentifier) != UInt64(fields[20]))
        #expect(Caller.startTime(Int32.max) == nil)
    }
}
