// The baseline for Signet's PKCS#11 benchmark: the same sign operation as a
// plain C loop over the module's function list.
#ifndef CBENCHPKCS11_H
#define CBENCHPKCS11_H

#include <p11-kit/pkcs11.h>

/// Signs `data` `iterations` times with C_SignInit + C_Sign (one call, a
/// 1024-byte output buffer); returns the first error, or CKR_OK.
CK_RV CBenchPKCS11_signLoop(CK_FUNCTION_LIST *functions, CK_SESSION_HANDLE session,
                            CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mechanism,
                            const unsigned char *data, unsigned long length,
                            unsigned long iterations);

#endif
