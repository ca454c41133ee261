// COpenSSL: OpenSSL 3 headers and the macros Swift cannot import.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/provider.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/ocsp.h>

/// `OPENSSL_free` is a macro that passes the caller's file and line.
static inline void COpenSSL_free(void *p) { OPENSSL_free(p); }
/// The version text of the OpenSSL library in use (`OPENSSL_VERSION` is a macro argument).
static inline const char *COpenSSL_versionText(void) { return OpenSSL_version(OPENSSL_VERSION); }

#endif
