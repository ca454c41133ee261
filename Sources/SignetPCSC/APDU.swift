/// An ISO 7816-4 command APDU.
public struct CommandAPDU: Sendable, Equatable {
    public var cla: UInt8, ins: UInt8, p1: UInt8, p2: UInt8
    public var data: [UInt8]
    /// Expected response length: `nil` for none, 256 (short) or 65536 (extended) for "as much as there is".
    public var le: Int?

    public init(cla: UInt8 = 0x00, ins: UInt8, p1: UInt8 = 0, p2: UInt8 = 0, data: [UInt8] = [], le: Int? = nil) {
        self.cla = cla; self.ins = ins; self.p1 = p1; self.p2 = p2
        self.data = data
        self.le = le
    }

    /// Whether the command needs extended length fields (data over 255 bytes or Le over 256).
    public var needsExtendedLength: Bool { data.count > 255 || (le ?? 0) > 256 }

    /// The encoded APDU: short form when it fits, extended form otherwise.
    /// - Throws: `PCSCError.commandTooLong` for more than 65535 bytes of data.
    public func encoded() throws(PCSCError) -> [UInt8] {
        guard data.count <= 65535 else { throw .commandTooLong(data.count) }
        var bytes = [cla, ins, p1, p2]
        if !needsExtendedLength {
            if !data.isEmpty { bytes += [UInt8(data.count)] + data }
            if let le { bytes.append(le >= 256 ? 0 : UInt8(le)) }
            return bytes
        }
        if !data.isEmpty {
            bytes += [0, UInt8(data.count >> 8), UInt8(data.count & 0xff)] + data
        }
        if let le {
            let value = le >= 65536 ? 0 : le
            if data.isEmpty { bytes.append(0) }
            bytes += [UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
        }
        return bytes
    }

    /// SELECT by application identifier.
    public static func select(aid: [UInt8]) -> CommandAPDU {
        CommandAPDU(ins: 0xA4, p1: 0x04, p2: 0x00, data: aid, le: 256)
    }

    /// VERIFY with no data: asks for the retry counter without spending a try.
    public static func verifyStatus(reference: UInt8) -> CommandAPDU {
        CommandAPDU(ins: 0x20, p1: 0x00, p2: reference)
    }
}

/// An ISO 7816-4 response APDU: data and status word.
public struct ResponseAPDU: Sendable, Equatable {
    public var data: [UInt8]
    public var sw1: UInt8
    public var sw2: UInt8

    public init(data: [UInt8], sw1: UInt8, sw2: UInt8) {
        self.data = data; self.sw1 = sw1; self.sw2 = sw2
    }

    /// Splits raw response bytes into data and SW1 SW2.
    /// - Throws: `PCSCError.malformedResponse` when shorter than two bytes.
    public init(bytes: [UInt8]) throws(PCSCError) {
        guard bytes.count >= 2 else { throw .malformedResponse("\(bytes.count)-byte response has no status word") }
        data = Array(bytes.dropLast(2))
        sw1 = bytes[bytes.count - 2]
        sw2 = bytes[bytes.count - 1]
    }

    /// SW1 SW2 as one number, e.g. `0x9000`.
    public var sw: UInt16 { UInt16(sw1) << 8 | UInt16(sw2) }
    /// Whether the command succeeded (`9000`).
    public var isSuccess: Bool { sw == 0x9000 }
}

/// What a card says about an access code's retry counter.
public enum PINRetryStatus: Sendable, Equatable, CustomStringConvertible {
    /// `63Cx`: x tries left.
    case triesLeft(Int)
    /// `9000`: the code is already verified in this card session.
    case verified
    /// `6983` (or `6984`): blocked; it needs the PUK or SO code.
    case blocked
    /// Anything else: the card does not report its counter this way.
    case unsupported(sw: UInt16)

    /// Interprets the status word of an empty VERIFY.
    public init(response: ResponseAPDU) {
        switch (response.sw1, response.sw2) {
        case (0x63, let sw2) where sw2 & 0xF0 == 0xC0: self = .triesLeft(Int(sw2 & 0x0F))
        case (0x90, 0x00): self = .verified
        case (0x69, 0x83), (0x69, 0x84): self = .blocked
        default: self = .unsupported(sw: response.sw)
        }
    }

    public var description: String {
        switch self {
        case .triesLeft(let n): "\(n) \(n == 1 ? "try" : "tries") left"
        case .verified: "verified"
        case .blocked: "blocked: unblock it with the PUK or administrator code"
        case .unsupported(let sw): "the card does not report its counter (SW \(String(sw, radix: 16, uppercase: true)))"
        }
    }
}
