import SignetCore
import SignetPKCS11

/// What the token itself says about a code's retry counter.
public enum CardRetryState: Sendable, Equatable {
    /// The token does not say.
    case unknown
    /// The token reports how many tries are left (PC/SC probe), or that all is well.
    case triesLeft(Int?)
    /// A wrong code was entered since the last correct one (`CKF_USER_PIN_COUNT_LOW`).
    case countLow
    /// One more wrong code blocks the token (`CKF_USER_PIN_FINAL_TRY`, or `63C1`).
    case finalTry
    /// The code is blocked on the token (`CKF_USER_PIN_LOCKED`, or `6983`).
    case blocked

    /// Tries left on the token, when it says.
    public var cardTriesLeft: Int? {
        switch self {
        case .triesLeft(let n): n
        case .finalTry: 1
        case .blocked: 0
        default: nil
        }
    }
}

/// What happened when a code was presented to the token.
public enum PresentOutcome: Sendable, Equatable {
    /// The token accepted the code.
    case accepted
    /// The token compared the code and rejected it (`CKR_PIN_INCORRECT`).
    case rejected
    /// The token reports the code blocked (`CKR_PIN_LOCKED`).
    case blocked
    /// The call failed in a way that proves the token never compared the code
    /// (token absent, session gone before the call, length refused).
    case notPresented(String)
    /// The session was already logged in; the code was not checked.
    case alreadyLoggedIn
    /// Anything else: the code may have reached the token, so it counts.
    case ambiguous(String)
}

/// One token as the access-code manager sees it. The implementation the agent
/// uses is `PKCS11CodeTarget`; `PCSCCodeTarget` (in `Tests/SignetTestSupport`)
/// reads and presents a card's PIN with APDUs, for tests against the virtual card.
public protocol CodeTarget: Sendable {
    var identity: TokenIdentity { get }
    /// Shortest and longest code the token accepts, in bytes.
    var codeLengthLimits: (min: Int?, max: Int?) { get }
    /// The token's own retry state for `role`, read fresh.
    func retryState(_ role: CodeRole) -> CardRetryState
    /// Presents `code` (a login).
    func present(_ role: CodeRole, code: borrowing SecretBytes) -> PresentOutcome
    /// Changes the user code; the old code is what is checked.
    func changeUserCode(old: borrowing SecretBytes, new: borrowing SecretBytes) -> PresentOutcome
    /// Logs in as SO with `soCode` and sets a new user code (unblocking it).
    func unblockUserCode(soCode: borrowing SecretBytes, newCode: borrowing SecretBytes) -> PresentOutcome
}

/// A PKCS#11 token with a session to present codes on.
public final class PKCS11CodeTarget: CodeTarget, @unchecked Sendable {
    public let token: Token
    public let session: Session

    public init(token: Token, session: Session) {
        self.token = token
        self.session = session
    }

    public var identity: TokenIdentity {
        TokenIdentity(manufacturer: token.info.manufacturer, model: token.info.model, serial: token.info.serialNumber)
    }

    public var codeLengthLimits: (min: Int?, max: Int?) { (token.info.minPinLength, token.info.maxPinLength) }

    public func retryState(_ role: CodeRole) -> CardRetryState {
        guard let flags = try? token.module.tokenInfo(token.slotID).flags else { return .unknown }
        let (locked, final, low): (TokenFlags, TokenFlags, TokenFlags) = role == .user
            ? (.userPinLocked, .userPinFinalTry, .userPinCountLow)
            : (.soPinLocked, .soPinFinalTry, .soPinCountLow)
        if flags.contains(locked) { return .blocked }
        if flags.contains(final) { return .finalTry }
        if flags.contains(low) { return .countLow }
        return .triesLeft(nil)
    }

    public func present(_ role: CodeRole, code: borrowing SecretBytes) -> PresentOutcome {
        do throws(PKCS11Error) {
            try session.login(role == .user ? .user : .securityOfficer, code: code)
            return .accepted
        } catch {
            return PKCS11CodeTarget.classify(error)
        }
    }

    public func changeUserCode(old: borrowing SecretBytes, new: borrowing SecretBytes) -> PresentOutcome {
        do throws(PKCS11Error) {
            try session.setPIN(old: old, new: new)
            return .accepted
        } catch {
            return PKCS11CodeTarget.classify(error)
        }
    }

    public func unblockUserCode(soCode: borrowing SecretBytes, newCode: borrowing SecretBytes) -> PresentOutcome {
        do throws(PKCS11Error) {
            try session.login(.securityOfficer, code: soCode)
        } catch {
            return PKCS11CodeTarget.classify(error)
        }
        defer { try? session.logout() }
        do throws(PKCS11Error) {
            try session.initPIN(newCode)
            return .accepted
        } catch {
            // The SO code was right; setting the new code failed.
            return .ambiguous("the administrator code was accepted, but the new access code was not set: \(error)")
        }
    }

    /// Sorts PKCS#11 errors into "the token compared the code" and "it cannot have".
    static func classify(_ error: PKCS11Error) -> PresentOutcome {
        guard let code = error.code else { return .notPresented(error.description) }
        switch code {
        case .pinIncorrect: return .rejected
        case .pinLocked: return .blocked
        case .userAlreadyLoggedIn: return .alreadyLoggedIn
        case .tokenNotPresent, .slotIDInvalid, .sessionHandleInvalid, .sessionClosed, .cryptokiNotInitialized,
             .pinLenRange, .pinInvalid, .userTypeInvalid, .userAnotherAlreadyLoggedIn, .sessionReadOnlyExists,
             .userPinNotInitialized, .functionNotSupported, .argumentsBad, .userTooManyTypes:
            return .notPresented(error.description)
        default:
            return .ambiguous(error.description)
        }
    }
}
