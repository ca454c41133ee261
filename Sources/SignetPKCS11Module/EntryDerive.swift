#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore

// Key agreement (PKCS#11 2.40, 5.16): ECDH at the agent, the X9.63 KDF in the library (Derivation).

func signet_C_DeriveKey(_ session: CK_SESSION_HANDLE, _ mechanism: UnsafeMutablePointer<CK_MECHANISM>?, _ baseKey: CK_OBJECT_HANDLE,
                        _ template: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG, _ key: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV {
    withModule { state in
        _ = try state.session(session)
        guard let mechanism, let key else { return CKR_ARGUMENTS_BAD }
        let given = try Arguments.template(template, count)
        let entry = try Mechanisms.entry(mechanism.pointee.mechanism, for: CKF_DERIVE)
        let (found, object) = try state.operationKey(baseKey, session: session)
        try KeyCheck.check(object, for: entry, usages: .derive)
        guard let parameter = mechanism.pointee.pParameter,
              mechanism.pointee.ulParameterLen == CK_ULONG(MemoryLayout<CK_ECDH1_DERIVE_PARAMS>.size) else { return CKR_MECHANISM_PARAM_INVALID }
        let params = parameter.loadUnaligned(as: CK_ECDH1_DERIVE_PARAMS.self)
        let kdfHash = X963.hash(forKDF: params.kdf)
        guard params.kdf == CKD_NULL || kdfHash != nil else { return CKR_MECHANISM_PARAM_INVALID }
        let fieldBytes = (object.bits + 7) / 8
        // Raw or inside an OCTET STRING: NSS tries both (pk11_PubDeriveECKeyWithKDF). A length no point
        // or SharedInfo has, or one without its buffer, is a bad parameter.
        let publicData, sharedInfo: [UInt8]
        do throws(ModuleError) {
            publicData = try Arguments.bytes(UnsafeMutableRawPointer(params.pPublicData), params.ulPublicDataLen, limit: 4 * fieldBytes + 16, tooLong: CKR_MECHANISM_PARAM_INVALID)
            sharedInfo = try Arguments.bytes(UnsafeMutableRawPointer(params.pSharedData), params.ulSharedDataLen, limit: 4096, tooLong: CKR_MECHANISM_PARAM_INVALID)
        } catch {
            return CKR_MECHANISM_PARAM_INVALID
        }
        guard let point = DER.uncompressedPoint(publicData, fieldLength: fieldBytes) else { return CKR_MECHANISM_PARAM_INVALID }

        let (attributes, length) = try Derivation.template(given, kdfHash: kdfHash, fieldBytes: fieldBytes)

        // One request: the raw ECDH secret (the agent's derive, CKD_NULL); the KDF is run here.
        let response = try state.keyCall(.derive(key: object.uri, kdf: UInt64(CKD_NULL), sharedData: [], peerPoint: point), slot: found.slot)
        guard case .derived(var secret) = response, secret.count == fieldBytes else { return CKR_DEVICE_ERROR }
        defer { secret.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        key.pointee = state.addSessionObject(session: session) { handle in
            Derivation.key(handle: handle, session: session, secret: secret, kdfHash: kdfHash, sharedInfo: sharedInfo, length: length, attributes: attributes)
        }
        return CKR_OK
    }
}
