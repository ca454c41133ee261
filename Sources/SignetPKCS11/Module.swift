#if canImport(Glibc)
import Glibc
#endif
import CP11Kit
import SignetCore

/// Information a module reports about itself (`CK_INFO`).
public struct ModuleInfo: Sendable, Equatable, Codable {
    public var manufacturer: String
    public var libraryDescription: String
    public var libraryVersion: String
    public var cryptokiVersion: String
}

/// One loaded and initialised PKCS#11 module.
///
/// Modules are loaded through p11-kit, which initialises them with OS locking,
/// so a module may be called from several threads; callers still serialise
/// access per token (one session user at a time), as the agent does.
public final class PKCS11Module: @unchecked Sendable, CustomStringConvertible {
    /// The module's function list. Never NULL; individual entries may be.
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    /// p11-kit's name for a registered module (e.g. `softhsm2`), or the file name for an explicit one.
    public let name: String
    /// Path of the shared object.
    public let path: String
    /// What the module says about itself.
    public let info: ModuleInfo
    /// Whether p11-kit marks this module as a source of trust policy
    /// (the system trust store), which holds no keys.
    public let isTrustModule: Bool
    /// Finalises the module when the last user (module, token, session) is gone.
    private let owner: ModuleOwner?

    init(functions: UnsafeMutablePointer<CK_FUNCTION_LIST>, name: String, path: String, isTrustModule: Bool, owner: ModuleOwner? = nil) throws(PKCS11Error) {
        self.functions = functions
        self.owner = owner
        self.name = name
        self.path = path
        self.isTrustModule = isTrustModule
        guard let getInfo = functions.pointee.C_GetInfo else { throw .functionMissing("C_GetInfo") }
        var raw = CK_INFO()
        try check(getInfo(&raw), "C_GetInfo")
        info = ModuleInfo(
            manufacturer: paddedText(raw.manufacturerID),
            libraryDescription: paddedText(raw.libraryDescription),
            libraryVersion: "\(raw.libraryVersion.major).\(raw.libraryVersion.minor)",
            cryptokiVersion: "\(raw.cryptokiVersion.major).\(raw.cryptokiVersion.minor)"
        )
    }

    public var description: String { "\(name) (\(info.libraryDescription))" }

    /// The raw function list, for C interop such as the benchmark's C
    /// baseline. Prefer the typed API: it checks for NULL entries and return codes.
    public var unsafeFunctionList: UnsafeMutablePointer<CK_FUNCTION_LIST> { functions }

    /// IDs of the slots of this module; only those with a token when `tokenPresent`.
    /// - Throws: `PKCS11Error.call` for `C_GetSlotList` failures.
    public func slotIDs(tokenPresent: Bool = true) throws(PKCS11Error) -> [CK_SLOT_ID] {
        guard let getSlotList = functions.pointee.C_GetSlotList else { throw .functionMissing("C_GetSlotList") }
        let present = CK_BBOOL(tokenPresent ? CK_TRUE : CK_FALSE)
        // The slot count may change between the two calls (a reader plugged in):
        // retry when the second call reports the buffer too small.
        for _ in 0..<4 {
            var count: CK_ULONG = 0
            try check(getSlotList(present, nil, &count), "C_GetSlotList")
            if count == 0 { return [] }
            var ids = [CK_SLOT_ID](repeating: 0, count: Int(count))
            let rv = getSlotList(present, &ids, &count)
            if rv == CKR_BUFFER_TOO_SMALL { continue }
            try check(rv, "C_GetSlotList")
            return Array(ids.prefix(Int(count)))
        }
        throw .call(operation: "C_GetSlotList", code: .bufferTooSmall)
    }

    /// The slot's description and flags.
    /// - Throws: `PKCS11Error.call` (`CKR_SLOT_ID_INVALID` when the reader went away).
    public func slotInfo(_ slot: CK_SLOT_ID) throws(PKCS11Error) -> SlotInfo {
        guard let getSlotInfo = functions.pointee.C_GetSlotInfo else { throw .functionMissing("C_GetSlotInfo") }
        var raw = CK_SLOT_INFO()
        try check(getSlotInfo(slot, &raw), "C_GetSlotInfo")
        return SlotInfo(raw)
    }

    /// The token's label, identity, code flags and limits.
    /// - Throws: `PKCS11Error.call` (`CKR_TOKEN_NOT_PRESENT` when the card was removed).
    public func tokenInfo(_ slot: CK_SLOT_ID) throws(PKCS11Error) -> TokenInfo {
        guard let getTokenInfo = functions.pointee.C_GetTokenInfo else { throw .functionMissing("C_GetTokenInfo") }
        var raw = CK_TOKEN_INFO()
        try check(getTokenInfo(slot, &raw), "C_GetTokenInfo")
        return TokenInfo(raw)
    }

    /// Mechanisms the token in `slot` supports.
    public func mechanisms(_ slot: CK_SLOT_ID) throws(PKCS11Error) -> [MechanismType] {
        guard let getMechanismList = functions.pointee.C_GetMechanismList else { throw .functionMissing("C_GetMechanismList") }
        var count: CK_ULONG = 0
        try check(getMechanismList(slot, nil, &count), "C_GetMechanismList")
        var list = [CK_MECHANISM_TYPE](repeating: 0, count: Int(count))
        try check(getMechanismList(slot, &list, &count), "C_GetMechanismList")
        return list.prefix(Int(count)).map { MechanismType(rawValue: UInt($0)) }
    }

    /// Waits for a slot event (token inserted or removed) and returns the slot,
    /// or `nil` when `block` is false and nothing happened.
    ///
    /// Blocking waits hold the calling thread: never call with `block: true`
    /// from Swift's cooperative pool. Many modules (SoftHSM2 among them) answer
    /// `CKR_FUNCTION_NOT_SUPPORTED`; the PC/SC layer's event stream is the
    /// fallback.
    /// - Throws: `PKCS11Error.call`, e.g. `CKR_FUNCTION_NOT_SUPPORTED`.
    public func waitForSlotEvent(block: Bool) throws(PKCS11Error) -> CK_SLOT_ID? {
        guard let wait = functions.pointee.C_WaitForSlotEvent else { throw .functionMissing("C_WaitForSlotEvent") }
        var slot: CK_SLOT_ID = 0
        let rv = wait(block ? 0 : CK_FLAGS(CKF_DONT_BLOCK), &slot, nil)
        if rv == CKR_NO_EVENT { return nil }
        try check(rv, "C_WaitForSlotEvent")
        return slot
    }

    /// Initialises (erases!) the token in `slot` with a new SO code and label.
    /// Used only for software tokens created on purpose.
    /// - Throws: `PKCS11Error.call`.
    public func initToken(slot: CK_SLOT_ID, soCode: borrowing SecretBytes, label: String) throws(PKCS11Error) {
        guard let initToken = functions.pointee.C_InitToken else { throw .functionMissing("C_InitToken") }
        var padded = [UInt8](repeating: 0x20, count: 32)
        for (index, byte) in label.utf8.prefix(32).enumerated() { padded[index] = byte }
        let rv = soCode.withUnsafeBytes { code in
            initToken(slot, UnsafeMutablePointer(mutating: code.baseAddress?.assumingMemoryBound(to: UInt8.self)), CK_ULONG(code.count), &padded)
        }
        try check(rv, "C_InitToken")
    }
}

/// Where to find PKCS#11 modules.
public struct PKCS11Configuration: Sendable, Equatable {
    /// Load every module p11-kit is configured with (`/usr/share/p11-kit/modules`, `~/.config/pkcs11/modules`).
    public var loadRegisteredModules: Bool
    /// Extra modules by path, from Signet's configuration or `SIGNET_PKCS11_MODULE`.
    public var modulePaths: [String]
    /// Keep trust-policy modules (the system trust store): they hold no keys, so they are skipped by default.
    public var includeTrustModules: Bool

    public init(loadRegisteredModules: Bool = true, modulePaths: [String] = [], includeTrustModules: Bool = false) {
        self.loadRegisteredModules = loadRegisteredModules
        self.modulePaths = modulePaths
        self.includeTrustModules = includeTrustModules
    }

    /// The configuration from `config` plus `SIGNET_PKCS11_MODULE` (a colon-separated list of paths).
    public static func resolved(config: SignetConfig = .load(), environment: [String: String] = ProcessEnvironment.all()) -> PKCS11Configuration {
        var paths = config.values("pkcs11-module")
        if let extra = environment["SIGNET_PKCS11_MODULE"] {
            paths += extra.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        let registered = config.value("p11-kit-modules").map { $0 != "no" } ?? true
        return PKCS11Configuration(loadRegisteredModules: registered, modulePaths: paths)
    }
}

/// The set of loaded modules for this process. Modules are finalised when
/// the context and every token and session from it are released.
///
/// Create one per process (the agent, or the CLI for a single command):
/// loading initialises every module, which can take a moment with card readers.
public final class PKCS11Context: @unchecked Sendable {
    /// Loaded modules, registered ones first, in p11-kit's order.
    public let modules: [PKCS11Module]
    /// Modules that could not be loaded, with the reason (shown by `signet tokens`).
    public let failures: [(path: String, reason: String)]
    /// Registered modules left out because they are Signet's own front end (`FrontEndGuard`), with the reason.
    public let skipped: [(path: String, reason: String)]

    /// Loads and initialises modules.
    /// - Throws: never for a module that fails (it is listed in `failures`);
    ///   `PKCS11Error.moduleLoad` only when nothing at all could be loaded and an explicit path was given.
    public init(configuration: PKCS11Configuration = .resolved()) throws(PKCS11Error) {
        var modules: [PKCS11Module] = []
        var failures: [(String, String)] = []
        var skipped: [(String, String)] = []
        var seenPaths = Set<String>()

        if configuration.loadRegisteredModules, let list = FrontEndGuard.loadRegisteredModules(skipped: &skipped) {
            let owner = ModuleOwner.registered(list)
            var cursor = list
            while let function = cursor.pointee {
                let name = takeString(p11_kit_module_get_name(function)) ?? "unnamed"
                let path = takeString(p11_kit_module_get_filename(function)) ?? name
                let trust = takeString(p11_kit_config_option(function, "trust-policy")) == "yes"
                cursor += 1
                if trust && !configuration.includeTrustModules { continue }
                do throws(PKCS11Error) {
                    modules.append(try PKCS11Module(functions: function, name: name, path: path, isTrustModule: trust, owner: owner))
                    seenPaths.insert(canonicalPath(path))
                } catch {
                    failures.append((path, error.description))
                }
            }
        }

        for path in configuration.modulePaths where !seenPaths.contains(canonicalPath(path)) {
            if let reason = FrontEndGuard.reason(path: path) {
                skipped.append((path, reason))
                continue
            }
            guard let function = p11_kit_module_load(path, 0) else {
                failures.append((path, p11KitMessage() ?? "the file could not be loaded"))
                continue
            }
            let rv = p11_kit_module_initialize(function)
            guard rv == CKR_OK else {
                failures.append((path, CKReturn(rawValue: UInt(rv)).description))
                p11_kit_module_release(function)
                continue
            }
            let owner = ModuleOwner.explicit(function)
            seenPaths.insert(canonicalPath(path))
            let fileName = path.split(separator: "/").last.map(String.init) ?? path
            do throws(PKCS11Error) {
                modules.append(try PKCS11Module(functions: function, name: fileName, path: path, isTrustModule: false, owner: owner))
            } catch {
                failures.append((path, error.description))
            }
        }
        self.modules = modules
        self.failures = failures
        self.skipped = skipped
        if modules.isEmpty, let first = failures.first, !configuration.modulePaths.isEmpty {
            throw .moduleLoad(path: first.0, reason: first.1)
        }
    }

    /// Every token present in every module's slots, with its identity.
    /// A slot that fails (a card pulled while listing) is skipped, not fatal.
    /// SoftHSM2's spare slot (an uninitialised software token) is left out
    /// unless `includeUninitializedSoftware` is set.
    public func tokens(includeUninitializedSoftware: Bool = false) -> [Token] {
        scanTokens(includeUninitializedSoftware: includeUninitializedSoftware).tokens
    }

    /// `tokens()`, and where a module's answer was an error that does not say a token is gone.
    public func scanTokens(includeUninitializedSoftware: Bool = false) -> TokenScan {
        var scan = TokenScan()
        for module in modules {
            let slots: [CK_SLOT_ID]
            do throws(PKCS11Error) {
                slots = try module.slotIDs(tokenPresent: true)
            } catch {
                scan.uncertain.append((module.path, nil))
                continue
            }
            for slot in slots {
                let slotInfo: SlotInfo, tokenInfo: TokenInfo
                do throws(PKCS11Error) {
                    slotInfo = try module.slotInfo(slot)
                    tokenInfo = try module.tokenInfo(slot)
                } catch {
                    if !TokenScan.meansGone(error) { scan.uncertain.append((module.path, slot)) }
                    continue
                }
                let token = Token(module: module, slotID: slot, slot: slotInfo, info: tokenInfo)
                if token.isSoftware, !tokenInfo.flags.contains(.tokenInitialized), !includeUninitializedSoftware { continue }
                scan.tokens.append(token)
            }
        }
        return scan
    }

    /// The single token that `uri` selects.
    /// - Throws: `PKCS11Error.tokenNotFound` when none matches, `.ambiguousToken` when several do.
    public func token(matching uri: PKCS11URI) throws(PKCS11Error) -> Token {
        let matches = tokens().filter { uri.matches($0) }
        guard let first = matches.first else { throw .tokenNotFound(uri.description) }
        guard matches.count == 1 else {
            throw .ambiguousToken(uri: uri.description, matches: matches.map { "\($0.info.label) serial \($0.info.serialNumber)" })
        }
        return first
    }
}

/// One look at every module's slots.
public struct TokenScan: Sendable {
    /// The tokens present.
    public var tokens: [Token] = []
    /// Modules (slot nil: the whole slot list) whose answer was an error that does not say the token
    /// is gone: a busy or briefly failing module (SoftHSM2 reading a token file another process is
    /// writing, a card another program holds). Whether their tokens are still there is unknown.
    public var uncertain: [(module: String, slot: CK_SLOT_ID?)] = []

    /// Whether this scan could not tell if `token` is still there.
    public func isUncertain(_ token: Token) -> Bool {
        uncertain.contains { $0.module == token.module.path && ($0.slot == nil || $0.slot == token.slotID) }
    }

    /// Errors that do say the token is gone.
    static func meansGone(_ error: PKCS11Error) -> Bool {
        guard let code = error.code else { return false }
        return [CKReturn.tokenNotPresent, .deviceRemoved, .slotIDInvalid, .tokenNotRecognized].contains(code)
    }
}

/// Finalises and releases modules loaded through p11-kit once nothing uses
/// them: every `PKCS11Module` (and through it every `Token` and `Session`)
/// keeps its owner alive, so a module is never finalised under a session.
final class ModuleOwner: @unchecked Sendable {
    private enum Kind {
        case registered(UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>)
        case explicit(UnsafeMutablePointer<CK_FUNCTION_LIST>)
    }
    private let kind: Kind
    private init(_ kind: Kind) { self.kind = kind }

    static func registered(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>) -> ModuleOwner { ModuleOwner(.registered(list)) }
    static func explicit(_ function: UnsafeMutablePointer<CK_FUNCTION_LIST>) -> ModuleOwner { ModuleOwner(.explicit(function)) }

    deinit {
        switch kind {
        case .registered(let list):
            p11_kit_modules_finalize_and_release(list)
        case .explicit(let function):
            _ = p11_kit_module_finalize(function)
            p11_kit_module_release(function)
        }
    }
}

/// Takes ownership of a malloc'd C string from p11-kit and frees it.
private func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}

private func p11KitMessage() -> String? {
    guard let message = p11_kit_message() else { return nil }
    return String(cString: message)
}

private func canonicalPath(_ path: String) -> String { System.realPath(path) ?? path }

/// Decodes a fixed-width, space-padded PKCS#11 text field (UTF-8, not NUL-terminated).
func paddedText<T>(_ field: T) -> String {
    withUnsafeBytes(of: field) { raw in
        var end = raw.count
        while end > 0, raw[end - 1] == 0x20 || raw[end - 1] == 0 { end -= 1 }
        return String(decoding: raw.prefix(end), as: UTF8.self)
    }
}
