import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// A request that failed, with the stable code and words for the client.
struct AgentFailure: Error, Sendable {
    var code: AgentErrorCode
    var message: String
    /// Already written to the audit log (with its decision), so the request's failure is not written again.
    var audited = false
    init(_ code: AgentErrorCode, _ message: String) { self.code = code; self.message = message }

    static func removed(label: String) -> AgentFailure {
        AgentFailure(.tokenRemoved, "\(label) was removed during the operation. Present it again, then unlock it with `signet unlock`.")
    }

    /// Sorts a token error into what a client can act on.
    static func token(_ error: PKCS11Error, label: String) -> AgentFailure {
        switch error {
        case .tokenNotFound(let what): return AgentFailure(.noToken, "No token matches \(what). Run `signet tokens`, or present your token.")
        case .ambiguousToken(let uri, let matches):
            return AgentFailure(.tokenAmbiguous, PKCS11URI.ambiguity(uri, tokens: matches))
        case .objectNotFound(let what): return AgentFailure(.objectNotFound, "No key or certificate matches \(what) on \(label). Run `signet keys` to list them.")
        case .ambiguousObject(let what): return AgentFailure(.objectAmbiguous, "More than one object matches \(what); add id= or object= to the URI.")
        case .invalidURI(let reason): return AgentFailure(.invalidArgument, "Invalid PKCS#11 URI: \(reason).")
        default: break
        }
        guard let code = error.code else { return AgentFailure(.tokenFailure, "\(label): \(error)") }
        switch code {
        case .tokenNotPresent, .deviceRemoved, .sessionHandleInvalid, .sessionClosed:
            return removed(label: label)
        case .userNotLoggedIn:
            return AgentFailure(.notUnlocked, "\(label) is locked. Unlock it with `signet unlock`.")
        case .mechanismInvalid, .mechanismParamInvalid, .argumentsBad:
            // SoftHSM2 answers CKR_ARGUMENTS_BAD for parameters it does not take (OAEP with SHA-256).
            return AgentFailure(.mechanismInvalid, "\(label) does not support this mechanism or its parameters (\(code)).")
        case .dataInvalid, .dataLenRange, .encryptedDataInvalid, .encryptedDataLenRange:
            return AgentFailure(.dataInvalid, "\(label) refused the input (\(code)): check the digest or ciphertext length for this key.")
        case .keyFunctionNotPermitted, .keyTypeInconsistent:
            return AgentFailure(.keyUsageNotPermitted, "This key may not be used for that operation (\(code)).")
        default:
            return AgentFailure(.tokenFailure, "\(label): \(error)")
        }
    }
}
