// CSignetPKCS11Module: the C face of libsignet-pkcs11.so. The function list
// (module.c) points at the Swift implementations (`signet_C_*`, SignetPKCS11Module);
// this header gives Swift the PKCS#11 types and the constants it cannot import.
#ifndef CSIGNETPKCS11MODULE_H
#define CSIGNETPKCS11MODULE_H

// The PKCS#11 types and constants are the library's (CSignetPKCS11Front), so the shell and the
// library see one set of types.
#include <CSignetPKCS11Front.h>

/// The path this module was loaded from (dladdr), or NULL: the agent is looked for beside it.
const char *csignet_module_path(void);

#endif
