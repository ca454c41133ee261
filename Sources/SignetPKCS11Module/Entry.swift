#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// The shell of libsignet-pkcs11.so: the PKCS#11 functions (FunctionList.swift lists them), one file per
// function family (Entry*.swift), as OpenSC's pkcs11-global.c, pkcs11-session.c and pkcs11-object.c. Each
// entry point checks its arguments (Arguments.swift), looks up, calls the library (SignetPKCS11Front's
// `ModuleState`, which makes at most one agent request per call, with no lock held) and maps the result
// into the caller's buffers. This file holds what they share. See docs/pkcs11-module.md.

/// Runs `body` with the module's state, or answers `CKR_CRYPTOKI_NOT_INITIALIZED`.
@inline(__always)
func withModule(_ body: (ModuleState) throws -> CK_RV) -> CK_RV {
    guard let state = Module.state else { return CKR_CRYPTOKI_NOT_INITIALIZED }
    do {
        return try body(state)
    } catch let error as ModuleError {
        return error.rv
    } catch {
        return CKR_GENERAL_ERROR
    }
}

/// Writes `text` into a fixed-size, blank-padded PKCS#11 text field (cut at a character boundary).
func pad<T>(_ field: inout T, _ text: String) {
    withUnsafeMutableBytes(of: &field) { buffer in
        buffer.initializeMemory(as: UInt8.self, repeating: 0x20)
        var used = 0
        for character in text {
            let bytes = Array(String(character).utf8)
            guard used + bytes.count <= buffer.count else { break }
            for byte in bytes { buffer[used] = byte; used += 1 }
        }
    }
}

/// Copies `bytes` out the PKCS#11 way: the length always, the bytes when there is room.
func output(_ bytes: [UInt8], to pointer: UnsafeMutablePointer<UInt8>?, length: UnsafeMutablePointer<CK_ULONG>) -> CK_RV {
    guard let pointer else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_OK
    }
    guard length.pointee >= CK_ULONG(bytes.count) else {
        length.pointee = CK_ULONG(bytes.count)
        return CKR_BUFFER_TOO_SMALL
    }
    bytes.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: bytes.count) }
    length.pointee = CK_ULONG(bytes.count)
    return CKR_OK
}

/// `C_SignInit` and `C_DecryptInit`: checks the session, the mechanism (for `function`) and the key, in
/// PKCS#11's order of priority, and keeps the operation `make` builds in the session's `operation` field.
func startOperation<Operation>(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE,
                               for function: CK_FLAGS, _ operation: WritableKeyPath<ModuleSession, Operation?>,
                               _ make: (CK_MECHANISM, ModuleObject) throws -> Operation) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let mechanism else { return CKR_ARGUMENTS_BAD }
        guard found[keyPath: operation] == nil else { return CKR_OPERATION_ACTIVE }
        _ = try Mechanisms.entry(mechanism.pointee.mechanism, for: function)
        let (_, object) = try state.operationKey(key, session: session)
        let started = try make(mechanism.pointee, object)
        try state.updateSession(session) { $0[keyPath: operation] = started }
        return CKR_OK
    }
}

/// Copies a list out the PKCS#11 way (`C_GetSlotList`, `C_GetMechanismList`): the count always, the
/// items when there is room; `CKR_BUFFER_TOO_SMALL` when there is not.
func outputList<T>(_ items: [T], to list: UnsafeMutablePointer<T>?, count: UnsafeMutablePointer<CK_ULONG>) -> CK_RV {
    let room = count.pointee
    count.pointee = CK_ULONG(items.count)
    guard let list else { return CKR_OK }
    guard room >= CK_ULONG(items.count) else { return CKR_BUFFER_TOO_SMALL }
    for (index, item) in items.enumerated() { list[index] = item }
    return CKR_OK
}

/// The version the module reports for itself and its slots and tokens: the project's (VERSION).
let version = CK_VERSION(major: SignetVersion.major, minor: SignetVersion.minor)

/// The stub of a function the module does not offer. PKCS#11 2.40 (5.1.6, `CKR_FUNCTION_NOT_SUPPORTED`):
/// "this stub should simply return the value CKR_FUNCTION_NOT_SUPPORTED": it checks no session or argument.
func notSupported() -> CK_RV { Module.state == nil ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_SUPPORTED }
