#if canImport(Glibc)
import Glibc
#endif
import CPCSCLite
import SignetCore

/// The state of a card in a reader.
public struct CardState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let present = CardState(rawValue: UInt(SCARD_STATE_PRESENT))
    public static let empty = CardState(rawValue: UInt(SCARD_STATE_EMPTY))
    public static let exclusive = CardState(rawValue: UInt(SCARD_STATE_EXCLUSIVE))
    public static let inUse = CardState(rawValue: UInt(SCARD_STATE_INUSE))
    public static let mute = CardState(rawValue: UInt(SCARD_STATE_MUTE))
    public static let unavailable = CardState(rawValue: UInt(SCARD_STATE_UNAVAILABLE))

    /// Words for listings: "card present", "empty", "mute", "in use".
    public var words: [String] {
        var out: [String] = []
        if contains(.empty) { out.append("empty") }
        if contains(.present) { out.append("card present") }
        if contains(.mute) { out.append("mute") }
        if contains(.inUse) { out.append("in use") }
        if contains(.exclusive) { out.append("exclusive") }
        if contains(.unavailable) { out.append("unavailable") }
        return out
    }
}

/// How a reader reaches its cards, as far as its name and the card's ATR tell.
public enum ReaderTransport: String, Sendable, Codable {
    case usb, nfc, virtual, unknown

    /// A best guess: PC/SC does not report the transport. Contactless readers
    /// name their contactless interface ("PICC", "Contactless", "CL"), and
    /// contactless cards seen through PC/SC part 3 have ATRs `3B 8x 80 01 …`.
    public static func guess(readerName: String, atr: [UInt8]?) -> ReaderTransport {
        let name = readerName.lowercased()
        if name.contains("virtual") || name.contains("vpcd") { return .virtual }
        let nfcWords = ["picc", "contactless", "nfc", "acr122", "acr1252", "acr1255", "pn53", "3700 f", "scl3711", " cl "]
        if nfcWords.contains(where: name.contains) { return .nfc }
        if let atr, atr.count >= 4, atr[0] == 0x3B, atr[1] & 0xF0 == 0x80, atr[2] == 0x80, atr[3] == 0x01 { return .nfc }
        return readerName.isEmpty ? .unknown : .usb
    }
}

/// A reader and the state of its card.
public struct ReaderStatus: Sendable, Equatable {
    public var name: String
    public var state: CardState
    /// The card's answer to reset, when a card is present and powered.
    public var atr: [UInt8]?
    public var transport: ReaderTransport { ReaderTransport.guess(readerName: name, atr: atr) }
    public var cardPresent: Bool { state.contains(.present) }
}

/// A PC/SC context (`SCardEstablishContext`), released when this object is.
///
/// A context is used by one thread at a time; `cancel()` may be called from any thread.
public final class PCSCContext: @unchecked Sendable {
    /// The pcsc-lite version of the headers Signet was built with (libpcsclite reports none at run time).
    public static var headerVersion: String { String(cString: CPCSCLite_headerVersion()) }

    let handle: SCARDCONTEXT

    /// Establishes a context with the PC/SC service.
    /// - Throws: `PCSCError.serviceUnavailable` when pcscd is not running.
    public init() throws(PCSCError) {
        var context: SCARDCONTEXT = 0
        let rv = SCardEstablishContext(DWORD(SCARD_SCOPE_SYSTEM), nil, nil, &context)
        // pcsc-lite answers SCARD_E_NO_SERVICE, or a comm error when the socket is stale.
        if rv != SCARD_S_SUCCESS, PCSCStatus(rv).meansServiceLost { throw .serviceUnavailable }
        try check(rv, "SCardEstablishContext")
        handle = context
    }

    deinit { SCardReleaseContext(handle) }

    /// Whether the context is still usable (`SCardIsValidContext`).
    public var isValid: Bool { SCardIsValidContext(handle) == SCARD_S_SUCCESS }

    /// Interrupts a blocking `statusChange` on another thread (`SCardCancel`).
    public func cancel() { SCardCancel(handle) }

    /// Names of the connected readers; empty when there are none.
    /// - Throws: `PCSCError.serviceUnavailable` when pcscd went away.
    public func readerNames() throws(PCSCError) -> [String] {
        var length: DWORD = 0
        var rv = SCardListReaders(handle, nil, nil, &length)
        if PCSCStatus(rv) == .noReadersAvailable { return [] }
        try check(rv, "SCardListReaders")
        var buffer = [CChar](repeating: 0, count: Int(length))
        rv = SCardListReaders(handle, nil, &buffer, &length)
        if PCSCStatus(rv) == .noReadersAvailable { return [] }
        try check(rv, "SCardListReaders")
        // A multi-string: names separated by NUL, ending with an empty one.
        return buffer.split(separator: 0, omittingEmptySubsequences: true)
            .map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// The current state of every reader (a non-blocking status query).
    /// - Throws: `PCSCError.serviceUnavailable`, `PCSCError.call`.
    public func readerStatuses() throws(PCSCError) -> [ReaderStatus] {
        let names = try readerNames()
        if names.isEmpty { return [] }
        var states = ReaderStateArray(names: names)
        let rv = states.withStates { SCardGetStatusChange(handle, 0, $0, $1) }
        if PCSCStatus(rv) != .timeout { try check(rv, "SCardGetStatusChange") }
        return states.statuses()
    }

    /// Connects to the card in `reader`.
    /// - Parameter exclusive: no other program may use the card while connected.
    /// - Throws: `PCSCError.call` (`SCARD_E_NO_SMARTCARD`, `SCARD_E_SHARING_VIOLATION`, …).
    public func connect(reader: String, exclusive: Bool = false) throws(PCSCError) -> Card {
        try Card(context: self, reader: reader, exclusive: exclusive)
    }
}

/// `SCARD_READERSTATE` records with C strings that stay valid while this value lives.
struct ReaderStateArray: ~Copyable {
    static let pnpNotification = "\\\\?PnP?\\Notification"
    var states: [SCARD_READERSTATE]
    let names: [String]
    private let cStrings: [UnsafeMutablePointer<CChar>]

    init(names: [String], currentStates: [DWORD]? = nil) {
        self.names = names
        cStrings = names.map { strdup($0)! }
        states = cStrings.enumerated().map { index, name in
            var state = SCARD_READERSTATE()
            state.szReader = UnsafePointer(name)
            state.dwCurrentState = currentStates?[index] ?? DWORD(SCARD_STATE_UNAWARE)
            return state
        }
    }

    deinit { cStrings.forEach { free($0) } }

    mutating func withStates<R>(_ body: (UnsafeMutablePointer<SCARD_READERSTATE>, DWORD) -> R) -> R {
        let count = DWORD(states.count)
        return states.withUnsafeMutableBufferPointer { body($0.baseAddress!, count) }
    }

    func statuses() -> [ReaderStatus] {
        zip(names, states).compactMap { name, state in
            guard name != ReaderStateArray.pnpNotification else { return nil }
            return ReaderStatus(name: name, state: CardState(rawValue: UInt(state.dwEventState) & 0xFFFF), atr: state.atrBytes)
        }
    }
}

extension SCARD_READERSTATE {
    /// The ATR reported with the state, when a card is present.
    var atrBytes: [UInt8]? {
        guard dwEventState & DWORD(SCARD_STATE_PRESENT) != 0, cbAtr > 0 else { return nil }
        let count = min(Int(cbAtr), Int(CPCSCLite_maxATRSize()))
        return withUnsafeBytes(of: rgbAtr) { Array($0.prefix(count)) }
    }
}
