#include "CBenchPKCS11.h"

CK_RV CBenchPKCS11_signLoop(CK_FUNCTION_LIST *functions, CK_SESSION_HANDLE session,
                            CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mechanism,
                            const unsigned char *data, unsigned long length,
                            unsigned long iterations) {
    CK_MECHANISM mech = { mechanism, NULL, 0 };
    unsigned char signature[1024];
    for (unsigned long i = 0; i < iterations; i++) {
        CK_ULONG signatureLength = sizeof signature;
        CK_RV rv = functions->C_SignInit(session, &mech, key);
        if (rv != CKR_OK) return rv;
        rv = functions->C_Sign(session, (CK_BYTE_PTR)data, length, signature, &signatureLength);
        if (rv != CKR_OK) return rv;
    }
    return CKR_OK;
}
