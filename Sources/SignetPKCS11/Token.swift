import CP11Kit
import SignetCore

/// Slot flags (`CKF_TOKEN_PRESENT`, `CKF_REMOVABLE_DEVICE`, `CKF_HW_SLOT`).
public struct SlotFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let tokenPresent = SlotFlags(rawValue: UInt(CKF_TOKEN_PRESENT))
    public static let removableDevice = SlotFlags(rawValue: UInt(CKF_REMOVABLE_DEVICE))
    public static let hardwareSlot = SlotFlags(rawValue: UInt(CKF_HW_SLOT))
}

/// Token flags that matter to Signet, with their PKCS#11 names.
public struct TokenFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
    public static let rng = TokenFlags(rawValue: UInt(CKF_RNG))
    public static let writeProtected = TokenFlags(rawValue: UInt(CKF_WRITE_PROTECTED))
    public static let loginRequired = TokenFlags(rawValue: UInt(CKF_LOGIN_REQUIRED))
    public static let userPinInitialized = TokenFlags(rawValue: UInt(CKF_USER_PIN_INITIALIZED))
    public static let protectedAuthenticationPath = TokenFlags(rawValue: UInt(CKF_PROTECTED_AUTHENTICATION_PATH))
    public static let tokenInitialized = TokenFlags(rawValue: UInt(CKF_TOKEN_INITIALIZED))
    public static let userPinCountLow = TokenFlags(rawValue: UInt(CKF_USER_PIN_COUNT_LOW))
    public static let userPinFinalTry = TokenFlags(rawValue: UInt(CKF_USER_PIN_FINAL_TRY))
    public static let userPinLocked = TokenFlags(rawValue: UInt(CKF_USER_PIN_LOCKED))
    public static let userPinToBeChanged = TokenFlags(rawValue: UInt(CKF_USER_PIN_TO_BE_CHANGED))
    public static let soPinCountLow = TokenFlags(rawValue: UInt(CKF_SO_PIN_COUNT_LOW))
    public static let soPinFinalTry = TokenFlags(rawValue: UInt(CKF_SO_PIN_FINAL_TRY))
    public static let soPinLocked = TokenFlags(rawValue: UInt(CKF_SO_PIN_LOCKED))
    public static let soPinToBeChanged = TokenFlags(rawValue: UInt(CKF_SO_PIN_TO_BE_CHANGED))

    /// Names of the set flags, in PKCS#11 spelling, for listings and JSON.
    public var names: [String] {
        let all: [(TokenFlags, String)] = [
            (.rng, "CKF_RNG"), (.writeProtected, "CKF_WRITE_PROTECTED"),
            (.loginRequired, "CKF_LOGIN_REQUIRED"), (.userPinInitialized, "CKF_USER_PIN_INITIALIZED"),
            (.protectedAuthenticationPath, "CKF_PROTECTED_AUTHENTICATION_PATH"),
            (.tokenInitialized, "CKF_TOKEN_INITIALIZED"),
            (.userPinCountLow, "CKF_USER_PIN_COUNT_LOW"), (.userPinFinalTry, "CKF_USER_PIN_FINAL_TRY"),
            (.userPinLocked, "CKF_USER_PIN_LOCKED"), (.userPinToBeChanged, "CKF_USER_PIN_TO_BE_CHANGED"),
            (.soPinCountLow, "CKF_SO_PIN_COUNT_LOW"), (.soPinFinalTry, "CKF_SO_PIN_FINAL_TRY"),
            (.soPinLocked, "CKF_SO_PIN_LOCKED"), (.soPinToBeChanged, "CKF_SO_PIN_TO_BE_CHANGED"),
        ]
        return all.filter { contains($0.0) }.map(\.1)
    }
}

/// A slot's description (`CK_SLOT_INFO`).
public struct SlotInfo: Sendable, Equatable {
    public var description: String
    public var manufacturer: String
    public var flags: SlotFlags

    init(_ raw: CK_SLOT_INFO) {
        description = paddedText(raw.slotDescription)
        manufacturer = paddedText(raw.manufacturerID)
        flags = SlotFlags(rawValue: UInt(raw.flags))
    }
}

/// A token's identity and state (`CK_TOKEN_INFO`).
public struct TokenInfo: Sendable, Equatable {
    public var label: String
    public var manufacturer: String
    public var model: String
    public var serialNumber: String
    public var flags: TokenFlags
    /// Shortest and longest access code the token accepts, in bytes; `nil` when it does not say.
    public var minPinLength: Int?
    public var maxPinLength: Int?
    public var hardwareVersion: String
    public var firmwareVersion: String

    init(_ raw: CK_TOKEN_INFO) {
        label = paddedText(raw.label)
        manufacturer = paddedText(raw.manufacturerID)
        model = paddedText(raw.model)
        serialNumber = paddedText(raw.serialNumber)
        flags = TokenFlags(rawValue: UInt(raw.flags))
        let unavailable = CP11Kit_unavailableInformation()
        minPinLength = raw.ulMinPinLen == unavailable ? nil : Int(raw.ulMinPinLen)
        maxPinLength = raw.ulMaxPinLen == unavailable ? nil : Int(raw.ulMaxPinLen)
        hardwareVersion = "\(raw.hardwareVersion.major).\(raw.hardwareVersion.minor)"
        firmwareVersion = "\(raw.firmwareVersion.major).\(raw.firmwareVersion.minor)"
    }
}

/// A token present in a slot of a loaded module.
///
/// The slot ID is only a handle for the current process: it changes when a
/// token is initialised or a reader re-enumerates. Select tokens with `uri`.
public struct Token: Sendable {
    public let module: PKCS11Module
    public let slotID: CK_SLOT_ID
    public let slot: SlotInfo
    public let info: TokenInfo

    /// The RFC 7512 URI that names this token (model, manufacturer, serial, label).
    public var uri: PKCS11URI {
        PKCS11URI(path: [
            ("model", Array(info.model.utf8)),
            ("manufacturer", Array(info.manufacturer.utf8)),
            ("serial", Array(info.serialNumber.utf8)),
            ("token", Array(info.label.utf8)),
        ])
    }

    /// Identity that survives re-insertion and slot renumbering: manufacturer, model, serial.
    public var identity: String { "\(info.manufacturer)/\(info.model)/\(info.serialNumber)" }

    /// Whether this is a software token (SoftHSM2 or any slot that is neither
    /// hardware nor removable). Signet labels software tokens everywhere and
    /// never picks one silently for real keys.
    public var isSoftware: Bool {
        if info.manufacturer == "SoftHSM project" || info.model.hasPrefix("SoftHSM") { return true }
        return !slot.flags.contains(.hardwareSlot) && !slot.flags.contains(.removableDevice)
    }

    /// Whether the slot still holds a token, asked of the module now (`C_GetSlotInfo`).
    public var isStillPresent: Bool {
        (try? module.slotInfo(slotID))?.flags.contains(.tokenPresent) ?? false
    }

    /// Opens a session with this token.
    /// - Throws: `PKCS11Error.call` (`CKR_TOKEN_NOT_PRESENT`, `CKR_SESSION_COUNT`, …).
    public func openSession(readWrite: Bool = false) throws(PKCS11Error) -> Session {
        try Session(module: module, slotID: slotID, readWrite: readWrite)
    }
}

extension PKCS11URI {
    /// Whether this URI selects `token`: every token, library and slot
    /// attribute present must equal the token's. Object attributes are ignored here.
    public func matches(_ token: Token) -> Bool {
        selects { name in
            switch name {
            case "token": token.info.label
            case "manufacturer": token.info.manufacturer
            case "serial": token.info.serialNumber
            case "model": token.info.model
            case "library-manufacturer": token.module.info.manufacturer
            case "library-description": token.module.info.libraryDescription
            case "library-version": token.module.info.libraryVersion
            case "slot-description": token.slot.description
            case "slot-manufacturer": token.slot.manufacturer
            case "slot-id": String(token.slotID)
            case "module-path": token.module.path
            case "module-name": token.module.name
            default: nil  // RFC 7512 §2.3: unrecognised attributes never match.
            }
        }
    }
}
