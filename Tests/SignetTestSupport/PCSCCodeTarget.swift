import SignetAccessCode
import SignetCore
import SignetPCSC

// Moved here from SignetAccessCode (issue 16): production never used it, yet it made the
// access-code manager depend on PC/SC. Making PC/SC events real instead (waking a
// "present your token" wait on ReaderMonitor's insert event, slowing the once-a-second
// PKCS#11 poll) would have cost a second source of truth for presence that must agree
// with the modules' (OpenSC sees a card a poll after pcscd does), for a saving of one
// cheap C_GetSlotList a second; the modules remain how the agent finds cards.
// ReaderMonitor stays in SignetPCSC, tested there, ready for that work.

/// A card reached with APDUs: retry state by an empty VERIFY, codes by VERIFY
/// (PIV-style, padded with `FF` to 8 bytes). For cards whose PKCS#11 module
/// does not report `CKF_USER_PIN_*` flags. Only the user code is supported.
public final class PCSCCodeTarget: CodeTarget, @unchecked Sendable {
    public let card: Card
    public let application: [UInt8]
    public let reference: UInt8
    public let identity: TokenIdentity

    public init(card: Card, identity: TokenIdentity, application: [UInt8], reference: UInt8 = 0x80) {
        self.card = card
        self.identity = identity
        self.application = application
        self.reference = reference
    }

    public var codeLengthLimits: (min: Int?, max: Int?) { (6, 8) }

    public func retryState(_ role: CodeRole) -> CardRetryState {
        guard role == .user, let status = try? card.pinRetryStatus(application: application, reference: reference) else { return .unknown }
        switch status {
        case .triesLeft(1): return .finalTry
        case .triesLeft(let n): return .triesLeft(n)
        case .verified: return .triesLeft(nil)
        case .blocked: return .blocked
        case .unsupported: return .unknown
        }
    }

    public func present(_ role: CodeRole, code: borrowing SecretBytes) -> PresentOutcome {
        guard role == .user else { return .notPresented("this card's administrator code cannot be presented over PC/SC") }
        guard code.count <= 8 else { return .notPresented("the code is longer than the card's 8 bytes") }
        // VERIFY built directly in a zeroed buffer: 00 20 00 <ref> 08 <code padded with FF>.
        var command = SecretBytes(capacity: 13)
        for byte in [0x00, 0x20, 0x00, reference, 0x08] as [UInt8] { command.append(byte) }
        code.withUnsafeBytes { for byte in $0 { command.append(byte) } }
        while command.count < 13 { command.append(0xFF) }
        let application = self.application
        var verifySent = false
        do throws(PCSCError) {
            let response = try card.transaction { (card) throws(PCSCError) -> ResponseAPDU in
                let selected = try card.transmit(.select(aid: application))
                guard selected.isSuccess else { throw .malformedResponse("SELECT of the application failed") }
                verifySent = true
                return try card.transmit(secretCommand: command)
            }
            switch PINRetryStatus(response: response) {
            case .verified: return .accepted
            case .triesLeft: return .rejected
            case .blocked: return .blocked
            case .unsupported(let sw): return .ambiguous("the card answered VERIFY with \(String(sw, radix: 16))")
            }
        } catch {
            // Before VERIFY was sent the code cannot have reached the card; after, it may have.
            return verifySent ? .ambiguous(error.description) : .notPresented(error.description)
        }
    }

    public func changeUserCode(old: borrowing SecretBytes, new: borrowing SecretBytes) -> PresentOutcome {
        .notPresented("changing a card's code over PC/SC is not supported; use its PKCS#11 module")
    }

    public func unblockUserCode(soCode: borrowing SecretBytes, newCode: borrowing SecretBytes) -> PresentOutcome {
        .notPresented("unblocking a card's code over PC/SC is not supported; use its PKCS#11 module")
    }
}
