import CPCSCLite

/// A PC/SC return code (`SCARD_*`), with a name and a readable meaning.
public struct PCSCStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    init(_ code: LONG) { rawValue = Int(UInt32(truncatingIfNeeded: code)) }

    // The values are fixed by the PC/SC specification; pcsc-lite's headers
    // spell them as cast macros Swift cannot import.
    public static let success = PCSCStatus(rawValue: 0x0000_0000)
    public static let internalError = PCSCStatus(rawValue: 0x8010_0001)
    public static let cancelled = PCSCStatus(rawValue: 0x8010_0002)
    public static let invalidHandle = PCSCStatus(rawValue: 0x8010_0003)
    public static let invalidParameter = PCSCStatus(rawValue: 0x8010_0004)
    public static let noMemory = PCSCStatus(rawValue: 0x8010_0006)
    public static let insufficientBuffer = PCSCStatus(rawValue: 0x8010_0008)
    public static let unknownReader = PCSCStatus(rawValue: 0x8010_0009)
    public static let timeout = PCSCStatus(rawValue: 0x8010_000A)
    public static let sharingViolation = PCSCStatus(rawValue: 0x8010_000B)
    public static let noSmartcard = PCSCStatus(rawValue: 0x8010_000C)
    public static let protocolMismatch = PCSCStatus(rawValue: 0x8010_000F)
    public static let notTransacted = PCSCStatus(rawValue: 0x8010_0016)
    public static let readerUnavailable = PCSCStatus(rawValue: 0x8010_0017)
    public static let noService = PCSCStatus(rawValue: 0x8010_001D)
    public static let serviceStopped = PCSCStatus(rawValue: 0x8010_001E)
    public static let noReadersAvailable = PCSCStatus(rawValue: 0x8010_002E)
    public static let commError = PCSCStatus(rawValue: 0x8010_0013)
    public static let unknownError = PCSCStatus(rawValue: 0x8010_0014)
    public static let unsupportedCard = PCSCStatus(rawValue: 0x8010_0065)
    public static let unresponsiveCard = PCSCStatus(rawValue: 0x8010_0066)
    public static let unpoweredCard = PCSCStatus(rawValue: 0x8010_0067)
    public static let resetCard = PCSCStatus(rawValue: 0x8010_0068)
    public static let removedCard = PCSCStatus(rawValue: 0x8010_0069)

    private static let table: [Int: (String, String)] = [
        0x0000_0000: ("SCARD_S_SUCCESS", "success"),
        0x8010_0001: ("SCARD_F_INTERNAL_ERROR", "the PC/SC service had an internal error"),
        0x8010_0002: ("SCARD_E_CANCELLED", "the wait was cancelled"),
        0x8010_0003: ("SCARD_E_INVALID_HANDLE", "the PC/SC connection is no longer valid (service restarted?)"),
        0x8010_0004: ("SCARD_E_INVALID_PARAMETER", "invalid parameter"),
        0x8010_0006: ("SCARD_E_NO_MEMORY", "out of memory"),
        0x8010_0008: ("SCARD_E_INSUFFICIENT_BUFFER", "the buffer was too small"),
        0x8010_0009: ("SCARD_E_UNKNOWN_READER", "the reader is not connected; plug it in again"),
        0x8010_000A: ("SCARD_E_TIMEOUT", "nothing happened before the time limit"),
        0x8010_000B: ("SCARD_E_SHARING_VIOLATION", "another program holds the card exclusively; close it and retry"),
        0x8010_000C: ("SCARD_E_NO_SMARTCARD", "no card in the reader; insert it or tap it on the reader"),
        0x8010_000F: ("SCARD_E_PROTO_MISMATCH", "the card does not speak the requested protocol"),
        0x8010_0013: ("SCARD_F_COMM_ERROR", "communication with the PC/SC service failed"),
        0x8010_0014: ("SCARD_F_UNKNOWN_ERROR", "the PC/SC service reported an unknown error"),
        0x8010_0016: ("SCARD_E_NOT_TRANSACTED", "the card transaction failed"),
        0x8010_0017: ("SCARD_E_READER_UNAVAILABLE", "the reader is not available; plug it in again"),
        0x8010_001D: ("SCARD_E_NO_SERVICE", "the PC/SC service (pcscd) is not running; start it with `systemctl start pcscd.socket`"),
        0x8010_001E: ("SCARD_E_SERVICE_STOPPED", "the PC/SC service (pcscd) stopped"),
        0x8010_002E: ("SCARD_E_NO_READERS_AVAILABLE", "no smart-card reader is connected"),
        0x8010_0065: ("SCARD_W_UNSUPPORTED_CARD", "the card is not supported"),
        0x8010_0066: ("SCARD_W_UNRESPONSIVE_CARD", "the card does not answer (mute); re-insert it"),
        0x8010_0067: ("SCARD_W_UNPOWERED_CARD", "the card is not powered"),
        0x8010_0068: ("SCARD_W_RESET_CARD", "the card was reset by another program; retry"),
        0x8010_0069: ("SCARD_W_REMOVED_CARD", "the card was removed; insert it again"),
    ]

    public var name: String { PCSCStatus.table[rawValue]?.0 ?? "SCARD_0x" + String(rawValue, radix: 16, uppercase: true) }
    public var meaning: String { PCSCStatus.table[rawValue]?.1 ?? "the PC/SC service returned an unknown error" }
    public var description: String { "\(meaning) (\(name))" }

    /// Codes that mean the service is gone or was restarted: drop the context and establish a new one.
    public var meansServiceLost: Bool {
        [.noService, .serviceStopped, .invalidHandle, .commError, .internalError, .unknownError].contains(self)
    }
}

/// An error from the PC/SC layer.
public enum PCSCError: Error, Equatable, CustomStringConvertible {
    /// A PC/SC call failed.
    case call(operation: String, status: PCSCStatus)
    /// The service (pcscd) is not running or cannot be reached.
    case serviceUnavailable
    /// The card answered something the protocol does not allow.
    case malformedResponse(String)
    /// A command does not fit in an APDU.
    case commandTooLong(Int)

    /// The PC/SC code, when there is one.
    public var status: PCSCStatus? {
        if case .call(_, let status) = self { return status }
        return nil
    }

    public var description: String {
        switch self {
        case .call(let operation, let status): "\(operation) failed: \(status)"
        case .serviceUnavailable: "PC/SC service not available: pcscd is not running; start it with `systemctl start pcscd.socket` (or `pcscd`)"
        case .malformedResponse(let what): "the card sent a malformed response: \(what)"
        case .commandTooLong(let count): "a command of \(count) bytes does not fit in an APDU"
        }
    }
}

/// Turns a PC/SC return code into a thrown `PCSCError` — the one place raw codes are checked.
@inline(__always)
func check(_ rv: LONG, _ operation: @autoclosure () -> String) throws(PCSCError) {
    guard rv != SCARD_S_SUCCESS else { return }
    let status = PCSCStatus(rv)
    if status == .noService { throw PCSCError.serviceUnavailable }
    throw PCSCError.call(operation: operation(), status: status)
}
