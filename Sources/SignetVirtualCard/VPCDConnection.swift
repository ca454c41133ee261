#if canImport(Glibc)
import Glibc
#endif
import SignetCore
import Synchronization

/// Connects a `VirtualCard` to the vpcd reader driver of a running pcscd, over
/// TCP on the loopback interface. Connecting is inserting the card into the
/// virtual reader; disconnecting is removing it.
///
/// vpcd's protocol: each message is a 2-byte big-endian length and a payload.
/// A one-byte payload is a control code (0 power off, 1 power on, 2 reset,
/// 4 ask for the ATR); anything longer is a command APDU, answered with the
/// response APDU in the same framing.
public final class VPCDConnection: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case connect(port: UInt16, errno: Int32)
        public var description: String {
            switch self {
            case .connect(let port, let code):
                "could not reach vpcd on 127.0.0.1:\(port): \(System.describe(code)); is pcscd running with the vpcd reader?"
            }
        }
    }

    private struct State {
        var socket: Int32 = -1
        var thread: pthread_t?
    }

    public let card: VirtualCard
    public let port: UInt16
    private let state = Mutex(State())

    public init(card: VirtualCard, port: UInt16 = 35963) {
        self.card = card
        self.port = port
    }

    /// Whether the card is in the reader.
    public var isInserted: Bool { state.withLock { $0.socket >= 0 } }

    /// Inserts the card: connects to vpcd and starts answering it.
    /// - Throws: `Failure.connect` when vpcd does not listen on the port.
    public func insert() throws(Failure) {
        if isInserted { return }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian  // 127.0.0.1 only
        let rv = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rv == 0 else {
            let code = errno
            close(fd)
            throw .connect(port: port, errno: code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        card.reset()
        let context = Unmanaged.passRetained(ServeContext(card: card, socket: fd)).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let context = Unmanaged<ServeContext>.fromOpaque(raw!).takeRetainedValue()
            context.serve()
            return nil
        }, context)
        state.withLock {
            $0.socket = fd
            $0.thread = thread
        }
    }

    /// Removes the card: closes the connection and waits for the serving thread.
    public func remove() {
        let (fd, thread) = state.withLock { state -> (Int32, pthread_t?) in
            defer { state.socket = -1; state.thread = nil }
            return (state.socket, state.thread)
        }
        guard fd >= 0 else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        if let thread { pthread_join(thread, nil) }
        close(fd)
        card.reset()
    }

    deinit { remove() }
}

private final class ServeContext: @unchecked Sendable {
    let card: VirtualCard
    let socket: Int32
    init(card: VirtualCard, socket: Int32) {
        self.card = card
        self.socket = socket
    }

    func serve() {
        while let message = readMessage() {
            if message.count == 1 {
                switch message[0] {
                case 0x00, 0x02: card.reset()
                case 0x04: guard send(card.atr) else { return }
                default: break
                }
            } else if !message.isEmpty {
                guard send(card.respond(to: message)) else { return }
            }
        }
    }

    private func readMessage() -> [UInt8]? {
        guard let header = readExactly(2) else { return nil }
        let length = Int(header[0]) << 8 | Int(header[1])
        return length == 0 ? [] : readExactly(length)
    }

    private func readExactly(_ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let n = buffer.withUnsafeMutableBytes { raw in System.retrying { recv(socket, raw.baseAddress! + received, count - received, 0) } }
            if n <= 0 { return nil }
            received += n
        }
        return buffer
    }

    private func send(_ payload: [UInt8]) -> Bool {
        let message = [UInt8(payload.count >> 8), UInt8(payload.count & 0xff)] + payload
        var sent = 0
        while sent < message.count {
            let n = message.withUnsafeBytes { raw in
                System.retrying { Glibc.send(socket, raw.baseAddress! + sent, message.count - sent, Int32(MSG_NOSIGNAL)) }
            }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}
