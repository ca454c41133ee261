#if canImport(Glibc)
import Glibc
#endif
import CPCSCLite
import SignetCore
import Synchronization

/// A change seen by the PC/SC layer.
public enum ReaderEvent: Sendable, Equatable {
    /// pcscd cannot be reached (not running, or restarting). Readers are forgotten.
    case serviceUnavailable
    /// pcscd is reachable (again). Reader and card events follow for what is there now.
    case serviceAvailable
    case readerAdded(String)
    case readerRemoved(String)
    /// A card was inserted (or tapped on an NFC reader) and answered with `atr`.
    case cardInserted(reader: String, atr: [UInt8])
    case cardRemoved(reader: String)
    /// A card is in the reader but does not answer.
    case cardMute(reader: String)
}

/// Watches readers and cards with `SCardGetStatusChange` and reports changes
/// as an `AsyncStream`.
///
/// The blocking wait runs on a dedicated thread, never on Swift's cooperative
/// pool. The watch survives pcscd stopping and restarting (it reports
/// `.serviceUnavailable`, retries, then `.serviceAvailable`), and stops when
/// the stream's consumer goes away or `stop()` is called.
public final class ReaderMonitor: Sendable {
    private struct Shared {
        var stopped = false
        var context: PCSCContext?
    }

    private let shared = Mutex(Shared())
    /// How long to wait between attempts to reach a stopped pcscd.
    public let retryInterval: Duration
    /// Upper bound of one blocking wait (a safety net; events end a wait at once).
    public let waitTimeout: Duration

    public init(retryInterval: Duration = .milliseconds(250), waitTimeout: Duration = .seconds(5)) {
        self.retryInterval = retryInterval
        self.waitTimeout = waitTimeout
    }

    /// Starts watching; the first events describe what is present now.
    /// Call once per monitor.
    public func events() -> AsyncStream<ReaderEvent> {
        let (stream, continuation) = AsyncStream<ReaderEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        continuation.onTermination = { [self] _ in stop() }
        let thread = MonitorThread(monitor: self, continuation: continuation)
        thread.start()
        return stream
    }

    /// Stops the watch; the stream finishes shortly after.
    public func stop() {
        let context = shared.withLock { state -> PCSCContext? in
            state.stopped = true
            return state.context
        }
        context?.cancel()
    }

    var isStopped: Bool { shared.withLock { $0.stopped } }

    func setContext(_ context: PCSCContext?) -> Bool {
        shared.withLock { state in
            state.context = context
            return !state.stopped
        }
    }
}

/// The watch loop, on its own POSIX thread.
private final class MonitorThread: @unchecked Sendable {
    let monitor: ReaderMonitor
    let continuation: AsyncStream<ReaderEvent>.Continuation
    /// Last known state per reader (high bits of the event state carry an event counter).
    var known: [String: DWORD] = [:]
    var pnpState = DWORD(SCARD_STATE_UNAWARE)
    var serviceUp: Bool?

    init(monitor: ReaderMonitor, continuation: AsyncStream<ReaderEvent>.Continuation) {
        self.monitor = monitor
        self.continuation = continuation
    }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let rv = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<MonitorThread>.fromOpaque(raw!).takeRetainedValue()
            me.run()
            return nil
        }, box)
        if rv == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<MonitorThread>.fromOpaque(box).release()
            continuation.finish()
        }
    }

    func run() {
        defer {
            _ = monitor.setContext(nil)
            continuation.finish()
        }
        while !monitor.isStopped {
            let context: PCSCContext
            do {
                context = try PCSCContext()
            } catch {
                markService(up: false)
                sleep(monitor.retryInterval)
                continue
            }
            guard monitor.setContext(context) else { return }
            markService(up: true)
            watch(context)
            _ = monitor.setContext(nil)
        }
    }

    /// Runs until the service is lost or the monitor stops.
    private func watch(_ context: PCSCContext) {
        pnpState = DWORD(SCARD_STATE_UNAWARE)
        while !monitor.isStopped {
            let names: [String]
            do {
                names = try context.readerNames()
            } catch {
                lost(error)
                return
            }
            for gone in known.keys where !names.contains(gone) {
                known[gone] = nil
                continuation.yield(.readerRemoved(gone))
            }
            for name in names where known[name] == nil {
                known[name] = DWORD(SCARD_STATE_UNAWARE)
                continuation.yield(.readerAdded(name))
            }

            let all = names + [ReaderStateArray.pnpNotification]
            var states = ReaderStateArray(names: all, currentStates: names.map { known[$0] ?? 0 } + [pnpState])
            let timeout = DWORD(monitor.waitTimeout.components.seconds * 1000)
            let rv = states.withStates { SCardGetStatusChange(context.handle, timeout, $0, $1) }
            let status = PCSCStatus(rv)
            if status == .cancelled || status == .timeout { continue }
            if status == .unknownReader || status == .readerUnavailable { continue }  // re-list
            guard status == .success else {
                lost(PCSCError.call(operation: "SCardGetStatusChange", status: status))
                return
            }
            for (index, name) in all.enumerated() {
                let state = states.states[index]
                if name == ReaderStateArray.pnpNotification {
                    pnpState = state.dwEventState & ~DWORD(SCARD_STATE_CHANGED)
                    continue
                }
                guard state.dwEventState & DWORD(SCARD_STATE_CHANGED) != 0 else { continue }
                report(name: name, old: known[name] ?? 0, new: state.dwEventState, atr: state.atrBytes)
                known[name] = state.dwEventState & ~DWORD(SCARD_STATE_CHANGED)
            }
        }
    }

    private func report(name: String, old: DWORD, new: DWORD, atr: [UInt8]?) {
        let wasPresent = old & DWORD(SCARD_STATE_PRESENT) != 0
        let isPresent = new & DWORD(SCARD_STATE_PRESENT) != 0
        let wasMute = old & DWORD(SCARD_STATE_MUTE) != 0
        let isMute = new & DWORD(SCARD_STATE_MUTE) != 0
        if new & DWORD(SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE) != 0 { return }
        if isPresent && isMute && !wasMute {
            continuation.yield(.cardMute(reader: name))
        } else if isPresent && (!wasPresent || wasMute) {
            continuation.yield(.cardInserted(reader: name, atr: atr ?? []))
        } else if !isPresent && wasPresent {
            continuation.yield(.cardRemoved(reader: name))
        } else if isPresent && wasPresent && (new >> 16) != (old >> 16) {
            // The event counter moved while a card stayed present: it was
            // removed and re-inserted between two waits.
            continuation.yield(.cardRemoved(reader: name))
            continuation.yield(.cardInserted(reader: name, atr: atr ?? []))
        }
    }

    /// Any failure of the wait drops the context: a new one is the way back,
    /// whether pcscd restarted (`SCARD_E_NO_SERVICE`, `SCARD_E_INVALID_HANDLE`)
    /// or something else went wrong.
    private func lost(_ error: PCSCError) {
        known.removeAll()
        markService(up: false)
    }

    private func markService(up: Bool) {
        guard serviceUp != up else { return }
        if serviceUp != nil || !up { continuation.yield(up ? .serviceAvailable : .serviceUnavailable) }
        serviceUp = up
    }

    private func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        System.sleep(seconds: Double(seconds) + Double(attoseconds) / 1e18)
    }
}
