// The PKCS#11 2.40 function list of libsignet-pkcs11.so. Generated once from
// p11-kit's pkcs11.h (the order of struct ck_function_list); every entry is a
// Swift function, `signet_C_<name>` (Sources/SignetPKCS11Module/Entry.swift).
// Only C_GetFunctionList is exported (exports.map).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include "CSignetPKCS11Module.h"

CK_RV signet_C_Initialize(void *init_args);
CK_RV signet_C_Finalize(void *reserved);
CK_RV signet_C_GetInfo(CK_INFO *info);
CK_RV signet_C_GetSlotList(unsigned char token_present, CK_SLOT_ID *slot_list, unsigned long *count);
CK_RV signet_C_GetSlotInfo(CK_SLOT_ID slot_id, CK_SLOT_INFO *info);
CK_RV signet_C_GetTokenInfo(CK_SLOT_ID slot_id, CK_TOKEN_INFO *info);
CK_RV signet_C_GetMechanismList(CK_SLOT_ID slot_id, CK_MECHANISM_TYPE *mechanism_list, unsigned long *count);
CK_RV signet_C_GetMechanismInfo(CK_SLOT_ID slot_id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info);
CK_RV signet_C_InitToken(CK_SLOT_ID slot_id, unsigned char *pin, unsigned long pin_len, unsigned char *label);
CK_RV signet_C_InitPIN(CK_SESSION_HANDLE session, unsigned char *pin, unsigned long pin_len);
CK_RV signet_C_SetPIN(CK_SESSION_HANDLE session, unsigned char *old_pin, unsigned long old_len, unsigned char *new_pin, unsigned long new_len);
CK_RV signet_C_OpenSession(CK_SLOT_ID slot_id, CK_FLAGS flags, void *application, CK_NOTIFY notify, CK_SESSION_HANDLE *session);
CK_RV signet_C_CloseSession(CK_SESSION_HANDLE session);
CK_RV signet_C_CloseAllSessions(CK_SLOT_ID slot_id);
CK_RV signet_C_GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO *info);
CK_RV signet_C_GetOperationState(CK_SESSION_HANDLE session, unsigned char *operation_state, unsigned long *operation_state_len);
CK_RV signet_C_SetOperationState(CK_SESSION_HANDLE session, unsigned char *operation_state, unsigned long operation_state_len, CK_OBJECT_HANDLE encryption_key, CK_OBJECT_HANDLE authentiation_key);
CK_RV signet_C_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user_type, unsigned char *pin, unsigned long pin_len);
CK_RV signet_C_Logout(CK_SESSION_HANDLE session);
CK_RV signet_C_CreateObject(CK_SESSION_HANDLE session, CK_ATTRIBUTE *templ, unsigned long count, CK_OBJECT_HANDLE *object);
CK_RV signet_C_CopyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE *templ, unsigned long count, CK_OBJECT_HANDLE *new_object);
CK_RV signet_C_DestroyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object);
CK_RV signet_C_GetObjectSize(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, unsigned long *size);
CK_RV signet_C_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE *templ, unsigned long count);
CK_RV signet_C_SetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object, CK_ATTRIBUTE *templ, unsigned long count);
CK_RV signet_C_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE *templ, unsigned long count);
CK_RV signet_C_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE *object, unsigned long max_object_count, unsigned long *object_count);
CK_RV signet_C_FindObjectsFinal(CK_SESSION_HANDLE session);
CK_RV signet_C_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_Encrypt(CK_SESSION_HANDLE session, unsigned char *data, unsigned long data_len, unsigned char *encrypted_data, unsigned long *encrypted_data_len);
CK_RV signet_C_EncryptUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len, unsigned char *encrypted_part, unsigned long *encrypted_part_len);
CK_RV signet_C_EncryptFinal(CK_SESSION_HANDLE session, unsigned char *last_encrypted_part, unsigned long *last_encrypted_part_len);
CK_RV signet_C_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_Decrypt(CK_SESSION_HANDLE session, unsigned char *encrypted_data, unsigned long encrypted_data_len, unsigned char *data, unsigned long *data_len);
CK_RV signet_C_DecryptUpdate(CK_SESSION_HANDLE session, unsigned char *encrypted_part, unsigned long encrypted_part_len, unsigned char *part, unsigned long *part_len);
CK_RV signet_C_DecryptFinal(CK_SESSION_HANDLE session, unsigned char *last_part, unsigned long *last_part_len);
CK_RV signet_C_DigestInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism);
CK_RV signet_C_Digest(CK_SESSION_HANDLE session, unsigned char *data, unsigned long data_len, unsigned char *digest, unsigned long *digest_len);
CK_RV signet_C_DigestUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len);
CK_RV signet_C_DigestKey(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key);
CK_RV signet_C_DigestFinal(CK_SESSION_HANDLE session, unsigned char *digest, unsigned long *digest_len);
CK_RV signet_C_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_Sign(CK_SESSION_HANDLE session, unsigned char *data, unsigned long data_len, unsigned char *signature, unsigned long *signature_len);
CK_RV signet_C_SignUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len);
CK_RV signet_C_SignFinal(CK_SESSION_HANDLE session, unsigned char *signature, unsigned long *signature_len);
CK_RV signet_C_SignRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_SignRecover(CK_SESSION_HANDLE session, unsigned char *data, unsigned long data_len, unsigned char *signature, unsigned long *signature_len);
CK_RV signet_C_VerifyInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_Verify(CK_SESSION_HANDLE session, unsigned char *data, unsigned long data_len, unsigned char *signature, unsigned long signature_len);
CK_RV signet_C_VerifyUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len);
CK_RV signet_C_VerifyFinal(CK_SESSION_HANDLE session, unsigned char *signature, unsigned long signature_len);
CK_RV signet_C_VerifyRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE key);
CK_RV signet_C_VerifyRecover(CK_SESSION_HANDLE session, unsigned char *signature, unsigned long signature_len, unsigned char *data, unsigned long *data_len);
CK_RV signet_C_DigestEncryptUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len, unsigned char *encrypted_part, unsigned long *encrypted_part_len);
CK_RV signet_C_DecryptDigestUpdate(CK_SESSION_HANDLE session, unsigned char *encrypted_part, unsigned long encrypted_part_len, unsigned char *part, unsigned long *part_len);
CK_RV signet_C_SignEncryptUpdate(CK_SESSION_HANDLE session, unsigned char *part, unsigned long part_len, unsigned char *encrypted_part, unsigned long *encrypted_part_len);
CK_RV signet_C_DecryptVerifyUpdate(CK_SESSION_HANDLE session, unsigned char *encrypted_part, unsigned long encrypted_part_len, unsigned char *part, unsigned long *part_len);
CK_RV signet_C_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_ATTRIBUTE *templ, unsigned long count, CK_OBJECT_HANDLE *key);
CK_RV signet_C_GenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_ATTRIBUTE *public_key_template, unsigned long public_key_attribute_count, CK_ATTRIBUTE *private_key_template, unsigned long private_key_attribute_count, CK_OBJECT_HANDLE *public_key, CK_OBJECT_HANDLE *private_key);
CK_RV signet_C_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key, unsigned char *wrapped_key, unsigned long *wrapped_key_len);
CK_RV signet_C_UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE unwrapping_key, unsigned char *wrapped_key, unsigned long wrapped_key_len, CK_ATTRIBUTE *templ, unsigned long attribute_count, CK_OBJECT_HANDLE *key);
CK_RV signet_C_DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM *mechanism, CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE *templ, unsigned long attribute_count, CK_OBJECT_HANDLE *key);
CK_RV signet_C_SeedRandom(CK_SESSION_HANDLE session, unsigned char *seed, unsigned long seed_len);
CK_RV signet_C_GenerateRandom(CK_SESSION_HANDLE session, unsigned char *random_data, unsigned long random_len);
CK_RV signet_C_GetFunctionStatus(CK_SESSION_HANDLE session);
CK_RV signet_C_CancelFunction(CK_SESSION_HANDLE session);
CK_RV signet_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID *slot, void *reserved);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static CK_FUNCTION_LIST function_list = {
    { 2, 40 },
    signet_C_Initialize,
    signet_C_Finalize,
    signet_C_GetInfo,
    C_GetFunctionList,
    signet_C_GetSlotList,
    signet_C_GetSlotInfo,
    signet_C_GetTokenInfo,
    signet_C_GetMechanismList,
    signet_C_GetMechanismInfo,
    signet_C_InitToken,
    signet_C_InitPIN,
    signet_C_SetPIN,
    signet_C_OpenSession,
    signet_C_CloseSession,
    signet_C_CloseAllSessions,
    signet_C_GetSessionInfo,
    signet_C_GetOperationState,
    signet_C_SetOperationState,
    signet_C_Login,
    signet_C_Logout,
    signet_C_CreateObject,
    signet_C_CopyObject,
    signet_C_DestroyObject,
    signet_C_GetObjectSize,
    signet_C_GetAttributeValue,
    signet_C_SetAttributeValue,
    signet_C_FindObjectsInit,
    signet_C_FindObjects,
    signet_C_FindObjectsFinal,
    signet_C_EncryptInit,
    signet_C_Encrypt,
    signet_C_EncryptUpdate,
    signet_C_EncryptFinal,
    signet_C_DecryptInit,
    signet_C_Decrypt,
    signet_C_DecryptUpdate,
    signet_C_DecryptFinal,
    signet_C_DigestInit,
    signet_C_Digest,
    signet_C_DigestUpdate,
    signet_C_DigestKey,
    signet_C_DigestFinal,
    signet_C_SignInit,
    signet_C_Sign,
    signet_C_SignUpdate,
    signet_C_SignFinal,
    signet_C_SignRecoverInit,
    signet_C_SignRecover,
    signet_C_VerifyInit,
    signet_C_Verify,
    signet_C_VerifyUpdate,
    signet_C_VerifyFinal,
    signet_C_VerifyRecoverInit,
    signet_C_VerifyRecover,
    signet_C_DigestEncryptUpdate,
    signet_C_DecryptDigestUpdate,
    signet_C_SignEncryptUpdate,
    signet_C_DecryptVerifyUpdate,
    signet_C_GenerateKey,
    signet_C_GenerateKeyPair,
    signet_C_WrapKey,
    signet_C_UnwrapKey,
    signet_C_DeriveKey,
    signet_C_SeedRandom,
    signet_C_GenerateRandom,
    signet_C_GetFunctionStatus,
    signet_C_CancelFunction,
    signet_C_WaitForSlotEvent
};

__attribute__((visibility("default")))
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (list == NULL) return CKR_ARGUMENTS_BAD;
    *list = &function_list;
    return CKR_OK;
}

const char *csignet_module_path(void) {
    Dl_info info;
    if (dladdr((void *)&C_GetFunctionList, &info) == 0 || info.dli_fname == NULL) return NULL;
    return info.dli_fname;
}
