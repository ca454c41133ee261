// CSignetCrypto: what Swift cannot reach in OpenSSL 3 on its own.
//
// - Callback trampolines: an EVP_PKEY built from a public key whose private
//   operations are forwarded to a callback (Signet forwards them to the
//   agent). OpenSSL 3.0 treats such a key as "foreign" and keeps signing
//   and decryption on the RSA_METHOD / EC_KEY_METHOD path
//   (docs/architecture.md, "Private-key operations inside OpenSSL").
//   Those methods are deprecated in 3.0 but have no provider-free
//   replacement; this file alone suppresses the deprecation.
// - Macros: the type-safe STACK_OF accessors, PEM/PKCS#7 field access.
#ifndef CSIGNETCRYPTO_H
#define CSIGNETCRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pkcs7.h>
#include <openssl/pkcs12.h>
#include <openssl/cms.h>

/// Private-key operations a delegating key forwards.
typedef enum {
    /// PKCS#1 v1.5 signature over a DigestInfo (CKM_RSA_PKCS).
    CSignetCrypto_rsaPKCS1Sign = 1,
    /// Raw RSA on an already padded block, e.g. PSS (CKM_RSA_X_509).
    CSignetCrypto_rsaRawSign = 2,
    /// PKCS#1 v1.5 decryption (CKM_RSA_PKCS).
    CSignetCrypto_rsaPKCS1Decrypt = 3,
    /// Raw RSA decryption; OpenSSL removes OAEP padding itself (CKM_RSA_X_509).
    CSignetCrypto_rsaRawDecrypt = 4,
    /// ECDSA over a digest; the answer is r‖s (CKM_ECDSA).
    CSignetCrypto_ecdsaSign = 5,
    /// ECDH with the peer's uncompressed point; the answer is the shared x (CKM_ECDH1_DERIVE, CKD_NULL).
    CSignetCrypto_ecdhDerive = 6,
} CSignetCrypto_Operation;

/// Performs `operation` on `input`; writes at most `*outputLength` bytes to
/// `output` and sets `*outputLength` to what it wrote. Returns 1 on success, 0 on failure.
typedef int (*CSignetCrypto_OperationCallback)(void *context, int operation,
                                               const unsigned char *input, size_t inputLength,
                                               unsigned char *output, size_t *outputLength);

/// A key with the public half from `subjectPublicKeyInfo` (DER) and private
/// operations forwarded to `callback(context, …)`. RSA and EC only.
/// `context` must outlive the key. NULL when the key cannot be read.
EVP_PKEY *CSignetCrypto_delegatingKey(const unsigned char *subjectPublicKeyInfo, size_t length,
                                      CSignetCrypto_OperationCallback callback, void *context);

// MARK: Stacks.
int CSignetCrypto_certificateCount(const STACK_OF(X509) *stack);
X509 *CSignetCrypto_certificateAt(const STACK_OF(X509) *stack, int index);
void CSignetCrypto_freeCertificates(STACK_OF(X509) *stack);
STACK_OF(X509) *CSignetCrypto_newCertificates(void);
int CSignetCrypto_pushCertificate(STACK_OF(X509) *stack, X509 *certificate);

/// ASN1_OBJECT stacks (extended key usage): count, element, free.
int CSignetCrypto_objectCount(const void *stack);
ASN1_OBJECT *CSignetCrypto_objectAt(const void *stack, int index);
void CSignetCrypto_freeObjects(void *stack);

/// The certificates of a PKCS#7 SignedData (certs-only bundles); NULL when none.
STACK_OF(X509) *CSignetCrypto_pkcs7Certificates(PKCS7 *pkcs7);

/// Subject alternative names: kind 1 email, 2 DNS, 3 UPN (otherName
/// 1.3.6.1.4.1.311.20.2.3), 4 URI; `count` is set. Caller frees each value with
/// OPENSSL_free and the array with free().
typedef struct { int kind; char *value; } CSignetCrypto_Name;
CSignetCrypto_Name *CSignetCrypto_alternativeNames(X509 *certificate, int *count);
/// The URIs of a certificate's CRL distribution points, as above (kind 4).
CSignetCrypto_Name *CSignetCrypto_crlDistributionPoints(X509 *certificate, int *count);

/// Adds the requested extensions to a request, as one extensionRequest attribute: a subjectAltName with
/// emails, DNS names and UPNs (when any), a critical keyUsage whose bit n is set when `keyUsageBits` has
/// 1 << n (when not 0), and an extendedKeyUsage with the dotted OIDs in `usages` (when any).
/// Returns 1 on success.
int CSignetCrypto_requestAddExtensions(X509_REQ *request, const char *const *emails, int emailCount,
                                       const char *const *dnsNames, int dnsCount,
                                       const char *const *upns, int upnCount,
                                       int keyUsageBits, const char *const *usages, int usageCount);

/// Describes the encryption of a PKCS#12 file's parts ("PBES2 AES-256-CBC", "pbeWithSHA1And3-KeyTripleDES-CBC")
/// into `buffer`, separated by "; ", and sets `*iterations` to the largest iteration count of their password-based
/// encryption (0 when none is encrypted). Returns 1 when any part uses a legacy algorithm (3DES, RC2, RC4, DES).
int CSignetCrypto_pkcs12Describe(PKCS12 *file, char *buffer, size_t capacity, int64_t *iterations);

/// Kinds of CMS recipient information (RFC 5652 §6.2).
typedef enum {
    CSignetCrypto_keyTransport = 1,
    CSignetCrypto_keyAgreement = 2,
    CSignetCrypto_keyEncryptionKey = 3,
    CSignetCrypto_password = 4,
    CSignetCrypto_otherRecipient = 5,
} CSignetCrypto_RecipientKind;
/// A recipient of enveloped CMS: its kind, and an issuer and serial or a key identifier (pointers into the CMS,
/// not owned; a KEK recipient has only a key identifier, a password recipient none).
typedef struct { X509_NAME *issuer; ASN1_INTEGER *serial; ASN1_OCTET_STRING *keyIdentifier; int kind; } CSignetCrypto_Recipient;
/// Every recipient of `cms` (key agreement: one per encrypted key, at most 4 per RecipientInfo); free() the array.
/// NULL when it is not enveloped.
CSignetCrypto_Recipient *CSignetCrypto_recipients(CMS_ContentInfo *cms, int *count);

/// X509_NAME_print_ex flags: RFC 4514 escaping and separators, certificate order, UTF-8 kept.
unsigned long CSignetCrypto_nameFlags(void);

// MARK: S/MIME signing and verification.

/// Reads up to `capacity` bytes into `buffer`, sets `*read`; returns 1 with `*read == 0` at the end, 0 on error.
typedef int (*CSignetCrypto_ReadCallback)(void *context, unsigned char *buffer, size_t capacity, size_t *read);
/// A source BIO whose bytes come from `callback(context, …)`, so OpenSSL can stream
/// what Swift produces (canonicalised MIME) without a whole-message buffer. `context` must outlive it.
BIO *CSignetCrypto_sourceBIO(CSignetCrypto_ReadCallback callback, void *context);

/// Makes `context` accept certificates outside their validity period (checked separately, at another time).
void CSignetCrypto_ignoreCertificateExpiry(X509_STORE_CTX *context);

/// Decrypts enveloped or authEnveloped data whose encrypted content is read from `content` (detached),
/// writing the plaintext to `out` as it comes. Unlike CMS_decrypt, AES-GCM plaintext is not held in
/// memory until the tag is checked: the caller must write to a file it throws away when this returns 0
/// (bad padding or tag, or any other failure). Returns 1 on success, -1 when the content key could not be
/// recovered (the token refused, or the message is not for `certificate`), 0 when the content failed (its padding
/// or tag is wrong, or it could not be read), -2 when the plaintext could not be written.
int CSignetCrypto_decryptDetached(CMS_ContentInfo *cms, EVP_PKEY *key, X509 *certificate, BIO *content, BIO *out);

/// Recovers a content-encryption key sent by RSA key transport: `encryptedKey` decrypted with `key` (a delegating key:
/// the token decrypts), PKCS#1 v1.5, or RSAES-OAEP when `oaep` is 1 with `oaepParameters` (DER RSAES-OAEP-params,
/// absent for the SHA-1 defaults). Writes at most `*keyLength` bytes to `contentKey`; returns 1 on success.
int CSignetCrypto_rsaRecoverKey(EVP_PKEY *key, int oaep, const unsigned char *oaepParameters, size_t oaepLength,
                                const unsigned char *encryptedKey, size_t encryptedLength, unsigned char *contentKey, size_t *keyLength);

/// ChaCha20-Poly1305 (RFC 8103) content decryption, streamed: ciphertext from `content`, plaintext to `out` as it comes,
/// the 16-byte `tag` checked at the end with `aad` (the DER of authAttrs as a SET, or none). The caller must write to
/// a file it throws away unless this returns 1. Returns 1 when the tag matches, 0 when it does not (or the content
/// could not be read), -2 when the plaintext could not be written.
int CSignetCrypto_chacha20Poly1305Decrypt(const unsigned char *key, size_t keyLength, const unsigned char *nonce, size_t nonceLength,
                                          const unsigned char *aad, size_t aadLength, const unsigned char *tag, size_t tagLength,
                                          BIO *content, BIO *out);

/// The signer infos of signed CMS: count and element (NULL when not signed data).
int CSignetCrypto_signerCount(CMS_ContentInfo *cms);
CMS_SignerInfo *CSignetCrypto_signerAt(CMS_ContentInfo *cms, int index);
/// The signingTime signed attribute as seconds since 1970; returns 1 when present.
int CSignetCrypto_signingTime(CMS_SignerInfo *signer, long long *seconds);
/// The digest and signature algorithm names ("SHA256", "RSASSA-PSS", "ecdsa-with-SHA384") of a signer into the buffers.
void CSignetCrypto_signerAlgorithms(CMS_SignerInfo *signer, char *digest, size_t digestCapacity, char *signature, size_t signatureCapacity);
/// The certificate a signer info names (set by CMS_verify or CMS_set1_signers_certs); not owned.
X509 *CSignetCrypto_signerCertificate(CMS_SignerInfo *signer);
/// How one signer's check came out (`CSignetCrypto_checkSigner`).
typedef enum {
    CSignetCrypto_signerGood = 0,
    /// The signature over the signed attributes (or, without them, over the content's digest) does not verify.
    CSignetCrypto_signerBadSignature = 1,
    /// The signed attributes verify, but their messageDigest is not the content's digest.
    CSignetCrypto_signerBadDigest = 2,
    /// OpenSSL could not set up the check: a digest or signature algorithm (or its parameters) it does not support.
    CSignetCrypto_signerUnsupported = 3,
    /// No certificate for the signer is in the message or given.
    CSignetCrypto_signerCertificateMissing = 4,
    /// The signer's attributes are malformed (no messageDigest, a duplicated attribute, ...).
    CSignetCrypto_signerMalformed = 5,
} CSignetCrypto_SignerOutcome;

/// Checks one signer of signed CMS against `content` (the signed bytes): the signature over the signed attributes
/// (CMS_SignerInfo_verify), then the content's digest (CMS_SignerInfo_verify_content through a digest BIO of the
/// signer's own digest algorithm), so each signer is judged alone. Ed25519 and Ed448 signers (RFC 8419, PureEdDSA)
/// are verified with EVP directly, over the signed attributes' DER or the content itself; OpenSSL 3.0's CMS cannot.
/// The signer's certificate must already be set
/// (CMS_set1_signers_certs). OpenSSL's reasons stay queued for the caller. Returns a `CSignetCrypto_SignerOutcome`.
int CSignetCrypto_checkSigner(CMS_SignerInfo *signer, const unsigned char *content, size_t length);
/// The signer's identifier: issuer and serial, or a subject key identifier (pointers into the CMS, not owned).
int CSignetCrypto_signerIdentifier(CMS_SignerInfo *signer, X509_NAME **issuer, ASN1_INTEGER **serial, ASN1_OCTET_STRING **keyIdentifier);
/// The encapsulated content of signed CMS into `*bytes` (not owned); returns 0 when it is not in the message (detached).
int CSignetCrypto_encapsulatedContent(CMS_ContentInfo *cms, const unsigned char **bytes, size_t *length);

/// The reason code of the oldest queued OpenSSL error, and its library (ERR_GET_REASON/ERR_GET_LIB are macros).
int CSignetCrypto_firstErrorReason(int *library);

/// Adds the SMIMECapabilities attribute: the content ciphers Signet decrypts, strongest first
/// (AES-256, -192, -128 CBC). Built from NIDs, so no cipher is fetched (see MessageSigner.sign).
int CSignetCrypto_addSMIMECapabilities(CMS_SignerInfo *signer);

/// OPENSSL_free (a macro).
void CSignetCrypto_free(void *pointer);

#endif
