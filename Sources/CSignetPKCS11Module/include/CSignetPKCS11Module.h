// CSignetPKCS11Module: the C face of libsignet-pkcs11.so. The function list
// (module.c) points at the Swift implementations (`signet_C_*`, SignetPKCS11Module);
// this header gives Swift the PKCS#11 types and the constants it cannot import.
#ifndef CSIGNETPKCS11MODULE_H
#define CSIGNETPKCS11MODULE_H

#include <p11-kit/pkcs11.h>

// PKCS#11 3.0 names that p11-kit 0.24's header does not have.
#define CSIGNET_CKO_PROFILE 0x00000009UL
#define CSIGNET_CKA_PROFILE_ID 0x00000601UL
#define CSIGNET_CKP_PUBLIC_CERTIFICATES_TOKEN 0x00000004UL
#define CSIGNET_CKM_NSS_AES_KEY_WRAP 0xCE534351UL

/// `CK_UNAVAILABLE_INFORMATION` (a cast macro).
static inline CK_ULONG csignet_unavailable(void) { return CK_UNAVAILABLE_INFORMATION; }
/// `CK_EFFECTIVELY_INFINITE`.
static inline CK_ULONG csignet_infinite(void) { return CK_EFFECTIVELY_INFINITE; }

/// The path this module was loaded from (dladdr), or NULL: the agent is looked for beside it.
const char *csignet_module_path(void);

#endif
