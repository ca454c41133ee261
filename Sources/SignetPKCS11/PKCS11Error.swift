import CP11Kit
import SignetCore

/// A PKCS#11 return value (`CK_RV`) with a name and a readable meaning.
public struct CKReturn: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let ok = CKReturn(rawValue: UInt(CKR_OK))
    public static let cancel = CKReturn(rawValue: UInt(CKR_CANCEL))
    public static let hostMemory = CKReturn(rawValue: UInt(CKR_HOST_MEMORY))
    public static let slotIDInvalid = CKReturn(rawValue: UInt(CKR_SLOT_ID_INVALID))
    public static let generalError = CKReturn(rawValue: UInt(CKR_GENERAL_ERROR))
    public static let functionFailed = CKReturn(rawValue: UInt(CKR_FUNCTION_FAILED))
    public static let argumentsBad = CKReturn(rawValue: UInt(CKR_ARGUMENTS_BAD))
    public static let noEvent = CKReturn(rawValue: UInt(CKR_NO_EVENT))
    public static let attributeSensitive = CKReturn(rawValue: UInt(CKR_ATTRIBUTE_SENSITIVE))
    public static let attributeTypeInvalid = CKReturn(rawValue: UInt(CKR_ATTRIBUTE_TYPE_INVALID))
    public static let attributeValueInvalid = CKReturn(rawValue: UInt(CKR_ATTRIBUTE_VALUE_INVALID))
    public static let dataInvalid = CKReturn(rawValue: UInt(CKR_DATA_INVALID))
    public static let dataLenRange = CKReturn(rawValue: UInt(CKR_DATA_LEN_RANGE))
    public static let deviceError = CKReturn(rawValue: UInt(CKR_DEVICE_ERROR))
    public static let deviceMemory = CKReturn(rawValue: UInt(CKR_DEVICE_MEMORY))
    public static let deviceRemoved = CKReturn(rawValue: UInt(CKR_DEVICE_REMOVED))
    public static let encryptedDataInvalid = CKReturn(rawValue: UInt(CKR_ENCRYPTED_DATA_INVALID))
    public static let encryptedDataLenRange = CKReturn(rawValue: UInt(CKR_ENCRYPTED_DATA_LEN_RANGE))
    public static let functionNotSupported = CKReturn(rawValue: UInt(CKR_FUNCTION_NOT_SUPPORTED))
    public static let keyHandleInvalid = CKReturn(rawValue: UInt(CKR_KEY_HANDLE_INVALID))
    public static let keySizeRange = CKReturn(rawValue: UInt(CKR_KEY_SIZE_RANGE))
    public static let keyTypeInconsistent = CKReturn(rawValue: UInt(CKR_KEY_TYPE_INCONSISTENT))
    public static let keyFunctionNotPermitted = CKReturn(rawValue: UInt(CKR_KEY_FUNCTION_NOT_PERMITTED))
    public static let mechanismInvalid = CKReturn(rawValue: UInt(CKR_MECHANISM_INVALID))
    public static let mechanismParamInvalid = CKReturn(rawValue: UInt(CKR_MECHANISM_PARAM_INVALID))
    public static let objectHandleInvalid = CKReturn(rawValue: UInt(CKR_OBJECT_HANDLE_INVALID))
    public static let operationActive = CKReturn(rawValue: UInt(CKR_OPERATION_ACTIVE))
    public static let operationNotInitialized = CKReturn(rawValue: UInt(CKR_OPERATION_NOT_INITIALIZED))
    public static let pinIncorrect = CKReturn(rawValue: UInt(CKR_PIN_INCORRECT))
    public static let pinInvalid = CKReturn(rawValue: UInt(CKR_PIN_INVALID))
    public static let pinLenRange = CKReturn(rawValue: UInt(CKR_PIN_LEN_RANGE))
    public static let pinExpired = CKReturn(rawValue: UInt(CKR_PIN_EXPIRED))
    public static let pinLocked = CKReturn(rawValue: UInt(CKR_PIN_LOCKED))
    public static let sessionClosed = CKReturn(rawValue: UInt(CKR_SESSION_CLOSED))
    public static let sessionCount = CKReturn(rawValue: UInt(CKR_SESSION_COUNT))
    public static let sessionHandleInvalid = CKReturn(rawValue: UInt(CKR_SESSION_HANDLE_INVALID))
    public static let sessionParallelNotSupported = CKReturn(rawValue: UInt(CKR_SESSION_PARALLEL_NOT_SUPPORTED))
    public static let sessionReadOnly = CKReturn(rawValue: UInt(CKR_SESSION_READ_ONLY))
    public static let sessionExists = CKReturn(rawValue: UInt(CKR_SESSION_EXISTS))
    public static let sessionReadOnlyExists = CKReturn(rawValue: UInt(CKR_SESSION_READ_ONLY_EXISTS))
    public static let sessionReadWriteSOExists = CKReturn(rawValue: UInt(CKR_SESSION_READ_WRITE_SO_EXISTS))
    public static let signatureInvalid = CKReturn(rawValue: UInt(CKR_SIGNATURE_INVALID))
    public static let signatureLenRange = CKReturn(rawValue: UInt(CKR_SIGNATURE_LEN_RANGE))
    public static let templateIncomplete = CKReturn(rawValue: UInt(CKR_TEMPLATE_INCOMPLETE))
    public static let templateInconsistent = CKReturn(rawValue: UInt(CKR_TEMPLATE_INCONSISTENT))
    public static let tokenNotPresent = CKReturn(rawValue: UInt(CKR_TOKEN_NOT_PRESENT))
    public static let tokenNotRecognized = CKReturn(rawValue: UInt(CKR_TOKEN_NOT_RECOGNIZED))
    public static let tokenWriteProtected = CKReturn(rawValue: UInt(CKR_TOKEN_WRITE_PROTECTED))
    public static let userAlreadyLoggedIn = CKReturn(rawValue: UInt(CKR_USER_ALREADY_LOGGED_IN))
    public static let userNotLoggedIn = CKReturn(rawValue: UInt(CKR_USER_NOT_LOGGED_IN))
    public static let userPinNotInitialized = CKReturn(rawValue: UInt(CKR_USER_PIN_NOT_INITIALIZED))
    public static let userTypeInvalid = CKReturn(rawValue: UInt(CKR_USER_TYPE_INVALID))
    public static let userAnotherAlreadyLoggedIn = CKReturn(rawValue: UInt(CKR_USER_ANOTHER_ALREADY_LOGGED_IN))
    public static let userTooManyTypes = CKReturn(rawValue: UInt(CKR_USER_TOO_MANY_TYPES))
    public static let bufferTooSmall = CKReturn(rawValue: UInt(CKR_BUFFER_TOO_SMALL))
    public static let cryptokiNotInitialized = CKReturn(rawValue: UInt(CKR_CRYPTOKI_NOT_INITIALIZED))
    public static let cryptokiAlreadyInitialized = CKReturn(rawValue: UInt(CKR_CRYPTOKI_ALREADY_INITIALIZED))
    public static let curveNotSupported = CKReturn(rawValue: UInt(CKR_CURVE_NOT_SUPPORTED))

    private static let table: [UInt: (String, String)] = [
        CKReturn.ok.rawValue: ("CKR_OK", "the call succeeded"),
        CKReturn.cancel.rawValue: ("CKR_CANCEL", "the operation was cancelled"),
        CKReturn.hostMemory.rawValue: ("CKR_HOST_MEMORY", "the computer ran out of memory"),
        CKReturn.slotIDInvalid.rawValue: ("CKR_SLOT_ID_INVALID", "the reader slot no longer exists; list tokens again"),
        CKReturn.generalError.rawValue: ("CKR_GENERAL_ERROR", "the token module reported an unrecoverable error"),
        CKReturn.functionFailed.rawValue: ("CKR_FUNCTION_FAILED", "the token could not carry out the request"),
        CKReturn.argumentsBad.rawValue: ("CKR_ARGUMENTS_BAD", "the token module rejected the arguments"),
        CKReturn.noEvent.rawValue: ("CKR_NO_EVENT", "no slot event is pending"),
        CKReturn.attributeSensitive.rawValue: ("CKR_ATTRIBUTE_SENSITIVE", "the attribute is sensitive and cannot be read"),
        CKReturn.attributeTypeInvalid.rawValue: ("CKR_ATTRIBUTE_TYPE_INVALID", "the object has no such attribute"),
        CKReturn.attributeValueInvalid.rawValue: ("CKR_ATTRIBUTE_VALUE_INVALID", "an attribute value is invalid"),
        CKReturn.dataInvalid.rawValue: ("CKR_DATA_INVALID", "the input data is invalid for this mechanism"),
        CKReturn.dataLenRange.rawValue: ("CKR_DATA_LEN_RANGE", "the input data has the wrong length for this mechanism and key"),
        CKReturn.deviceError.rawValue: ("CKR_DEVICE_ERROR", "the token or reader reported a device error; re-insert the token"),
        CKReturn.deviceMemory.rawValue: ("CKR_DEVICE_MEMORY", "the token is out of memory; delete unused objects"),
        CKReturn.deviceRemoved.rawValue: ("CKR_DEVICE_REMOVED", "the token was removed during the operation; present it again"),
        CKReturn.encryptedDataInvalid.rawValue: ("CKR_ENCRYPTED_DATA_INVALID", "the ciphertext is invalid (wrong key or corrupted data)"),
        CKReturn.encryptedDataLenRange.rawValue: ("CKR_ENCRYPTED_DATA_LEN_RANGE", "the ciphertext has the wrong length for this key"),
        CKReturn.functionNotSupported.rawValue: ("CKR_FUNCTION_NOT_SUPPORTED", "the token module does not support this function"),
        CKReturn.keyHandleInvalid.rawValue: ("CKR_KEY_HANDLE_INVALID", "the key no longer exists on the token"),
        CKReturn.keySizeRange.rawValue: ("CKR_KEY_SIZE_RANGE", "the token does not support this key size"),
        CKReturn.keyTypeInconsistent.rawValue: ("CKR_KEY_TYPE_INCONSISTENT", "the key type does not fit the mechanism"),
        CKReturn.keyFunctionNotPermitted.rawValue: ("CKR_KEY_FUNCTION_NOT_PERMITTED", "the key is not allowed to do this (check its usages)"),
        CKReturn.mechanismInvalid.rawValue: ("CKR_MECHANISM_INVALID", "the token does not support this mechanism"),
        CKReturn.mechanismParamInvalid.rawValue: ("CKR_MECHANISM_PARAM_INVALID", "the mechanism parameters are invalid"),
        CKReturn.objectHandleInvalid.rawValue: ("CKR_OBJECT_HANDLE_INVALID", "the object no longer exists on the token"),
        CKReturn.operationActive.rawValue: ("CKR_OPERATION_ACTIVE", "another operation is active in this session"),
        CKReturn.operationNotInitialized.rawValue: ("CKR_OPERATION_NOT_INITIALIZED", "no operation was started in this session"),
        CKReturn.pinIncorrect.rawValue: ("CKR_PIN_INCORRECT", "the access code is wrong"),
        CKReturn.pinInvalid.rawValue: ("CKR_PIN_INVALID", "the access code contains characters the token does not accept"),
        CKReturn.pinLenRange.rawValue: ("CKR_PIN_LEN_RANGE", "the access code is too short or too long for this token"),
        CKReturn.pinExpired.rawValue: ("CKR_PIN_EXPIRED", "the access code has expired; change it"),
        CKReturn.pinLocked.rawValue: ("CKR_PIN_LOCKED", "the token's access code is blocked; unblock it with the administrator (SO) code or PUK"),
        CKReturn.sessionClosed.rawValue: ("CKR_SESSION_CLOSED", "the session was closed"),
        CKReturn.sessionCount.rawValue: ("CKR_SESSION_COUNT", "the token has too many open sessions"),
        CKReturn.sessionHandleInvalid.rawValue: ("CKR_SESSION_HANDLE_INVALID", "the session is no longer valid (token removed or reset)"),
        CKReturn.sessionParallelNotSupported.rawValue: ("CKR_SESSION_PARALLEL_NOT_SUPPORTED", "the token does not support parallel sessions"),
        CKReturn.sessionReadOnly.rawValue: ("CKR_SESSION_READ_ONLY", "the session is read-only"),
        CKReturn.sessionExists.rawValue: ("CKR_SESSION_EXISTS", "a session is already open with the token"),
        CKReturn.sessionReadOnlyExists.rawValue: ("CKR_SESSION_READ_ONLY_EXISTS", "a read-only session exists, so the administrator cannot log in"),
        CKReturn.sessionReadWriteSOExists.rawValue: ("CKR_SESSION_READ_WRITE_SO_EXISTS", "an administrator session exists"),
        CKReturn.signatureInvalid.rawValue: ("CKR_SIGNATURE_INVALID", "the signature is invalid"),
        CKReturn.signatureLenRange.rawValue: ("CKR_SIGNATURE_LEN_RANGE", "the signature has the wrong length"),
        CKReturn.templateIncomplete.rawValue: ("CKR_TEMPLATE_INCOMPLETE", "the object template is missing attributes"),
        CKReturn.templateInconsistent.rawValue: ("CKR_TEMPLATE_INCONSISTENT", "the object template is inconsistent"),
        CKReturn.tokenNotPresent.rawValue: ("CKR_TOKEN_NOT_PRESENT", "the token is not present; insert it or tap it on the reader"),
        CKReturn.tokenNotRecognized.rawValue: ("CKR_TOKEN_NOT_RECOGNIZED", "the card in the reader is not a token this module knows"),
        CKReturn.tokenWriteProtected.rawValue: ("CKR_TOKEN_WRITE_PROTECTED", "the token is write-protected"),
        CKReturn.userAlreadyLoggedIn.rawValue: ("CKR_USER_ALREADY_LOGGED_IN", "the token is already unlocked"),
        CKReturn.userNotLoggedIn.rawValue: ("CKR_USER_NOT_LOGGED_IN", "the token is locked; unlock it with your access code first"),
        CKReturn.userPinNotInitialized.rawValue: ("CKR_USER_PIN_NOT_INITIALIZED", "the token has no user access code yet; initialise it"),
        CKReturn.userTypeInvalid.rawValue: ("CKR_USER_TYPE_INVALID", "invalid user type"),
        CKReturn.userAnotherAlreadyLoggedIn.rawValue: ("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", "another user is logged in to the token"),
        CKReturn.userTooManyTypes.rawValue: ("CKR_USER_TOO_MANY_TYPES", "too many user types are logged in"),
        CKReturn.bufferTooSmall.rawValue: ("CKR_BUFFER_TOO_SMALL", "the output buffer was too small"),
        CKReturn.cryptokiNotInitialized.rawValue: ("CKR_CRYPTOKI_NOT_INITIALIZED", "the token module is not initialised"),
        CKReturn.cryptokiAlreadyInitialized.rawValue: ("CKR_CRYPTOKI_ALREADY_INITIALIZED", "the token module is already initialised"),
        CKReturn.curveNotSupported.rawValue: ("CKR_CURVE_NOT_SUPPORTED", "the token does not support this elliptic curve"),
    ]

    /// The constant's name, e.g. `CKR_PIN_INCORRECT`, or the hex value when unknown.
    public var name: String {
        CKReturn.table[rawValue]?.0 ?? "CKR_0x" + String(rawValue, radix: 16, uppercase: true)
    }

    /// What the code means, in words a person can act on.
    public var meaning: String {
        CKReturn.table[rawValue]?.1 ?? "the token module returned an unknown error"
    }

    public var description: String { "\(meaning) (\(name))" }
}

/// An error from the PKCS#11 layer: which operation failed and why.
public enum PKCS11Error: Error, Equatable, CustomStringConvertible {
    /// A module call returned something other than `CKR_OK`.
    case call(operation: String, code: CKReturn)
    /// A module's function list lacks a function (NULL pointer).
    case functionMissing(String)
    /// A module could not be loaded or initialised.
    case moduleLoad(path: String, reason: String)
    /// No token matches the URI.
    case tokenNotFound(String)
    /// More than one token matches the URI; a narrower one is needed.
    case ambiguousToken(uri: String, matches: [String])
    /// No object matches.
    case objectNotFound(String)
    /// More than one object matches where one was meant.
    case ambiguousObject(String)
    /// A PKCS#11 URI could not be parsed.
    case invalidURI(String)
    /// A value returned by the module was not what the specification says.
    case malformed(String)

    /// The underlying PKCS#11 code, when there is one.
    public var code: CKReturn? {
        if case .call(_, let code) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .call(let operation, let code): "\(operation) failed: \(code)"
        case .functionMissing(let name): "the token module does not provide \(name)"
        case .moduleLoad(let path, let reason): "could not load PKCS#11 module \(path): \(reason)"
        case .tokenNotFound(let uri): "no token matches \(uri); run `signet tokens` to see what is connected, or present your token"
        case .ambiguousToken(let uri, let matches):
            PKCS11URI.ambiguity(uri, tokens: matches)
        case .objectNotFound(let what): "no object matches \(what) on the token"
        case .ambiguousObject(let what): "more than one object matches \(what); add id= or object= to the URI"
        case .invalidURI(let reason): "invalid PKCS#11 URI: \(reason)"
        case .malformed(let what): "the token module returned malformed data: \(what)"
        }
    }
}

/// Turns a `CK_RV` into a thrown `PKCS11Error` — the one place raw codes are checked.
@inline(__always)
func check(_ rv: CK_RV, _ operation: @autoclosure () -> String) throws(PKCS11Error) {
    guard rv == CKR_OK else { throw PKCS11Error.call(operation: operation(), code: CKReturn(rawValue: UInt(rv))) }
}
