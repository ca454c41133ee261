#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import SignetAgentProtocol
import SignetCore

/// Serves the agent protocol on a listening Unix socket.
///
/// One thread accepts; each connection gets its own small thread that reads
/// frames, has them handled (token work runs under the token's worker lock),
/// and writes the answers in order. Blocking calls never run on Swift's
/// cooperative pool. A client that sends garbage, too much, or too slowly
/// gets an error frame and is disconnected; other clients are not affected.
final class AgentServer: Sendable {
    let listener: Int32
    let handler: RequestHandler
    let logger: Logger
    private let connections = Mutex<Set<Int32>>([])
    private let stopping = Atomic<Bool>(false)
    private let wake: (read: Int32, write: Int32)
    private let onShutdownRequest: @Sendable () -> Void

    init(listener: Int32, handler: RequestHandler, logger: Logger, onShutdownRequest: @escaping @Sendable () -> Void) {
        self.listener = listener
        self.handler = handler
        self.logger = logger
        self.onShutdownRequest = onShutdownRequest
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        wake = (fds[0], fds[1])
    }

    var connectionCount: Int { connections.withLock { $0.count } }

    /// Starts accepting on a background thread.
    func start() {
        DetachedThread.start { [self] in acceptLoop() }
    }

    /// Stops accepting and disconnects every client (their threads then exit).
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        connections.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop() {
        var entries = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        while !stopping.load(ordering: .relaxed) {
            let ready = poll(&entries, 2, -1)
            if ready < 0 { if errno == EINTR { continue }; break }
            if entries[1].revents != 0 || stopping.load(ordering: .relaxed) { break }
            let fd = accept(listener, nil, nil)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE { usleep(50_000) }
                continue
            }
            admit(fd)
        }
    }

    private func admit(_ fd: Int32) {
        UnixSocket.setSendTimeout(fd, seconds: 5)
        let settings = handler.currentSettings
        guard let credentials = UnixSocket.peerCredentials(fd) else {
            close(fd)
            return
        }
        guard credentials.uid == getuid() else {
            let peer = Caller(socket: fd, pid: credentials.pid, uid: credentials.uid).peer
            logger.warning("refused a connection from uid \(credentials.uid) pid \(credentials.pid) (\(peer.executable))")
            handler.record(.connectionRefused, result: "not-permitted", peer: peer, start: MonotonicClock.seconds(),
                           detail: "uid \(credentials.uid) is not allowed")
            refuse(fd, .notPermitted, "This agent serves uid \(getuid()) only; uid \(credentials.uid) may not use it.")
            return
        }
        let admitted = connections.withLock { (current: inout Set<Int32>) -> Bool in
            guard current.count < settings.maximumConnections else { return false }
            current.insert(fd)
            return true
        }
        guard admitted else {
            logger.warning("refused a connection: \(settings.maximumConnections) connections are open")
            refuse(fd, .tooManyConnections, "The agent already serves \(settings.maximumConnections) connections; close some clients or raise max-connections.")
            return
        }
        let started = DetachedThread.start(stackSize: 256 * 1024) { [self] in
            // Identified in the connection's own thread, before its first request is read (pidfd, executable,
            // script, start time; the accepting thread goes on to the next connection), and again before each
            // key operation when client rules exist.
            serve(fd, caller: Caller(socket: fd, pid: credentials.pid, uid: credentials.uid))
            connections.withLock { _ = $0.remove(fd) }
            close(fd)
        }
        if !started {
            connections.withLock { _ = $0.remove(fd) }
            refuse(fd, .tooManyConnections, "The agent cannot start another connection thread.")
        }
    }

    private func refuse(_ fd: Int32, _ code: AgentErrorCode, _ message: String) {
        send(fd, .error(code, message: message), id: 0)
        close(fd)
    }

    @discardableResult
    private func send(_ fd: Int32, _ response: AgentResponse, id: UInt32) -> Bool {
        let frame = AgentFrame.encode(response, id: id)
        do throws(SocketError) {
            try frame.withUnsafeBytes { (bytes) throws(SocketError) in try UnixSocket.writeAll(fd, bytes) }
            return true
        } catch {
            return false
        }
    }

    /// How long a connection thread polls for the next request before sleeping; none when many
    /// connections are busy (spinning threads would then take the CPUs from the token work).
    private var spinSeconds: Double { connectionCount <= UnixSocket.processorCount ? 0.000_05 : 0 }

    /// Reads, answers and writes frames until the client leaves or misbehaves.
    private func serve(_ fd: Int32, caller: Caller) {
        var greeted = false
        let cache = ConnectionState()
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { prefix.deallocate() }
        while !stopping.load(ordering: .relaxed) {
            let settings = handler.currentSettings
            var frameStarted = MonotonicClock.seconds()
            do throws(SocketError) {
                // A client signing in a loop sends its next request within microseconds: wait awake, briefly.
                // The idle time bounds the wait for a frame's first byte; from there the whole frame,
                // length prefix included, has `request-seconds`.
                frameStarted = try UnixSocket.readExactly(fd, into: prefix, timeout: settings.connectionIdle, spin: spinSeconds,
                                                          onceStarted: settings.requestTimeout)
            } catch {
                if error.code == ETIMEDOUT {
                    send(fd, .error(.timeout, message: "Closed after \(Int(settings.connectionIdle)) s without a request."), id: 0)
                }
                return
            }
            let length: Int
            do throws(WireError) {
                length = try AgentFrame.bodyLength(UnsafeRawBufferPointer(prefix))
            } catch {
                let code: AgentErrorCode = error.kind == .frameTooLarge ? .frameTooLarge : .malformedFrame
                send(fd, .error(code, message: "Frame refused: \(error.reason)."), id: 0)
                return
            }
            // The body may hold an access code: it lives in a buffer wiped before it is freed.
            let body = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 8)
            defer {
                SecretBytes.wipe(body)
                body.deallocate()
            }
            do throws(SocketError) {
                try UnixSocket.readExactly(fd, into: body, timeout: max(0.001, settings.requestTimeout - (MonotonicClock.seconds() - frameStarted)))
            } catch {
                if error.code == ETIMEDOUT {
                    send(fd, .error(.timeout, message: "The request did not arrive within \(settings.requestTimeout) s."), id: 0)
                }
                return
            }
            let (kind, id) = AgentFrame.header(UnsafeRawBufferPointer(body)) ?? (0, 0)
            let request: AgentRequest
            do throws(WireError) {
                request = try AgentFrame.decodeRequest(UnsafeRawBufferPointer(body)).request
            } catch {
                SecretBytes.wipe(body)
                switch error.kind {
                case .unknownKind:
                    guard greeted else {  // before the handshake, even an unknown kind ends the connection
                        send(fd, .error(.handshakeRequired, message: "Send hello first."), id: id)
                        return
                    }
                    if !send(fd, .error(.unknownRequest, message: "Unknown request kind 0x\(Hex.encode([kind])); this agent speaks protocol \(AgentProtocol.version)."), id: id) { return }
                    continue
                case .malformed, .frameTooLarge:
                    send(fd, .error(.malformedFrame, message: "Malformed request: \(error.reason)."), id: id)
                    return
                }
            }
            SecretBytes.wipe(body)
            guard greeted else {
                guard case .hello(let minimum, let maximum, _) = request else {
                    send(fd, .error(.handshakeRequired, message: "Send hello first."), id: id)
                    return
                }
                guard minimum <= AgentProtocol.version, AgentProtocol.version <= maximum else {
                    send(fd, .error(.unsupportedVersion, message: "This agent speaks protocol \(AgentProtocol.version); the client asked for \(minimum)–\(maximum). Update Signet."), id: id)
                    return
                }
                greeted = true
                if !send(fd, .hello(version: AgentProtocol.version, agentVersion: AgentMain.version, pid: UInt32(getpid())), id: id) { return }
                continue
            }
            // A program that connected and then executed another is judged as the one it is now. Only
            // with client rules: without them nothing is decided by the program, and every signature
            // would pay for the re-check's reads of /proc.
            var peer = caller.peer
            if request.usesPrivateKey, !handler.currentSettings.clients.isDefault {
                let before = caller.peer
                peer = caller.recheck()
                if peer != before, !peer.sameProgram(as: before) {
                    logger.info("pid \(peer.pid) is now \(peer.program), not \(before.program) as it was when it connected")
                }
            }
            let response = handler.handle(request, peer: peer, connection: cache) { notice in send(fd, notice, id: id) }
            guard send(fd, response, id: id) else { return }
            if case .shutdown = request { onShutdownRequest() }
        }
    }
}
