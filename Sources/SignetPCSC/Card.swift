import CPCSCLite
import SignetCore

/// A connection to a card (`SCardConnect`), disconnected when released.
///
/// Not for concurrent use: one caller at a time, as for a `PCSCContext`.
public final class Card: @unchecked Sendable {
    public let reader: String
    /// The negotiated protocol: `T=0` or `T=1`.
    public let activeProtocol: CardProtocol
    let handle: SCARDHANDLE
    private let context: PCSCContext  // kept alive while connected

    /// Transmission protocols.
    public enum CardProtocol: String, Sendable { case t0 = "T=0", t1 = "T=1", raw = "raw" }

    init(context: PCSCContext, reader: String, exclusive: Bool) throws(PCSCError) {
        self.context = context
        self.reader = reader
        var card: SCARDHANDLE = 0
        var protocolUsed: DWORD = 0
        let share = DWORD(exclusive ? SCARD_SHARE_EXCLUSIVE : SCARD_SHARE_SHARED)
        try check(SCardConnect(context.handle, reader, share, DWORD(SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1), &card, &protocolUsed), "SCardConnect")
        handle = card
        switch protocolUsed {
        case DWORD(SCARD_PROTOCOL_T0): activeProtocol = .t0
        case DWORD(SCARD_PROTOCOL_T1): activeProtocol = .t1
        default: activeProtocol = .raw
        }
    }

    deinit { SCardDisconnect(handle, DWORD(SCARD_LEAVE_CARD)) }

    /// Protocol control information for the negotiated protocol.
    private var pci: UnsafePointer<SCARD_IO_REQUEST> {
        switch activeProtocol {
        case .t0: CPCSCLite_pciT0()
        case .t1: CPCSCLite_pciT1()
        case .raw: CPCSCLite_pciRaw()
        }
    }

    /// The card's ATR and state as the reader sees it now (`SCardStatus`).
    /// - Throws: `PCSCError.call` with `SCARD_W_REMOVED_CARD` when it was pulled.
    public func status() throws(PCSCError) -> (state: CardState, atr: [UInt8]) {
        var state: DWORD = 0
        var protocolUsed: DWORD = 0
        var atr = [UInt8](repeating: 0, count: Int(CPCSCLite_maxATRSize()))
        var atrLength = DWORD(atr.count)
        var nameLength: DWORD = 0
        var rv = SCardStatus(handle, nil, &nameLength, &state, &protocolUsed, &atr, &atrLength)
        if rv == SCARD_S_SUCCESS || PCSCStatus(rv) == .insufficientBuffer {
            var name = [CChar](repeating: 0, count: Int(max(nameLength, 1)))
            rv = SCardStatus(handle, &name, &nameLength, &state, &protocolUsed, &atr, &atrLength)
        }
        try check(rv, "SCardStatus")
        return (CardState(rawValue: UInt(state)), Array(atr.prefix(Int(atrLength))))
    }

    /// Runs `body` inside a card transaction (`SCardBeginTransaction`/`SCardEndTransaction`):
    /// no other program can interleave commands, so a SELECT is still in force for the VERIFY after it.
    /// - Throws: `PCSCError` from beginning the transaction, or whatever `body` throws.
    public func transaction<R>(_ body: (Card) throws(PCSCError) -> R) throws(PCSCError) -> R {
        try check(SCardBeginTransaction(handle), "SCardBeginTransaction")
        defer { SCardEndTransaction(handle, DWORD(SCARD_LEAVE_CARD)) }
        return try body(self)
    }

    /// Sends raw APDU bytes and returns the raw response (`SCardTransmit`).
    /// - Throws: `PCSCError.call` (`SCARD_W_REMOVED_CARD`, `SCARD_E_NOT_TRANSACTED`, …).
    public func transmit(raw command: [UInt8]) throws(PCSCError) -> [UInt8] {
        var response = [UInt8](repeating: 0, count: Int(CPCSCLite_maxExtendedBufferSize()))
        var length = DWORD(response.count)
        try check(SCardTransmit(handle, pci, command, DWORD(command.count), nil, &response, &length), "SCardTransmit")
        return Array(response.prefix(Int(length)))
    }

    /// Sends a command that carries a secret (a VERIFY with an access code)
    /// straight from its zeroed buffer: no copies of it are left in arrays.
    /// No `61xx`/`6Cxx` handling: such commands return only a status word.
    /// - Throws: `PCSCError`.
    public func transmit(secretCommand: borrowing SecretBytes) throws(PCSCError) -> ResponseAPDU {
        var response = [UInt8](repeating: 0, count: 258)
        var length = DWORD(response.count)
        let rv = secretCommand.withUnsafeBytes { command in
            SCardTransmit(handle, pci, command.baseAddress?.assumingMemoryBound(to: UInt8.self), DWORD(command.count), nil, &response, &length)
        }
        try check(rv, "SCardTransmit")
        return try ResponseAPDU(bytes: Array(response.prefix(Int(length))))
    }

    /// Sends a command and returns the complete response: follows `61xx`
    /// with GET RESPONSE until the card has sent everything, and repeats the
    /// command with the right Le after `6Cxx`.
    /// - Throws: `PCSCError`.
    public func transmit(_ command: CommandAPDU) throws(PCSCError) -> ResponseAPDU {
        var response = try ResponseAPDU(bytes: transmit(raw: command.encoded()))
        if response.sw1 == 0x6C {
            var retry = command
            retry.le = response.sw2 == 0 ? 256 : Int(response.sw2)
            response = try ResponseAPDU(bytes: transmit(raw: retry.encoded()))
        }
        var data = response.data
        var rounds = 0
        while response.sw1 == 0x61 {
            rounds += 1
            // A card that never stops sending 61xx would hang us: 64 KiB is the most any APDU response holds.
            guard rounds <= 256, data.count <= 65536 else { throw .malformedResponse("endless GET RESPONSE chain") }
            let getResponse = CommandAPDU(cla: command.cla & 0x03, ins: 0xC0, le: response.sw2 == 0 ? 256 : Int(response.sw2))
            response = try ResponseAPDU(bytes: transmit(raw: getResponse.encoded()))
            data += response.data
        }
        return ResponseAPDU(data: data, sw1: response.sw1, sw2: response.sw2)
    }

    /// Reads an access code's retry counter with an empty VERIFY, which spends no try.
    /// For cards whose PKCS#11 module does not report `CKF_USER_PIN_*` flags.
    /// - Parameters:
    ///   - application: AID to SELECT first (e.g. PIV `A0 00 00 03 08`), or `nil` if already selected.
    ///   - reference: the code's reference (PIV application PIN: `0x80`).
    /// - Throws: `PCSCError` for transport failures; a failed SELECT is `.malformedResponse`.
    public func pinRetryStatus(application: [UInt8]?, reference: UInt8) throws(PCSCError) -> PINRetryStatus {
        try transaction { (card) throws(PCSCError) -> PINRetryStatus in
            if let application {
                let selected = try card.transmit(.select(aid: application))
                guard selected.isSuccess else {
                    throw .malformedResponse("SELECT of the application failed with SW \(String(selected.sw, radix: 16, uppercase: true))")
                }
            }
            return PINRetryStatus(response: try card.transmit(.verifyStatus(reference: reference)))
        }
    }
}
