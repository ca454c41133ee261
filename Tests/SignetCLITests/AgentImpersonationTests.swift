import Foundation
import SignetTestSupport
import Testing

/// Issue 24 #1: another local user can no longer impersonate the agent to steal the access code.
///
/// Without `XDG_RUNTIME_DIR` the socket is `$TMPDIR/signet-<uid>/agent.sock`. A real second user
/// (`sigc-mallory`, made here with useradd) runs an impostor (`impostor.py`, as that user through
/// `setpriv`): it answers like an agent (hello, "Unlocked.") and records every byte it receives. Before
/// the fix the client sent it the hello and then the `unlock` frame with the code; now the client checks
/// the socket's directory at every connect and the listener's uid (`SO_PEERCRED`) before it writes.
@Suite("Hardening: the client verifies the agent before it sends anything (a second user's socket)")
final class AgentImpersonationTests {
    let agent: AgentFixture
    let work: URL
    /// The shared temporary directory (1777, like /tmp) that `TMPDIR` names.
    let shared: URL
    var environment: [String: String]
    let code = "917-secret-402"
    var fallbackDirectory: String { shared.appendingPathComponent("signet-\(getuid())").path }

    init() throws {
        try SecondUser.require()
        agent = try AgentFixture()
        work = agent.home.appendingPathComponent("impostor")
        shared = agent.home.appendingPathComponent("tmp")
        for directory in [work, shared] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            chmod(directory.path, 0o1777)
        }
        chmod(agent.home.path, 0o755)  // the second user reaches its files below it
        var env = agent.environment
        env["XDG_RUNTIME_DIR"] = nil
        env["XDG_CACHE_HOME"] = nil
        env["TMPDIR"] = shared.path
        environment = env
    }

    deinit { _ = try? Run.command(AgentFixture.signet, ["agent", "stop"], environment: environment, timeout: 30) }

    /// `signet unlock` with the code on standard input (`--code-fd 0`).
    func unlock(_ environment: [String: String]? = nil) throws -> Run.Result {
        try Run.command(AgentFixture.signet, ["unlock", "--code-fd", "0"], stdin: Data((code + "\n").utf8),
                        environment: environment ?? self.environment, timeout: 60)
    }

    /// A `SIGNET_AGENT` that plays the watcher of /proc: when the victim's client starts the agent, it has the
    /// impostor plant its directory and socket at the fallback path, waits until they are there, and only then
    /// runs the real agent (which then sees the planted directory and moves to ~/.cache/signet/run).
    func plantingAgent(_ impostor: Impostor) throws -> String {
        let script = work.appendingPathComponent("planting-agent").path
        try """
        #!/bin/sh
        echo plant > '\(impostor.trigger)'
        read pid < '\(impostor.ready)'
        exec '\(AgentFixture.agentBinary)' "$@"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        return script
    }

    @Test("unlock without XDG_RUNTIME_DIR: a directory and socket another user plants while the agent starts get nothing, and the client says so")
    func plantedWhileTheAgentStarts() throws {
        let impostor = try Impostor(work: work, socketDirectory: fallbackDirectory, waitForTrigger: true)
        environment["SIGNET_AGENT"] = try plantingAgent(impostor)
        let result = try unlock()
        let seen = try impostor.stop()
        #expect(seen.bytes.isEmpty, "the impostor received \(seen.bytes.count) bytes: \(seen.text)")
        #expect(!seen.text.contains(code))
        #expect(result.status != 0, "\(result.output)")
        #expect(!result.output.contains("Unlocked"), "\(result.output)")
        #expect(result.errors.contains("\(fallbackDirectory) belongs to uid \(SecondUser.uid), not to you")
                && result.errors.contains("impersonating signet-agent") && result.errors.contains("Nothing was sent"), "\(result.errors)")
        #expect(!result.errors.contains("not running") && !result.errors.contains("did not answer within"), "\(result.errors)")
    }

    @Test("unlock: the directory is the user's own (0700) but the socket in it is another user's listener: SO_PEERCRED refuses it before a byte is sent")
    func socketReplacedInAPrivateDirectory() throws {
        // The window every directory check leaves: the directory is right, the process behind the socket is not.
        try #require(mkdir(fallbackDirectory, 0o700) == 0)
        let impostor = try Impostor(work: work, socketDirectory: work.appendingPathComponent("own").path, waitForTrigger: false)
        try impostor.waitUntilListening()
        let planted = fallbackDirectory + "/agent.sock"
        try #require(rename(impostor.socketPath, planted) == 0, "\(String(cString: strerror(errno)))")
        try #require(chown(planted, getuid(), getgid()) == 0)  // even the socket file looks like the user's
        let result = try unlock()
        let seen = try impostor.stop()
        #expect(seen.connections == 1, "the client connected once, to check the listener")
        #expect(seen.bytes.isEmpty, "the impostor received \(seen.bytes.count) bytes: \(seen.text)")
        #expect(result.status != 0 && !result.output.contains("Unlocked"), "\(result.output)")
        #expect(result.errors.contains("the socket at \(planted) belongs to uid \(SecondUser.uid)") && result.errors.contains("impersonating signet-agent"),
                "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: agent.home.path + "/.cache/signet/run/agent.sock"), "no second agent was started over it")
    }

    // The module starts no agent as root (docs/pkcs11-module.md), so it cannot race one starting here: the
    // impostor plants its directory and socket first, and the module must not send it anything.
    @Test("the PKCS#11 module (pkcs11-tool --login) without XDG_RUNTIME_DIR: the planted socket gets nothing")
    func moduleAgainstAPlantedSocket() throws {
        let impostor = try Impostor(work: work, socketDirectory: fallbackDirectory, waitForTrigger: false)
        try impostor.waitUntilListening()
        let module = TestPaths.binaries.appendingPathComponent("libsignet-pkcs11.so").path
        let result = try Run.command("pkcs11-tool", ["--module", module, "--login", "--pin", code, "--list-objects"], environment: environment, timeout: 60)
        let seen = try impostor.stop()
        #expect(seen.bytes.isEmpty, "the impostor received \(seen.bytes.count) bytes: \(seen.text)")
        #expect(!seen.text.contains(code))
        #expect(result.status != 0, "\(result.output)")
    }

    @Test("a user who is not root refuses root's agent: SO_PEERCRED shows uid 0")
    func rootsAgentIsNotTheUsers() throws {
        let victim = try SecondUser.victim()
        // The victim's own private directory, with a listener that root runs in it.
        let directory = shared.appendingPathComponent("signet-\(victim.uid)").path
        let home = work.appendingPathComponent("victim-home").path
        try #require(mkdir(directory, 0o700) == 0 && chown(directory, victim.uid, victim.gid) == 0)
        try #require(mkdir(home, 0o700) == 0 && chown(home, victim.uid, victim.gid) == 0)
        // A copy the other user can run wherever the build directory lives (it may be under /root).
        let signet = work.appendingPathComponent("signet").path
        try TestPaths.copyExecutable(AgentFixture.signet, to: signet)
        chmod(signet, 0o755)
        let impostor = try Impostor(work: work, socketDirectory: directory, waitForTrigger: false, user: nil)
        try impostor.waitUntilListening()
        let result = try Run.command("/usr/bin/setpriv", ["--reuid=\(victim.uid)", "--regid=\(victim.gid)", "--init-groups",
                                                          signet, "unlock", "--code-fd", "0"],
                                     stdin: Data((code + "\n").utf8),
                                     environment: ["HOME": home, "TMPDIR": shared.path, "PATH": "/usr/bin:/bin", "SIGNET_AGENT": "/bin/false"], timeout: 60)
        let seen = try impostor.stop()
        #expect(seen.bytes.isEmpty, "root's listener received \(seen.bytes.count) bytes: \(seen.text)")
        #expect(result.status != 0 && result.errors.contains("belongs to uid 0 ") && result.errors.contains("not you (uid \(victim.uid))"),
                "\(result.output) \(result.errors)")
    }
}

/// A process of another user that listens where the agent's socket should be, answers like an agent
/// (hello, then "Unlocked." to an unlock) and reports every byte it received when stopped (SIGTERM).
final class Impostor: @unchecked Sendable {
    let trigger: String
    let ready: String
    let socketPath: String
    private let pidFile: String
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<Run.Result, Error>?

    /// - Parameters:
    ///   - socketDirectory: made by the impostor (0700) if absent; its socket is `agent.sock` in it.
    ///   - waitForTrigger: plant only when a line arrives on the `trigger` FIFO.
    ///   - user: who runs it (nil: this process's user, root).
    init(work: URL, socketDirectory: String, waitForTrigger: Bool, user: String? = SecondUser.name) throws {
        let tag = UUID().uuidString.prefix(6)
        trigger = work.appendingPathComponent("trigger-\(tag)").path
        ready = work.appendingPathComponent("ready-\(tag)").path
        pidFile = work.appendingPathComponent("pid-\(tag)").path
        socketPath = socketDirectory + "/agent.sock"
        for fifo in [trigger, ready] {
            guard mkfifo(fifo, 0o666) == 0 else { throw TestFailure("mkfifo \(fifo): \(String(cString: strerror(errno)))") }
            chmod(fifo, 0o666)
        }
        let script = work.appendingPathComponent("impostor.py").path
        try Impostor.source.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        var command = ["/usr/bin/python3", script, socketDirectory, waitForTrigger ? trigger : "-", ready, pidFile]
        if let user { command = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--init-groups"] + command }
        let arguments = command
        DispatchQueue.global().async { [self] in
            result = Result { try Run.command(arguments[0], Array(arguments.dropFirst()), environment: ["PATH": "/usr/bin:/bin"], timeout: 120) }
            finished.signal()
        }
        // Its pid file comes first, before it waits for the trigger.
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: pidFile) {
            if finished.wait(timeout: .now()) == .success { throw TestFailure("the impostor exited at start: \(describe(result))") }
            guard Date() < deadline else { throw TestFailure("the impostor did not start within 30 s") }
            usleep(10_000)
        }
    }

    /// Waits until it listens (it says so on the `ready` FIFO).
    func waitUntilListening() throws {
        guard let handle = FileHandle(forReadingAtPath: ready) else { throw TestFailure("cannot open \(ready)") }
        _ = handle.readDataToEndOfFile()
        try handle.close()
    }

    /// Stops it and returns what it received.
    func stop() throws -> (connections: Int, bytes: [UInt8], text: String) {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("no pid from the impostor")
        }
        kill(pid, SIGTERM)
        guard finished.wait(timeout: .now() + 60) == .success, case .success(let run)? = result else {
            throw TestFailure("the impostor did not stop: \(describe(result))")
        }
        let lines = run.output.split(separator: "\n")
        guard lines.count == 2, let connections = Int(lines[0].dropFirst("connections ".count)) else {
            throw TestFailure("the impostor's report is unreadable (it was never triggered?): \(run.output) \(run.errors)")
        }
        let hex = String(lines[1].dropFirst("bytes ".count))
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return (connections, bytes, String(decoding: bytes.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: ".") }, as: UTF8.self))
    }

    private func describe(_ result: Result<Run.Result, Error>?) -> String {
        switch result {
        case .success(let run)?: "status \(run.status): \(run.output) \(run.errors)"
        case .failure(let error)?: "\(error)"
        case nil: "still running"
        }
    }

    /// The impostor: agent frames are a u32 big-endian body length, then kind, u32 id, fields (docs/protocol.md).
    static let source = #"""
    import os, select, signal, socket, struct, sys
    # Started from a thread of the test that blocks signals: take SIGTERM again.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    directory, trigger, ready, pid_file = sys.argv[1:5]
    with open(pid_file + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + '.tmp', pid_file)
    if trigger != '-':
        with open(trigger) as f:
            f.readline()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.path.join(directory, 'agent.sock'))
    os.chmod(os.path.join(directory, 'agent.sock'), 0o777)
    server.listen(16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: None)
    with open(ready, 'w') as f:
        f.write(str(os.getpid()) + '\n')
    received = bytearray()
    connections = 0
    buffers = {}

    def text(s):
        b = s.encode()
        return struct.pack('>I', len(b)) + b

    def answer(conn, kind, ident):
        if kind == 0x01:    # hello: version 1, agent version, pid
            body = bytes([0x81]) + ident + struct.pack('>H', 1) + text('0.2.0') + struct.pack('>I', os.getpid())
        elif kind in (0x06, 0x1D):  # unlock: "Unlocked."
            body = bytes([0x86]) + ident + bytes([0, 0, 0]) + text('Unlocked.')
        else:
            body = bytes([0x87]) + ident + text('')
        conn.sendall(struct.pack('>I', len(body)) + body)

    def take(conn, data):
        received.extend(data)
        buf = buffers[conn] + data
        while len(buf) >= 4:
            (length,) = struct.unpack('>I', buf[:4])
            if len(buf) < 4 + length:
                break
            body, buf = buf[4:4 + length], buf[4 + length:]
            try:
                answer(conn, body[0], body[1:5])
            except OSError:
                pass
        buffers[conn] = buf

    stopping = False
    while True:
        readable, _, _ = select.select([server, wake_r] + list(buffers), [], [], 0 if stopping else None)
        if not readable and stopping:
            break
        for r in readable:
            if r is wake_r:
                os.read(wake_r, 64)
                stopping = True
            elif r is server:
                conn, _ = server.accept()
                connections += 1
                buffers[conn] = b''
            else:
                data = r.recv(65536)
                if data:
                    take(r, data)
                else:
                    del buffers[r]
                    r.close()
    print('connections %d' % connections)
    print('bytes ' + received.hex())
    """#
}
