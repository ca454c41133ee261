#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Decryption (PKCS#11 2.40, 5.9): RSA at the agent, AES key unwrap here with a derived key.

/// Ends the session's decryption (every answer but `CKR_BUFFER_TOO_SMALL` and a length query does).
private func endDecrypt(_ state: ModuleState, _ session: CK_SESSION_HANDLE) { try? state.updateSession(session) { $0.decrypt = nil } }

func signet_C_DecryptInit(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ key: CK_OBJECT_HANDLE) -> CK_RV {
    startOperation(session, mechanism, key, for: CKF_DECRYPT, \.decrypt) { try DecryptOperation(mechanism: $0, key: $1) }
}

func signet_C_Decrypt(_ session: CK_SESSION_HANDLE, _ data: UnsafeMutablePointer<UInt8>?, _ dataLength: CK_ULONG,
                      _ plain: UnsafeMutablePointer<UInt8>?, _ length: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    withModule { state in
        let found = try state.session(session)
        guard let operation = found.decrypt else { return CKR_OPERATION_NOT_INITIALIZED }
        // Every answer ends the operation except CKR_BUFFER_TOO_SMALL and a length query (PKCS#11 2.40, C_Decrypt).
        var ends = true
        defer { if ends { endDecrypt(state, session) } }
        guard let length, data != nil || dataLength == 0 else { return CKR_ARGUMENTS_BAD }
        let result: SharedSecret
        if let pending = operation.pending {
            result = pending
        } else {
            // The length is checked before any request: the token is not asked what the module can tell.
            try operation.check(ciphertextLength: dataLength)
            if plain == nil {
                length.pointee = CK_ULONG(operation.maximumLength)
                ends = false
                return CKR_OK
            }
            let input = Array(try Arguments.buffer(data, dataLength))
            switch operation.kind {
            case .rsa(let wire):
                let response: AgentResponse
                do throws(ModuleError) {
                    response = try state.keyCall(.decrypt(key: operation.key.uri, mechanism: wire, ciphertext: input), slot: found.slot)
                } catch {
                    // The agent's data-invalid: the token refused this ciphertext (its padding, or not for this key).
                    throw error.rv == CKR_DATA_INVALID ? ModuleError(CKR_ENCRYPTED_DATA_INVALID) : error
                }
                guard case .plaintext(var bytes) = response else { return CKR_DEVICE_ERROR }
                result = SharedSecret(SecretBytes(copying: bytes))
                bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) }
            case .aesUnwrap(let iv):
                result = try KeyUnwrap.unwrap(kek: operation.key.secret!, wrapped: input, iv: iv)
            }
        }
        guard let plain, length.pointee >= CK_ULONG(result.count) else {
            // Kept for the next call with a larger buffer: the token is not asked twice.
            length.pointee = CK_ULONG(result.count)
            try state.updateSession(session) { $0.decrypt?.pending = result }
            ends = false
            return plain == nil ? CKR_OK : CKR_BUFFER_TOO_SMALL
        }
        result.use { secret in secret.withUnsafeBytes { plain.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) } }
        length.pointee = CK_ULONG(result.count)
        return CKR_OK
    }
}
