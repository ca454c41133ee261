import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetTestSupport
import Testing

/// A protocol client in Python: `sign SOCKET KEY` connects, says hello and signs; `bus-sign SOCKET KEY ADDRESS` sends
/// `ADDRESS` as its session bus in `clientEnvironment` first; `exec SOCKET KEY SCRIPT`
/// connects and says hello, then executes `SCRIPT` (the same interpreter) keeping the connection open;
/// `fd N KEY` signs over descriptor N. It prints `signed` or `error CODE MESSAGE`.
private let pythonClient = #"""
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

def hello(s):
    s.sendall(frame(1, 1, b"signet-agent" + struct.pack(">HH", 1, 1) + text("policy-test")))
    read(s)

def sign(s, key):
    s.sendall(frame(8, 2, text(key) + struct.pack(">QQQI", 0x1041, 0, 0, 0) + struct.pack(">I", 0) + struct.pack(">I", 32) + bytes(32)))
    kind, rest = read(s)
    while kind == 0x8E:
        kind, rest = read(s)
    if kind == 0xFF:
        (code,) = struct.unpack(">H", rest[:2])
        (length,) = struct.unpack(">I", rest[2:6])
        print("error %d %s" % (code, rest[6:6 + length].decode()))
    elif kind == 0x88:
        print("signed")
    else:
        print("answer %#x" % kind)

mode = sys.argv[1]
if mode == "fd":
    sign(socket.socket(fileno=int(sys.argv[2])), sys.argv[3])
else:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[2])
    hello(s)
    if mode == "sign":
        sign(s, sys.argv[3])
    elif mode == "bus-sign":
        # clientEnvironment (0x1C) naming a session bus, its answer, then the signature
        address = sys.argv[4]
        s.sendall(frame(0x1C, 3, struct.pack(">I", 1) + text("DBUS_SESSION_BUS_ADDRESS") + text(address)))
        read(s)
        sign(s, sys.argv[3])
    else:
        os.set_inheritable(s.fileno(), True)
        os.execv(sys.executable, [sys.executable, sys.argv[4], "fd", str(s.fileno()), sys.argv[3]])
"""#

/// A real agent with one unlocked software token holding a P-256 key labelled `mail`, a `clients` file of
/// `rules`, and the Python client at two paths (`client.py`, and `other.py` for the exec test).
private struct PolicyAgentSetup {
    let agent: AgentFixture
    let key: String
    let directory: URL
    var client: String { directory.appendingPathComponent("client.py").path }
    var other: String { directory.appendingPathComponent("other.py").path }
    var clientsFile: String { agent.paths.config + "/clients" }

    init(rules: String, mode: mode_t = 0o600, config: String = "", extraEnvironment: [String: String] = [:]) throws {
        agent = try AgentFixture(config: config, extraEnvironment: extraEnvironment)
        directory = agent.home.appendingPathComponent("programs")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for path in [directory.appendingPathComponent("client.py").path, directory.appendingPathComponent("other.py").path] {
            try pythonClient.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let rulesText = rules.replacingOccurrences(of: "CLIENT", with: directory.appendingPathComponent("client.py").path)
        try rulesText.write(toFile: agent.paths.config + "/clients", atomically: true, encoding: .utf8)
        chmod(agent.paths.config + "/clients", mode)
        try agent.start()
        let token = try agent.makeToken("Policy")
        let client = try agent.client()
        guard try agent.unlock(client, token: token, code: "123456").kind == .unlocked else { throw TestFailure("unlock failed") }
        guard case .keyPair(_, let privateKey, _) = try client.call(.generateKeyPair(token: token, keyType: .ec, bits: 0, curve: "P-256",
                                                                                      id: [5], label: "mail")) else {
            throw TestFailure("no key pair")
        }
        key = privateKey
    }

    /// Runs the Python client with `interpreter`; its one line of output.
    func run(_ arguments: [String], interpreter: String = "/usr/bin/python3") throws -> String {
        let result = try Run.command(interpreter, [client] + arguments, environment: agent.environment, timeout: 30)
        return (result.output + result.errors).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func sign(with interpreter: String = "/usr/bin/python3") throws -> String { try run(["sign", agent.socketPath, key], interpreter: interpreter) }

    func auditLines(_ action: String = "sign") -> [String] { agent.auditLog.split(separator: "\n").map(String.init).filter { $0.contains("\"action\":\"\(action)\"") } }
}

@Suite("Client rules, with a real agent", .serialized)
struct ClientPolicyAgentTests {
    /// Allows only python3 running client.py; everything else is denied.
    static let onlyTheClient = "allow program=/usr/bin/python3 script=CLIENT operations=sign\ndeny program=*\n"

    @Test("A copy of an allowed program at another path is another program, and is denied")
    func copiedBinary() throws {
        let setup = try PolicyAgentSetup(rules: Self.onlyTheClient)
        #expect(try setup.sign() == "signed")
        let copy = setup.directory.appendingPathComponent("python3.11").path
        try TestPaths.copyExecutable(URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path, to: copy)
        let answer = try setup.sign(with: copy)
        #expect(answer.hasPrefix("error 36 signet: \(copy) \(setup.client) (pid "), "\(answer)")
        #expect(answer.contains("may not sign with the key \"mail\" (rule at \(setup.clientsFile):2)"), "\(answer)")
        let lines = setup.auditLines()
        #expect(lines.count == 2)
        #expect(lines.first?.contains("\"decision\":\"allowed\",\"rule\":\"\(setup.clientsFile):1\"") == true, "\(lines)")
        #expect(lines.last?.contains("\"exe\":\"\(copy)\"") == true && lines.last?.contains("\"decision\":\"denied\"") == true, "\(lines)")
    }

    @Test("A program that connects and then executes another is judged as the new one")
    func execAfterConnecting() throws {
        let setup = try PolicyAgentSetup(rules: Self.onlyTheClient)
        let answer = try setup.run(["exec", setup.agent.socketPath, setup.key, setup.other])
        #expect(answer.hasPrefix("error 36 "), "\(answer)")
        #expect(answer.contains(setup.other) && answer.contains("(rule at \(setup.clientsFile):2)"), "\(answer)")
        let line = try #require(setup.auditLines().last)
        #expect(line.contains("\"script\":\"\(setup.other)\"") && line.contains("\"connected_as\":") && line.contains(setup.client), "\(line)")
    }

    @Test("A clients file writable by others is refused with the reason, key use is denied, and a reload puts it in force once fixed")
    func unsafeFileAndReload() throws {
        let setup = try PolicyAgentSetup(rules: "allow program=*\n", mode: 0o666)
        let denied = try setup.sign()
        #expect(denied.hasPrefix("error 36 ") && denied.contains("is writable by group or others (mode 666)"), "\(denied)")
        #expect(setup.agent.agentLog.contains("\(setup.clientsFile): is writable by group or others"), "\(setup.agent.agentLog)")
        let listing = try setup.agent.signet(["policy"])
        #expect(listing.output.contains("\(setup.clientsFile) (yours): REFUSED"), "\(listing.output)\(listing.errors)")
        #expect(listing.output.contains("denied"), "\(listing.output)")

        // The reload request answers once the fixed file's rules are in force: the next use is allowed at once.
        chmod(setup.clientsFile, 0o600)
        let report = try setup.agent.reload()
        #expect(report.clientRules == 1 && report.problems.isEmpty, "\(report)")
        #expect(try setup.sign() == "signed")
        let fixed = try setup.agent.signet(["policy"])
        #expect(fixed.output.contains("\(setup.clientsFile) (yours): 1 rule(s)") && fixed.output.contains("\(setup.clientsFile):1  allow  *"),
                "\(fixed.output)")
    }

    @Test("Each use sends a desktop notification, coalesced per program and key; without a notification server signing goes on")
    func notifications() throws {
        let notifications = try NotificationServer()
        let bus = notifications.directory, address = notifications.address, received = notifications.received
        let setup = try PolicyAgentSetup(rules: "", config: "notify = sign\nnotify-seconds = 1\n",
                                         extraEnvironment: ["DBUS_SESSION_BUS_ADDRESS": address])
        for _ in 0..<3 { #expect(try setup.sign() == "signed") }
        var lines: [String] = []
        for _ in 0..<100 {
            lines = (FileIO.readText(received, limit: 1 << 16) ?? "").split(separator: "\n").map(String.init)
            if lines.count >= 2 { break }
            usleep(100_000)
        }
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.hasPrefix("Signet: mail signed | /usr/bin/python3") == true && lines.first?.contains(setup.client) == true, "\(lines)")
        #expect(lines.last?.contains("2 more times") == true, "\(lines)")

        // No server on this bus: the operation does not wait for it.
        let silent = try PolicyAgentSetup(rules: "", config: "notify = sign\n",
                                          extraEnvironment: ["DBUS_SESSION_BUS_ADDRESS": "unix:path=\(bus.path)/nobody-here"])
        let start = Date()
        #expect(try silent.sign() == "signed")
        #expect(Date().timeIntervalSince(start) < 2)
    }

    @Test("A session bus a client names is used only when it is the client's own socket: a loopback TCP listener and another user's socket are never connected to; the agent's own bus gets the notification",
          arguments: ["tcp", "another user's socket"])
    func hostileSessionBus(kind: String) throws {
        try SecondUser.require()
        let notifications = try NotificationServer()
        let setup = try PolicyAgentSetup(rules: "", config: "notify = sign\n", extraEnvironment: ["DBUS_SESSION_BUS_ADDRESS": notifications.address])
        let recorder = try ConnectionRecorder(tcp: kind == "tcp", directory: setup.agent.home)
        #expect(try setup.run(["bus-sign", setup.agent.socketPath, setup.key, recorder.address]) == "signed")
        // The agent runs gdbus once: to its own bus (the notification arrives) or to the client's address (a connection is recorded).
        let sent = eventually(timeout: .seconds(15)) { !notifications.lines.isEmpty || recorder.connections > 0 }
        #expect(sent, "no notification anywhere")
        #expect(recorder.connections == 0, "the agent's gdbus connected to \(recorder.address)")
        #expect(notifications.lines.count == 1 && notifications.lines.first?.hasPrefix("Signet: mail signed") == true, "\(notifications.lines)")
    }
}

/// A listener that records each connection: on loopback TCP (a port from 41100–41199), or on a Unix socket that
/// another user (`SecondUser`) owns, in a directory of theirs. Killed when it goes.
final class ConnectionRecorder {
    let address: String
    private let log: String
    private let pid: pid_t

    init(tcp: Bool, directory: URL) throws {
        let work = directory.appendingPathComponent("recorder-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        chmod(work.path, 0o1777)
        chmod(directory.path, 0o755)
        let log = work.appendingPathComponent("connections").path
        self.log = log
        let script = #"""
import os, socket, sys
kind, target, log = sys.argv[1:4]
if kind == 'tcp':
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for port in range(41100, 41200):
        try:
            s.bind(('127.0.0.1', port))
            break
        except OSError:
            continue
    address = 'tcp:host=127.0.0.1,port=%d' % port
else:
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(target)
    os.chmod(target, 0o777)
    address = 'unix:path=' + target
s.listen(8)
with open(log + '.address.tmp', 'w') as f:
    f.write(address)
os.rename(log + '.address.tmp', log + '.address')
while True:
    conn, _ = s.accept()
    with open(log, 'a') as f:
        f.write('connected\n')
    conn.close()
"""#
        var command = ["/usr/bin/python3", "-c", script, tcp ? "tcp" : "unix", work.appendingPathComponent("theirs/bus").path, log]
        if !tcp { command = ["/usr/bin/setpriv", "--reuid=\(SecondUser.name)", "--regid=\(SecondUser.name)", "--init-groups"] + command }
        pid = try AgentFixture.spawn(command[0], Array(command.dropFirst()), environment: ["PATH": "/usr/bin:/bin"], log: log + ".stderr")
        guard eventually(timeout: .seconds(15), { FileManager.default.fileExists(atPath: log + ".address") }),
              let address = FileIO.readText(log + ".address", limit: 4096) else {
            kill(pid, SIGKILL)
            throw TestFailure("the recorder did not start: \(FileIO.readText(log + ".stderr", limit: 1 << 16) ?? "")")
        }
        self.address = address
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Connections accepted so far.
    var connections: Int { (FileIO.readText(log, limit: 1 << 16) ?? "").split(separator: "\n").count }
}

/// A private session bus (a real dbus-daemon) with a fake notification server on it (python3-dbus), which writes
/// each Notify's summary and body to `received`, one line each. Both are killed when it goes.
final class NotificationServer {
    let directory: URL
    let address: String
    let received: String
    private var pids: [pid_t] = []

    init() throws {
        directory = try TestPaths.temporaryDirectory("signet-bus")
        address = "unix:path=\(directory.path)/bus"
        received = directory.appendingPathComponent("received").path
        let log = directory.appendingPathComponent("log").path
        pids.append(try AgentFixture.spawn("/usr/bin/dbus-daemon", ["--session", "--nofork", "--nopidfile", "--address=\(address)"],
                                           environment: ["PATH": "/usr/bin:/bin"], log: log))
        pids.append(try AgentFixture.spawn("/usr/bin/python3", ["-c", #"""
import sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
class Server(dbus.service.Object):
    @dbus.service.method("org.freedesktop.Notifications", in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        with open(sys.argv[1], "a") as f:
            f.write(summary + " | " + body + "\n")
        return 1
bus = dbus.bus.BusConnection(sys.argv[2])
name = dbus.service.BusName("org.freedesktop.Notifications", bus)
Server(bus, "/org/freedesktop/Notifications")
open(sys.argv[1] + ".ready", "w").close()
GLib.MainLoop().run()
"""#, received, address], environment: ["PATH": "/usr/bin:/bin"], log: log))
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: received + ".ready") { usleep(50_000) }
    }

    deinit {
        for pid in pids.reversed() {
            kill(pid, SIGKILL)  // the test runner blocks SIGTERM, and children inherit the mask
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// The notifications received so far.
    var lines: [String] { (FileIO.readText(received, limit: 1 << 16) ?? "").split(separator: "\n").map(String.init) }
}
