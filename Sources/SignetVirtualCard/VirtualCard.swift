import Synchronization

/// A small smart card for tests, answering like a PIV card as far as Signet
/// probes it: SELECT of the PIV application, VERIFY of the application PIN
/// (reference 0x80) with a real retry counter that blocks after three wrong
/// codes, and two data objects that exercise `61xx` and `6Cxx` handling.
///
/// This is a test double for the one thing a build machine cannot have, a
/// physical card; it runs behind the real vpcd reader driver and the real
/// pcscd, so everything above the card is exercised for real.
public final class VirtualCard: Sendable {
    /// The PIV application identifier prefix.
    public static let pivAID: [UInt8] = [0xA0, 0x00, 0x00, 0x03, 0x08]
    /// Bytes of the object returned in pieces with `61xx`.
    public static let largeObjectLength = 600
    /// The object returned only when Le is exact (`6Cxx` otherwise).
    public static let exactObject: [UInt8] = Array("SIGNET-6C".utf8)

    private struct State {
        var pin: [UInt8]
        var triesLeft: Int
        var verified = false
        var selected = false
        var pendingResponse: [UInt8] = []
        var verifyAttempts = 0
    }

    private let state: Mutex<State>
    public let maximumTries: Int
    public let atr: [UInt8]

    /// - Parameters:
    ///   - pin: the application PIN (PIV pads it to 8 bytes with `FF`).
    ///   - maximumTries: tries before the PIN blocks.
    public init(pin: [UInt8], maximumTries: Int = 3) {
        state = Mutex(State(pin: VirtualCard.pad(pin), triesLeft: maximumTries))
        self.maximumTries = maximumTries
        atr = VirtualCard.makeATR(historical: Array("SIGNETVCARD".utf8))
    }

    /// Tries left on the PIN counter.
    public var triesLeft: Int { state.withLock { $0.triesLeft } }
    /// How many VERIFY commands with a code reached the card.
    public var verifyAttempts: Int { state.withLock { $0.verifyAttempts } }

    /// Power-off or reset: the security state is lost, the counter is not.
    public func reset() {
        state.withLock {
            $0.verified = false
            $0.selected = false
            $0.pendingResponse = []
        }
    }

    /// Answers one command APDU.
    public func respond(to command: [UInt8]) -> [UInt8] {
        guard command.count >= 4 else { return [0x67, 0x00] }
        let ins = command[1], p1 = command[2], p2 = command[3]
        let body = Array(command.dropFirst(4))
        let (data, le) = VirtualCard.parseBody(body)
        return state.withLock { card -> [UInt8] in
            switch ins {
            case 0xA4 where p1 == 0x04:
                guard data.starts(with: VirtualCard.pivAID) else { return [0x6A, 0x82] }
                card.selected = true
                card.verified = false
                // Application property template with the AID.
                return [0x61, 0x07, 0x4F, 0x05] + VirtualCard.pivAID + [0x90, 0x00]
            case 0x20:
                guard card.selected else { return [0x69, 0x85] }
                guard p2 == 0x80 else { return [0x6A, 0x88] }
                if card.triesLeft == 0 { return [0x69, 0x83] }
                if data.isEmpty {
                    return card.verified ? [0x90, 0x00] : [0x63, 0xC0 | UInt8(card.triesLeft)]
                }
                card.verifyAttempts += 1
                if VirtualCard.pad(data) == card.pin {
                    card.triesLeft = maximumTries
                    card.verified = true
                    return [0x90, 0x00]
                }
                card.verified = false
                card.triesLeft -= 1
                return card.triesLeft == 0 ? [0x69, 0x83] : [0x63, 0xC0 | UInt8(card.triesLeft)]
            case 0xCB:
                // GET DATA of a large object: first chunk, then 61xx.
                let object = (0..<VirtualCard.largeObjectLength).map { UInt8($0 & 0xff) }
                card.pendingResponse = Array(object.dropFirst(200))
                return Array(object.prefix(200)) + [0x61, UInt8(min(card.pendingResponse.count, 256) & 0xff)]
            case 0xC0:
                guard !card.pendingResponse.isEmpty else { return [0x6F, 0x00] }
                let count = min(le ?? 256, card.pendingResponse.count)
                let chunk = Array(card.pendingResponse.prefix(count))
                card.pendingResponse.removeFirst(count)
                if card.pendingResponse.isEmpty { return chunk + [0x90, 0x00] }
                return chunk + [0x61, UInt8(min(card.pendingResponse.count, 256) & 0xff)]
            case 0xCA:
                let object = VirtualCard.exactObject
                guard le == object.count else { return [0x6C, UInt8(object.count)] }
                return object + [0x90, 0x00]
            default:
                return [0x6D, 0x00]
            }
        }
    }

    static func pad(_ pin: [UInt8]) -> [UInt8] {
        pin.count >= 8 ? pin : pin + [UInt8](repeating: 0xFF, count: 8 - pin.count)
    }

    /// Splits a short-form command body into data and Le.
    static func parseBody(_ body: [UInt8]) -> (data: [UInt8], le: Int?) {
        if body.isEmpty { return ([], nil) }
        if body.count == 1 { return ([], body[0] == 0 ? 256 : Int(body[0])) }
        let lc = Int(body[0])
        let data = Array(body.dropFirst().prefix(lc))
        let rest = body.dropFirst(1 + lc)
        return (data, rest.first.map { $0 == 0 ? 256 : Int($0) })
    }

    /// An ATR `3B 8n 80 01 <historical> TCK` (T=1 offered, historical bytes, checksum).
    static func makeATR(historical: [UInt8]) -> [UInt8] {
        var atr: [UInt8] = [0x3B, 0x80 | UInt8(historical.count), 0x80, 0x01] + historical
        atr.append(atr.dropFirst().reduce(0, ^))
        return atr
    }
}
