#include "CTestPKCS11Wrapper.h"
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static CK_FUNCTION_LIST real;
static CK_FUNCTION_LIST wrapped;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;

/// The serial number of the session's token (slot IDs differ between processes).
static void serial_of(CK_SESSION_HANDLE session, char serial[17]) {
    CK_SESSION_INFO info;
    CK_TOKEN_INFO token;
    strcpy(serial, "unknown");
    if (real.C_GetSessionInfo(session, &info) != CKR_OK) return;
    if (real.C_GetTokenInfo(info.slotID, &token) != CKR_OK) return;
    memcpy(serial, token.serialNumber, 16);
    serial[16] = 0;
    for (int i = 15; i >= 0 && serial[i] == ' '; i--) serial[i] = 0;
}

static void record(const char *what, CK_SESSION_HANDLE session) {
    const char *path = getenv("SIGNET_WRAPPER_LOG");
    if (!path) return;
    char serial[17];
    serial_of(session, serial);
    char line[128];
    int n = snprintf(line, sizeof line, "%s %s\n", what, serial);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) < 0) { /* a test log; nothing to do */ }
    fsync(fd);
    close(fd);
}

static int flag(const char *name);

/// With a file named `slow-initialize` in SIGNET_WRAPPER_FLAGS_DIR, C_Initialize takes 1.5 s more,
/// as a module probing an unknown card does.
static CK_RV wrap_Initialize(void *args) {
    if (flag("slow-initialize")) usleep(1500 * 1000);
    CK_RV rv = real.C_Initialize(args);
    // The test process may have initialised the same SoftHSM2 directly.
    return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

static CK_RV wrap_Finalize(void *reserved) {
    (void)reserved;
    return CKR_OK;  // leave the shared module initialised for its other users
}

static int absent(void);

static CK_RV wrap_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG length) {
    absent();
    record(user == CKU_SO ? "C_Login SO" : "C_Login USER", session);
    return real.C_Login(session, user, pin, length);
}

static CK_RV wrap_SetPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR old, CK_ULONG oldLength, CK_UTF8CHAR_PTR new, CK_ULONG newLength) {
    record("C_SetPIN", session);
    return real.C_SetPIN(session, old, oldLength, new, newLength);
}

static CK_RV wrap_InitPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin, CK_ULONG length) {
    record("C_InitPIN", session);
    return real.C_InitPIN(session, pin, length);
}

/// Whether a file named `name` is in SIGNET_WRAPPER_FLAGS_DIR.
static int flag(const char *name) {
    const char *dir = getenv("SIGNET_WRAPPER_FLAGS_DIR");
    if (!dir) return 0;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/// A double for pulling a card, which SoftHSM2 cannot do (it never reports a token
/// gone): with a file named `absent` in SIGNET_WRAPPER_FLAGS_DIR, every initialised
/// token is gone. Its slots leave the present-token list, their slot info loses
/// CKF_TOKEN_PRESENT, token info and new sessions answer CKR_TOKEN_NOT_PRESENT, and
/// the sessions opened before are closed (their handles die, the user is logged out),
/// as when a reader loses its card. Removing the file returns the same tokens.
static pthread_mutex_t absence_lock = PTHREAD_MUTEX_INITIALIZER;
static int was_absent;

static int initialised(CK_SLOT_ID slot) {
    CK_TOKEN_INFO info;
    return real.C_GetTokenInfo(slot, &info) == CKR_OK && (info.flags & CKF_TOKEN_INITIALIZED);
}

static int absent(void) {
    int now = flag("absent");
    pthread_mutex_lock(&absence_lock);
    if (now && !was_absent) {
        CK_SLOT_ID slots[64];
        CK_ULONG count = 64;
        if (real.C_GetSlotList(CK_TRUE, slots, &count) == CKR_OK) {
            for (CK_ULONG i = 0; i < count; i++) {
                if (initialised(slots[i])) real.C_CloseAllSessions(slots[i]);
            }
        }
        record("token pulled", CK_INVALID_HANDLE);
    }
    was_absent = now;
    pthread_mutex_unlock(&absence_lock);
    return now;
}

static CK_RV wrap_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
    if (!tokenPresent || !absent()) return real.C_GetSlotList(tokenPresent, list, count);
    CK_SLOT_ID slots[64];
    CK_ULONG all = 64, kept = 0;
    CK_RV rv = real.C_GetSlotList(CK_TRUE, slots, &all);
    if (rv != CKR_OK) return rv;
    for (CK_ULONG i = 0; i < all; i++) {
        if (!initialised(slots[i])) slots[kept++] = slots[i];
    }
    if (list) {
        if (*count < kept) { *count = kept; return CKR_BUFFER_TOO_SMALL; }
        memcpy(list, slots, kept * sizeof(CK_SLOT_ID));
    }
    *count = kept;
    return CKR_OK;
}

static CK_RV wrap_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
    CK_RV rv = real.C_GetSlotInfo(slot, info);
    if (rv == CKR_OK && absent() && initialised(slot)) info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
    return rv;
}

static CK_RV wrap_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session) {
    if (absent() && initialised(slot)) return CKR_TOKEN_NOT_PRESENT;
    return real.C_OpenSession(slot, flags, application, notify, session);
}

/// Operations on a session notice a pull at once, as a card's would: the sessions are closed first.
static CK_RV wrap_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
    absent();
    return real.C_SignInit(session, mechanism, key);
}

static CK_RV wrap_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
    absent();
    return real.C_DecryptInit(session, mechanism, key);
}

static CK_RV wrap_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR template, CK_ULONG count) {
    absent();
    return real.C_FindObjectsInit(session, template, count);
}

static CK_RV wrap_DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR template,
                            CK_ULONG count, CK_OBJECT_HANDLE_PTR key) {
    absent();
    return real.C_DeriveKey(session, mechanism, base, template, count, key);
}

/// With a file named `fail-token-info` in SIGNET_WRAPPER_FLAGS_DIR, C_GetTokenInfo answers
/// CKR_DEVICE_ERROR: a module failing for a moment without the token being gone.
static CK_RV wrap_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
    const char *dir = getenv("SIGNET_WRAPPER_FLAGS_DIR");
    char path[512];
    if (absent() && initialised(slot)) return CKR_TOKEN_NOT_PRESENT;
    if (dir) {
        snprintf(path, sizeof path, "%s/fail-token-info", dir);
        if (access(path, F_OK) == 0) {
            record("C_GetTokenInfo fails", CK_INVALID_HANDLE);
            return CKR_DEVICE_ERROR;
        }
    }
    CK_RV rv = real.C_GetTokenInfo(slot, info);
    if (rv != CKR_OK || !dir) return rv;
    snprintf(path, sizeof path, "%s/%lu", dir, (unsigned long)slot);
    FILE *file = fopen(path, "re");
    if (!file) return rv;
    unsigned long flags = 0;
    if (fscanf(file, "%lx", &flags) == 1) info->flags |= flags;
    fclose(file);
    return rv;
}

/// With SIGNET_WRAPPER_REFUSE_CERTIFICATES set, storing a certificate fails as
/// on a token whose memory is full: how tests make "key written, certificate not" happen.
static CK_RV wrap_CreateObject(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR template, CK_ULONG count, CK_OBJECT_HANDLE_PTR object) {
    if (getenv("SIGNET_WRAPPER_REFUSE_CERTIFICATES")) {
        for (CK_ULONG i = 0; i < count; i++) {
            if (template[i].type == CKA_CLASS && template[i].ulValueLen == sizeof(CK_OBJECT_CLASS) && template[i].pValue
                && *(CK_OBJECT_CLASS *)template[i].pValue == CKO_CERTIFICATE) {
                record("C_CreateObject certificate refused", session);
                return CKR_DEVICE_MEMORY;
            }
        }
    }
    return real.C_CreateObject(session, template, count, object);
}

/// With a file named `hang-sign` in SIGNET_WRAPPER_FLAGS_DIR, C_Sign does not return for ten
/// minutes: a module that hangs for good, as OpenSC 0.23 can after a card vanishes.
static CK_RV wrap_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length, CK_BYTE_PTR signature, CK_ULONG_PTR signatureLength) {
    const char *dir = getenv("SIGNET_WRAPPER_FLAGS_DIR");
    if (dir && signature) {
        char path[512];
        snprintf(path, sizeof path, "%s/hang-sign", dir);
        if (access(path, F_OK) == 0) {
            record("C_Sign hangs", session);
            sleep(600);
        }
    }
    return real.C_Sign(session, data, length, signature, signatureLength);
}

/// With a file named `fail-decrypt` in SIGNET_WRAPPER_FLAGS_DIR, C_Decrypt answers
/// CKR_DEVICE_ERROR: a token that fails during decryption, whatever the message.
static CK_RV wrap_Decrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG length, CK_BYTE_PTR out, CK_ULONG_PTR outLength) {
    if (flag("fail-decrypt")) {
        record("C_Decrypt fails", session);
        CK_BYTE scratch[1024];
        CK_ULONG scratchLength = sizeof scratch;
        real.C_Decrypt(session, data, length, scratch, &scratchLength);  // ends the operation
        return CKR_DEVICE_ERROR;
    }
    return real.C_Decrypt(session, data, length, out, outLength);
}

static void load(void) {
    const char *path = getenv("SIGNET_WRAPPED_MODULE");
    if (!path) return;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return;
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR list = NULL;
    if (!get || get(&list) != CKR_OK || !list) return;
    real = *list;
    wrapped = *list;
    wrapped.C_Initialize = wrap_Initialize;
    wrapped.C_Finalize = wrap_Finalize;
    wrapped.C_Login = wrap_Login;
    wrapped.C_SetPIN = wrap_SetPIN;
    wrapped.C_InitPIN = wrap_InitPIN;
    wrapped.C_GetTokenInfo = wrap_GetTokenInfo;
    wrapped.C_GetSlotList = wrap_GetSlotList;
    wrapped.C_GetSlotInfo = wrap_GetSlotInfo;
    wrapped.C_OpenSession = wrap_OpenSession;
    wrapped.C_CreateObject = wrap_CreateObject;
    wrapped.C_Sign = wrap_Sign;
    wrapped.C_Decrypt = wrap_Decrypt;
    wrapped.C_SignInit = wrap_SignInit;
    wrapped.C_DecryptInit = wrap_DecryptInit;
    wrapped.C_FindObjectsInit = wrap_FindObjectsInit;
    wrapped.C_DeriveKey = wrap_DeriveKey;
    loaded = 1;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    pthread_once(&once, load);
    if (!loaded) return CKR_GENERAL_ERROR;
    *list = &wrapped;
    return CKR_OK;
}
