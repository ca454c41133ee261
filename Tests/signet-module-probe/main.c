// signet-module-probe: drives a PKCS#11 module (libsignet-pkcs11.so in the tests) the way a
// long-running host program does, for what the command-line peers cannot show: sensitive
// attributes, recovery after an agent restart, many threads signing at once, ECDH key values.
//
//   signet-module-probe MODULE sensitive
//   signet-module-probe MODULE restart FILE       sign; print READY; wait for FILE to exist; sign again
//   signet-module-probe MODULE threads N COUNT    N threads sign COUNT times each (RSA and EC)
//   signet-module-probe MODULE loop               sign until killed
//   signet-module-probe MODULE watch FILE         count certificates; print READY; wait for FILE; count again
//   signet-module-probe MODULE derive POINT INFO LENGTH   ECDH with CKD_SHA256_KDF; prints the key (hex)
//
// The token must be unlocked (signet unlock) before; the probe calls C_Login(NULL) like a
// protected-path program does. Exit status 0 when every step did what it printed.
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *p11;

static const char *rv_name(CK_RV rv) {
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_FUNCTION_CANCELED: return "CKR_FUNCTION_CANCELED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    default: {
        static char text[32];
        snprintf(text, sizeof text, "0x%lx", rv);
        return text;
    }
    }
}

static CK_SLOT_ID first_slot(void) {
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    if (p11->C_GetSlotList(CK_TRUE, slots, &count) != CKR_OK || count == 0) return (CK_SLOT_ID)-1;
    return slots[0];
}

static CK_RV open_session(CK_SESSION_HANDLE *session) {
    CK_SLOT_ID slot = first_slot();
    if (slot == (CK_SLOT_ID)-1) return CKR_TOKEN_NOT_PRESENT;
    CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, session);
    if (rv != CKR_OK) return rv;
    rv = p11->C_Login(*session, CKU_USER, NULL, 0);
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE session, CK_KEY_TYPE type) {
    CK_OBJECT_CLASS class = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE template[] = { { CKA_CLASS, &class, sizeof class }, { CKA_KEY_TYPE, &type, sizeof type } };
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    if (p11->C_FindObjectsInit(session, template, 2) != CKR_OK) return CK_INVALID_HANDLE;
    p11->C_FindObjects(session, &key, 1, &found);
    p11->C_FindObjectsFinal(session);
    return found == 1 ? key : CK_INVALID_HANDLE;
}

static CK_RV sign(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mechanism, CK_ULONG *length) {
    CK_MECHANISM mech = { mechanism, NULL, 0 };
    unsigned char data[32] = { 1, 2, 3 };
    unsigned char signature[512];
    *length = sizeof signature;
    CK_RV rv = p11->C_SignInit(session, &mech, key);
    if (rv != CKR_OK) return rv;
    return p11->C_Sign(session, data, sizeof data, signature, length);
}

static int sensitive(void) {
    CK_SESSION_HANDLE session;
    CK_RV rv = open_session(&session);
    if (rv != CKR_OK) { printf("open: %s\n", rv_name(rv)); return 1; }
    int failures = 0;
    CK_KEY_TYPE types[] = { CKK_RSA, CKK_EC };
    CK_ATTRIBUTE_TYPE secrets[] = { CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_COEFFICIENT, CKA_VALUE };
    const char *names[] = { "CKA_PRIVATE_EXPONENT", "CKA_PRIME_1", "CKA_PRIME_2", "CKA_COEFFICIENT", "CKA_VALUE" };
    for (int t = 0; t < 2; t++) {
        CK_OBJECT_HANDLE key = find_key(session, types[t]);
        if (key == CK_INVALID_HANDLE) { printf("%s: no private key\n", t ? "ec" : "rsa"); failures++; continue; }
        for (int i = 0; i < 5; i++) {
            unsigned char buffer[1024];
            CK_ATTRIBUTE attribute = { secrets[i], buffer, sizeof buffer };
            rv = p11->C_GetAttributeValue(session, key, &attribute, 1);
            printf("%s %s: %s\n", t ? "ec" : "rsa", names[i], rv_name(rv));
            if (rv != CKR_ATTRIBUTE_SENSITIVE || attribute.ulValueLen != CK_UNAVAILABLE_INFORMATION) failures++;
        }
        CK_BBOOL is_sensitive = 0, extractable = 1;
        CK_ATTRIBUTE flags[] = { { CKA_SENSITIVE, &is_sensitive, 1 }, { CKA_EXTRACTABLE, &extractable, 1 } };
        rv = p11->C_GetAttributeValue(session, key, flags, 2);
        printf("%s CKA_SENSITIVE=%d CKA_EXTRACTABLE=%d (%s)\n", t ? "ec" : "rsa", is_sensitive, extractable, rv_name(rv));
        if (rv != CKR_OK || !is_sensitive || extractable) failures++;
    }
    return failures ? 1 : 0;
}

static int restart(const char *go) {
    CK_SESSION_HANDLE session;
    CK_RV rv = open_session(&session);
    CK_OBJECT_HANDLE key = rv == CKR_OK ? find_key(session, CKK_RSA) : CK_INVALID_HANDLE;
    CK_ULONG length = 0;
    rv = key == CK_INVALID_HANDLE ? CKR_KEY_HANDLE_INVALID : sign(session, key, CKM_SHA256_RSA_PKCS, &length);
    printf("before: %s %lu\n", rv_name(rv), length);
    if (rv != CKR_OK) return 1;
    printf("READY\n");
    fflush(stdout);
    for (int i = 0; access(go, F_OK) != 0; i++) {
        if (i > 600) { printf("no %s after 60 s\n", go); return 1; }
        usleep(100000);
    }
    // The old session belongs to the agent that went away.
    rv = sign(session, key, CKM_SHA256_RSA_PKCS, &length);
    printf("old session: %s\n", rv_name(rv));
    // As NSS does for a token seen removed and inserted again: a new session, the key found again.
    CK_SESSION_HANDLE fresh;
    rv = open_session(&fresh);
    printf("new session: %s\n", rv_name(rv));
    if (rv != CKR_OK) return 1;
    CK_OBJECT_HANDLE again = find_key(fresh, CKK_RSA);
    printf("key handle %s\n", again == key ? "unchanged" : "changed");
    rv = sign(fresh, again, CKM_SHA256_RSA_PKCS, &length);
    printf("after: %s %lu\n", rv_name(rv), length);
    return rv == CKR_OK ? 0 : 1;
}

struct job { int count; int failures; };

static void *signer(void *argument) {
    struct job *job = argument;
    CK_SESSION_HANDLE session;
    if (open_session(&session) != CKR_OK) { job->failures = job->count; return NULL; }
    CK_OBJECT_HANDLE rsa = find_key(session, CKK_RSA), ec = find_key(session, CKK_EC);
    for (int i = 0; i < job->count; i++) {
        CK_ULONG length = 0;
        int use_ec = i % 2;
        CK_RV rv = sign(session, use_ec ? ec : rsa, use_ec ? CKM_ECDSA : CKM_SHA256_RSA_PKCS, &length);
        if (rv != CKR_OK || length != (use_ec ? 64UL : 256UL)) job->failures++;
    }
    p11->C_CloseSession(session);
    return NULL;
}

static int threads(int n, int count) {
    pthread_t ids[64];
    struct job jobs[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        jobs[i].count = count;
        jobs[i].failures = 0;
        pthread_create(&ids[i], NULL, signer, &jobs[i]);
    }
    int failures = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ids[i], NULL);
        failures += jobs[i].failures;
    }
    printf("%d threads, %d signatures, %d failed\n", n, n * count, failures);
    return failures ? 1 : 0;
}

static int loop(void) {
    CK_SESSION_HANDLE session;
    if (open_session(&session) != CKR_OK) return 1;
    CK_OBJECT_HANDLE key = find_key(session, CKK_RSA);
    printf("SIGNING\n");
    fflush(stdout);
    for (;;) {
        CK_ULONG length;
        if (sign(session, key, CKM_SHA256_RSA_PKCS, &length) != CKR_OK) return 1;
    }
}

static int count_certificates(CK_SESSION_HANDLE session) {
    CK_OBJECT_CLASS class = CKO_CERTIFICATE;
    CK_ATTRIBUTE template[] = { { CKA_CLASS, &class, sizeof class } };
    CK_OBJECT_HANDLE found[64];
    CK_ULONG count = 0;
    if (p11->C_FindObjectsInit(session, template, 1) != CKR_OK) return -1;
    p11->C_FindObjects(session, found, 64, &count);
    p11->C_FindObjectsFinal(session);
    return (int)count;
}

static int watch(const char *go) {
    CK_SESSION_HANDLE session;
    if (open_session(&session) != CKR_OK) return 1;
    int before = count_certificates(session);
    printf("before: %d certificates\n", before);
    printf("READY\n");
    fflush(stdout);
    for (int i = 0; access(go, F_OK) != 0; i++) {
        if (i > 600) return 1;
        usleep(100000);
    }
    // What NSS does while it runs: it asks for session and slot information now and then, and searches
    // again. The module lists the tokens again once its listing has aged; poll (at most 10 s) until it has.
    int after = before;
    for (int i = 0; i < 100 && after == before; i++) {
        if (i > 0) usleep(100000);
        CK_SESSION_INFO info;
        p11->C_GetSessionInfo(session, &info);
        after = count_certificates(session);
    }
    printf("after: %d certificates\n", after);
    return 0;
}

static int unhex(const char *text, unsigned char *out, int max) {
    int n = 0;
    for (; text[0] && text[1] && n < max; text += 2) {
        unsigned int byte;
        if (sscanf(text, "%2x", &byte) != 1) return -1;
        out[n++] = (unsigned char)byte;
    }
    return n;
}

static int derive(const char *point_hex, const char *info_hex, CK_ULONG length) {
    CK_SESSION_HANDLE session;
    if (open_session(&session) != CKR_OK) return 1;
    CK_OBJECT_HANDLE key = find_key(session, CKK_EC);
    unsigned char point[200], info[200];
    int point_length = unhex(point_hex, point, sizeof point), info_length = unhex(info_hex, info, sizeof info);
    CK_ECDH1_DERIVE_PARAMS params = { CKD_SHA256_KDF, (CK_ULONG)info_length, info, (CK_ULONG)point_length, point };
    CK_MECHANISM mech = { CKM_ECDH1_DERIVE, &params, sizeof params };
    CK_OBJECT_CLASS class = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    CK_ATTRIBUTE template[] = {
        { CKA_CLASS, &class, sizeof class }, { CKA_KEY_TYPE, &type, sizeof type }, { CKA_VALUE_LEN, &length, sizeof length },
        { CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 },
    };
    CK_OBJECT_HANDLE derived;
    CK_RV rv = p11->C_DeriveKey(session, &mech, key, template, 5, &derived);
    if (rv != CKR_OK) { printf("derive: %s\n", rv_name(rv)); return 1; }
    unsigned char value[128];
    CK_ATTRIBUTE attribute = { CKA_VALUE, value, sizeof value };
    rv = p11->C_GetAttributeValue(session, derived, &attribute, 1);
    if (rv != CKR_OK) { printf("value: %s\n", rv_name(rv)); return 1; }
    for (CK_ULONG i = 0; i < attribute.ulValueLen; i++) printf("%02x", value[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODULE sensitive|restart FILE|threads N COUNT|loop|derive POINT INFO LENGTH\n", argv[0]); return 2; }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (!get || get(&p11) != CKR_OK) { fprintf(stderr, "no C_GetFunctionList\n"); return 2; }
    CK_C_INITIALIZE_ARGS args = { NULL, NULL, NULL, NULL, CKF_OS_LOCKING_OK, NULL };
    CK_RV rv = p11->C_Initialize(&args);
    if (rv != CKR_OK) { fprintf(stderr, "C_Initialize: %s\n", rv_name(rv)); return 2; }
    int status = 2;
    if (strcmp(argv[2], "sensitive") == 0) status = sensitive();
    else if (strcmp(argv[2], "restart") == 0 && argc >= 4) status = restart(argv[3]);
    else if (strcmp(argv[2], "threads") == 0 && argc >= 5) status = threads(atoi(argv[3]), atoi(argv[4]));
    else if (strcmp(argv[2], "loop") == 0) status = loop();
    else if (strcmp(argv[2], "watch") == 0 && argc >= 4) status = watch(argv[3]);
    else if (strcmp(argv[2], "derive") == 0 && argc >= 6) status = derive(argv[3], argv[4], (CK_ULONG)atol(argv[5]));
    p11->C_Finalize(NULL);
    return status;
}
