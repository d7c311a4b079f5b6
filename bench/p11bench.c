/*
 * p11bench: the one PKCS#11 client bench/run.py drives every token with.
 *
 * A C client measures the module rather than the client: every figure below is the cost of the
 * module's entry points plus whatever the module itself does. Compiled on the fly by run.py:
 *
 *   cc -O2 -I/usr/include/p11-kit-1 -o p11bench p11bench.c -ldl -lpthread
 *
 * Usage:  p11bench MODULE TOKEN_LABEL KEY_LABEL PIN|- MODE [ARGS...]
 *
 *   sign THREADS SECONDS   C_SignInit+C_Sign(CKM_ECDSA, 32 bytes) per thread, own session each
 *   procs NPROC SECONDS    NPROC processes (forked before the module is loaded), each signing
 *   random SECONDS         C_GenerateRandom(32)
 *   find SECONDS           C_FindObjectsInit({CKO_PUBLIC_KEY, CKA_LABEL}) + C_FindObjects +
 *                          C_FindObjectsFinal + C_GetAttributeValue(CKA_EC_POINT)
 *   latency N              N sequential signatures; per-signature latency statistics
 *   firstsig               load, initialise, log in, find, sign once, exit
 *   memory N               VmRSS after C_Initialize, after 1,000 signatures and after N
 *
 * Output: one line of "key=value" pairs on stdout; errors on stderr with exit status 1.
 * Every loop is bounded by a deadline or a count.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR F;
static const char *token_label, *key_label, *pin;
static CK_SLOT_ID slot;
static double t_init_ms;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, CK_RV rv) {
    fprintf(stderr, "p11bench: %s failed: rv=0x%08lX\n", what, (unsigned long)rv);
    exit(1);
}

#define CHECK(call, what)                  \
    do {                                   \
        CK_RV rv_ = (call);                \
        if (rv_ != CKR_OK) die(what, rv_); \
    } while (0)

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kb;
}

/* dlopen + C_GetFunctionList + C_Initialize(OS locking) + find the slot whose label matches. */
static void load(const char *module) {
    void *h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "p11bench: dlopen: %s\n", dlerror()); exit(1); }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    if (!gfl) { fprintf(stderr, "p11bench: no C_GetFunctionList\n"); exit(1); }
    CHECK(gfl(&F), "C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    double t0 = now_s();
    CHECK(F->C_Initialize(&args), "C_Initialize");
    t_init_ms = (now_s() - t0) * 1e3;
    size_t want = strlen(token_label);
    /* SoftHSM2's file store can fail C_GetTokenInfo while another process rewrites the token
     * file (seen with 4 processes starting at once), so the scan is retried a bounded number of
     * times before giving up. */
    for (int attempt = 0; attempt < 100; attempt++) {
        CK_SLOT_ID slots[64];
        CK_ULONG n = 64;
        CHECK(F->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList");
        for (CK_ULONG i = 0; i < n; i++) {
            CK_TOKEN_INFO ti;
            if (F->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
            size_t len = sizeof ti.label;
            while (len > 0 && ti.label[len - 1] == ' ') len--;
            if (len == want && memcmp(ti.label, token_label, want) == 0) { slot = slots[i]; return; }
        }
        usleep(10000);
    }
    fprintf(stderr, "p11bench: no token labelled %s\n", token_label);
    exit(1);
}

static CK_SESSION_HANDLE open_session(void) {
    CK_SESSION_HANDLE s;
    CHECK(F->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), "C_OpenSession");
    return s;
}

static void login(CK_SESSION_HANDLE s) {
    if (strcmp(pin, "-") == 0) return;
    CK_RV rv = F->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) die("C_Login", rv);
}

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls) {
    CK_ATTRIBUTE tmpl[2] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)key_label, strlen(key_label)},
    };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_ULONG found = 0;
    CHECK(F->C_FindObjectsInit(s, tmpl, 2), "C_FindObjectsInit");
    CHECK(F->C_FindObjects(s, &o, 1, &found), "C_FindObjects");
    CHECK(F->C_FindObjectsFinal(s), "C_FindObjectsFinal");
    if (found != 1) { fprintf(stderr, "p11bench: key %s not found\n", key_label); exit(1); }
    return o;
}

static void sign_once(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, unsigned counter) {
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32], sig[128];
    CK_ULONG siglen = sizeof sig;
    memset(digest, 0x5A, sizeof digest);
    memcpy(digest, &counter, sizeof counter);
    CHECK(F->C_SignInit(s, &mech, key), "C_SignInit");
    CHECK(F->C_Sign(s, digest, sizeof digest, sig, &siglen), "C_Sign");
    if (siglen != 64) { fprintf(stderr, "p11bench: signature of %lu bytes\n", siglen); exit(1); }
}

/* ------------------------------------------------------------------ sign, N threads ----- */
struct worker {
    pthread_t th;
    pthread_barrier_t *start;
    CK_OBJECT_HANDLE key;
    double seconds;
    long ops;
    double elapsed;
};

static void *sign_worker(void *arg) {
    struct worker *w = arg;
    CK_SESSION_HANDLE s = open_session();
    pthread_barrier_wait(w->start);
    double t0 = now_s(), t = t0, end = t0 + w->seconds;
    long ops = 0;
    while (t < end) {
        sign_once(s, w->key, (unsigned)ops);
        ops++;
        t = now_s();
    }
    w->ops = ops;
    w->elapsed = t - t0;
    F->C_CloseSession(s);
    return NULL;
}

static void mode_sign(int threads, double seconds) {
    CK_SESSION_HANDLE s = open_session();
    login(s);
    CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY);
    sign_once(s, key, 0); /* warm-up: the first signature may open the device */
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    struct worker *w = calloc((size_t)threads, sizeof *w);
    for (int i = 0; i < threads; i++) {
        w[i].start = &start;
        w[i].key = key;
        w[i].seconds = seconds;
        pthread_create(&w[i].th, NULL, sign_worker, &w[i]);
    }
    long ops = 0;
    double rate = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].th, NULL);
        ops += w[i].ops;
        rate += w[i].ops / w[i].elapsed;
    }
    printf("ops=%ld rate=%.3f threads=%d\n", ops, rate, threads);
}

/* ------------------------------------------------------------- sign, N processes -------- */
static void mode_procs(const char *module, int nproc, double seconds) {
    /* Children set up one at a time (SoftHSM2's file store is not safe against several
     * processes logging in at the same instant: C_GetTokenInfo/C_Login fail at random), then
     * all start signing together. "turn" hands out set-up turns, "ready" acknowledges them. */
    int ready[2], go[2], result[2], turn[2];
    if (pipe(ready) || pipe(go) || pipe(result) || pipe(turn)) { perror("pipe"); exit(1); }
    pid_t *pids = calloc((size_t)nproc, sizeof *pids);
    for (int i = 0; i < nproc; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); exit(1); }
        if (pid == 0) {
            close(ready[0]); close(go[1]); close(result[0]); close(turn[1]);
            alarm((unsigned)(seconds + 120)); /* never outlive a stuck parent */
            char tk;
            if (read(turn[0], &tk, 1) != 1) _exit(1);
            load(module);
            CK_SESSION_HANDLE s = open_session();
            login(s);
            CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY);
            sign_once(s, key, 0);
            char c = 'r';
            if (write(ready[1], &c, 1) != 1) _exit(1);
            if (read(go[0], &c, 1) != 1) _exit(1);
            double t0 = now_s(), t = t0, end = t0 + seconds;
            long ops = 0;
            while (t < end) {
                sign_once(s, key, (unsigned)ops);
                ops++;
                t = now_s();
            }
            char line[96];
            int len = snprintf(line, sizeof line, "%ld %.9f\n", ops, t - t0);
            if (write(result[1], line, (size_t)len) != len) _exit(1);
            _exit(0);
        }
        pids[i] = pid;
    }
    close(ready[1]); close(go[0]); close(result[1]); close(turn[0]);
    if (write(turn[1], "t", 1) != 1) { perror("write"); exit(1); }
    /* Wait for every child to be ready; a child that dies first (its error is on stderr) would
     * otherwise leave the others waiting for "go" forever, so poll and check for deaths. */
    int nready = 0;
    double give_up = now_s() + 120;
    while (nready < nproc) {
        struct pollfd pfd = {ready[0], POLLIN, 0};
        if (poll(&pfd, 1, 100) == 1) {
            char c;
            if (read(ready[0], &c, 1) == 1) {
                if (++nready < nproc && write(turn[1], "t", 1) != 1) { perror("write"); exit(1); }
                continue;
            }
        }
        int st;
        pid_t dead = waitpid(-1, &st, WNOHANG);
        if (dead > 0 || now_s() > give_up) {
            for (int i = 0; i < nproc; i++) kill(pids[i], SIGKILL);
            while (wait(NULL) > 0) {}
            fprintf(stderr, "p11bench: a child failed before the start\n");
            exit(1);
        }
    }
    char gos[64];
    if (nproc < 1 || nproc > 64) { fprintf(stderr, "p11bench: 1..64 processes\n"); exit(2); }
    memset(gos, 'g', sizeof gos);
    if (write(go[1], gos, (size_t)nproc) != nproc) { perror("write"); exit(1); }
    FILE *rf = fdopen(result[0], "r");
    long ops = 0;
    double rate = 0;
    for (int i = 0; i < nproc; i++) {
        long n;
        double el;
        if (fscanf(rf, "%ld %lf", &n, &el) != 2) { fprintf(stderr, "p11bench: lost a child\n"); exit(1); }
        ops += n;
        rate += n / el;
    }
    int failed = 0;
    for (int i = 0; i < nproc; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    }
    if (failed) { fprintf(stderr, "p11bench: %d children failed\n", failed); exit(1); }
    printf("ops=%ld rate=%.3f procs=%d\n", ops, rate, nproc);
}

/* --------------------------------------------------------------- random, find --------- */
static void mode_random(double seconds) {
    CK_SESSION_HANDLE s = open_session();
    CK_BYTE buf[32];
    CHECK(F->C_GenerateRandom(s, buf, sizeof buf), "C_GenerateRandom");
    double t0 = now_s(), t = t0, end = t0 + seconds;
    long ops = 0;
    while (t < end) {
        CHECK(F->C_GenerateRandom(s, buf, sizeof buf), "C_GenerateRandom");
        ops++;
        t = now_s();
    }
    printf("ops=%ld rate=%.3f\n", ops, ops / (t - t0));
}

static void find_round_trip(CK_SESSION_HANDLE s) {
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE tmpl[2] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)key_label, strlen(key_label)},
    };
    CK_OBJECT_HANDLE o;
    CK_ULONG found = 0;
    CK_BYTE point[256];
    CHECK(F->C_FindObjectsInit(s, tmpl, 2), "C_FindObjectsInit");
    CHECK(F->C_FindObjects(s, &o, 1, &found), "C_FindObjects");
    CHECK(F->C_FindObjectsFinal(s), "C_FindObjectsFinal");
    if (found != 1) { fprintf(stderr, "p11bench: public key %s not found\n", key_label); exit(1); }
    CK_ATTRIBUTE get = {CKA_EC_POINT, point, sizeof point};
    CHECK(F->C_GetAttributeValue(s, o, &get, 1), "C_GetAttributeValue");
    if (get.ulValueLen != 67) { fprintf(stderr, "p11bench: EC point of %lu bytes\n", get.ulValueLen); exit(1); }
}

static void mode_find(double seconds) {
    CK_SESSION_HANDLE s = open_session();
    login(s);
    find_round_trip(s);
    double t0 = now_s(), t = t0, end = t0 + seconds;
    long ops = 0;
    while (t < end) {
        find_round_trip(s);
        ops++;
        t = now_s();
    }
    printf("ops=%ld rate=%.3f\n", ops, ops / (t - t0));
}

/* ----------------------------------------------------------- latency, first, memory ---- */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void mode_latency(int n) {
    CK_SESSION_HANDLE s = open_session();
    login(s);
    CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY);
    sign_once(s, key, 0);
    double *lat = calloc((size_t)n, sizeof *lat);
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        sign_once(s, key, (unsigned)i);
        lat[i] = (now_s() - t0) * 1e3;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("n=%d median_ms=%.4f min_ms=%.4f max_ms=%.4f\n", n, lat[n / 2], lat[0], lat[n - 1]);
}

static void mode_firstsig(void) {
    CK_SESSION_HANDLE s = open_session();
    login(s);
    CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY);
    sign_once(s, key, 0);
    printf("init_ms=%.3f\n", t_init_ms);
    fflush(stdout);
    _exit(0); /* like the OpenSSL engine: no C_Finalize, the process just exits */
}

static void mode_memory(int n) {
    long after_init = rss_kb();
    CK_SESSION_HANDLE s = open_session();
    login(s);
    CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY);
    int warm = n < 1000 ? n / 10 : 1000;
    for (int i = 0; i < warm; i++) sign_once(s, key, (unsigned)i);
    long after_warm = rss_kb();
    for (int i = warm; i < n; i++) sign_once(s, key, (unsigned)i);
    long after_all = rss_kb();
    printf("rss_init_kb=%ld rss_warm_kb=%ld rss_end_kb=%ld signatures=%d warm=%d\n", after_init,
           after_warm, after_all, n, warm);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: p11bench MODULE TOKEN_LABEL KEY_LABEL PIN|- MODE [ARGS]\n");
        return 2;
    }
    const char *module = argv[1], *mode = argv[5];
    token_label = argv[2];
    key_label = argv[3];
    pin = argv[4];
    if (strcmp(mode, "procs") == 0 && argc >= 8) {
        mode_procs(module, atoi(argv[6]), atof(argv[7]));
        return 0;
    }
    load(module);
    if (strcmp(mode, "sign") == 0 && argc >= 8) mode_sign(atoi(argv[6]), atof(argv[7]));
    else if (strcmp(mode, "random") == 0 && argc >= 7) mode_random(atof(argv[6]));
    else if (strcmp(mode, "find") == 0 && argc >= 7) mode_find(atof(argv[6]));
    else if (strcmp(mode, "latency") == 0 && argc >= 7) mode_latency(atoi(argv[6]));
    else if (strcmp(mode, "firstsig") == 0) mode_firstsig();
    else if (strcmp(mode, "memory") == 0 && argc >= 7) mode_memory(atoi(argv[6]));
    else { fprintf(stderr, "p11bench: unknown mode or missing arguments\n"); return 2; }
    F->C_Finalize(NULL);
    return 0;
}
