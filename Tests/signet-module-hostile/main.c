// signet-module-hostile: a hostile PKCS#11 host. It calls a module (libsignet-pkcs11.so in the
// tests) the ways a careless or malicious program can: NULL pointers and NULL length pointers,
// length queries, buffers too small, lengths and counts that break the contract (ULONG_MAX,
// CK_UNAVAILABLE_INFORMATION), invalid and stale handles, calls before C_Initialize and after
// C_Finalize, and thousands of calls in a seeded random order. It checks the module's answers
// against PKCS#11 2.40 where the standard names one, and that it never crashes nor hangs: every
// call runs under an alarm (BOUND seconds); one that does not return ends the run with status 3.
//
//   signet-module-hostile MODULE lifecycle        before C_Initialize, after C_Finalize, twice
//   signet-module-hostile MODULE nulls            NULL pointers and NULL length pointers everywhere
//   signet-module-hostile MODULE buffers          length queries and buffers one byte too small
//   signet-module-hostile MODULE lengths          ULONG_MAX counts and lengths, CK_UNAVAILABLE_INFORMATION values
//   signet-module-hostile MODULE answers          the codes issue 25 section 1 names (slots, priorities, keys, operations)
//   signet-module-hostile MODULE mechanisms       every advertised mechanism accepted, and nothing else
//   signet-module-hostile MODULE random SEED N    N calls in a random order from SEED
//
// The token must hold an RSA and a P-256 key pair with certificates, and be unlocked (signet unlock).
// Each check prints "ok: ..." or "FAIL: ..."; the exit status is 0 when none failed, 1 when one did.
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

#define BOUND 60
#define ULONG_ALL ((CK_ULONG)-1)

static CK_FUNCTION_LIST *p11;
static int failures;
static const char *current = "";

static void on_alarm(int signal) {
    (void)signal;
    char text[256];
    int n = snprintf(text, sizeof text, "HANG: %s did not return within %d s\n", current, BOUND);
    if (write(STDOUT_FILENO, text, (size_t)n) < 0) { /* nothing more to do */ }
    _exit(3);
}

// Every call goes through CALL: the alarm bounds it, and a hang names it.
#define CALL(name, ...) (current = #name, alarm(BOUND), p11->name(__VA_ARGS__))

static void expect(const char *what, CK_RV got, CK_RV want) {
    if (got == want) printf("ok: %s: 0x%lx\n", what, got);
    else { printf("FAIL: %s: 0x%lx, want 0x%lx\n", what, got, want); failures++; }
}

static void expect_not_ok(const char *what, CK_RV got) {
    if (got != CKR_OK) printf("ok: %s: 0x%lx\n", what, got);
    else { printf("FAIL: %s: CKR_OK, want an error\n", what); failures++; }
}

static void check(const char *what, int condition) {
    if (condition) printf("ok: %s\n", what);
    else { printf("FAIL: %s\n", what); failures++; }
}

static CK_C_INITIALIZE_ARGS init_args = { NULL, NULL, NULL, NULL, CKF_OS_LOCKING_OK, NULL };

static CK_SLOT_ID first_slot(void) {
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    if (CALL(C_GetSlotList, CK_TRUE, slots, &count) != CKR_OK || count == 0) return (CK_SLOT_ID)-1;
    return slots[0];
}

static CK_SESSION_HANDLE open_session(CK_SLOT_ID slot) {
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    if (CALL(C_OpenSession, slot, CKF_SERIAL_SESSION, NULL, NULL, &session) != CKR_OK) return CK_INVALID_HANDLE;
    CK_RV rv = CALL(C_Login, session, CKU_USER, NULL, 0);
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) printf("login: 0x%lx\n", rv);
    return session;
}

static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE session, CK_OBJECT_CLASS class, CK_KEY_TYPE type) {
    CK_ATTRIBUTE template[] = { { CKA_CLASS, &class, sizeof class }, { CKA_KEY_TYPE, &type, sizeof type } };
    CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    if (CALL(C_FindObjectsInit, session, template, class == CKO_CERTIFICATE ? 1 : 2) != CKR_OK) return CK_INVALID_HANDLE;
    CALL(C_FindObjects, session, &object, 1, &found);
    CALL(C_FindObjectsFinal, session);
    return found == 1 ? object : CK_INVALID_HANDLE;
}

struct setup { CK_SLOT_ID slot; CK_SESSION_HANDLE session; CK_OBJECT_HANDLE rsa, ec, rsa_public, certificate; };

static int prepare(struct setup *s) {
    s->slot = first_slot();
    if (s->slot == (CK_SLOT_ID)-1) { printf("FAIL: no slot with a token\n"); return 0; }
    s->session = open_session(s->slot);
    s->rsa = find(s->session, CKO_PRIVATE_KEY, CKK_RSA);
    s->ec = find(s->session, CKO_PRIVATE_KEY, CKK_EC);
    s->rsa_public = find(s->session, CKO_PUBLIC_KEY, CKK_RSA);
    s->certificate = find(s->session, CKO_CERTIFICATE, 0);
    if (s->session == CK_INVALID_HANDLE || s->rsa == CK_INVALID_HANDLE || s->ec == CK_INVALID_HANDLE || s->certificate == CK_INVALID_HANDLE) {
        printf("FAIL: the token's keys and certificate were not found\n");
        return 0;
    }
    return 1;
}

// MARK: before C_Initialize, after C_Finalize

/// Calls every function of the list with harmless arguments and expects `want` from each but C_Initialize/C_GetFunctionList.
static void every_function(const char *when, CK_RV want) {
    char what[128];
    unsigned char buffer[64];
    CK_ULONG length = sizeof buffer;
    CK_MECHANISM mechanism = { CKM_RSA_PKCS, NULL, 0 };
    CK_ATTRIBUTE attribute = { CKA_LABEL, buffer, sizeof buffer };
    CK_OBJECT_HANDLE object;
    CK_SESSION_HANDLE session;
    CK_INFO info;
    CK_SLOT_INFO slot_info;
    CK_TOKEN_INFO token_info;
    CK_SESSION_INFO session_info;
    CK_MECHANISM_INFO mechanism_info;
    CK_SLOT_ID slot = 1;
#define EVERY(name, ...) do { snprintf(what, sizeof what, "%s %s", #name, when); length = sizeof buffer; \
        expect(what, CALL(name, __VA_ARGS__), want); } while (0)
    EVERY(C_GetInfo, &info);
    EVERY(C_GetSlotList, CK_FALSE, NULL, &length);
    EVERY(C_GetSlotInfo, 1, &slot_info);
    EVERY(C_GetTokenInfo, 1, &token_info);
    EVERY(C_GetMechanismList, 1, NULL, &length);
    EVERY(C_GetMechanismInfo, 1, CKM_RSA_PKCS, &mechanism_info);
    EVERY(C_InitToken, 1, buffer, 4, buffer);
    EVERY(C_InitPIN, 1, buffer, 4);
    EVERY(C_SetPIN, 1, buffer, 4, buffer, 4);
    EVERY(C_OpenSession, 1, CKF_SERIAL_SESSION, NULL, NULL, &session);
    EVERY(C_CloseSession, 1);
    EVERY(C_CloseAllSessions, 1);
    EVERY(C_GetSessionInfo, 1, &session_info);
    EVERY(C_GetOperationState, 1, buffer, &length);
    EVERY(C_SetOperationState, 1, buffer, 4, 0, 0);
    EVERY(C_Login, 1, CKU_USER, buffer, 4);
    EVERY(C_Logout, 1);
    EVERY(C_CreateObject, 1, &attribute, 1, &object);
    EVERY(C_CopyObject, 1, 1, &attribute, 1, &object);
    EVERY(C_DestroyObject, 1, 1);
    EVERY(C_GetObjectSize, 1, 1, &length);
    EVERY(C_GetAttributeValue, 1, 1, &attribute, 1);
    EVERY(C_SetAttributeValue, 1, 1, &attribute, 1);
    EVERY(C_FindObjectsInit, 1, &attribute, 1);
    EVERY(C_FindObjects, 1, &object, 1, &length);
    EVERY(C_FindObjectsFinal, 1);
    EVERY(C_EncryptInit, 1, &mechanism, 1);
    EVERY(C_Encrypt, 1, buffer, 4, buffer, &length);
    EVERY(C_EncryptUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_EncryptFinal, 1, buffer, &length);
    EVERY(C_DecryptInit, 1, &mechanism, 1);
    EVERY(C_Decrypt, 1, buffer, 4, buffer, &length);
    EVERY(C_DecryptUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_DecryptFinal, 1, buffer, &length);
    EVERY(C_DigestInit, 1, &mechanism);
    EVERY(C_Digest, 1, buffer, 4, buffer, &length);
    EVERY(C_DigestUpdate, 1, buffer, 4);
    EVERY(C_DigestKey, 1, 1);
    EVERY(C_DigestFinal, 1, buffer, &length);
    EVERY(C_SignInit, 1, &mechanism, 1);
    EVERY(C_Sign, 1, buffer, 4, buffer, &length);
    EVERY(C_SignUpdate, 1, buffer, 4);
    EVERY(C_SignFinal, 1, buffer, &length);
    EVERY(C_SignRecoverInit, 1, &mechanism, 1);
    EVERY(C_SignRecover, 1, buffer, 4, buffer, &length);
    EVERY(C_VerifyInit, 1, &mechanism, 1);
    EVERY(C_Verify, 1, buffer, 4, buffer, 4);
    EVERY(C_VerifyUpdate, 1, buffer, 4);
    EVERY(C_VerifyFinal, 1, buffer, 4);
    EVERY(C_VerifyRecoverInit, 1, &mechanism, 1);
    EVERY(C_VerifyRecover, 1, buffer, 4, buffer, &length);
    EVERY(C_DigestEncryptUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_DecryptDigestUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_SignEncryptUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_DecryptVerifyUpdate, 1, buffer, 4, buffer, &length);
    EVERY(C_GenerateKey, 1, &mechanism, &attribute, 1, &object);
    EVERY(C_GenerateKeyPair, 1, &mechanism, &attribute, 1, &attribute, 1, &object, &object);
    EVERY(C_WrapKey, 1, &mechanism, 1, 1, buffer, &length);
    EVERY(C_UnwrapKey, 1, &mechanism, 1, buffer, 4, &attribute, 1, &object);
    EVERY(C_DeriveKey, 1, &mechanism, 1, &attribute, 1, &object);
    EVERY(C_SeedRandom, 1, buffer, 4);
    EVERY(C_GenerateRandom, 1, buffer, 4);
    EVERY(C_GetFunctionStatus, 1);
    EVERY(C_CancelFunction, 1);
    EVERY(C_WaitForSlotEvent, CKF_DONT_BLOCK, &slot, NULL);
#undef EVERY
}

static void lifecycle(void) {
    every_function("before C_Initialize", CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_Finalize before C_Initialize", CALL(C_Finalize, NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_Initialize with pReserved set", CALL(C_Initialize, &(CK_C_INITIALIZE_ARGS){ NULL, NULL, NULL, NULL, 0, (void *)1 }), CKR_ARGUMENTS_BAD);
    expect("C_Initialize", CALL(C_Initialize, &init_args), CKR_OK);
    expect("C_Initialize twice", CALL(C_Initialize, &init_args), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    expect("C_Finalize with a reserved pointer", CALL(C_Finalize, (void *)1), CKR_ARGUMENTS_BAD);
    // A session and a key from before C_Finalize are stale after it and a new C_Initialize.
    struct setup s;
    int ready = prepare(&s);
    expect("C_Finalize", CALL(C_Finalize, NULL), CKR_OK);
    every_function("after C_Finalize", CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_Finalize twice", CALL(C_Finalize, NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_Initialize again", CALL(C_Initialize, NULL), CKR_OK);
    if (ready) {
        CK_SESSION_INFO info;
        expect("an old session after C_Finalize and C_Initialize", CALL(C_GetSessionInfo, s.session, &info), CKR_SESSION_HANDLE_INVALID);
        CK_SESSION_HANDLE session = open_session(s.slot);
        expect("C_CloseSession", CALL(C_CloseSession, session), CKR_OK);
        expect("C_CloseSession twice", CALL(C_CloseSession, session), CKR_SESSION_HANDLE_INVALID);
        CK_MECHANISM mechanism = { CKM_SHA256_RSA_PKCS, NULL, 0 };
        expect("C_SignInit on a closed session", CALL(C_SignInit, session, &mechanism, s.rsa), CKR_SESSION_HANDLE_INVALID);
        expect("C_SignInit on session 0", CALL(C_SignInit, CK_INVALID_HANDLE, &mechanism, s.rsa), CKR_SESSION_HANDLE_INVALID);
        session = open_session(s.slot);
        expect("C_CloseAllSessions", CALL(C_CloseAllSessions, s.slot), CKR_OK);
        expect("a session after C_CloseAllSessions", CALL(C_GetSessionInfo, session, &info), CKR_SESSION_HANDLE_INVALID);
    }
    CALL(C_Finalize, NULL);
}

// MARK: NULL pointers

static void nulls(struct setup *s) {
    CK_ULONG length = 0;
    unsigned char buffer[512];
    CK_MECHANISM sign = { CKM_SHA256_RSA_PKCS, NULL, 0 }, decrypt = { CKM_RSA_PKCS, NULL, 0 };
    CK_ATTRIBUTE attribute = { CKA_LABEL, buffer, sizeof buffer };
    expect("C_Initialize(NULL) when initialised", CALL(C_Initialize, NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    expect("C_GetFunctionList(NULL)", p11->C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetInfo(NULL)", CALL(C_GetInfo, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetSlotList(NULL count)", CALL(C_GetSlotList, CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetSlotInfo(NULL)", CALL(C_GetSlotInfo, s->slot, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetTokenInfo(NULL)", CALL(C_GetTokenInfo, s->slot, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetMechanismList(NULL count)", CALL(C_GetMechanismList, s->slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetMechanismInfo(NULL)", CALL(C_GetMechanismInfo, s->slot, CKM_RSA_PKCS, NULL), CKR_ARGUMENTS_BAD);
    expect("C_OpenSession(NULL handle)", CALL(C_OpenSession, s->slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetSessionInfo(NULL)", CALL(C_GetSessionInfo, s->session, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetAttributeValue(NULL template, 1)", CALL(C_GetAttributeValue, s->session, s->certificate, NULL, 1), CKR_ARGUMENTS_BAD);
    expect("C_GetObjectSize(NULL)", CALL(C_GetObjectSize, s->session, s->certificate, NULL), CKR_ARGUMENTS_BAD);
    expect("C_FindObjectsInit(NULL template, 1)", CALL(C_FindObjectsInit, s->session, NULL, 1), CKR_ARGUMENTS_BAD);
    expect("C_FindObjectsInit(empty)", CALL(C_FindObjectsInit, s->session, NULL, 0), CKR_OK);
    expect("C_FindObjects(NULL list)", CALL(C_FindObjects, s->session, NULL, 1, &length), CKR_ARGUMENTS_BAD);
    CK_OBJECT_HANDLE object;
    expect("C_FindObjects(NULL count)", CALL(C_FindObjects, s->session, &object, 1, NULL), CKR_ARGUMENTS_BAD);
    expect("C_FindObjectsFinal", CALL(C_FindObjectsFinal, s->session), CKR_OK);
    expect("C_SignInit(NULL mechanism)", CALL(C_SignInit, s->session, NULL, s->rsa), CKR_ARGUMENTS_BAD);
    expect("C_SignInit", CALL(C_SignInit, s->session, &sign, s->rsa), CKR_OK);
    expect("C_Sign(NULL data, 5)", CALL(C_Sign, s->session, NULL, 5, buffer, &length), CKR_ARGUMENTS_BAD);
    expect("C_SignInit after an error ended C_Sign", CALL(C_SignInit, s->session, &sign, s->rsa), CKR_OK);
    expect("C_Sign(NULL length)", CALL(C_Sign, s->session, buffer, 5, buffer, NULL), CKR_ARGUMENTS_BAD);
    expect("C_SignInit again", CALL(C_SignInit, s->session, &sign, s->rsa), CKR_OK);
    expect("C_SignUpdate(NULL part, 5)", CALL(C_SignUpdate, s->session, NULL, 5), CKR_ARGUMENTS_BAD);
    expect("C_SignFinal after the failed update", CALL(C_SignFinal, s->session, buffer, &length), CKR_OPERATION_NOT_INITIALIZED);
    expect("C_SignInit once more", CALL(C_SignInit, s->session, &sign, s->rsa), CKR_OK);
    expect("C_SignFinal(NULL length)", CALL(C_SignFinal, s->session, buffer, NULL), CKR_ARGUMENTS_BAD);
    expect("C_DecryptInit(NULL mechanism)", CALL(C_DecryptInit, s->session, NULL, s->rsa), CKR_ARGUMENTS_BAD);
    expect("C_DecryptInit", CALL(C_DecryptInit, s->session, &decrypt, s->rsa), CKR_OK);
    expect("C_Decrypt(NULL data, 256)", CALL(C_Decrypt, s->session, NULL, 256, buffer, &length), CKR_ARGUMENTS_BAD);
    expect("C_DecryptInit after an error ended C_Decrypt", CALL(C_DecryptInit, s->session, &decrypt, s->rsa), CKR_OK);
    expect("C_Decrypt(NULL length)", CALL(C_Decrypt, s->session, buffer, 256, buffer, NULL), CKR_ARGUMENTS_BAD);
    CK_MECHANISM derive = { CKM_ECDH1_DERIVE, NULL, 0 };
    expect("C_DeriveKey(NULL mechanism)", CALL(C_DeriveKey, s->session, NULL, s->ec, NULL, 0, &object), CKR_ARGUMENTS_BAD);
    expect("C_DeriveKey(NULL key out)", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 0, NULL), CKR_ARGUMENTS_BAD);
    expect("C_DeriveKey(NULL template, 1)", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 1, &object), CKR_ARGUMENTS_BAD);
    expect("C_DeriveKey(NULL parameters)", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 0, &object), CKR_MECHANISM_PARAM_INVALID);
    CK_ECDH1_DERIVE_PARAMS params = { CKD_NULL, 0, NULL, 65, NULL };
    derive.pParameter = &params;
    derive.ulParameterLen = sizeof params;
    expect("C_DeriveKey(NULL public data, 65)", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 0, &object), CKR_MECHANISM_PARAM_INVALID);
    CK_SLOT_ID slot;
    expect("C_WaitForSlotEvent(NULL slot)", CALL(C_WaitForSlotEvent, CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_WaitForSlotEvent(blocking, NULL slot)", CALL(C_WaitForSlotEvent, 0, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect_not_ok("C_WaitForSlotEvent(reserved set)", CALL(C_WaitForSlotEvent, CKF_DONT_BLOCK, &slot, (void *)1));
    expect("C_SeedRandom(NULL, 5)", CALL(C_SeedRandom, s->session, NULL, 5), CKR_ARGUMENTS_BAD);
    expect("C_GenerateRandom(NULL, 5)", CALL(C_GenerateRandom, s->session, NULL, 5), CKR_ARGUMENTS_BAD);
    expect("C_Login(CKU_USER, NULL) (protected path, unlocked)", CALL(C_Login, s->session, CKU_USER, NULL, 0), CKR_OK);
    // The functions the module does not offer answer so whatever they are given.
    expect("C_EncryptInit(NULL)", CALL(C_EncryptInit, s->session, NULL, s->rsa), CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_Digest(NULL)", CALL(C_Digest, s->session, NULL, 5, NULL, NULL), CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_CreateObject(NULL)", CALL(C_CreateObject, s->session, NULL, 1, NULL), CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_GenerateKeyPair(NULL)", CALL(C_GenerateKeyPair, s->session, NULL, NULL, 0, NULL, 0, NULL, NULL), CKR_FUNCTION_NOT_SUPPORTED);
    (void)attribute;
}

// MARK: length queries and short buffers

static void buffers(struct setup *s) {
    CK_ULONG count = 0;
    CK_SLOT_ID slots[16];
    expect("C_GetSlotList length query", CALL(C_GetSlotList, CK_TRUE, NULL, &count), CKR_OK);
    CK_ULONG slot_count = count;
    if (slot_count > 0) {
        count = 0;
        expect("C_GetSlotList into 0 entries", CALL(C_GetSlotList, CK_TRUE, slots, &count), CKR_BUFFER_TOO_SMALL);
        check("C_GetSlotList sets the count when too small", count == slot_count);
    }
    expect("C_GetMechanismList length query", CALL(C_GetMechanismList, s->slot, NULL, &count), CKR_OK);
    CK_ULONG mechanism_count = count;
    CK_MECHANISM_TYPE mechanisms[64];
    count = mechanism_count - 1;
    expect("C_GetMechanismList one too few", CALL(C_GetMechanismList, s->slot, mechanisms, &count), CKR_BUFFER_TOO_SMALL);
    check("C_GetMechanismList sets the count when too small", count == mechanism_count);

    // C_GetAttributeValue: the length with pValue NULL; CK_UNAVAILABLE_INFORMATION and CKR_BUFFER_TOO_SMALL when short.
    CK_ATTRIBUTE value = { CKA_VALUE, NULL, 0 };
    expect("C_GetAttributeValue length query", CALL(C_GetAttributeValue, s->session, s->certificate, &value, 1), CKR_OK);
    CK_ULONG der_length = value.ulValueLen;
    check("the certificate's length is given", der_length > 100 && der_length < 10000);
    unsigned char der[10000];
    value.pValue = der;
    value.ulValueLen = der_length - 1;
    expect("C_GetAttributeValue one byte short", CALL(C_GetAttributeValue, s->session, s->certificate, &value, 1), CKR_BUFFER_TOO_SMALL);
    check("a short attribute's length is CK_UNAVAILABLE_INFORMATION", value.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    value.ulValueLen = der_length;
    expect("C_GetAttributeValue exactly", CALL(C_GetAttributeValue, s->session, s->certificate, &value, 1), CKR_OK);

    // C_Sign: a length query and a short buffer keep the operation; the right buffer then signs.
    CK_MECHANISM mechanism = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    unsigned char data[32] = { 1 }, signature[512];
    CK_ULONG length = 0;
    expect("C_SignInit", CALL(C_SignInit, s->session, &mechanism, s->rsa), CKR_OK);
    expect("C_Sign length query", CALL(C_Sign, s->session, data, sizeof data, NULL, &length), CKR_OK);
    check("C_Sign's length query gives the modulus length", length == 256);
    length = 255;
    expect("C_Sign one byte short", CALL(C_Sign, s->session, data, sizeof data, signature, &length), CKR_BUFFER_TOO_SMALL);
    check("C_Sign sets the length when too small", length == 256);
    expect("C_Sign after the short buffer", CALL(C_Sign, s->session, data, sizeof data, signature, &length), CKR_OK);
    expect("C_Sign after it ended", CALL(C_Sign, s->session, data, sizeof data, signature, &length), CKR_OPERATION_NOT_INITIALIZED);

    // The same data signed in two parts, after a length query and a short buffer: the same PKCS#1 v1.5
    // signature (deterministic) as in one part. A length query must not spend the hash of the parts.
    unsigned char single[512], parts[512];
    CK_ULONG single_length = sizeof single, parts_length = 0;
    CALL(C_SignInit, s->session, &mechanism, s->rsa);
    expect("C_Sign in one part", CALL(C_Sign, s->session, data, sizeof data, single, &single_length), CKR_OK);
    CALL(C_SignInit, s->session, &mechanism, s->rsa);
    CALL(C_SignUpdate, s->session, data, 10);
    CALL(C_SignUpdate, s->session, data + 10, sizeof data - 10);
    expect("C_SignFinal length query", CALL(C_SignFinal, s->session, NULL, &parts_length), CKR_OK);
    parts_length = 100;
    expect("C_SignFinal short", CALL(C_SignFinal, s->session, parts, &parts_length), CKR_BUFFER_TOO_SMALL);
    expect("C_SignFinal", CALL(C_SignFinal, s->session, parts, &parts_length), CKR_OK);
    check("the signature in parts, after a length query and a short buffer, is the one-part signature",
          parts_length == single_length && memcmp(parts, single, single_length) == 0);

    // ECDSA: 64 bytes for P-256.
    CK_MECHANISM ecdsa = { CKM_ECDSA_SHA256, NULL, 0 };
    expect("C_SignInit ECDSA", CALL(C_SignInit, s->session, &ecdsa, s->ec), CKR_OK);
    expect("C_SignUpdate ECDSA", CALL(C_SignUpdate, s->session, data, sizeof data), CKR_OK);
    length = 63;
    expect("C_SignFinal one byte short", CALL(C_SignFinal, s->session, signature, &length), CKR_BUFFER_TOO_SMALL);
    check("C_SignFinal sets the length when too small", length == 64);
    expect("C_SignFinal", CALL(C_SignFinal, s->session, signature, &length), CKR_OK);

    // C_Decrypt: a short buffer keeps the plaintext for the next call.
    CK_MECHANISM rsa = { CKM_RSA_PKCS, NULL, 0 };
    CK_OBJECT_HANDLE public_key = s->rsa_public;
    (void)public_key;
    expect("C_DecryptInit", CALL(C_DecryptInit, s->session, &rsa, s->rsa), CKR_OK);
    length = 0;
    expect("C_Decrypt length query", CALL(C_Decrypt, s->session, signature, 256, NULL, &length), CKR_OK);
    check("C_Decrypt's length query gives at most the modulus length", length == 256);
    CALL(C_DecryptFinal, s->session, NULL, &length);  // not offered: leaves the operation as it is
    // The operation is still active after the length query.
    expect("C_DecryptInit while one is active", CALL(C_DecryptInit, s->session, &rsa, s->rsa), CKR_OPERATION_ACTIVE);
}

// MARK: lengths that break the contract

static void lengths(struct setup *s) {
    unsigned char buffer[512] = { 0 };
    CK_ULONG length = sizeof buffer;
    CK_OBJECT_CLASS class = CKO_CERTIFICATE;
    // A template reused after C_GetAttributeValue marked an attribute unavailable.
    CK_ATTRIBUTE reused[] = { { CKA_CLASS, &class, sizeof class }, { CKA_LABEL, buffer, CK_UNAVAILABLE_INFORMATION } };
    expect("C_FindObjectsInit, a value of CK_UNAVAILABLE_INFORMATION", CALL(C_FindObjectsInit, s->session, reused, 2), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_FindObjectsInit, a count of ULONG_MAX", CALL(C_FindObjectsInit, s->session, reused, ULONG_ALL), CKR_ARGUMENTS_BAD);
    CK_ATTRIBUTE missing = { CKA_LABEL, NULL, 5 };
    expect("C_FindObjectsInit, a length without a value", CALL(C_FindObjectsInit, s->session, &missing, 1), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_FindObjectsInit after those", CALL(C_FindObjectsInit, s->session, reused, 1), CKR_OK);
    CK_OBJECT_HANDLE objects[4];
    CK_ULONG found = 0;
    // Two certificates match: a maximum of ULONG_MAX with room for four is the caller's "all there are".
    expect("C_FindObjects, a maximum of ULONG_MAX", CALL(C_FindObjects, s->session, objects, ULONG_ALL, &found), CKR_OK);
    check("C_FindObjects found the two certificates", found == 2);
    CALL(C_FindObjectsFinal, s->session);
    expect("C_FindObjectsInit, empty", CALL(C_FindObjectsInit, s->session, NULL, 0), CKR_OK);
    CK_OBJECT_HANDLE many[256];
    expect("C_FindObjects, every object, a maximum of ULONG_MAX", CALL(C_FindObjects, s->session, many, ULONG_ALL, &found), CKR_OK);
    CALL(C_FindObjectsFinal, s->session);
    CK_ATTRIBUTE label = { CKA_LABEL, buffer, sizeof buffer };
    expect("C_GetAttributeValue, a count of ULONG_MAX", CALL(C_GetAttributeValue, s->session, s->certificate, &label, ULONG_ALL), CKR_ARGUMENTS_BAD);

    CK_MECHANISM mechanisms[] = { { CKM_SHA256_RSA_PKCS, NULL, 0 }, { CKM_RSA_PKCS, NULL, 0 } };
    for (int i = 0; i < 2; i++) {
        char what[96];
        expect("C_SignInit", CALL(C_SignInit, s->session, &mechanisms[i], s->rsa), CKR_OK);
        snprintf(what, sizeof what, "C_Sign (mechanism 0x%lx), a data length of ULONG_MAX", mechanisms[i].mechanism);
        expect(what, CALL(C_Sign, s->session, buffer, ULONG_ALL, buffer, &length), CKR_ARGUMENTS_BAD);
        expect("the operation ended with it", CALL(C_SignFinal, s->session, buffer, &length), CKR_OPERATION_NOT_INITIALIZED);
        expect("C_SignInit", CALL(C_SignInit, s->session, &mechanisms[i], s->rsa), CKR_OK);
        snprintf(what, sizeof what, "C_SignUpdate (mechanism 0x%lx), a part length of ULONG_MAX", mechanisms[i].mechanism);
        expect(what, CALL(C_SignUpdate, s->session, buffer, ULONG_ALL), CKR_ARGUMENTS_BAD);
    }
    expect("C_SignInit raw RSA", CALL(C_SignInit, s->session, &mechanisms[1], s->rsa), CKR_OK);
    expect("C_Sign raw RSA, longer than the modulus allows", CALL(C_Sign, s->session, buffer, 300, buffer, &length), CKR_DATA_LEN_RANGE);
    CK_MECHANISM decrypt = { CKM_RSA_PKCS, NULL, 0 };
    expect("C_DecryptInit", CALL(C_DecryptInit, s->session, &decrypt, s->rsa), CKR_OK);
    expect("C_Decrypt, a length of ULONG_MAX", CALL(C_Decrypt, s->session, buffer, ULONG_ALL, buffer, &length), CKR_ENCRYPTED_DATA_LEN_RANGE);

    // PSS with a salt length of ULONG_MAX.
    CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, ULONG_ALL };
    CK_MECHANISM pss_mechanism = { CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss };
    expect("C_SignInit PSS, a salt of ULONG_MAX", CALL(C_SignInit, s->session, &pss_mechanism, s->rsa), CKR_MECHANISM_PARAM_INVALID);

    // ECDH: a point length, a SharedInfo length and a CKA_VALUE_LEN of ULONG_MAX.
    CK_OBJECT_HANDLE derived;
    CK_ECDH1_DERIVE_PARAMS params = { CKD_SHA256_KDF, 0, NULL, ULONG_ALL, buffer };
    CK_MECHANISM derive = { CKM_ECDH1_DERIVE, &params, sizeof params };
    expect("C_DeriveKey, a public data length of ULONG_MAX", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 0, &derived), CKR_MECHANISM_PARAM_INVALID);
    params.ulPublicDataLen = 65;
    params.ulSharedDataLen = ULONG_ALL;
    params.pSharedData = buffer;
    expect("C_DeriveKey, a SharedInfo length of ULONG_MAX", CALL(C_DeriveKey, s->session, &derive, s->ec, NULL, 0, &derived), CKR_MECHANISM_PARAM_INVALID);
    CK_ULONG huge = ULONG_ALL;
    CK_ATTRIBUTE value_len = { CKA_VALUE_LEN, &huge, sizeof huge };
    expect("C_DeriveKey, a template count of ULONG_MAX", CALL(C_DeriveKey, s->session, &derive, s->ec, &value_len, ULONG_ALL, &derived), CKR_ARGUMENTS_BAD);
    params.ulSharedDataLen = 0;
    params.pSharedData = NULL;
    CK_RV rv = CALL(C_DeriveKey, s->session, &derive, s->ec, &value_len, 1, &derived);
    check("C_DeriveKey, a CKA_VALUE_LEN of ULONG_MAX: an error", rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_MECHANISM_PARAM_INVALID);
    CK_ATTRIBUTE unavailable = { CKA_VALUE_LEN, &huge, CK_UNAVAILABLE_INFORMATION };
    expect("C_DeriveKey, a value length of CK_UNAVAILABLE_INFORMATION", CALL(C_DeriveKey, s->session, &derive, s->ec, &unavailable, 1, &derived),
           CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_Login, a PIN length of ULONG_MAX", CALL(C_Login, s->session, CKU_USER, buffer, ULONG_ALL), CKR_OK);  // unlocked: not checked
    expect("C_SeedRandom, ULONG_MAX", CALL(C_SeedRandom, s->session, buffer, ULONG_ALL), CKR_RANDOM_NO_RNG);
}

// MARK: the answers of issue 25, section 1

static void answers(void) {
    // Slot ids are accepted before anything refreshed the slot table.
    CK_SLOT_ID slot = first_slot();
    CALL(C_Finalize, NULL);
    CALL(C_Initialize, &init_args);
    CK_ULONG count = 0;
    expect("C_GetMechanismList on a listed slot, first call after C_Initialize", CALL(C_GetMechanismList, slot, NULL, &count), CKR_OK);
    CALL(C_Finalize, NULL);
    CALL(C_Initialize, &init_args);
    CK_MECHANISM_INFO mechanism_info;
    expect("C_GetMechanismInfo on a listed slot, first call after C_Initialize", CALL(C_GetMechanismInfo, slot, CKM_RSA_PKCS, &mechanism_info), CKR_OK);
    CALL(C_Finalize, NULL);
    CALL(C_Initialize, &init_args);
    expect("C_CloseAllSessions on a listed slot, first call after C_Initialize", CALL(C_CloseAllSessions, slot), CKR_OK);
    expect("C_GetMechanismList on a slot that is no token's", CALL(C_GetMechanismList, slot ^ 0x40000000UL, NULL, &count), CKR_SLOT_ID_INVALID);

    struct setup s;
    if (!prepare(&s)) return;
    unsigned char buffer[512] = { 0 };
    CK_ULONG length = sizeof buffer;

    // Session errors rank above "no generator".
    expect("C_GenerateRandom on an invalid session", CALL(C_GenerateRandom, 0xdead, buffer, 8), CKR_SESSION_HANDLE_INVALID);
    expect("C_SeedRandom on an invalid session", CALL(C_SeedRandom, 0xdead, buffer, 8), CKR_SESSION_HANDLE_INVALID);
    expect("C_GenerateRandom on a valid session", CALL(C_GenerateRandom, s.session, buffer, 8), CKR_RANDOM_NO_RNG);
    expect("C_GetFunctionStatus on an invalid session", CALL(C_GetFunctionStatus, 0xdead), CKR_SESSION_HANDLE_INVALID);
    CK_SESSION_INFO session_info;
    expect("C_GetSessionInfo on an invalid session with NULL", CALL(C_GetSessionInfo, 0xdead, NULL), CKR_SESSION_HANDLE_INVALID);
    CK_MECHANISM sha256 = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    expect("C_SignInit on an invalid session with a NULL mechanism", CALL(C_SignInit, 0xdead, NULL, s.rsa), CKR_SESSION_HANDLE_INVALID);
    (void)session_info;

    // Key handles: an object that is not a key, and no object at all.
    CK_MECHANISM rsa_pkcs = { CKM_RSA_PKCS, NULL, 0 };
    expect("C_SignInit with a certificate's handle", CALL(C_SignInit, s.session, &sha256, s.certificate), CKR_KEY_HANDLE_INVALID);
    expect("C_SignInit with a handle of no object", CALL(C_SignInit, s.session, &sha256, 0x7ffffff0UL), CKR_KEY_HANDLE_INVALID);
    expect("C_SignInit with handle 0", CALL(C_SignInit, s.session, &sha256, CK_INVALID_HANDLE), CKR_KEY_HANDLE_INVALID);
    expect("C_DecryptInit with a certificate's handle", CALL(C_DecryptInit, s.session, &rsa_pkcs, s.certificate), CKR_KEY_HANDLE_INVALID);
    expect("C_DecryptInit with a handle of no object", CALL(C_DecryptInit, s.session, &rsa_pkcs, 0x7ffffff0UL), CKR_KEY_HANDLE_INVALID);
    CK_ECDH1_DERIVE_PARAMS params = { CKD_NULL, 0, NULL, 0, NULL };
    CK_MECHANISM derive = { CKM_ECDH1_DERIVE, &params, sizeof params };
    CK_OBJECT_HANDLE derived;
    expect("C_DeriveKey with a certificate's handle", CALL(C_DeriveKey, s.session, &derive, s.certificate, NULL, 0, &derived), CKR_KEY_HANDLE_INVALID);
    expect("C_DeriveKey with a handle of no object", CALL(C_DeriveKey, s.session, &derive, 0x7ffffff0UL, NULL, 0, &derived), CKR_KEY_HANDLE_INVALID);
    expect("C_SignInit with a public key", CALL(C_SignInit, s.session, &sha256, s.rsa_public), CKR_KEY_FUNCTION_NOT_PERMITTED);
    CK_MECHANISM ecdsa = { CKM_ECDSA, NULL, 0 };
    expect("C_SignInit ECDSA with an RSA key", CALL(C_SignInit, s.session, &ecdsa, s.rsa), CKR_KEY_TYPE_INCONSISTENT);
    expect("C_GetAttributeValue with a handle of no object", CALL(C_GetAttributeValue, s.session, 0x7ffffff0UL, NULL, 0), CKR_OBJECT_HANDLE_INVALID);

    // C_Sign after C_SignUpdate ends the operation: the next C_SignInit works.
    expect("C_SignInit", CALL(C_SignInit, s.session, &sha256, s.rsa), CKR_OK);
    expect("C_SignUpdate", CALL(C_SignUpdate, s.session, buffer, 16), CKR_OK);
    length = sizeof buffer;
    expect_not_ok("C_Sign after C_SignUpdate", CALL(C_Sign, s.session, buffer, 16, buffer, &length));
    expect("C_SignInit after that C_Sign", CALL(C_SignInit, s.session, &sha256, s.rsa), CKR_OK);
    length = sizeof buffer;
    expect("C_Sign", CALL(C_Sign, s.session, buffer, 16, buffer, &length), CKR_OK);
    // A raw RSA input too long ends it too.
    expect("C_SignInit raw", CALL(C_SignInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
    expect("C_Sign raw, 250 bytes", CALL(C_Sign, s.session, buffer, 250, buffer, &length), CKR_DATA_LEN_RANGE);
    expect("C_SignInit after that error", CALL(C_SignInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
    expect("C_SignUpdate raw, a DigestInfo's length", CALL(C_SignUpdate, s.session, buffer, 51), CKR_OK);
    length = sizeof buffer;
    expect("C_SignFinal raw", CALL(C_SignFinal, s.session, buffer, &length), CKR_OK);
    expect("C_SignFinal after it ended", CALL(C_SignFinal, s.session, buffer, &length), CKR_OPERATION_NOT_INITIALIZED);

    // RSA decryption: a ciphertext of the wrong length, then one of the right length whose padding is wrong.
    expect("C_DecryptInit", CALL(C_DecryptInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
    length = sizeof buffer;
    expect("C_Decrypt of 255 bytes with a 2048-bit key", CALL(C_Decrypt, s.session, buffer, 255, buffer, &length), CKR_ENCRYPTED_DATA_LEN_RANGE);
    expect("C_DecryptInit after that error", CALL(C_DecryptInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
    unsigned char ciphertext[256];
    for (int i = 0; i < 256; i++) ciphertext[i] = (unsigned char)(i * 7 + 3);
    ciphertext[0] = 0x01;  // below the modulus
    length = sizeof buffer;
    expect("C_Decrypt of a ciphertext with bad padding", CALL(C_Decrypt, s.session, ciphertext, 256, buffer, &length), CKR_ENCRYPTED_DATA_INVALID);
    expect("C_DecryptInit after that error", CALL(C_DecryptInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
    length = sizeof buffer;
    expect("C_Decrypt with NULL data of 256 bytes", CALL(C_Decrypt, s.session, NULL, 256, buffer, &length), CKR_ARGUMENTS_BAD);
    expect("C_DecryptInit after that error", CALL(C_DecryptInit, s.session, &rsa_pkcs, s.rsa), CKR_OK);
}

// MARK: the mechanism table, both ways

static int sign_params(CK_MECHANISM_TYPE type, CK_MECHANISM *mechanism, CK_RSA_PKCS_PSS_PARAMS *pss) {
    mechanism->mechanism = type;
    mechanism->pParameter = NULL;
    mechanism->ulParameterLen = 0;
    CK_MECHANISM_TYPE hash = 0;
    CK_RSA_PKCS_MGF_TYPE mgf = 0;
    switch (type) {
    case CKM_RSA_PKCS_PSS: case CKM_SHA256_RSA_PKCS_PSS: hash = CKM_SHA256; mgf = CKG_MGF1_SHA256; break;
    case CKM_SHA384_RSA_PKCS_PSS: hash = CKM_SHA384; mgf = CKG_MGF1_SHA384; break;
    case CKM_SHA512_RSA_PKCS_PSS: hash = CKM_SHA512; mgf = CKG_MGF1_SHA512; break;
    default: return 0;
    }
    pss->hashAlg = hash;
    pss->mgf = mgf;
    pss->sLen = 32;
    mechanism->pParameter = pss;
    mechanism->ulParameterLen = sizeof *pss;
    return 1;
}

static void mechanisms(struct setup *s) {
    CK_MECHANISM_TYPE list[64];
    CK_ULONG count = 64;
    expect("C_GetMechanismList", CALL(C_GetMechanismList, s->slot, list, &count), CKR_OK);
    unsigned char data[64] = { 0 }, out[1024];
    CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG kek_length = 16;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE kek_template[] = { { CKA_CLASS, &secret_class, sizeof secret_class }, { CKA_KEY_TYPE, &aes, sizeof aes },
                                    { CKA_VALUE_LEN, &kek_length, sizeof kek_length }, { CKA_UNWRAP, &yes, 1 } };
    // A P-256 point of the token's own public key serves as the peer's point.
    CK_OBJECT_HANDLE ec_public = find(s->session, CKO_PUBLIC_KEY, CKK_EC);
    unsigned char point[200];
    CK_ATTRIBUTE point_attribute = { CKA_EC_POINT, point, sizeof point };
    CALL(C_GetAttributeValue, s->session, ec_public, &point_attribute, 1);
    CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
    // Derive first: the unwrap mechanisms need a KEK derived here.
    for (CK_ULONG i = 0; i < count; i++) {
        if (list[i] != CKM_ECDH1_DERIVE) continue;
        CK_ECDH1_DERIVE_PARAMS params = { CKD_SHA256_KDF, 0, NULL, point_attribute.ulValueLen, point };
        CK_MECHANISM mechanism = { CKM_ECDH1_DERIVE, &params, sizeof params };
        expect("advertised CKM_ECDH1_DERIVE derives", CALL(C_DeriveKey, s->session, &mechanism, s->ec, kek_template, 4, &kek), CKR_OK);
    }
    for (CK_ULONG i = 0; i < count; i++) {
        CK_MECHANISM_INFO info;
        char what[128];
        snprintf(what, sizeof what, "C_GetMechanismInfo 0x%lx", list[i]);
        expect(what, CALL(C_GetMechanismInfo, s->slot, list[i], &info), CKR_OK);
        CK_MECHANISM mechanism = { list[i], NULL, 0 };
        CK_RSA_PKCS_PSS_PARAMS pss;
        CK_RSA_PKCS_OAEP_PARAMS oaep = { CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0 };
        unsigned char iv[8] = { 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6 };
        if (info.flags & CKF_SIGN) {
            sign_params(list[i], &mechanism, &pss);
            CK_OBJECT_HANDLE key = info.flags & CKF_EC_NAMEDCURVE ? s->ec : s->rsa;
            snprintf(what, sizeof what, "advertised 0x%lx signs", list[i]);
            CK_RV rv = CALL(C_SignInit, s->session, &mechanism, key);
            CK_ULONG length = sizeof out;
            CK_ULONG data_length = list[i] == CKM_RSA_PKCS_PSS ? 32 : (list[i] == CKM_ECDSA ? 32 : 20);
            if (rv == CKR_OK) rv = CALL(C_Sign, s->session, data, data_length, out, &length);
            expect(what, rv, CKR_OK);
        }
        if (info.flags & CKF_DECRYPT) {
            CK_OBJECT_HANDLE key = s->rsa;
            if (list[i] == CKM_RSA_PKCS_OAEP) { mechanism.pParameter = &oaep; mechanism.ulParameterLen = sizeof oaep; }
            if (list[i] == CKM_AES_KEY_WRAP || info.ulMaxKeySize <= 32) { key = kek; mechanism.pParameter = iv; mechanism.ulParameterLen = 8; }
            snprintf(what, sizeof what, "advertised 0x%lx starts a decryption", list[i]);
            expect(what, CALL(C_DecryptInit, s->session, &mechanism, key), CKR_OK);
            CK_ULONG length = 0;
            CALL(C_Decrypt, s->session, NULL, 0, NULL, &length);  // ends it (a length of 0 fits no mechanism)
        }
    }
    // Nothing else: every other mechanism number below 0x2000, the vendor ones NSS uses, and SHA-1/SHA-224 forms.
    int refused = 0, accepted = 0;
    CK_MECHANISM_TYPE extra[] = { CKM_VENDOR_DEFINED, CKM_VENDOR_DEFINED | 0x4E534350UL, 0xCE534350UL, 0xCE534352UL, ULONG_ALL };
    for (CK_ULONG type = 0; type < 0x2000 + 5; type++) {
        CK_MECHANISM_TYPE mechanism_type = type < 0x2000 ? type : extra[type - 0x2000];
        int listed = 0;
        for (CK_ULONG i = 0; i < count; i++) if (list[i] == mechanism_type) listed = 1;
        if (listed) continue;
        CK_MECHANISM_INFO info;
        CK_RSA_PKCS_PSS_PARAMS pss;
        CK_MECHANISM mechanism = { mechanism_type, NULL, 0 };
        sign_params(mechanism_type, &mechanism, &pss);
        CK_RV a = CALL(C_GetMechanismInfo, s->slot, mechanism_type, &info);
        CK_RV b = CALL(C_SignInit, s->session, &mechanism, s->rsa);
        CK_RV c = CALL(C_SignInit, s->session, &mechanism, s->ec);
        CK_RV d = CALL(C_DecryptInit, s->session, &mechanism, s->rsa);
        CK_OBJECT_HANDLE derived;
        CK_RV e = CALL(C_DeriveKey, s->session, &mechanism, s->ec, NULL, 0, &derived);
        if (a == CKR_MECHANISM_INVALID && b == CKR_MECHANISM_INVALID && c == CKR_MECHANISM_INVALID && d == CKR_MECHANISM_INVALID && e == CKR_MECHANISM_INVALID) {
            refused++;
        } else {
            printf("FAIL: unadvertised 0x%lx: info 0x%lx, sign 0x%lx/0x%lx, decrypt 0x%lx, derive 0x%lx\n", mechanism_type, a, b, c, d, e);
            accepted++;
            failures++;
            // An operation it started would make the next mechanisms' answers CKR_OPERATION_ACTIVE: a new session.
            CALL(C_CloseSession, s->session);
            s->session = open_session(s->slot);
        }
    }
    printf("%lu advertised, %d others refused, %d others accepted\n", count, refused, accepted);
}

// MARK: random calls

static unsigned long long state_seed;
static unsigned long next_random(void) {
    state_seed = state_seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned long)(state_seed >> 33);
}

/// The resident memory of this process, in kB (Linux /proc/self/statm).
static long resident_kb(void) {
    long pages = 0, resident = 0;
    FILE *file = fopen("/proc/self/statm", "r");
    if (!file) return 0;
    if (fscanf(file, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(file);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static CK_ULONG random_length(void) {
    static const CK_ULONG lengths[] = { 0, 1, 8, 20, 32, 64, 255, 256, 257, 512, CK_UNAVAILABLE_INFORMATION, ULONG_ALL, ULONG_ALL / 2, 0x100000000UL };
    return lengths[next_random() % (sizeof lengths / sizeof lengths[0])];
}

static void random_calls(struct setup *s, unsigned long seed, int n) {
    state_seed = seed;
    CK_SESSION_HANDLE sessions[4] = { s->session, CK_INVALID_HANDLE, 0xdead, s->session };
    CK_OBJECT_HANDLE objects[6] = { s->rsa, s->ec, s->rsa_public, s->certificate, CK_INVALID_HANDLE, 0x7ffffff0UL };
    CK_MECHANISM_TYPE types[] = { CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKM_RSA_PKCS_OAEP, CKM_ECDSA,
                                  CKM_ECDSA_SHA256, CKM_ECDH1_DERIVE, CKM_AES_KEY_WRAP, CKM_SHA1_RSA_PKCS, CKM_SHA_1, 0xFFFFFFFFUL };
    static unsigned char buffer[4096];
    CK_ULONG tally[8] = { 0 };
    long warm = 0;
    for (int i = 0; i < n; i++) {
        // Memory after a third of the calls (caches filled, connections open), to compare with the end.
        if (i == n / 3) warm = resident_kb();
        // Buffers are real and as long as the length says, or the length is one no buffer has (the module must refuse it unread).
        CK_ULONG length = random_length();
        unsigned char *data = next_random() % 5 == 0 ? NULL : buffer;
        if (length <= sizeof buffer) { for (CK_ULONG k = 0; k < length; k++) buffer[k] = (unsigned char)next_random(); }
        else if (length != CK_UNAVAILABLE_INFORMATION && length <= 0x100000000UL) length = sizeof buffer;
        CK_ULONG out_length = next_random() % 2 ? 0 : sizeof buffer;
        CK_ULONG *out_pointer = next_random() % 6 == 0 ? NULL : &out_length;
        unsigned char *out = next_random() % 3 == 0 ? NULL : buffer;
        if (out == NULL && out_pointer) out_length = 0;
        CK_SESSION_HANDLE session = sessions[next_random() % 4];
        CK_OBJECT_HANDLE object = objects[next_random() % 6];
        CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA384, CKG_MGF1_SHA384, next_random() % 2 ? 48 : ULONG_ALL };
        CK_MECHANISM mechanism = { types[next_random() % (sizeof types / sizeof types[0])], NULL, 0 };
        if (mechanism.mechanism == CKM_SHA384_RSA_PKCS_PSS) { mechanism.pParameter = &pss; mechanism.ulParameterLen = sizeof pss; }
        CK_ATTRIBUTE template[2] = { { CKA_LABEL, data, length <= sizeof buffer ? length : length }, { CKA_CLASS, buffer, 8 } };
        CK_ULONG template_count = next_random() % 4 == 0 ? ULONG_ALL : next_random() % 3;
        CK_RV rv;
        switch (next_random() % 16) {
        case 0: rv = CALL(C_SignInit, session, next_random() % 8 ? &mechanism : NULL, object); break;
        case 1: rv = CALL(C_Sign, session, data, length, out, out_pointer); break;
        case 2: rv = CALL(C_SignUpdate, session, data, length); break;
        case 3: rv = CALL(C_SignFinal, session, out, out_pointer); break;
        case 4: rv = CALL(C_DecryptInit, session, next_random() % 8 ? &mechanism : NULL, object); break;
        case 5: rv = CALL(C_Decrypt, session, data, length, out, out_pointer); break;
        case 6: rv = CALL(C_FindObjectsInit, session, template_count == ULONG_ALL || data ? template : NULL, template_count); break;
        case 7: { CK_OBJECT_HANDLE found[8]; rv = CALL(C_FindObjects, session, found, next_random() % 2 ? 8 : 0, out_pointer); break; }
        case 8: rv = CALL(C_FindObjectsFinal, session); break;
        case 9: {
            CK_ATTRIBUTE query[2] = { { CKA_VALUE, out, out_length }, { CKA_LABEL, NULL, 0 } };
            rv = CALL(C_GetAttributeValue, session, object, query, template_count == ULONG_ALL ? ULONG_ALL : 2);
            break;
        }
        case 10: {
            CK_ECDH1_DERIVE_PARAMS params = { CKD_SHA256_KDF, next_random() % 2 ? 0 : length, data, length, data };
            CK_MECHANISM derive = { CKM_ECDH1_DERIVE, &params, sizeof params };
            CK_OBJECT_HANDLE derived;
            rv = CALL(C_DeriveKey, session, &derive, object, template, template_count, &derived);
            break;
        }
        case 11: rv = CALL(C_GenerateRandom, session, data, length); break;
        case 12: { CK_SESSION_INFO info; rv = CALL(C_GetSessionInfo, session, next_random() % 4 ? &info : NULL); break; }
        case 13: {
            CK_SESSION_HANDLE opened;
            rv = CALL(C_OpenSession, s->slot, CKF_SERIAL_SESSION, NULL, NULL, &opened);
            if (rv == CKR_OK) sessions[1 + next_random() % 3] = opened;
            break;
        }
        case 14: rv = CALL(C_CloseSession, sessions[1 + next_random() % 3]); break;
        default: { CK_ULONG size; rv = CALL(C_GetObjectSize, session, object, next_random() % 4 ? &size : NULL); break; }
        }
        tally[rv == CKR_OK ? 0 : rv == CKR_ARGUMENTS_BAD ? 1 : rv == CKR_SESSION_HANDLE_INVALID ? 2 : rv == CKR_BUFFER_TOO_SMALL ? 3 : 4]++;
    }
    alarm(0);
    long end = resident_kb();
    printf("memory: %ld kB resident after %d calls, %ld kB after %d (%+ld kB)\n", warm, n / 3, end, n, end - warm);
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
    printf("memory: not checked under AddressSanitizer (its quarantine keeps freed memory resident)\n");
#else
    check("memory grew by less than 2 MB over the last two thirds of the calls", end - warm < 2048);
#endif
    printf("%d random calls from seed %lu: %lu CKR_OK, %lu CKR_ARGUMENTS_BAD, %lu CKR_SESSION_HANDLE_INVALID, %lu CKR_BUFFER_TOO_SMALL, %lu other\n",
           n, seed, tally[0], tally[1], tally[2], tally[3], tally[4]);
    // The module still works after all that.
    CK_SESSION_HANDLE session = open_session(s->slot);
    CK_MECHANISM mechanism = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    unsigned char signature[512];
    CK_ULONG length = sizeof signature;
    CK_RV rv = CALL(C_SignInit, session, &mechanism, s->rsa);
    if (rv == CKR_OK) rv = CALL(C_Sign, session, buffer, 32, signature, &length);
    expect("a signature after the random calls", rv, CKR_OK);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODULE lifecycle|nulls|buffers|lengths|answers|mechanisms|random SEED N\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (!get || get(&p11) != CKR_OK) { fprintf(stderr, "no C_GetFunctionList\n"); return 2; }
    const char *mode = argv[2];
    if (strcmp(mode, "lifecycle") == 0) {
        lifecycle();
    } else {
        CK_RV rv = CALL(C_Initialize, &init_args);
        if (rv != CKR_OK) { fprintf(stderr, "C_Initialize: 0x%lx\n", rv); return 2; }
        struct setup s;
        if (strcmp(mode, "answers") == 0) answers();
        else if (!prepare(&s)) failures++;
        else if (strcmp(mode, "nulls") == 0) nulls(&s);
        else if (strcmp(mode, "buffers") == 0) buffers(&s);
        else if (strcmp(mode, "lengths") == 0) lengths(&s);
        else if (strcmp(mode, "mechanisms") == 0) mechanisms(&s);
        else if (strcmp(mode, "random") == 0 && argc >= 5) random_calls(&s, strtoul(argv[3], NULL, 10), atoi(argv[4]));
        else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
        CALL(C_Finalize, NULL);
    }
    alarm(0);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
