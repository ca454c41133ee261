// See include/CSignetCrypto.h. The RSA_METHOD and EC_KEY_METHOD calls are
// deprecated in OpenSSL 3.0 and have no replacement short of a provider.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "CSignetCrypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

typedef struct {
    CSignetCrypto_OperationCallback callback;
    void *context;
} Delegate;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static RSA_METHOD *rsaMethod;
static EC_KEY_METHOD *ecMethod;
static int rsaIndex = -1;
static int ecIndex = -1;

static void freeDelegate(void *parent, void *pointer, CRYPTO_EX_DATA *data, int index, long argl, void *argp) {
    (void)parent; (void)data; (void)index; (void)argl; (void)argp;
    free(pointer);
}

static int forward(const Delegate *delegate, int operation, const unsigned char *input, size_t inputLength,
                   unsigned char *output, size_t *outputLength) {
    if (delegate == NULL || delegate->callback == NULL) return 0;
    return delegate->callback(delegate->context, operation, input, inputLength, output, outputLength);
}

static int rsaPrivateEncrypt(int length, const unsigned char *from, unsigned char *to, RSA *rsa, int padding) {
    int operation;
    switch (padding) {
    case RSA_PKCS1_PADDING: operation = CSignetCrypto_rsaPKCS1Sign; break;
    case RSA_NO_PADDING: operation = CSignetCrypto_rsaRawSign; break;
    default: return -1;
    }
    size_t size = (size_t)RSA_size(rsa);
    size_t written = size;
    if (length < 0 || !forward(RSA_get_ex_data(rsa, rsaIndex), operation, from, (size_t)length, to, &written)) return -1;
    // A signature is always the modulus length (no leading zero byte dropped or added).
    if (written != size) return -1;
    return (int)written;
}

static int rsaPrivateDecrypt(int length, const unsigned char *from, unsigned char *to, RSA *rsa, int padding) {
    int operation;
    switch (padding) {
    case RSA_PKCS1_PADDING: operation = CSignetCrypto_rsaPKCS1Decrypt; break;
    case RSA_NO_PADDING: operation = CSignetCrypto_rsaRawDecrypt; break;
    default: return -1;
    }
    size_t written = (size_t)RSA_size(rsa);
    if (length < 0 || !forward(RSA_get_ex_data(rsa, rsaIndex), operation, from, (size_t)length, to, &written)) return -1;
    return (int)written;
}

static ECDSA_SIG *ecSign(const unsigned char *digest, int length, const BIGNUM *inverse, const BIGNUM *r, EC_KEY *key) {
    (void)inverse; (void)r;
    unsigned char raw[2 * 66];
    size_t written = sizeof raw;
    if (length < 0 || !forward(EC_KEY_get_ex_data(key, ecIndex), CSignetCrypto_ecdsaSign, digest, (size_t)length, raw, &written)) return NULL;
    if (written == 0 || written % 2 != 0) return NULL;
    BIGNUM *rValue = BN_bin2bn(raw, (int)(written / 2), NULL);
    BIGNUM *sValue = BN_bin2bn(raw + written / 2, (int)(written / 2), NULL);
    ECDSA_SIG *signature = ECDSA_SIG_new();
    if (rValue == NULL || sValue == NULL || signature == NULL || !ECDSA_SIG_set0(signature, rValue, sValue)) {
        BN_free(rValue); BN_free(sValue); ECDSA_SIG_free(signature);
        return NULL;
    }
    return signature;
}

static int ecSignSetup(EC_KEY *key, BN_CTX *context, BIGNUM **inverse, BIGNUM **r) {
    (void)key; (void)context; (void)inverse; (void)r;
    return 1;
}

static int ecComputeKey(unsigned char **secret, size_t *secretLength, const EC_POINT *peer, const EC_KEY *key) {
    unsigned char point[1 + 2 * 66];
    size_t pointLength = EC_POINT_point2oct(EC_KEY_get0_group(key), peer, POINT_CONVERSION_UNCOMPRESSED, point, sizeof point, NULL);
    if (pointLength == 0) return 0;
    unsigned char shared[66];
    size_t written = sizeof shared;
    if (!forward(EC_KEY_get_ex_data(key, ecIndex), CSignetCrypto_ecdhDerive, point, pointLength, shared, &written)) return 0;
    *secret = OPENSSL_malloc(written);
    if (*secret == NULL) return 0;
    memcpy(*secret, shared, written);
    OPENSSL_cleanse(shared, sizeof shared);
    *secretLength = written;
    return 1;
}

static void setUp(void) {
    rsaIndex = RSA_get_ex_new_index(0, NULL, NULL, NULL, freeDelegate);
    ecIndex = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, freeDelegate);
    rsaMethod = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    if (rsaMethod != NULL) {
        RSA_meth_set1_name(rsaMethod, "signet-agent");
        RSA_meth_set_priv_enc(rsaMethod, rsaPrivateEncrypt);
        RSA_meth_set_priv_dec(rsaMethod, rsaPrivateDecrypt);
        RSA_meth_set_flags(rsaMethod, RSA_meth_get_flags(rsaMethod) | RSA_FLAG_EXT_PKEY);
    }
    ecMethod = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (ecMethod != NULL) {
        int (*sign)(int, const unsigned char *, int, unsigned char *, unsigned int *, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
        EC_KEY_METHOD_get_sign(ecMethod, &sign, NULL, NULL);
        EC_KEY_METHOD_set_sign(ecMethod, sign, ecSignSetup, ecSign);
        EC_KEY_METHOD_set_compute_key(ecMethod, ecComputeKey);
    }
}

EVP_PKEY *CSignetCrypto_delegatingKey(const unsigned char *subjectPublicKeyInfo, size_t length,
                                      CSignetCrypto_OperationCallback callback, void *context) {
    pthread_once(&once, setUp);
    if (rsaMethod == NULL || ecMethod == NULL || rsaIndex < 0 || ecIndex < 0) return NULL;
    const unsigned char *cursor = subjectPublicKeyInfo;
    EVP_PKEY *publicKey = d2i_PUBKEY(NULL, &cursor, (long)length);
    if (publicKey == NULL) return NULL;
    Delegate *delegate = calloc(1, sizeof *delegate);
    if (delegate == NULL) { EVP_PKEY_free(publicKey); return NULL; }
    delegate->callback = callback;
    delegate->context = context;
    EVP_PKEY *key = EVP_PKEY_new();
    int done = 0;
    switch (EVP_PKEY_get_base_id(publicKey)) {
    case EVP_PKEY_RSA: {
        RSA *rsa = EVP_PKEY_get1_RSA(publicKey);
        if (rsa != NULL && key != NULL && RSA_set_method(rsa, rsaMethod) && RSA_set_ex_data(rsa, rsaIndex, delegate)) {
            delegate = NULL;  // owned by the RSA object from here on
            done = EVP_PKEY_assign_RSA(key, rsa);
            if (!done) RSA_free(rsa);
        } else {
            RSA_free(rsa);
        }
        break;
    }
    case EVP_PKEY_EC: {
        EC_KEY *ec = EVP_PKEY_get1_EC_KEY(publicKey);
        if (ec != NULL && key != NULL && EC_KEY_set_method(ec, ecMethod) && EC_KEY_set_ex_data(ec, ecIndex, delegate)) {
            delegate = NULL;
            done = EVP_PKEY_assign_EC_KEY(key, ec);
            if (!done) EC_KEY_free(ec);
        } else {
            EC_KEY_free(ec);
        }
        break;
    }
    default:
        break;
    }
    free(delegate);
    EVP_PKEY_free(publicKey);
    if (!done) { EVP_PKEY_free(key); return NULL; }
    return key;
}

// MARK: Stacks.

int CSignetCrypto_certificateCount(const STACK_OF(X509) *stack) { return stack == NULL ? 0 : sk_X509_num(stack); }
X509 *CSignetCrypto_certificateAt(const STACK_OF(X509) *stack, int index) { return sk_X509_value(stack, index); }
void CSignetCrypto_freeCertificates(STACK_OF(X509) *stack) { sk_X509_pop_free(stack, X509_free); }
STACK_OF(X509) *CSignetCrypto_newCertificates(void) { return sk_X509_new_null(); }
int CSignetCrypto_pushCertificate(STACK_OF(X509) *stack, X509 *certificate) { return sk_X509_push(stack, certificate) > 0; }

int CSignetCrypto_objectCount(const void *stack) { return stack == NULL ? 0 : sk_ASN1_OBJECT_num((const STACK_OF(ASN1_OBJECT) *)stack); }
ASN1_OBJECT *CSignetCrypto_objectAt(const void *stack, int index) { return sk_ASN1_OBJECT_value((const STACK_OF(ASN1_OBJECT) *)stack, index); }
void CSignetCrypto_freeObjects(void *stack) { sk_ASN1_OBJECT_pop_free((STACK_OF(ASN1_OBJECT) *)stack, ASN1_OBJECT_free); }

STACK_OF(X509) *CSignetCrypto_pkcs7Certificates(PKCS7 *pkcs7) {
    if (pkcs7 == NULL || pkcs7->d.ptr == NULL) return NULL;
    switch (OBJ_obj2nid(pkcs7->type)) {
    case NID_pkcs7_signed: return pkcs7->d.sign->cert;
    case NID_pkcs7_signedAndEnveloped: return pkcs7->d.signed_and_enveloped->cert;
    default: return NULL;
    }
}

// MARK: Names.

static void append(CSignetCrypto_Name **names, int *count, int kind, const unsigned char *bytes, int length) {
    if (bytes == NULL || length < 0) return;
    CSignetCrypto_Name *grown = realloc(*names, (size_t)(*count + 1) * sizeof **names);
    if (grown == NULL) return;
    *names = grown;
    char *value = OPENSSL_malloc((size_t)length + 1);
    if (value == NULL) return;
    memcpy(value, bytes, (size_t)length);
    value[length] = 0;
    (*names)[*count].kind = kind;
    (*names)[*count].value = value;
    *count += 1;
}

static int isUPN(const ASN1_OBJECT *type) {
    char text[64];
    return OBJ_obj2txt(text, sizeof text, type, 1) > 0 && strcmp(text, "1.3.6.1.4.1.311.20.2.3") == 0;
}

static void appendGeneralName(CSignetCrypto_Name **names, int *count, const GENERAL_NAME *name) {
    switch (name->type) {
    case GEN_EMAIL: append(names, count, 1, ASN1_STRING_get0_data(name->d.rfc822Name), ASN1_STRING_length(name->d.rfc822Name)); break;
    case GEN_DNS: append(names, count, 2, ASN1_STRING_get0_data(name->d.dNSName), ASN1_STRING_length(name->d.dNSName)); break;
    case GEN_URI: append(names, count, 4, ASN1_STRING_get0_data(name->d.uniformResourceIdentifier), ASN1_STRING_length(name->d.uniformResourceIdentifier)); break;
    case GEN_OTHERNAME:
        if (isUPN(name->d.otherName->type_id) && name->d.otherName->value != NULL && name->d.otherName->value->type == V_ASN1_UTF8STRING) {
            const ASN1_UTF8STRING *text = name->d.otherName->value->value.utf8string;
            append(names, count, 3, ASN1_STRING_get0_data(text), ASN1_STRING_length(text));
        }
        break;
    default: break;
    }
}

CSignetCrypto_Name *CSignetCrypto_alternativeNames(X509 *certificate, int *count) {
    *count = 0;
    CSignetCrypto_Name *names = NULL;
    GENERAL_NAMES *all = X509_get_ext_d2i(certificate, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; all != NULL && i < sk_GENERAL_NAME_num(all); i++) appendGeneralName(&names, count, sk_GENERAL_NAME_value(all, i));
    GENERAL_NAMES_free(all);
    return names;
}

CSignetCrypto_Name *CSignetCrypto_crlDistributionPoints(X509 *certificate, int *count) {
    *count = 0;
    CSignetCrypto_Name *names = NULL;
    CRL_DIST_POINTS *points = X509_get_ext_d2i(certificate, NID_crl_distribution_points, NULL, NULL);
    for (int i = 0; points != NULL && i < sk_DIST_POINT_num(points); i++) {
        DIST_POINT *point = sk_DIST_POINT_value(points, i);
        if (point->distpoint == NULL || point->distpoint->type != 0) continue;
        GENERAL_NAMES *full = point->distpoint->name.fullname;
        for (int j = 0; j < sk_GENERAL_NAME_num(full); j++) appendGeneralName(&names, count, sk_GENERAL_NAME_value(full, j));
    }
    CRL_DIST_POINTS_free(points);
    return names;
}

int CSignetCrypto_requestAddExtensions(X509_REQ *request, const char *const *emails, int emailCount,
                                       const char *const *dnsNames, int dnsCount,
                                       const char *const *upns, int upnCount,
                                       int keyUsageBits, const char *const *usages, int usageCount) {
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    if (names == NULL) return 0;
    int ok = 1;
    for (int i = 0; ok && i < emailCount; i++) {
        ASN1_IA5STRING *text = ASN1_IA5STRING_new();
        ok = text != NULL && ASN1_STRING_set(text, emails[i], -1);
        GENERAL_NAME *name = ok ? GENERAL_NAME_new() : NULL;
        if (name == NULL) { ASN1_IA5STRING_free(text); ok = 0; break; }
        GENERAL_NAME_set0_value(name, GEN_EMAIL, text);
        ok = sk_GENERAL_NAME_push(names, name) > 0;
    }
    for (int i = 0; ok && i < dnsCount; i++) {
        ASN1_IA5STRING *text = ASN1_IA5STRING_new();
        ok = text != NULL && ASN1_STRING_set(text, dnsNames[i], -1);
        GENERAL_NAME *name = ok ? GENERAL_NAME_new() : NULL;
        if (name == NULL) { ASN1_IA5STRING_free(text); ok = 0; break; }
        GENERAL_NAME_set0_value(name, GEN_DNS, text);
        ok = sk_GENERAL_NAME_push(names, name) > 0;
    }
    for (int i = 0; ok && i < upnCount; i++) {
        ASN1_OBJECT *type = OBJ_txt2obj("1.3.6.1.4.1.311.20.2.3", 1);
        ASN1_TYPE *value = ASN1_TYPE_new();
        ASN1_UTF8STRING *text = ASN1_UTF8STRING_new();
        GENERAL_NAME *name = GENERAL_NAME_new();
        ok = type != NULL && value != NULL && text != NULL && name != NULL && ASN1_STRING_set(text, upns[i], -1);
        if (!ok) { ASN1_OBJECT_free(type); ASN1_TYPE_free(value); ASN1_UTF8STRING_free(text); GENERAL_NAME_free(name); break; }
        ASN1_TYPE_set(value, V_ASN1_UTF8STRING, text);
        ok = GENERAL_NAME_set0_othername(name, type, value);
        ok = ok && sk_GENERAL_NAME_push(names, name) > 0;
    }
    STACK_OF(X509_EXTENSION) *extensions = ok ? sk_X509_EXTENSION_new_null() : NULL;
    ok = ok && extensions != NULL;
    if (ok && sk_GENERAL_NAME_num(names) > 0) {
        X509_EXTENSION *extension = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
        ok = extension != NULL && sk_X509_EXTENSION_push(extensions, extension) > 0;
        if (!ok) X509_EXTENSION_free(extension);
    }
    if (ok && keyUsageBits != 0) {
        ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
        ok = bits != NULL;
        for (int bit = 0; ok && bit < 9; bit++) {
            if (keyUsageBits & (1 << bit)) ok = ASN1_BIT_STRING_set_bit(bits, bit, 1);
        }
        X509_EXTENSION *extension = ok ? X509V3_EXT_i2d(NID_key_usage, 1, bits) : NULL;
        ok = extension != NULL && sk_X509_EXTENSION_push(extensions, extension) > 0;
        if (!ok) X509_EXTENSION_free(extension);
        ASN1_BIT_STRING_free(bits);
    }
    if (ok && usageCount > 0) {
        EXTENDED_KEY_USAGE *usage = sk_ASN1_OBJECT_new_null();
        ok = usage != NULL;
        for (int i = 0; ok && i < usageCount; i++) {
            ASN1_OBJECT *object = OBJ_txt2obj(usages[i], 1);
            ok = object != NULL && sk_ASN1_OBJECT_push(usage, object) > 0;
            if (!ok) ASN1_OBJECT_free(object);
        }
        X509_EXTENSION *extension = ok ? X509V3_EXT_i2d(NID_ext_key_usage, 0, usage) : NULL;
        ok = extension != NULL && sk_X509_EXTENSION_push(extensions, extension) > 0;
        if (!ok) X509_EXTENSION_free(extension);
        sk_ASN1_OBJECT_pop_free(usage, ASN1_OBJECT_free);
    }
    if (ok && sk_X509_EXTENSION_num(extensions) > 0) ok = X509_REQ_add_extensions(request, extensions);
    sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
    return ok;
}

// MARK: PKCS#12.

/// `*iterations` becomes the larger of itself and `count` (INT64_MAX when the count does not fit).
static void noteIterations(const ASN1_INTEGER *count, int64_t *iterations) {
    int64_t value = 1;  // absent: the default, 1
    if (count != NULL && !ASN1_INTEGER_get_int64(&value, count)) value = INT64_MAX;
    if (value > *iterations) *iterations = value;
}

static int describeAlgorithm(const X509_ALGOR *algorithm, char *buffer, size_t capacity, int64_t *iterations) {
    const ASN1_OBJECT *object = NULL;
    const void *parameter = NULL;
    int parameterType = 0;
    X509_ALGOR_get0(&object, &parameterType, &parameter, algorithm);
    int nid = OBJ_obj2nid(object);
    char text[128] = "";
    int legacy = 0;
    if (nid == NID_pbes2 && parameterType == V_ASN1_SEQUENCE) {
        const ASN1_STRING *sequence = parameter;
        const unsigned char *cursor = ASN1_STRING_get0_data(sequence);
        PBE2PARAM *pbes2 = d2i_PBE2PARAM(NULL, &cursor, ASN1_STRING_length(sequence));
        int cipher = pbes2 != NULL ? OBJ_obj2nid(pbes2->encryption->algorithm) : NID_undef;
        snprintf(text, sizeof text, "PBES2 %s", cipher == NID_undef ? "unknown cipher" : OBJ_nid2sn(cipher));
        legacy = cipher == NID_des_ede3_cbc || cipher == NID_rc2_cbc || cipher == NID_des_cbc;
        if (pbes2 != NULL && pbes2->keyfunc != NULL && OBJ_obj2nid(pbes2->keyfunc->algorithm) == NID_id_pbkdf2
            && pbes2->keyfunc->parameter != NULL && pbes2->keyfunc->parameter->type == V_ASN1_SEQUENCE) {
            const ASN1_STRING *kdfSequence = pbes2->keyfunc->parameter->value.sequence;
            const unsigned char *kdfCursor = ASN1_STRING_get0_data(kdfSequence);
            PBKDF2PARAM *kdf = d2i_PBKDF2PARAM(NULL, &kdfCursor, ASN1_STRING_length(kdfSequence));
            if (kdf != NULL) noteIterations(kdf->iter, iterations);
            PBKDF2PARAM_free(kdf);
        }
        PBE2PARAM_free(pbes2);
    } else {
        if (parameterType == V_ASN1_SEQUENCE) {  // PKCS#12 v1 PBE: salt and iteration count
            const ASN1_STRING *sequence = parameter;
            const unsigned char *cursor = ASN1_STRING_get0_data(sequence);
            PBEPARAM *pbe = d2i_PBEPARAM(NULL, &cursor, ASN1_STRING_length(sequence));
            if (pbe != NULL) noteIterations(pbe->iter, iterations);
            PBEPARAM_free(pbe);
        }
        snprintf(text, sizeof text, "%s", nid == NID_undef ? "unknown" : OBJ_nid2ln(nid));
        legacy = nid != NID_undef;  // every PKCS#12 v1 PBE (pbeWithSHA1And…) is a legacy algorithm
    }
    if (strstr(buffer, text) == NULL) {
        if (buffer[0] != 0) strncat(buffer, "; ", capacity - strlen(buffer) - 1);
        strncat(buffer, text, capacity - strlen(buffer) - 1);
    }
    return legacy;
}

int CSignetCrypto_pkcs12Describe(PKCS12 *file, char *buffer, size_t capacity, int64_t *iterations) {
    *iterations = 0;
    if (capacity == 0) return 0;
    buffer[0] = 0;
    int legacy = 0;
    STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(file);
    for (int i = 0; safes != NULL && i < sk_PKCS7_num(safes); i++) {
        PKCS7 *safe = sk_PKCS7_value(safes, i);
        if (OBJ_obj2nid(safe->type) == NID_pkcs7_encrypted && safe->d.encrypted != NULL && safe->d.encrypted->enc_data != NULL) {
            legacy |= describeAlgorithm(safe->d.encrypted->enc_data->algorithm, buffer, capacity, iterations);
        } else if (OBJ_obj2nid(safe->type) == NID_pkcs7_data) {
            STACK_OF(PKCS12_SAFEBAG) *bags = PKCS12_unpack_p7data(safe);
            for (int j = 0; bags != NULL && j < sk_PKCS12_SAFEBAG_num(bags); j++) {
                const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
                if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag) continue;
                const X509_ALGOR *algorithm = NULL;
                X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &algorithm, NULL);
                if (algorithm != NULL) legacy |= describeAlgorithm(algorithm, buffer, capacity, iterations);
            }
            sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
        }
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    return legacy;
}

void CSignetCrypto_free(void *pointer) { OPENSSL_free(pointer); }

unsigned long CSignetCrypto_nameFlags(void) {
    return (ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_FN_SN | XN_FLAG_DUMP_UNKNOWN_FIELDS;
}

// MARK: CMS recipients.

CSignetCrypto_Recipient *CSignetCrypto_recipients(CMS_ContentInfo *cms, int *count) {
    *count = 0;
    STACK_OF(CMS_RecipientInfo) *infos = CMS_get0_RecipientInfos(cms);
    if (infos == NULL) return NULL;
    CSignetCrypto_Recipient *list = calloc((size_t)sk_CMS_RecipientInfo_num(infos) * 4 + 1, sizeof *list);
    if (list == NULL) return NULL;
    for (int i = 0; i < sk_CMS_RecipientInfo_num(infos); i++) {
        CMS_RecipientInfo *info = sk_CMS_RecipientInfo_value(infos, i);
        switch (CMS_RecipientInfo_type(info)) {
        case CMS_RECIPINFO_TRANS: {
            CSignetCrypto_Recipient *r = &list[*count];
            r->kind = CSignetCrypto_keyTransport;
            if (CMS_RecipientInfo_ktri_get0_signer_id(info, &r->keyIdentifier, &r->issuer, &r->serial)) *count += 1;
            break;
        }
        case CMS_RECIPINFO_KEK: {
            CSignetCrypto_Recipient *r = &list[*count];
            r->kind = CSignetCrypto_keyEncryptionKey;
            if (CMS_RecipientInfo_kekri_get0_id(info, NULL, &r->keyIdentifier, NULL, NULL, NULL)) *count += 1;
            break;
        }
        case CMS_RECIPINFO_PASS:
            list[*count].kind = CSignetCrypto_password;
            *count += 1;
            break;
        case CMS_RECIPINFO_AGREE: {
            STACK_OF(CMS_RecipientEncryptedKey) *keys = CMS_RecipientInfo_kari_get0_reks(info);
            for (int j = 0; j < sk_CMS_RecipientEncryptedKey_num(keys) && j < 4; j++) {
                CSignetCrypto_Recipient *r = &list[*count];
                r->kind = CSignetCrypto_keyAgreement;
                if (CMS_RecipientEncryptedKey_get0_id(sk_CMS_RecipientEncryptedKey_value(keys, j), &r->keyIdentifier, NULL, NULL,
                                                      &r->issuer, &r->serial)) *count += 1;
            }
            break;
        }
        default:
            list[*count].kind = CSignetCrypto_otherRecipient;
            *count += 1;
            break;
        }
    }
    return list;
}

// MARK: S/MIME signing and verification.

typedef struct {
    CSignetCrypto_ReadCallback callback;
    void *context;
    int finished;
} SourceState;

static int sourceRead(BIO *bio, char *buffer, size_t capacity, size_t *read) {
    SourceState *state = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    *read = 0;
    if (state == NULL || state->finished) return 0;
    size_t got = 0;
    if (!state->callback(state->context, (unsigned char *)buffer, capacity, &got) || got == 0) {
        state->finished = 1;
        return 0;
    }
    *read = got;
    return 1;
}

static long sourceControl(BIO *bio, int command, long number, void *pointer) {
    (void)number; (void)pointer;
    SourceState *state = BIO_get_data(bio);
    switch (command) {
    case BIO_CTRL_EOF: return state == NULL || state->finished;
    case BIO_CTRL_FLUSH: return 1;
    default: return 0;
    }
}

static int sourceCreate(BIO *bio) { BIO_set_init(bio, 1); return 1; }
static int sourceDestroy(BIO *bio) {
    free(BIO_get_data(bio));
    BIO_set_data(bio, NULL);
    return 1;
}

static BIO_METHOD *sourceMethod = NULL;
static CRYPTO_ONCE sourceOnce = CRYPTO_ONCE_STATIC_INIT;

static void makeSourceMethod(void) {
    BIO_METHOD *method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "signet source");
    if (method == NULL) return;
    BIO_meth_set_read_ex(method, sourceRead);
    BIO_meth_set_ctrl(method, sourceControl);
    BIO_meth_set_create(method, sourceCreate);
    BIO_meth_set_destroy(method, sourceDestroy);
    sourceMethod = method;
}

BIO *CSignetCrypto_sourceBIO(CSignetCrypto_ReadCallback callback, void *context) {
    if (!CRYPTO_THREAD_run_once(&sourceOnce, makeSourceMethod) || sourceMethod == NULL) return NULL;
    SourceState *state = calloc(1, sizeof *state);
    if (state == NULL) return NULL;
    state->callback = callback;
    state->context = context;
    BIO *bio = BIO_new(sourceMethod);
    if (bio == NULL) { free(state); return NULL; }
    BIO_set_data(bio, state);
    return bio;
}

static int ignoreExpiry(int ok, X509_STORE_CTX *context) {
    if (!ok) {
        int error = X509_STORE_CTX_get_error(context);
        if (error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID) return 1;
    }
    return ok;
}

void CSignetCrypto_ignoreCertificateExpiry(X509_STORE_CTX *context) {
    X509_STORE_CTX_set_verify_cb(context, ignoreExpiry);
}

int CSignetCrypto_decryptDetached(CMS_ContentInfo *cms, EVP_PKEY *key, X509 *certificate, BIO *content, BIO *out) {
    if (!CMS_decrypt_set1_pkey(cms, key, certificate)) return -1;
    BIO *chain = CMS_dataInit(cms, content);
    if (chain == NULL) return -1;
    unsigned char buffer[16384];
    int ok = 0;
    for (;;) {
        int got = BIO_read(chain, buffer, sizeof buffer);
        if (got <= 0) {
            /* The end: padding (CBC) or the tag (GCM) is checked when the cipher finishes. */
            if (BIO_method_type(chain) == BIO_TYPE_CIPHER && BIO_get_cipher_status(chain) <= 0) break;
            ok = got == 0;
            break;
        }
        if (BIO_write(out, buffer, got) != got) { ok = -2; break; }
    }
    while (chain != NULL && chain != content) {
        BIO *next = BIO_pop(chain);
        BIO_free(chain);
        chain = next;
    }
    return ok;
}

int CSignetCrypto_rsaRecoverKey(EVP_PKEY *key, int oaep, const unsigned char *oaepParameters, size_t oaepLength,
                                const unsigned char *encryptedKey, size_t encryptedLength, unsigned char *contentKey, size_t *keyLength) {
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new(key, NULL);
    RSA_OAEP_PARAMS *parameters = NULL;
    int ok = context != NULL && EVP_PKEY_decrypt_init(context) == 1
        && EVP_PKEY_CTX_set_rsa_padding(context, oaep ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING) == 1;
    if (ok && oaep && oaepParameters != NULL && oaepLength > 0) {
        const unsigned char *cursor = oaepParameters;
        parameters = d2i_RSA_OAEP_PARAMS(NULL, &cursor, (long)oaepLength);
        ok = parameters != NULL;
        const EVP_MD *digest = ok && parameters->hashFunc != NULL ? EVP_get_digestbyobj(parameters->hashFunc->algorithm) : EVP_sha1();
        const EVP_MD *mask = EVP_sha1();  // RFC 8017's default MGF1 hash, whatever the digest
        if (ok && parameters->maskGenFunc != NULL && parameters->maskGenFunc->parameter != NULL
            && parameters->maskGenFunc->parameter->type == V_ASN1_SEQUENCE) {
            const ASN1_STRING *sequence = parameters->maskGenFunc->parameter->value.sequence;
            const unsigned char *maskCursor = ASN1_STRING_get0_data(sequence);
            X509_ALGOR *maskHash = d2i_X509_ALGOR(NULL, &maskCursor, ASN1_STRING_length(sequence));
            mask = maskHash != NULL ? EVP_get_digestbyobj(maskHash->algorithm) : NULL;
            X509_ALGOR_free(maskHash);
        }
        ok = ok && digest != NULL && mask != NULL && EVP_PKEY_CTX_set_rsa_oaep_md(context, digest) == 1
            && EVP_PKEY_CTX_set_rsa_mgf1_md(context, mask) == 1;
        if (ok && parameters->pSourceFunc != NULL && parameters->pSourceFunc->parameter != NULL
            && parameters->pSourceFunc->parameter->type == V_ASN1_OCTET_STRING) {
            ASN1_OCTET_STRING *label = parameters->pSourceFunc->parameter->value.octet_string;
            if (ASN1_STRING_length(label) > 0) {
                unsigned char *copy = OPENSSL_memdup(ASN1_STRING_get0_data(label), (size_t)ASN1_STRING_length(label));
                ok = copy != NULL && EVP_PKEY_CTX_set0_rsa_oaep_label(context, copy, ASN1_STRING_length(label)) == 1;
                if (!ok) OPENSSL_free(copy);
            }
        }
    }
    ok = ok && EVP_PKEY_decrypt(context, contentKey, keyLength, encryptedKey, encryptedLength) == 1;
    RSA_OAEP_PARAMS_free(parameters);
    EVP_PKEY_CTX_free(context);
    return ok;
}

int CSignetCrypto_chacha20Poly1305Decrypt(const unsigned char *key, size_t keyLength, const unsigned char *nonce, size_t nonceLength,
                                          const unsigned char *aad, size_t aadLength, const unsigned char *tag, size_t tagLength,
                                          BIO *content, BIO *out) {
    if (keyLength != 32 || nonceLength != 12 || tagLength != 16) return 0;
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    int len = 0, ok = context != NULL
        && EVP_DecryptInit_ex(context, EVP_chacha20_poly1305(), NULL, key, nonce) == 1
        && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag) == 1
        && (aadLength == 0 || EVP_DecryptUpdate(context, NULL, &len, aad, (int)aadLength) == 1);
    unsigned char input[16384], output[16384 + 16];
    while (ok == 1) {
        int got = BIO_read(content, input, sizeof input);
        if (got < 0) { ok = 0; break; }
        if (got == 0) break;
        ok = EVP_DecryptUpdate(context, output, &len, input, got) == 1;
        if (ok && len > 0 && BIO_write(out, output, len) != len) ok = -2;
    }
    /* The tag: only now is what was written known good. */
    if (ok == 1) {
        ok = EVP_DecryptFinal_ex(context, output, &len) == 1;
        if (ok && len > 0 && BIO_write(out, output, len) != len) ok = -2;
    }
    if (ok == 1 && BIO_flush(out) <= 0) ok = -2;
    EVP_CIPHER_CTX_free(context);
    return ok;
}

int CSignetCrypto_signerCount(CMS_ContentInfo *cms) {
    STACK_OF(CMS_SignerInfo) *signers = CMS_get0_SignerInfos(cms);
    return signers == NULL ? 0 : sk_CMS_SignerInfo_num(signers);
}

CMS_SignerInfo *CSignetCrypto_signerAt(CMS_ContentInfo *cms, int index) {
    STACK_OF(CMS_SignerInfo) *signers = CMS_get0_SignerInfos(cms);
    return signers == NULL ? NULL : sk_CMS_SignerInfo_value(signers, index);
}

int CSignetCrypto_signingTime(CMS_SignerInfo *signer, long long *seconds) {
    int index = CMS_signed_get_attr_by_NID(signer, NID_pkcs9_signingTime, -1);
    if (index < 0) return 0;
    X509_ATTRIBUTE *attribute = CMS_signed_get_attr(signer, index);
    ASN1_TYPE *value = X509_ATTRIBUTE_get0_type(attribute, 0);
    if (value == NULL || (value->type != V_ASN1_UTCTIME && value->type != V_ASN1_GENERALIZEDTIME)) return 0;
    int days = 0, secs = 0;
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    if (epoch == NULL) return 0;
    int ok = ASN1_TIME_diff(&days, &secs, epoch, (const ASN1_TIME *)value->value.asn1_string);
    ASN1_TIME_free(epoch);
    if (!ok) return 0;
    *seconds = (long long)days * 86400 + secs;
    return 1;
}

static void algorithmName(const X509_ALGOR *algorithm, char *buffer, size_t capacity) {
    if (capacity == 0) return;
    buffer[0] = 0;
    if (algorithm == NULL) return;
    const ASN1_OBJECT *object = NULL;
    X509_ALGOR_get0(&object, NULL, NULL, algorithm);
    int nid = OBJ_obj2nid(object);
    const char *name = nid == NID_undef ? NULL : OBJ_nid2sn(nid);
    if (name != NULL) { snprintf(buffer, capacity, "%s", name); return; }
    OBJ_obj2txt(buffer, (int)capacity, object, 1);
}

void CSignetCrypto_signerAlgorithms(CMS_SignerInfo *signer, char *digest, size_t digestCapacity, char *signature, size_t signatureCapacity) {
    X509_ALGOR *digestAlgorithm = NULL, *signatureAlgorithm = NULL;
    CMS_SignerInfo_get0_algs(signer, NULL, NULL, &digestAlgorithm, &signatureAlgorithm);
    algorithmName(digestAlgorithm, digest, digestCapacity);
    algorithmName(signatureAlgorithm, signature, signatureCapacity);
}

X509 *CSignetCrypto_signerCertificate(CMS_SignerInfo *signer) {
    X509 *certificate = NULL;
    CMS_SignerInfo_get0_algs(signer, NULL, &certificate, NULL, NULL);
    return certificate;
}

static int lastReason(int library) {
    unsigned long code = ERR_peek_last_error();
    return ERR_GET_LIB(code) == library ? ERR_GET_REASON(code) : 0;
}

typedef struct { unsigned char *bytes; int length; } Encoding;

static int compareEncodings(const void *a, const void *b) {
    const Encoding *x = a, *y = b;
    int common = x->length < y->length ? x->length : y->length;
    int order = memcmp(x->bytes, y->bytes, (size_t)common);
    return order != 0 ? order : x->length - y->length;
}

/* The DER of a signer's signed attributes as the signature covers them: a SET OF (tag 0x31, RFC 5652 §5.4),
   its elements in DER order, as OpenSSL re-encodes them for CMS_SignerInfo_verify. */
static unsigned char *signedAttributesDER(CMS_SignerInfo *signer, size_t *length) {
    int count = CMS_signed_get_attr_count(signer);
    if (count < 0) return NULL;
    Encoding *parts = calloc((size_t)count + 1, sizeof *parts);
    if (parts == NULL) return NULL;
    size_t total = 0;
    unsigned char *out = NULL;
    int ok = 1;
    for (int i = 0; i < count && ok; i++) {
        parts[i].length = i2d_X509_ATTRIBUTE(CMS_signed_get_attr(signer, i), &parts[i].bytes);
        ok = parts[i].length > 0;
        if (ok) total += (size_t)parts[i].length;
    }
    if (ok) {
        qsort(parts, (size_t)count, sizeof *parts, compareEncodings);
        unsigned char header[6] = {0x31};
        size_t headerLength = 1;
        if (total < 0x80) {
            header[headerLength++] = (unsigned char)total;
        } else {
            int octets = total > 0xFFFFFF ? 4 : total > 0xFFFF ? 3 : total > 0xFF ? 2 : 1;
            header[headerLength++] = (unsigned char)(0x80 | octets);
            for (int shift = (octets - 1) * 8; shift >= 0; shift -= 8) header[headerLength++] = (unsigned char)(total >> shift);
        }
        out = OPENSSL_malloc(headerLength + total);
        if (out != NULL) {
            memcpy(out, header, headerLength);
            size_t at = headerLength;
            for (int i = 0; i < count; i++) { memcpy(out + at, parts[i].bytes, (size_t)parts[i].length); at += (size_t)parts[i].length; }
            *length = at;
        }
    }
    for (int i = 0; i < count; i++) OPENSSL_free(parts[i].bytes);
    free(parts);
    return out;
}

/* PureEdDSA (RFC 8419): the signature covers the signed attributes' DER or, without them, the content itself,
   with no digest given to EVP. OpenSSL 3.0's CMS sets up a digest for every signer and fails on these keys. */
static int checkEdDSASignature(CMS_SignerInfo *signer, EVP_PKEY *key, const unsigned char *content, size_t length) {
    ASN1_OCTET_STRING *signature = CMS_SignerInfo_get0_signature(signer);
    size_t signedLength = length;
    unsigned char *attributes = NULL;
    const unsigned char *signedBytes = content;
    if (CMS_signed_get_attr_count(signer) >= 0) {
        attributes = signedAttributesDER(signer, &signedLength);
        if (attributes == NULL) return CSignetCrypto_signerMalformed;
        signedBytes = attributes;
    }
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    int outcome = CSignetCrypto_signerUnsupported;
    if (context != NULL && EVP_DigestVerifyInit_ex(context, NULL, NULL, NULL, NULL, key, NULL) == 1) {
        int verified = EVP_DigestVerify(context, ASN1_STRING_get0_data(signature), (size_t)ASN1_STRING_length(signature), signedBytes, signedLength);
        outcome = verified == 1 ? CSignetCrypto_signerGood : CSignetCrypto_signerBadSignature;
    }
    EVP_MD_CTX_free(context);
    OPENSSL_free(attributes);
    return outcome;
}

int CSignetCrypto_checkSigner(CMS_SignerInfo *signer, const unsigned char *content, size_t length) {
    EVP_PKEY *key = NULL;
    X509 *certificate = NULL;
    X509_ALGOR *digestAlgorithm = NULL;
    CMS_SignerInfo_get0_algs(signer, &key, &certificate, &digestAlgorithm, NULL);
    if (certificate == NULL || key == NULL) return CSignetCrypto_signerCertificateMissing;
    const ASN1_OBJECT *digestObject = NULL;
    X509_ALGOR_get0(&digestObject, NULL, NULL, digestAlgorithm);
    const EVP_MD *digest = EVP_get_digestbyobj(digestObject);
    if (digest == NULL) return CSignetCrypto_signerUnsupported;
    int attributed = CMS_signed_get_attr_count(signer) >= 0;
    int eddsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 || EVP_PKEY_get_base_id(key) == EVP_PKEY_ED448;
    if (eddsa) {
        int outcome = checkEdDSASignature(signer, key, content, length);
        // Without signed attributes the signature covers the content itself: nothing more to check.
        if (outcome != CSignetCrypto_signerGood || !attributed) return outcome;
    } else if (attributed) {
        int verified = CMS_SignerInfo_verify(signer);
        if (verified != 1) {
            switch (lastReason(ERR_LIB_CMS)) {
            case CMS_R_VERIFICATION_FAILURE: return CSignetCrypto_signerBadSignature;
            case CMS_R_ATTRIBUTE_ERROR: return CSignetCrypto_signerMalformed;
            default: return CSignetCrypto_signerUnsupported;
            }
        }
    }
    BIO *source = BIO_new_mem_buf(content, (int)length);
    BIO *digesting = BIO_new(BIO_f_md());
    if (source == NULL || digesting == NULL || !BIO_set_md(digesting, digest)) {
        BIO_free(source);
        BIO_free(digesting);
        return CSignetCrypto_signerUnsupported;
    }
    BIO *chain = BIO_push(digesting, source);
    unsigned char buffer[16384];
    while (BIO_read(chain, buffer, sizeof buffer) > 0) {}
    int matched = CMS_SignerInfo_verify_content(signer, chain);
    BIO_free_all(chain);
    if (matched == 1) return CSignetCrypto_signerGood;
    switch (lastReason(ERR_LIB_CMS)) {
    case CMS_R_VERIFICATION_FAILURE:
        return attributed ? CSignetCrypto_signerBadDigest : CSignetCrypto_signerBadSignature;
    case CMS_R_MESSAGEDIGEST_ATTRIBUTE_WRONG_LENGTH: return CSignetCrypto_signerBadDigest;
    case CMS_R_ERROR_READING_MESSAGEDIGEST_ATTRIBUTE: return CSignetCrypto_signerMalformed;
    default: return CSignetCrypto_signerUnsupported;
    }
}

int CSignetCrypto_signerIdentifier(CMS_SignerInfo *signer, X509_NAME **issuer, ASN1_INTEGER **serial, ASN1_OCTET_STRING **keyIdentifier) {
    *issuer = NULL; *serial = NULL; *keyIdentifier = NULL;
    return CMS_SignerInfo_get0_signer_id(signer, keyIdentifier, issuer, serial);
}

int CSignetCrypto_encapsulatedContent(CMS_ContentInfo *cms, const unsigned char **bytes, size_t *length) {
    ASN1_OCTET_STRING **slot = CMS_get0_content(cms);
    if (slot == NULL || *slot == NULL) return 0;
    *bytes = ASN1_STRING_get0_data(*slot);
    *length = (size_t)ASN1_STRING_length(*slot);
    return 1;
}

int CSignetCrypto_firstErrorReason(int *library) {
    unsigned long code = ERR_peek_error();
    if (library != NULL) *library = ERR_GET_LIB(code);
    return ERR_GET_REASON(code);
}

int CSignetCrypto_addSMIMECapabilities(CMS_SignerInfo *signer) {
    STACK_OF(X509_ALGOR) *capabilities = NULL;
    int ok = CMS_add_simple_smimecap(&capabilities, NID_aes_256_cbc, -1)
        && CMS_add_simple_smimecap(&capabilities, NID_aes_192_cbc, -1)
        && CMS_add_simple_smimecap(&capabilities, NID_aes_128_cbc, -1)
        && CMS_add_smimecap(signer, capabilities);
    sk_X509_ALGOR_pop_free(capabilities, X509_ALGOR_free);
    return ok;
}
