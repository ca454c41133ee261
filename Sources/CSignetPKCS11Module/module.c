// The entry point of libsignet-pkcs11.so: C_GetFunctionList, the only exported
// symbol (exports.map). The function list itself is built in Swift from the
// functions (Sources/SignetPKCS11Module/FunctionList.swift).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include "CSignetPKCS11Module.h"

/// The function list, built in Swift from the `signet_C_*` functions (FunctionList.swift), where the
/// compiler checks each against p11-kit's `CK_C_*` type.
CK_FUNCTION_LIST *signet_function_list(void);

__attribute__((visibility("default")))
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (list == NULL) return CKR_ARGUMENTS_BAD;
    *list = signet_function_list();
    return CKR_OK;
}

const char *csignet_module_path(void) {
    Dl_info info;
    if (dladdr((void *)&C_GetFunctionList, &info) == 0 || info.dli_fname == NULL) return NULL;
    return info.dli_fname;
}
