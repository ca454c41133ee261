import CSignetPKCS11Front
import CSignetPKCS11Module
import SignetPKCS11Front

// The PKCS#11 function list of libsignet-pkcs11.so, built here from the Swift functions themselves.
// `CK_FUNCTION_LIST`'s memberwise initialiser takes every field, in p11-kit's order, each of its
// `CK_C_*` type: a function missing, or one whose signature differs from p11-kit's pkcs11.h, fails to
// compile (before, module.c matched 68 hand-kept prototypes to the Swift functions by symbol name only).
// `C_GetFunctionList` (module.c, the one exported symbol) hands out its address.

/// The function list, made once (Swift's global initialisation is thread-safe) and never freed; only read
/// after that, by the host through the pointer (hence unchecked).
nonisolated(unsafe) private let functionList: UnsafeMutablePointer<CK_FUNCTION_LIST> = {
    let list = UnsafeMutablePointer<CK_FUNCTION_LIST>.allocate(capacity: 1)
    list.initialize(to: CK_FUNCTION_LIST(
        version: CK_VERSION(major: 2, minor: 40),
        C_Initialize: signet_C_Initialize,
        C_Finalize: signet_C_Finalize,
        C_GetInfo: signet_C_GetInfo,
        C_GetFunctionList: C_GetFunctionList,
        C_GetSlotList: signet_C_GetSlotList,
        C_GetSlotInfo: signet_C_GetSlotInfo,
        C_GetTokenInfo: signet_C_GetTokenInfo,
        C_GetMechanismList: signet_C_GetMechanismList,
        C_GetMechanismInfo: signet_C_GetMechanismInfo,
        C_InitToken: signet_C_InitToken,
        C_InitPIN: signet_C_InitPIN,
        C_SetPIN: signet_C_SetPIN,
        C_OpenSession: signet_C_OpenSession,
        C_CloseSession: signet_C_CloseSession,
        C_CloseAllSessions: signet_C_CloseAllSessions,
        C_GetSessionInfo: signet_C_GetSessionInfo,
        C_GetOperationState: signet_C_GetOperationState,
        C_SetOperationState: signet_C_SetOperationState,
        C_Login: signet_C_Login,
        C_Logout: signet_C_Logout,
        C_CreateObject: signet_C_CreateObject,
        C_CopyObject: signet_C_CopyObject,
        C_DestroyObject: signet_C_DestroyObject,
        C_GetObjectSize: signet_C_GetObjectSize,
        C_GetAttributeValue: signet_C_GetAttributeValue,
        C_SetAttributeValue: signet_C_SetAttributeValue,
        C_FindObjectsInit: signet_C_FindObjectsInit,
        C_FindObjects: signet_C_FindObjects,
        C_FindObjectsFinal: signet_C_FindObjectsFinal,
        C_EncryptInit: signet_C_EncryptInit,
        C_Encrypt: signet_C_Encrypt,
        C_EncryptUpdate: signet_C_EncryptUpdate,
        C_EncryptFinal: signet_C_EncryptFinal,
        C_DecryptInit: signet_C_DecryptInit,
        C_Decrypt: signet_C_Decrypt,
        C_DecryptUpdate: signet_C_DecryptUpdate,
        C_DecryptFinal: signet_C_DecryptFinal,
        C_DigestInit: signet_C_DigestInit,
        C_Digest: signet_C_Digest,
        C_DigestUpdate: signet_C_DigestUpdate,
        C_DigestKey: signet_C_DigestKey,
        C_DigestFinal: signet_C_DigestFinal,
        C_SignInit: signet_C_SignInit,
        C_Sign: signet_C_Sign,
        C_SignUpdate: signet_C_SignUpdate,
        C_SignFinal: signet_C_SignFinal,
        C_SignRecoverInit: signet_C_SignRecoverInit,
        C_SignRecover: signet_C_SignRecover,
        C_VerifyInit: signet_C_VerifyInit,
        C_Verify: signet_C_Verify,
        C_VerifyUpdate: signet_C_VerifyUpdate,
        C_VerifyFinal: signet_C_VerifyFinal,
        C_VerifyRecoverInit: signet_C_VerifyRecoverInit,
        C_VerifyRecover: signet_C_VerifyRecover,
        C_DigestEncryptUpdate: signet_C_DigestEncryptUpdate,
        C_DecryptDigestUpdate: signet_C_DecryptDigestUpdate,
        C_SignEncryptUpdate: signet_C_SignEncryptUpdate,
        C_DecryptVerifyUpdate: signet_C_DecryptVerifyUpdate,
        C_GenerateKey: signet_C_GenerateKey,
        C_GenerateKeyPair: signet_C_GenerateKeyPair,
        C_WrapKey: signet_C_WrapKey,
        C_UnwrapKey: signet_C_UnwrapKey,
        C_DeriveKey: signet_C_DeriveKey,
        C_SeedRandom: signet_C_SeedRandom,
        C_GenerateRandom: signet_C_GenerateRandom,
        C_GetFunctionStatus: signet_C_GetFunctionStatus,
        C_CancelFunction: signet_C_CancelFunction,
        C_WaitForSlotEvent: signet_C_WaitForSlotEvent
    ))
    return list
}()

/// The function list `C_GetFunctionList` answers with.
@_cdecl("signet_function_list")
func signet_function_list() -> UnsafeMutablePointer<CK_FUNCTION_LIST> { functionList }
