#if canImport(Glibc)
import Glibc
#endif
import SignetAgentProtocol
import SignetCore

/// Why a call to the agent failed.
public enum AgentClientError: Error, CustomStringConvertible, Sendable {
    /// No agent listens on the socket (and none was started).
    case notRunning(String)
    /// The agent could not be started.
    case startFailed(String)
    /// The connection failed or closed mid-call.
    case connection(String)
    /// The agent sent something this client does not understand.
    case protocolViolation(String)
    /// The agent answered with an error.
    case agent(AgentErrorCode, String)
    /// What listens at the socket is not this user's agent (another uid's socket or directory): nothing was sent.
    case notYourAgent(String)

    public var description: String {
        switch self {
        case .notRunning(let path): "signet-agent is not running (no agent at \(path)); start it with `signet agent start`"
        case .startFailed(let why): "could not start signet-agent: \(why)"
        case .connection(let why): "lost the connection to signet-agent: \(why)"
        case .protocolViolation(let why): "signet-agent sent an unexpected answer: \(why)"
        case .agent(_, let message): message
        case .notYourAgent(let why): "refusing to talk to signet-agent: \(why)"
        }
    }

    /// The agent's error code, when the agent answered with one.
    public var code: AgentErrorCode? { if case .agent(let code, _) = self { code } else { nil } }
}

/// A connection to `signet-agent`: handshake, then requests and their answers.
/// Requests may be pipelined (`send` several, then `receive`); `call` is one round trip.
public final class AgentClient {
    public let fd: Int32
    /// The agent's version and pid from the handshake.
    public private(set) var agentVersion = ""
    public private(set) var agentPID: UInt32 = 0
    private var nextID: UInt32 = 1
    private let frame = WireBuffer(capacity: 512)
    /// Whether the next `receive` polls awake for up to `spinWindow` before sleeping.
    private(set) var spinning = true

    /// How long `receive` polls for an answer before it sleeps. The agent answers one client's
    /// signature in tens of microseconds, sooner than a sleeping thread is woken. When it serves
    /// other clients too, answers take longer than the window, and a client polling through it
    /// only takes a processor from the agent (8 clients polling on 2 processors left the agent's
    /// token thread idle most of the time: 0.6 times the 1-client rate), so after an answer that
    /// missed the window the next wait sleeps at once, and polling resumes after one that made it.
    static let spinWindow = 0.000_2
    /// Requests whose answers nobody waits for (`clientEnvironment`): skipped when they arrive.
    private var unread: Set<UInt32> = []

    /// Connects to the socket at `path` and performs the handshake. Before anything is written, the socket's
    /// directory and the listening process must be this user's own (`AgentIdentity`), at every connect.
    /// - Parameter environment: where this client can be asked for a code (`CallerEnvironment.current()`), sent
    ///   right behind the hello, in the same burst: it costs no round trip, and its answer is skipped when it arrives.
    /// - Throws: `.notRunning` when nothing listens there; `.notYourAgent` when the directory or the listener is
    ///   another user's; `.agent` when the agent refuses (not permitted, busy).
    public init(socketPath path: String, clientName: String = "signet", environment: [(String, String)]? = nil) throws(AgentClientError) {
        try AgentIdentity.checkDirectory(of: path)
        let connected: Int32
        do throws(SocketError) {
            connected = try UnixSocket.connect(path)
        } catch {
            if error.code == ENOENT || error.code == ECONNREFUSED { throw .notRunning(path) }
            throw .connection("\(path): \(error)")
        }
        do throws(AgentClientError) {
            try AgentIdentity.checkPeer(connected, socketPath: path)
        } catch {
            close(connected)
            throw error
        }
        fd = connected
        UnixSocket.setSendTimeout(fd, seconds: 30)
        // From here on `deinit` owns `fd` and closes it, also when this initialiser throws (the instance is
        // whole, so Swift runs `deinit`). Closing it here as well closed the number twice: inside a host
        // program, the second close could take a descriptor another thread of the host had opened since.
        // A bounded wait: something that accepts but never answers is not an agent.
        let response = try call(.hello(minVersion: AgentProtocol.version, maxVersion: AgentProtocol.version, client: clientName), timeout: 10,
                                total: 10, then: environment.map { .clientEnvironment(entries: $0) })
        guard case .hello(_, let version, let pid) = response else {
            throw .protocolViolation("no hello in answer to hello")
        }
        agentVersion = version
        agentPID = pid
    }

    /// The one place `fd` is closed.
    deinit { close(fd) }

    /// Sends `request` without waiting; returns its id.
    @discardableResult
    public func send(_ request: AgentRequest) throws(AgentClientError) -> UInt32 {
        let id = nextID
        nextID &+= 1
        frame.clear()
        AgentFrame.encode(request, id: id, into: frame)
        defer { frame.clear() }
        do throws(SocketError) {
            try frame.withUnsafeBytes { (bytes) throws(SocketError) in try UnixSocket.writeAll(fd, bytes) }
        } catch {
            throw .connection(error.description)
        }
        return id
    }

    /// Reads the next message (interim notices included).
    /// - Parameter timeout: seconds to wait (nil: no limit).
    public func receive(timeout: Double? = nil) throws(AgentClientError) -> (id: UInt32, response: AgentResponse) {
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { prefix.deallocate() }
        do throws(SocketError) {
            let waiting = MonotonicClock.seconds()
            let answered = try UnixSocket.readExactly(fd, into: prefix, timeout: timeout, spin: spinning ? Self.spinWindow : 0)
            spinning = answered - waiting <= Self.spinWindow
        } catch {
            throw .connection(error.call == "eof" ? "the agent closed the connection" : error.description)
        }
        let length: Int
        do throws(WireError) {
            length = try AgentFrame.bodyLength(UnsafeRawBufferPointer(prefix))
        } catch {
            throw .protocolViolation(error.reason)
        }
        let body = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
        defer {
            SecretBytes.wipe(body)
            body.deallocate()
        }
        do throws(SocketError) {
            try UnixSocket.readExactly(fd, into: body, timeout: 30)
        } catch {
            throw .connection(error.description)
        }
        do throws(WireError) {
            return try AgentFrame.decodeResponse(UnsafeRawBufferPointer(body))
        } catch {
            throw .protocolViolation(error.reason)
        }
    }

    /// Sends `request` and returns its final answer; interim notices go to `onNotice`.
    /// - Throws: `.agent` when the answer is an error; `.connection` when no final answer came within `total`
    ///   (the connection is then out of step with its requests: drop it).
    /// - Parameter timeout: seconds to wait for each message (nil: as long as the agent takes).
    /// - Parameter total: seconds to wait for the final answer, interim notices included (nil: no bound but `timeout`'s).
    ///   An agent sending a notice every second would otherwise keep the caller waiting for ever.
    /// - Parameter then: a request sent right behind `request`, whose answer is not awaited (skipped when it arrives).
    public func call(_ request: AgentRequest, timeout: Double? = nil, total: Double? = nil, then unanswered: AgentRequest? = nil,
                     onNotice: (NoticeKind, String) -> Void = { _, message in Console.error(message) }) throws(AgentClientError) -> AgentResponse {
        let deadline = total.map { MonotonicClock.seconds() + $0 }
        let id: UInt32
        do throws(AgentClientError) {
            id = try send(request)
            // An agent that refused the first request has closed: its reason is read below, so a failure here is ignored.
            if let unanswered, let other = try? send(unanswered) { unread.insert(other) }
        } catch {
            // The agent may have refused the connection and closed it before we wrote: its reason is waiting to be read.
            if case (_, .error(let code, let message))? = try? receive(timeout: 1) { throw .agent(code, message) }
            throw error
        }
        while true {
            var wait = timeout
            if let deadline {
                let left = deadline - MonotonicClock.seconds()
                guard left > 0 else { throw .connection("no answer within \(Int(total ?? 0)) s (the agent kept sending interim notices)") }
                wait = min(wait ?? left, left)
            }
            let (answerID, response) = try receive(timeout: wait)
            if answerID != id, answerID != 0, unread.remove(answerID) != nil { continue }
            if case .error(let code, let message) = response, answerID == id || answerID == 0 { throw .agent(code, message) }
            guard answerID == id else { throw .protocolViolation("an answer to request \(answerID) while waiting for \(id)") }
            if case .notice(let kind, let message) = response {
                onNotice(kind, message)
                continue
            }
            return response
        }
    }
}

/// Where this process can show a prompt: what a client sends in `clientEnvironment`, so that the
/// agent can ask the person for a code (or for permission) on this client's screen or terminal.
public enum CallerEnvironment {
    /// `DISPLAY`, `WAYLAND_DISPLAY`, `XAUTHORITY`, `DBUS_SESSION_BUS_ADDRESS` and `TERM` from this
    /// process's environment, and `tty`: the terminal of standard input or standard error, else the
    /// controlling terminal's (`/dev/tty`). Entries that are unset, empty or over the protocol's bounds are left out.
    public static func current() -> [(String, String)] {
        var entries: [(String, String)] = []
        func add(_ name: String, _ value: String?) {
            guard let value, !value.isEmpty, name.utf8.count + value.utf8.count <= ClientEnvironmentLimits.bytes else { return }
            entries.append((name, value))
        }
        for name in ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS"] { add(name, getenv(name).map { String(cString: $0) }) }
        add("tty", terminalName())
        add("TERM", getenv("TERM").map { String(cString: $0) })
        return entries
    }

    /// The name of this process's terminal, if it has one: standard input's or standard error's, else the
    /// controlling terminal's real name (`/dev/pts/N`), found from `/proc/self/stat`. Never `/dev/tty`, which
    /// names whichever terminal the opener has, and which the agent therefore refuses as a place to prompt.
    static func terminalName() -> String? {
        for fd in [Int32(0), 2] where isatty(fd) == 1 {
            if let name = ttyname(fd), String(cString: name) != "/dev/tty" { return String(cString: name) }
        }
        return controllingTerminal()
    }

    /// The controlling terminal's device path: `tty_nr` (field 7 of `/proc/self/stat`, the device number as
    /// the kernel encodes it, which for these small numbers is also glibc's `st_rdev`), mapped to its name
    /// and checked against the device that name holds.
    static func controllingTerminal() -> String? {
        guard let stat = FileIO.readText("/proc/self/stat", limit: 4096), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 4, let number = UInt64(fields[4]), number != 0 else { return nil }
        let major = (number >> 8) & 0xfff
        let minor = (number & 0xff) | ((number >> 12) & 0xfff00)
        let name: String
        switch major {
        case 136...143: name = "/dev/pts/\((major - 136) * 256 + minor)"
        case 4 where minor < 64: name = "/dev/tty\(minor)"
        default: return nil
        }
        var info = Glibc.stat()
        guard lstat(name, &info) == 0, (info.st_mode & S_IFMT) == S_IFCHR, UInt64(info.st_rdev) == number else { return nil }
        return name
    }
}
