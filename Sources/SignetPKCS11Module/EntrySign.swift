#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Signing (PKCS#11 2.40, 5.11): the operation is the library's (SignOperation), the signature the agent's.

/// Ends the session's signing operation (every answer but `CKR_BUFFER_TOO_SMALL` and a length query does).
private func endSign(_ state: ModuleState, _ session: CK_SESSION_HANDLE) { try? state.updateSession(session) { $0.sign = nil } }

func signet_C_SignInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    startOperation(session, mechanism, key, for: CKF_SIGN, \.sign) { try SignOperation(mechanism: $0, key: $1) }
}

/// Signs the operation's data at the agent: one request. Every answer ends the operation except
/// `CKR_BUFFER_TOO_SMALL` and a successful length query (PKCS#11 2.40, `C_Sign` and `C_SignFinal`).
private func finishSign(_ state: ModuleState, _ session: CK_SESSION_HANDLE, single input: UnsafeRawBufferPointer?,
                        _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) throws(ModuleError) -> CK_RV {
    let found = try state.session(session)
    guard let operation = found.sign else { return CKR_OPERATION_NOT_INITIALIZED }
    var ends = true
    defer { if ends { endSign(state, session) } }
    guard let length else { return CKR_ARGUMENTS_BAD }
    // C_Sign cannot finish a multi-part signature (C_SignUpdate was called): it ends it.
    if input != nil, operation.parts { return CKR_OPERATION_ACTIVE }
    // Checked before a length query, so that the query does not promise a signature the input cannot have.
    try operation.check(input)
    let expected = operation.key.signatureLength
    // A length query, or a buffer too small, answers without asking the agent and keeps the operation.
    guard let signature, length.pointee >= CK_ULONG(expected) else {
        length.pointee = CK_ULONG(expected)
        ends = false
        return signature == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
    }
    let response = try state.keyCall(.sign(key: operation.key.uri, mechanism: operation.wire, data: operation.agentInput(input)), slot: found.slot)
    guard case .signature(let bytes) = response else { return CKR_DEVICE_ERROR }
    return output(bytes, to: signature, length: length)
}

func signet_C_Sign(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                   _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        guard try state.session(session).sign != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        let input: UnsafeRawBufferPointer
        do throws(ModuleError) {
            input = try Arguments.buffer(data, dataLength)
        } catch {
            endSign(state, session)
            throw error
        }
        return try finishSign(state, session, single: input, signature, length)
    }
}

func signet_C_SignUpdate(_ session: CK_SESSION_HANDLE, _ part: UnsafeMutablePointer<UInt8>?, _ partLength: CK_ULONG) -> CK_RV {
    withModule { state in
        // Raw RSA and ECDSA take their one digest in parts too (as SoftHSM2 does): it is only joined here.
        guard try state.session(session).sign != nil else { return CKR_OPERATION_NOT_INITIALIZED }
        var result = CKR_OK
        try state.updateSession(session) { session in
            // Any error ends the operation (PKCS#11 2.40, C_SignUpdate).
            do throws(ModuleError) {
                try session.sign?.update(try Arguments.buffer(part, partLength))
            } catch {
                session.sign = nil
                result = error.rv
            }
        }
        return result
    }
}

func signet_C_SignFinal(_ session: CK_SESSION_HANDLE, _ signature: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in try finishSign(state, session, single: nil, signature, length) }
}
