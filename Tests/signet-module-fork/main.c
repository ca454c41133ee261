// signet-module-fork: a host that forks while other threads are inside the PKCS#11 module, as
// browsers and mail programs fork helpers while their other threads run.
//
//   signet-module-fork MODULE THREADS FORKS
//
// THREADS threads call C_GetInfo, C_GetSlotList, C_GetTokenInfo, half of them also signing (RSA,
// CKM_SHA256_RSA_PKCS), in a loop; meanwhile the main thread forks FORKS times. Each child calls C_Initialize,
// C_GetSlotList and C_Finalize and exits 0; a child that has not exited within 10 s is deadlocked
// (it is killed). Prints "FORKS forks, N deadlocked, M failed, K signatures" and exits 0 when
// every child exited 0 in time. The token must be unlocked (signet unlock) before.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *p11;
static atomic_int stop;
static atomic_long signatures;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static CK_SLOT_ID first_slot(void) {
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    if (p11->C_GetSlotList(CK_TRUE, slots, &count) != CKR_OK || count == 0) return (CK_SLOT_ID)-1;
    return slots[0];
}

// Even workers sign between their calls; odd ones only call C_GetInfo, C_GetSlotList and
// C_GetTokenInfo (answered from the module's state, no agent round trip: the module's locks are
// taken and released all the time, which is what a fork must survive).
static void *worker(void *index) {
    int signing = ((long)index % 2) == 0;
    CK_SLOT_ID slot = first_slot();
    CK_SESSION_HANDLE session;
    if (slot == (CK_SLOT_ID)-1 || p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session) != CKR_OK) {
        fprintf(stderr, "worker: no session\n");
        return NULL;
    }
    CK_RV login = p11->C_Login(session, CKU_USER, NULL, 0);
    if (login != CKR_OK && login != CKR_USER_ALREADY_LOGGED_IN) fprintf(stderr, "worker: C_Login 0x%lx\n", login);
    CK_OBJECT_CLASS class = CKO_PRIVATE_KEY;
    CK_KEY_TYPE type = CKK_RSA;
    CK_ATTRIBUTE template[] = { { CKA_CLASS, &class, sizeof class }, { CKA_KEY_TYPE, &type, sizeof type } };
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    if (p11->C_FindObjectsInit(session, template, 2) == CKR_OK) {
        p11->C_FindObjects(session, &key, 1, &found);
        p11->C_FindObjectsFinal(session);
    }
    while (!atomic_load(&stop)) {
        CK_INFO info;
        p11->C_GetInfo(&info);
        CK_SLOT_ID slots[16];
        CK_ULONG count = 16;
        p11->C_GetSlotList(CK_TRUE, slots, &count);
        CK_TOKEN_INFO token;
        p11->C_GetTokenInfo(slot, &token);
        if (signing && found == 1) {
            CK_MECHANISM mechanism = { CKM_SHA256_RSA_PKCS, NULL, 0 };
            unsigned char data[32] = { 1, 2, 3 }, signature[512];
            CK_ULONG length = sizeof signature;
            if (p11->C_SignInit(session, &mechanism, key) == CKR_OK &&
                p11->C_Sign(session, data, sizeof data, signature, &length) == CKR_OK)
                atomic_fetch_add(&signatures, 1);
        }
    }
    p11->C_CloseSession(session);
    return NULL;
}

// The child: the module must answer at once, on its own state.
static int child(void) {
    alarm(20);  // a last resort only: the parent's 10 s bound decides
    CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
    CK_RV rv = p11->C_Initialize(&args);
    if (rv != CKR_OK) { fprintf(stderr, "child: C_Initialize 0x%lx\n", rv); return 2; }
    CK_ULONG count = 0;
    rv = p11->C_GetSlotList(CK_FALSE, NULL, &count);
    if (rv != CKR_OK) { fprintf(stderr, "child: C_GetSlotList 0x%lx\n", rv); return 3; }
    rv = p11->C_Finalize(NULL);
    if (rv != CKR_OK) { fprintf(stderr, "child: C_Finalize 0x%lx\n", rv); return 4; }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODULE THREADS FORKS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]), forks = atoi(argv[3]);
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (!get || get(&p11) != CKR_OK) { fprintf(stderr, "no function list\n"); return 1; }
    CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
    if (p11->C_Initialize(&args) != CKR_OK) { fprintf(stderr, "C_Initialize failed\n"); return 1; }

    pthread_t workers[64];
    if (threads > 64) threads = 64;
    for (int i = 0; i < threads; i++) pthread_create(&workers[i], NULL, worker, (void *)(long)i);
    while (threads > 0 && atomic_load(&signatures) == 0) usleep(1000);  // the workers are inside the module

    int deadlocked = 0, failed = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(child());
        if (pid < 0) { perror("fork"); failed++; continue; }
        double deadline = now() + 10;
        int status = 0;
        pid_t done = 0;
        while ((done = waitpid(pid, &status, WNOHANG)) == 0 && now() < deadline) usleep(2000);
        if (done == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            deadlocked++;
            fprintf(stderr, "fork %d: the child did not finish within 10 s\n", i);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            fprintf(stderr, "fork %d: the child ended with status 0x%x\n", i, status);
        }
        usleep(1000 * (rand() % 5));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(workers[i], NULL);
    p11->C_Finalize(NULL);
    printf("%d forks, %d deadlocked, %d failed, %ld signatures\n", forks, deadlocked, failed, atomic_load(&signatures));
    return deadlocked == 0 && failed == 0 ? 0 : 1;
}
