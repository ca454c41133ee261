import CSignetPKCS11Front
import SignetAgentProtocol

/// Why a call failed, as the `CK_RV` the caller gets.
package struct ModuleError: Error, Equatable {
    package let rv: CK_RV
    package init(_ rv: CK_RV) { self.rv = rv }
}

/// The `CK_RV` for each agent error code: the one place the module turns the agent's answers into PKCS#11's.
package enum ErrorMapping {
    /// The `CK_RV` for an agent error code (`CKR_DEVICE_ERROR` for any the module has no better word for).
    package static func rv(_ code: AgentErrorCode) -> CK_RV {
        switch code {
        case .notUnlocked: CKR_USER_NOT_LOGGED_IN
        case .noToken, .tokenAbsent, .tokenRemoved: CKR_DEVICE_REMOVED
        case .objectNotFound: CKR_KEY_HANDLE_INVALID
        case .mechanismInvalid: CKR_MECHANISM_INVALID
        case .dataInvalid: CKR_DATA_INVALID
        case .keyUsageNotPermitted: CKR_KEY_FUNCTION_NOT_PERMITTED
        case .deniedByPolicy, .notConfirmed: CKR_FUNCTION_REJECTED
        case .invalidArgument: CKR_ARGUMENTS_BAD
        case .notPermitted: CKR_FUNCTION_CANCELED
        default: CKR_DEVICE_ERROR
        }
    }
}

extension ErrorMapping {
    /// The `CK_RV` of `C_Login` for the agent's unlock outcome.
    package static func rv(_ outcome: AccessOutcome.Kind) -> CK_RV {
        switch outcome {
        case .unlocked, .alreadyUnlocked: CKR_OK
        case .wrongCode: CKR_PIN_INCORRECT
        case .locked, .cardFinalTry, .cardBlocked: CKR_PIN_LOCKED
        case .invalidLength: CKR_PIN_LEN_RANGE
        case .notPresented: CKR_DEVICE_REMOVED
        case .failed, .ledgerDamaged: CKR_DEVICE_ERROR
        case .cancelled, .timedOut, .nowhereToAsk: CKR_FUNCTION_CANCELED
        }
    }
}
