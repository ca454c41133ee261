// A PKCS#11 module for tests that wraps a real one (SoftHSM2): it forwards
// every call, logs each code presented to the token (C_Login, C_SetPIN,
// C_InitPIN) with its token's serial to $SIGNET_WRAPPER_LOG, and can add token flags
// (e.g. CKF_USER_PIN_FINAL_TRY) from $SIGNET_WRAPPER_FLAGS_DIR/<slot id>,
// which SoftHSM2 never reports by itself.
#ifndef CTESTPKCS11WRAPPER_H
#define CTESTPKCS11WRAPPER_H
#include <p11-kit/pkcs11.h>
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);
#endif
