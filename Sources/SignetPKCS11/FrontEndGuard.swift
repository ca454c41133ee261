#if canImport(Glibc)
import Glibc
#endif
import CP11Kit

/// Keeps Signet's own PKCS#11 front end (`libsignet-pkcs11.so`) out of the token layer.
///
/// The front end forwards every call to `signet-agent`; loaded into the agent it would ask the agent
/// about itself, one nested request per call, until something times out. `signet setup` registers it
/// with p11-kit with `disable-in: signet-agent signet` (guard #1); this is guard #2, for a module file
/// without that line (written by hand, by a package, or for another program name): a registered module
/// whose library is named `libsignet-pkcs11.so` is released before it is initialised, and one that
/// says it was made by Signet (`C_GetInfo`'s manufacturerID) is finalised and released after.
public enum FrontEndGuard {
    /// The front end's file name.
    public static let libraryName = "libsignet-pkcs11.so"
    /// How the front end's `C_GetInfo` begins its manufacturerID.
    public static let manufacturerPrefix = "Signet"

    /// Why the module at `path` is not loaded, or nil when it may be: its file is named `libsignet-pkcs11.so`.
    public static func reason(path: String) -> String? {
        guard path.split(separator: "/").last.map(String.init) == libraryName else { return nil }
        return "Signet's own front end (\(libraryName)), which forwards to the agent: not loaded into Signet"
    }

    /// Why a module whose manufacturerID is `manufacturer` is not used, or nil when it may be.
    public static func reason(manufacturer: String) -> String? {
        guard manufacturer.hasPrefix(manufacturerPrefix) else { return nil }
        return "its manufacturer is \"\(manufacturer)\": Signet's own front end, which forwards to the agent: not loaded into Signet"
    }

    /// `p11_kit_modules_load_and_initialize(0)` without the front end: loads the registered modules,
    /// releases those `reason(path:)` refuses, initialises the rest (a module that fails is released, as
    /// p11-kit does), then finalises and releases those `reason(manufacturer:)` refuses.
    /// - Parameter skipped: gets the path and reason of every module left out.
    /// - Returns: the NULL-terminated list, or nil when p11-kit loads nothing or a critical module fails.
    static func loadRegisteredModules(skipped: inout [(String, String)]) -> UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>? {
        guard let list = p11_kit_modules_load(nil, 0) else { return nil }
        remove(from: list, skipped: &skipped) { function in
            guard let path = filename(function) else { return nil }
            return reason(path: path).map { (path, $0) }
        } release: { p11_kit_module_release($0) }
        guard p11_kit_modules_initialize(list, { p11_kit_module_release($0?.assumingMemoryBound(to: CK_FUNCTION_LIST.self)) }) == CKR_OK else {
            p11_kit_modules_finalize_and_release(list)
            return nil
        }
        remove(from: list, skipped: &skipped) { function in
            var info = CK_INFO()
            guard let getInfo = function.pointee.C_GetInfo, getInfo(&info) == CKR_OK,
                  let why = reason(manufacturer: paddedText(info.manufacturerID)) else { return nil }
            return (filename(function) ?? "unnamed", why)
        } release: {
            _ = p11_kit_module_finalize($0)
            p11_kit_module_release($0)
        }
        return list
    }

    /// Takes out of the NULL-terminated `list` (in place, keeping the order) every module `refused`
    /// names, records it in `skipped` and hands it to `release`.
    private static func remove(from list: UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>, skipped: inout [(String, String)],
                               refused: (UnsafeMutablePointer<CK_FUNCTION_LIST>) -> (String, String)?,
                               release: (UnsafeMutablePointer<CK_FUNCTION_LIST>) -> Void) {
        var read = list, write = list
        while let function = read.pointee {
            read += 1
            if let entry = refused(function) {
                skipped.append(entry)
                release(function)
            } else {
                write.pointee = function
                write += 1
            }
        }
        write.pointee = nil
    }

    private static func filename(_ function: UnsafeMutablePointer<CK_FUNCTION_LIST>) -> String? {
        guard let raw = p11_kit_module_get_filename(function) else { return nil }
        defer { free(raw) }
        return String(cString: raw)
    }
}
