// signet-bench-module: signing through a PKCS#11 module in process, with 1 and
// N threads, against the same token reached directly (SoftHSM2) and through
// p11-kit's remoting (p11-kit-client.so and `p11-kit server`), and against a
// bare Unix-socket ping-pong that prices one round trip, all in one run.
//
// Not a test: the machines are shared and noisy, so methods alternate within
// each round, ratios are taken round by round, and medians are printed.
// Every thread opens its own session on the shared module (PKCS#11 allows
// several threads per module when it is initialised with CKF_OS_LOCKING_OK).
//
// Usage: signet-bench-module [--module PATH] [--name NAME] [--base PATH] [--base-name NAME]
//            [--direct PATH] [--p11-kit-client PATH]
//            [--token LABEL] (--pin-fd N | --pin-file FILE) [--rounds N]
//            [--seconds S] [--threads N]
// --base loads a second build of the module (another commit's, e.g. main's) in the same process,
// measured in turn with the others, and prints the module's rate over the base's, round by round.
// The PIN is read from a descriptor or a file (one line), never from argv.
// Run it through Benchmarks/run-module-bench, which sets up the token, the
// agent and the p11-kit server, and gives each module what it needs.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 31
#define FRAME_BYTES 300

// MARK: Small helpers.

static void fail(const char *format, const char *detail) {
    fprintf(stderr, "signet-bench-module: ");
    fprintf(stderr, format, detail);
    fprintf(stderr, "\n");
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count) {
    if (count == 0) return 0;
    double copy[MAX_ROUNDS];
    memcpy(copy, values, sizeof(double) * (size_t)count);
    qsort(copy, (size_t)count, sizeof(double), compare_doubles);
    return copy[count / 2];
}

/// VmRSS of this process in kB, from /proc/self/status.
static long resident_kilobytes(void) {
    FILE *file = fopen("/proc/self/status", "r");
    if (!file) return -1;
    char line[256];
    long kilobytes = -1;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, "VmRSS:", 6) == 0) { kilobytes = strtol(line + 6, NULL, 10); break; }
    }
    fclose(file);
    return kilobytes;
}

static int write_all(int fd, const void *buffer, size_t length) {
    const char *bytes = buffer;
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buffer, size_t length) {
    char *bytes = buffer;
    while (length > 0) {
        ssize_t n = read(fd, bytes, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

/// Reads `length` bytes, polling without sleeping for up to `spin` seconds first, then blocking
/// (as the agent's connection threads and its clients do, so the polling ping-pong prices a round
/// trip as the module's path makes it).
static int read_polling(int fd, void *buffer, size_t length, double spin) {
    char *bytes = buffer;
    if (spin > 0) {
        double until = now() + spin;
        while (length > 0) {
            ssize_t n = recv(fd, bytes, length, MSG_DONTWAIT);
            if (n > 0) { bytes += n; length -= (size_t)n; continue; }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) return -1;
            if (now() >= until) break;
        }
    }
    return read_all(fd, bytes, length);
}

// MARK: The PIN: read once from a descriptor or a file, kept in locked memory, wiped at exit.

static unsigned char pin[256];
static size_t pin_length;

static void read_pin(int fd) {
    mlock(pin, sizeof pin);
    ssize_t n;
    while ((n = read(fd, pin + pin_length, sizeof pin - 1 - pin_length)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) pin_length += (size_t)n;
        if (memchr(pin, '\n', pin_length)) break;
    }
    unsigned char *newline = memchr(pin, '\n', pin_length);
    if (newline) pin_length = (size_t)(newline - pin);
    if (pin_length == 0) fail("%s", "no PIN on the descriptor or in the file");
}

static void wipe_pin(void) { explicit_bzero(pin, sizeof pin); }

// MARK: Modules, tokens, keys.

enum { RSA, EC, CASES };
static const char *case_names[CASES] = { "RSA-2048", "P-256" };

static const unsigned char digest_info[51] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
};

typedef struct {
    const char *name;
    const char *path;
    CK_FUNCTION_LIST *functions;
    CK_SLOT_ID slot;
    /// Held open for the whole run: closing a module's last session logs it out.
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE keys[CASES];
    long rss_kilobytes;
} Module;

static const char *token_label = "bench";

static void check(CK_RV rv, const char *call, const Module *module) {
    if (rv == CKR_OK) return;
    fprintf(stderr, "signet-bench-module: %s: %s returned 0x%lx\n", module->name, call, (unsigned long)rv);
    exit(1);
}

/// Loads the module, initialises it for use from several threads, finds the token
/// by label (or the only token), opens a session, logs in and finds one RSA and one EC private key.
static void open_module(Module *module) {
    void *library = dlopen(module->path, RTLD_NOW | RTLD_LOCAL);
    if (!library) fail("%s", dlerror());
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (!get) fail("no C_GetFunctionList in %s", module->path);
    check(get(&module->functions), "C_GetFunctionList", module);
    CK_FUNCTION_LIST *f = module->functions;
    if (!f->C_Initialize || !f->C_GetSlotList || !f->C_GetTokenInfo || !f->C_OpenSession || !f->C_Login || !f->C_FindObjectsInit
        || !f->C_FindObjects || !f->C_FindObjectsFinal || !f->C_GetAttributeValue || !f->C_SignInit || !f->C_Sign) {
        fail("%s lacks a function this benchmark calls", module->path);
    }
    CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
    check(f->C_Initialize(&args), "C_Initialize", module);

    CK_ULONG count = 0;
    check(f->C_GetSlotList(CK_TRUE, NULL, &count), "C_GetSlotList", module);
    CK_SLOT_ID slots[64];
    if (count > 64) count = 64;
    check(f->C_GetSlotList(CK_TRUE, slots, &count), "C_GetSlotList", module);
    int found = 0;
    for (CK_ULONG i = 0; i < count && !found; i++) {
        CK_TOKEN_INFO info;
        if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
        size_t length = strlen(token_label);
        if (length <= sizeof info.label && memcmp(info.label, token_label, length) == 0) {
            int padded = 1;
            for (size_t j = length; j < sizeof info.label; j++) padded &= info.label[j] == ' ';
            if (padded) { module->slot = slots[i]; found = 1; }
        }
    }
    if (!found && count == 1) { module->slot = slots[0]; found = 1; }
    if (!found) fail("no token labelled \"%s\"", token_label);

    check(f->C_OpenSession(module->slot, CKF_SERIAL_SESSION, NULL, NULL, &module->session), "C_OpenSession", module);
    CK_SESSION_INFO session_info = { 0 };
    int logged_in = f->C_GetSessionInfo && f->C_GetSessionInfo(module->session, &session_info) == CKR_OK
        && (session_info.state == CKS_RO_USER_FUNCTIONS || session_info.state == CKS_RW_USER_FUNCTIONS);
    if (!logged_in) {
        CK_RV rv = f->C_Login(module->session, CKU_USER, pin, pin_length);
        if (rv != CKR_USER_ALREADY_LOGGED_IN) check(rv, "C_Login", module);
    }

    for (int c = 0; c < CASES; c++) {
        CK_OBJECT_CLASS class = CKO_PRIVATE_KEY;
        CK_KEY_TYPE type = c == RSA ? CKK_RSA : CKK_EC;
        CK_ATTRIBUTE template[] = { { CKA_CLASS, &class, sizeof class }, { CKA_KEY_TYPE, &type, sizeof type } };
        check(f->C_FindObjectsInit(module->session, template, 2), "C_FindObjectsInit", module);
        CK_OBJECT_HANDLE handles[8];
        CK_ULONG n = 0;
        check(f->C_FindObjects(module->session, handles, 8, &n), "C_FindObjects", module);
        check(f->C_FindObjectsFinal(module->session), "C_FindObjectsFinal", module);
        if (n == 0) fail("no %s private key on the token", case_names[c]);
        module->keys[c] = handles[0];
        if (c == RSA) {  // the first 2048-bit one
            for (CK_ULONG k = 0; k < n; k++) {
                CK_BYTE modulus[1024];
                CK_ATTRIBUTE attribute = { CKA_MODULUS, modulus, sizeof modulus };
                if (f->C_GetAttributeValue(module->session, handles[k], &attribute, 1) == CKR_OK && attribute.ulValueLen == 256) {
                    module->keys[c] = handles[k];
                    break;
                }
            }
        }
    }
}

static CK_RV sign_once(const Module *module, CK_SESSION_HANDLE session, int which) {
    CK_MECHANISM mechanism = { which == RSA ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0 };
    const unsigned char *data = which == RSA ? digest_info : digest_info + 19;
    CK_ULONG length = which == RSA ? sizeof digest_info : 32;
    unsigned char signature[1024];
    CK_ULONG signature_length = sizeof signature;
    CK_RV rv = module->functions->C_SignInit(session, &mechanism, module->keys[which]);
    if (rv != CKR_OK) return rv;
    return module->functions->C_Sign(session, (CK_BYTE_PTR)data, length, signature, &signature_length);
}

/// The memory a module adds to the process that loads it: VmRSS before dlopen and after
/// C_Initialize, login and one P-256 signature, in a child forked before anything is loaded.
static long measure_rss(Module *module) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        long before = resident_kilobytes();
        open_module(module);
        check(sign_once(module, module->session, EC), "C_Sign", module);
        long added = resident_kilobytes() - before;
        write_all(fds[1], &added, sizeof added);
        wipe_pin();
        _exit(0);
    }
    close(fds[1]);
    long added = -1;
    if (child < 0 || read_all(fds[0], &added, sizeof added) != 0) added = -1;
    close(fds[0]);
    int status;
    if (child > 0) waitpid(child, &status, 0);
    return added;
}

// MARK: The echo server for the ping-pong baselines: a process, one thread per connection (as the agent).

static char echo_path[108];
/// The polling windows of the agent's connection threads and of its clients (SignetAgentClient).
static const double server_spin = 0.000050, client_spin = 0.000200;

static void *echo_connection(void *argument) {
    int fd = (int)(intptr_t)argument;
    char frame[FRAME_BYTES], mode = 0;
    if (read_all(fd, &mode, 1) == 0) {
        double spin = mode == 'p' ? server_spin : 0;
        while (read_polling(fd, frame, sizeof frame, spin) == 0 && write_all(fd, frame, sizeof frame) == 0) {}
    }
    close(fd);
    return NULL;
}

static pid_t start_echo_server(void) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf(address.sun_path, sizeof address.sun_path, "%s", echo_path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) {
        fail("cannot listen on %s", echo_path);
    }
    pid_t child = fork();
    if (child == 0) {
        for (;;) {
            int fd = accept(listener, NULL, NULL);
            if (fd < 0) { if (errno == EINTR) continue; _exit(0); }
            pthread_t thread;
            pthread_create(&thread, NULL, echo_connection, (void *)(intptr_t)fd);
            pthread_detach(thread);
        }
    }
    close(listener);
    return child;
}

/// A connection to the echo server; `polling`: both ends poll before they sleep.
static int connect_echo(int polling) {
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf(address.sun_path, sizeof address.sun_path, "%s", echo_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("cannot connect to %s", echo_path);
    char mode = polling ? 'p' : 'b';
    if (write_all(fd, &mode, 1) != 0) fail("cannot write to %s", echo_path);
    return fd;
}

// MARK: Measuring: N threads, each with its own session (or connection), for `seconds`.

typedef struct {
    const Module *module;  // NULL: the ping-pong
    int which;             // the case; for the ping-pong, whether it polls
    double spin;
    double seconds;
    pthread_barrier_t *barrier;
    CK_SESSION_HANDLE session;
    int fd;
    double *latencies;
    size_t count, capacity;
    double elapsed;
    CK_RV error;
} Worker;

static void *run_worker(void *argument) {
    Worker *w = argument;
    char frame[FRAME_BYTES];
    memset(frame, 0x5a, sizeof frame);
    pthread_barrier_wait(w->barrier);
    double begin = now(), t0 = begin;
    for (;;) {
        if (w->module) {
            w->error = sign_once(w->module, w->session, w->which);
            if (w->error != CKR_OK) break;
        } else if (write_all(w->fd, frame, sizeof frame) != 0 || read_polling(w->fd, frame, sizeof frame, w->spin) != 0) {
            w->error = CKR_DEVICE_ERROR;
            break;
        }
        double t1 = now();
        if (w->count == w->capacity) {
            w->capacity = w->capacity ? w->capacity * 2 : 4096;
            w->latencies = realloc(w->latencies, w->capacity * sizeof(double));
            if (!w->latencies) fail("%s", "out of memory");
        }
        w->latencies[w->count++] = t1 - t0;
        t0 = t1;
        if (t1 - begin >= w->seconds) break;
    }
    w->elapsed = now() - begin;
    return NULL;
}

typedef struct { double rate, p50, p99; } Figures;

static Figures measure(const Module *module, int which, int threads, double seconds) {
    Worker workers[64] = { 0 };
    pthread_t ids[64];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        Worker *w = &workers[i];
        w->module = module;
        w->which = which;
        w->seconds = seconds;
        w->barrier = &barrier;
        if (module) {
            check(module->functions->C_OpenSession(module->slot, CKF_SERIAL_SESSION, NULL, NULL, &w->session), "C_OpenSession", module);
        } else {
            w->fd = connect_echo(which);
            w->spin = which ? client_spin : 0;
        }
        pthread_create(&ids[i], NULL, run_worker, w);
    }
    pthread_barrier_wait(&barrier);
    size_t total = 0;
    double elapsed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        if (workers[i].error != CKR_OK) {
            fprintf(stderr, "signet-bench-module: %s %s: C_Sign returned 0x%lx\n", module ? module->name : "ping-pong",
                    module ? case_names[which] : "", (unsigned long)workers[i].error);
            exit(1);
        }
        total += workers[i].count;
        if (workers[i].elapsed > elapsed) elapsed = workers[i].elapsed;
        if (module) module->functions->C_CloseSession(workers[i].session);
        else close(workers[i].fd);
    }
    pthread_barrier_destroy(&barrier);
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t offset = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + offset, workers[i].latencies, workers[i].count * sizeof(double));
        offset += workers[i].count;
        free(workers[i].latencies);
    }
    qsort(all, total, sizeof(double), compare_doubles);
    Figures figures = { total / elapsed, total ? all[total / 2] : 0, total ? all[(size_t)((double)total * 0.99)] : 0 };
    free(all);
    return figures;
}

// MARK: The run.

enum { UNDER_TEST, BASE, DIRECT, REMOTE, MODULES, PING = MODULES, POLL, METHODS };
static const char *ping_names[2] = { "ping-pong 300 B", "ping-pong 300 B, poll" };

static const char *method_name(const Module *modules, int m) { return m < MODULES ? modules[m].name : ping_names[m - PING]; }

int main(int argc, char **argv) {
    Module modules[MODULES] = {
        { .name = "module" }, { .name = "module (base)" }, { .name = "SoftHSM2 direct" }, { .name = "p11-kit-client" },
    };
    int rounds = 3, many = 8, pin_given = 0;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *option = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) fail("%s needs a value", option);
        i++;
        if (strcmp(option, "--module") == 0) modules[UNDER_TEST].path = value;
        else if (strcmp(option, "--direct") == 0) modules[DIRECT].path = value;
        else if (strcmp(option, "--p11-kit-client") == 0) modules[REMOTE].path = value;
        else if (strcmp(option, "--name") == 0) modules[UNDER_TEST].name = value;
        else if (strcmp(option, "--base") == 0) modules[BASE].path = value;
        else if (strcmp(option, "--base-name") == 0) modules[BASE].name = value;
        else if (strcmp(option, "--token") == 0) token_label = value;
        else if (strcmp(option, "--rounds") == 0) rounds = atoi(value);
        else if (strcmp(option, "--seconds") == 0) seconds = atof(value);
        else if (strcmp(option, "--threads") == 0) many = atoi(value);
        else if (strcmp(option, "--pin-fd") == 0) { read_pin(atoi(value)); pin_given = 1; }
        else if (strcmp(option, "--pin-file") == 0) {
            int fd = open(value, O_RDONLY | O_CLOEXEC);
            if (fd < 0) fail("cannot open %s", value);
            read_pin(fd);
            close(fd);
            pin_given = 1;
        } else {
            fail("unknown option %s; usage: signet-bench-module [--module PATH] [--name NAME] [--base PATH] [--base-name NAME] "
                 "[--direct PATH] [--p11-kit-client PATH] "
                 "[--token LABEL] (--pin-fd N | --pin-file FILE) [--rounds N] [--seconds S] [--threads N]", option);
        }
    }
    if (!pin_given) fail("%s", "give the PIN with --pin-fd N or --pin-file FILE");
    if (rounds < 1 || rounds > MAX_ROUNDS || many < 2 || many > 64 || seconds <= 0) fail("%s", "rounds 1-31, threads 2-64, seconds > 0");
    signal(SIGPIPE, SIG_IGN);

    // Before any module is loaded or any thread started: the memory each module adds (in
    // children), and the echo server.
    for (int m = 0; m < MODULES; m++) if (modules[m].path) modules[m].rss_kilobytes = measure_rss(&modules[m]);
    char directory[] = "/tmp/signet-bench-module-XXXXXX";
    if (!mkdtemp(directory)) fail("%s", "mkdtemp failed");
    snprintf(echo_path, sizeof echo_path, "%s/echo.sock", directory);
    pid_t echo = start_echo_server();
    for (int m = 0; m < MODULES; m++) if (modules[m].path) open_module(&modules[m]);

    // [round][case][threads 0: 1, 1: many][method]; the ping-pongs do not depend on the case.
    static Figures figures[MAX_ROUNDS][CASES][2][METHODS];
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < CASES; c++) {
            for (int t = 0; t < 2; t++) {
                for (int k = 0; k < METHODS; k++) {
                    int m = r % 2 == 0 ? k : METHODS - 1 - k;  // alternate the order round by round
                    if (m >= PING) {
                        if (c == 0) figures[r][c][t][m] = measure(NULL, m == POLL, t ? many : 1, seconds);
                        else figures[r][c][t][m] = figures[r][0][t][m];
                    } else if (modules[m].path) {
                        figures[r][c][t][m] = measure(&modules[m], c, t ? many : 1, seconds);
                    }
                }
            }
        }
    }
    kill(echo, SIGTERM);
    waitpid(echo, NULL, 0);
    unlink(echo_path);
    rmdir(directory);

    printf("%d rounds of %.1f s per method, methods alternating; medians over rounds.\n\n", rounds, seconds);
    printf("%-9s %-22s %7s %10s %9s %9s\n", "case", "method", "threads", "ops/s", "p50 us", "p99 us");
    double values[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
    for (int c = 0; c <= CASES; c++) {
        for (int m = 0; m < METHODS; m++) {
            if ((c == CASES) != (m >= PING) || (m < MODULES && !modules[m].path)) continue;
            for (int t = 0; t < 2; t++) {
                for (int r = 0; r < rounds; r++) {
                    Figures f = figures[r][c == CASES ? 0 : c][t][m];
                    values[r] = f.rate; p50[r] = f.p50 * 1e6; p99[r] = f.p99 * 1e6;
                }
                printf("%-9s %-22s %7d %10.0f %9.1f %9.1f\n", c == CASES ? "-" : case_names[c], method_name(modules, m),
                       t ? many : 1, median(values, rounds), median(p50, rounds), median(p99, rounds));
            }
        }
    }

    printf("\nRatios (per round, then the median). Overhead: (module - direct) per operation, in round trips of\n"
           "the ping-pong (blocking reads; with \"poll\", both ends poll first as the agent and its clients do);\n"
           "per operation is threads / rate (mean) or the median latency (p50).\n");
    if (modules[UNDER_TEST].path && modules[DIRECT].path) {
        for (int c = 0; c < CASES; c++) {
            for (int t = 0; t < 2; t++) {
                int threads = t ? many : 1;
                // Polling pays only when a processor is free for each end: against the polling ping-pong, 1 thread only.
                for (int ping = PING; ping <= (threads == 1 ? POLL : PING); ping++) {
                    for (int r = 0; r < rounds; r++) {
                        const Figures *f = figures[r][c][t];
                        values[r] = (threads / f[UNDER_TEST].rate - threads / f[DIRECT].rate) / (threads / f[ping].rate);
                        p50[r] = (f[UNDER_TEST].p50 - f[DIRECT].p50) / f[ping].p50;
                    }
                    printf("  %-9s %2d thr  module overhead over direct, %-22s %7.2f mean %7.2f p50%s\n", case_names[c], threads,
                           ping_names[ping - PING], median(values, rounds), median(p50, rounds),
                           threads == 1 ? "   (target <= 1.2)" : "");
                }
            }
        }
    }
    if (modules[UNDER_TEST].path && modules[BASE].path) {
        for (int c = 0; c < CASES; c++) {
            for (int t = 0; t < 2; t++) {
                for (int r = 0; r < rounds; r++) {
                    values[r] = figures[r][c][t][UNDER_TEST].rate / figures[r][c][t][BASE].rate;
                    p50[r] = figures[r][c][t][UNDER_TEST].p50 / figures[r][c][t][BASE].p50;
                }
                printf("  %-9s %2d thr  module / base: throughput %6.2f, p50 latency %6.2f   (not slower: throughput >= 1)\n",
                       case_names[c], t ? many : 1, median(values, rounds), median(p50, rounds));
            }
        }
    }
    if (modules[UNDER_TEST].path && modules[REMOTE].path) {
        for (int c = 0; c < CASES; c++) {
            for (int t = 0; t < 2; t++) {
                for (int r = 0; r < rounds; r++) values[r] = figures[r][c][t][UNDER_TEST].rate / figures[r][c][t][REMOTE].rate;
                printf("  %-9s %2d thr  module / p11-kit-client throughput: %6.2f%s\n", case_names[c], t ? many : 1,
                       median(values, rounds), c == EC && t ? "   (target >= 2)" : "");
            }
        }
    }
    for (int m = 0; m < METHODS; m++) {
        if (m < MODULES && !modules[m].path) continue;
        for (int c = 0; c < (m >= PING ? 1 : CASES); c++) {
            for (int r = 0; r < rounds; r++) values[r] = figures[r][c][1][m].rate / figures[r][c][0][m].rate;
            printf("  %-9s %-22s %d-thread rate / 1-thread rate: %6.2f\n", m >= PING ? "-" : case_names[c],
                   method_name(modules, m), many, median(values, rounds));
        }
    }
    printf("\nResident memory added to the host (VmRSS before dlopen, after C_Initialize, login and one P-256 signature):\n");
    for (int m = 0; m < MODULES; m++) {
        if (!modules[m].path) continue;
        printf("  %-22s %8.1f MB%s\n", modules[m].name, modules[m].rss_kilobytes / 1024.0, m == UNDER_TEST ? "   (target <= 15 MB)" : "");
    }

    for (int m = 0; m < MODULES; m++) {
        if (!modules[m].path) continue;
        modules[m].functions->C_CloseSession(modules[m].session);
        modules[m].functions->C_Finalize(NULL);
    }
    wipe_pin();
    return 0;
}
