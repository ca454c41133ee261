// CSignetPKCS11Front: the PKCS#11 types and the constants Swift cannot import, for the module's
// library (SignetPKCS11Front) and its shell (SignetPKCS11Module, whose C face includes this header).
// Nothing here is exported from libsignet-pkcs11.so and nothing here calls into Swift, so the
// library links into ordinary test processes.
#ifndef CSIGNETPKCS11FRONT_H
#define CSIGNETPKCS11FRONT_H

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

#endif
