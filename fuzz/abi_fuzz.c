/* Fuzz target for the Cryptoki C ABI of libatecc_pkcs11.so (libFuzzer, or replay with any cc).
 *
 * Owns: turning one input into a short sequence of PKCS#11 calls (C_CreateObject,
 * C_FindObjectsInit, C_GetAttributeValue, C_SetAttributeValue, C_CopyObject, C_DestroyObject,
 * C_SignInit/C_Sign, C_DigestInit/Update/Final, C_EncryptInit/Encrypt, C_DecryptInit/Decrypt,
 * C_GenerateRandom, C_GenerateKey, C_Login/C_Logout) with random templates, mechanisms and lengths, made by a C host
 * against an emulated Trust&GO chip, and the checks that make a run a finding:
 *   - CKR_GENERAL_ERROR from any call (an error path the module did not foresee);
 *   - a write past a caller's buffer (canary bytes after every output buffer; ASan too when
 *     built with it), an output length larger than the buffer on CKR_OK;
 *   - a crash or a hang (libFuzzer's -timeout; the replay driver's alarm).
 * Lengths lie the way the module must survive: a length over the module's limit (the LIM_*
 * below, the numbers of cryptoki/limits.py) points at a small buffer, because the module must
 * refuse it before reading; a length within the limit is backed by a real buffer of that size
 * (reading it is the caller's promise, not a bug).
 *
 * The filestore named by ATECC_PKCS11_FILESTORE is snapshot when the target starts and restored
 * before every input (with C_Finalize/C_Initialize around it), so each input runs against the
 * same fresh token and a finding replays on its own.
 *
 * Build: fuzz/run.sh (clang -fsanitize=fuzzer[,address]); -DREPLAY gives a main() that runs the
 * files named on the command line once each (tests/abi/test_fuzz_corpus.py, plain gcc).
 * Environment: ATECC_FUZZ_MODULE = path of libatecc_pkcs11.so, ATECC_PKCS11_FILESTORE;
 * ATECC_FUZZ_PYCOV=0 turns off the Python-side coverage feedback (see pycov_start);
 * ATECC_FUZZ_TRACE=1 prints every call, its CK_RV and the time (to see what a finding did).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

/* cryptoki/limits.py: lengths up to these are backed by real buffers */
#define LIM_ATTRIBUTE (32UL * 1024)
#define LIM_TEMPLATE 256UL
#define LIM_DATA (1024UL * 1024)
#define LIM_RANDOM (64UL * 1024)
#define LIM_PARAM (4UL * 1024)
#define LIM_PIN 255UL
/* largest output the module can produce for one call (data + a block, or one attribute) */
#define OUT_MAX (LIM_DATA + 64)
#define CANARY 32
#define MAX_STEPS 24
#define MAX_HANDLES 64

static CK_FUNCTION_LIST *fl;

/* ---- feedback: one counter per (call, CK_RV), as the module itself is not instrumented ---- */
#ifndef REPLAY
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t rv_counters[32 * 64];

/* Python coverage: a profile hook in the embedded interpreter records (caller, callee) code
 * pairs during an input; at its end they are written into these counters (libFuzzer clears them
 * before each input). Off with ATECC_FUZZ_PYCOV=0 (faster, blind to the Python side). */
#define PY_COUNTERS 65536
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t py_counters[PY_COUNTERS];
static int (*py_run)(const char *);
static int (*py_ensure)(void);
static void (*py_release)(int);
static int pycov_on;

static void py_exec(const char *code)
{
    int g = py_ensure();
    if (py_run(code) != 0) {
        fprintf(stderr, "fuzz: the Python coverage hook failed\n");
        abort();
    }
    py_release(g);
}

/* Called once the module has started Python (after the first C_Initialize). */
static void pycov_start(void)
{
    char code[1024];
    const char *env = getenv("ATECC_FUZZ_PYCOV");
    if (pycov_on || (env && strcmp(env, "0") == 0))
        return;
    py_run = (int (*)(const char *))dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    py_ensure = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    py_release = (void (*)(int))dlsym(RTLD_DEFAULT, "PyGILState_Release");
    if (!py_run || !py_ensure || !py_release)
        return;
    snprintf(code, sizeof code,
             "import sys, ctypes\n"
             "_fz_c = (ctypes.c_uint8 * %d).from_address(%lu)\n"
             "_fz_seen = set()\n"
             "def _fz_prof(frame, event, arg, add=_fz_seen.add):\n"
             "    if event == 'call':\n"
             "        back = frame.f_back\n"
             "        add(hash((id(back.f_code) if back else 0, id(frame.f_code))))\n"
             "def _fz_flush():\n"
             "    for h in _fz_seen:\n"
             "        _fz_c[h %% %d] = 1\n"
             "    _fz_seen.clear()\n"
             "sys.setprofile(_fz_prof)\n",
             PY_COUNTERS, (unsigned long)(uintptr_t)py_counters, PY_COUNTERS);
    py_exec(code);
    pycov_on = 1;
}

static void pycov_flush(void)
{
    if (pycov_on)
        py_exec("_fz_flush()\n");
}
#else
static void pycov_start(void) {}
static void pycov_flush(void) {}
#endif

static void feedback(unsigned call, CK_RV rv)
{
#ifndef REPLAY
    unsigned bucket = (unsigned)((rv * 2654435761UL) >> 7) % 64;
    rv_counters[(call % 32) * 64 + bucket]++;
#else
    (void)call;
    (void)rv;
#endif
}

static void finding(const char *what, const char *call, CK_RV rv)
{
    fprintf(stderr, "FINDING %s: %s rv 0x%lx\n", what, call, (unsigned long)rv);
    fflush(stderr);
    abort();
}

static int trace = -1;   /* ATECC_FUZZ_TRACE=1: one stderr line per call (replaying a finding) */

static CK_RV check(unsigned id, const char *call, CK_RV rv)
{
    if (trace < 0)
        trace = getenv("ATECC_FUZZ_TRACE") != NULL;
    if (trace) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        fprintf(stderr, "TRACE %ld.%03ld %s -> 0x%lx\n", (long)ts.tv_sec, ts.tv_nsec / 1000000L,
                call, (unsigned long)rv);
    }
    feedback(id, rv);
    if (rv == CKR_GENERAL_ERROR)
        finding("CKR_GENERAL_ERROR", call, rv);
    return rv;
}

/* ---- input reader ---- */
typedef struct {
    const uint8_t *p;
    size_t n;
} Input;

static uint8_t u8(Input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* Bytes are read in sequence (operands of | are not): little-endian. */
static CK_ULONG u16(Input *in)
{
    CK_ULONG lo = u8(in);
    return lo | (CK_ULONG)u8(in) << 8;
}

static CK_ULONG u32(Input *in)
{
    CK_ULONG lo = u16(in);
    return lo | u16(in) << 16;
}

/* A length: mostly small, sometimes at or around a limit, sometimes absurd. */
static CK_ULONG length(Input *in, CK_ULONG limit, CK_ULONG exact)
{
    switch (u8(in) % 10) {
    case 0: return 0;
    case 1: case 2: return u8(in);
    case 3: return u16(in);
    case 4: return limit + (CK_ULONG)(u8(in) % 3) - 1;        /* limit - 1, limit, limit + 1 */
    case 5: return 0xFFFFFFFFUL;
    case 6: return (CK_ULONG)1 << 63;
    case 7: return (CK_ULONG)-1;
    case 8: return exact;
    default: return u32(in);
    }
}

/* ---- buffers: freed after each input ---- */
static void *owned[4096];
static size_t n_owned;
static uint8_t small[16];

static void *keep(void *p)
{
    if (!p)
        abort();
    if (n_owned < sizeof owned / sizeof owned[0])
        owned[n_owned++] = p;
    else
        free(p);
    return p;
}

/* An input buffer of ``len`` bytes filled from the input; a small one when len > limit. */
static void *in_buffer(Input *in, CK_ULONG len, CK_ULONG limit)
{
    uint8_t *b;
    CK_ULONG i, take;
    if (len > limit)
        return small;
    b = keep(malloc(len ? len : 1));
    take = len < in->n ? len : in->n;
    take = take > 64 ? 64 : take;            /* a few input bytes, repeated */
    for (i = 0; i < len; i++)
        b[i] = take ? in->p[i % take] : (uint8_t)i;
    for (i = 0; i < take; i++)
        u8(in);
    return b;
}

/* An output buffer for capacity ``cap``: exactly cap bytes (or OUT_MAX when cap is absurd) and
 * CANARY bytes after it. */
typedef struct {
    uint8_t *p;
    CK_ULONG real;
} Out;

static Out out_buffer(CK_ULONG cap)
{
    Out o;
    o.real = cap > OUT_MAX ? OUT_MAX : cap;
    o.p = keep(malloc(o.real + CANARY));
    memset(o.p, 0xA5, o.real + CANARY);
    return o;
}

static void check_out(const char *call, Out o, CK_RV rv, CK_ULONG cap, CK_ULONG got)
{
    CK_ULONG i;
    for (i = o.real; i < o.real + CANARY; i++)
        if (o.p[i] != 0xA5)
            finding("write past the caller's buffer", call, rv);
    if (rv == CKR_OK && got > cap)
        finding("CKR_OK with an output length over the buffer", call, rv);
}

/* ---- vocabulary ---- */
static const CK_ATTRIBUTE_TYPE ATTRS[] = {
    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_APPLICATION, CKA_VALUE, CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE, CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_KEY_TYPE, CKA_SUBJECT, CKA_ID,
    CKA_SENSITIVE, CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_DERIVE, CKA_VALUE_LEN,
    CKA_EXTRACTABLE, CKA_LOCAL, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE, CKA_EC_PARAMS,
    CKA_EC_POINT, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_ALLOWED_MECHANISMS,
    0x10AUL /* CKA_UNIQUE_ID */, CKA_TRUSTED, CKA_START_DATE, CKA_END_DATE, CKA_VALUE_BITS,
    CKA_CERTIFICATE_CATEGORY, CKA_WRAP, CKA_UNWRAP, CKA_PUBLIC_KEY_INFO,
};
#define N_ATTRS (sizeof ATTRS / sizeof ATTRS[0])

static const CK_MECHANISM_TYPE MECHS[] = {
    CKM_ECDSA, CKM_ECDSA_SHA256, CKM_SHA256, CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL,
    CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_GCM, CKM_AES_KEY_GEN,
    CKM_EC_KEY_PAIR_GEN, CKM_ECDH1_DERIVE, CKM_RSA_PKCS, CKM_SHA_1,
};
#define N_MECHS (sizeof MECHS / sizeof MECHS[0])

static CK_ATTRIBUTE_TYPE attr_type(Input *in)
{
    uint8_t b = u8(in);
    if (b == 0xFF)
        return u32(in);
    return ATTRS[b % N_ATTRS];
}

/* A template of up to a few attributes; its count may lie (over LIM_TEMPLATE, small array). */
static CK_ULONG template_of(Input *in, CK_ATTRIBUTE **out)
{
    CK_ULONG count = u8(in) % 6, i, declared = count;
    CK_ATTRIBUTE *t = keep(calloc(count ? count : 1, sizeof *t));
    for (i = 0; i < count; i++) {
        CK_ULONG len;
        t[i].type = attr_type(in);
        len = length(in, LIM_ATTRIBUTE, u8(in) & 1 ? 1 : sizeof(CK_ULONG));
        t[i].ulValueLen = len;
        t[i].pValue = (u8(in) % 16 == 0) ? NULL : in_buffer(in, len, LIM_ATTRIBUTE);
    }
    if (u8(in) % 32 == 0)
        declared = LIM_TEMPLATE + 1 + u8(in);       /* the module must refuse before reading */
    *out = t;
    return declared;
}

static void *gcm_params(Input *in, CK_ULONG *len)
{
    CK_GCM_PARAMS *g = keep(calloc(1, sizeof *g));
    g->ulIvLen = length(in, LIM_PARAM, 12);
    g->pIv = in_buffer(in, g->ulIvLen, LIM_PARAM);
    g->ulIvBits = u8(in) & 1 ? g->ulIvLen * 8 : u16(in);
    g->ulAADLen = length(in, LIM_DATA, 0);
    g->pAAD = u8(in) % 8 ? in_buffer(in, g->ulAADLen, LIM_DATA) : NULL;
    g->ulTagBits = u8(in) & 1 ? 128 : u8(in);
    *len = u8(in) % 8 ? sizeof *g : u8(in);
    return g;
}

static void *ecdh_params(Input *in, CK_ULONG *len)
{
    CK_ECDH1_DERIVE_PARAMS *e = keep(calloc(1, sizeof *e));
    e->kdf = u8(in) % 4 ? CKD_NULL : u8(in);
    e->ulSharedDataLen = u8(in) % 4 ? 0 : length(in, LIM_PARAM, 16);
    e->pSharedData = e->ulSharedDataLen ? in_buffer(in, e->ulSharedDataLen, LIM_PARAM) : NULL;
    e->ulPublicDataLen = length(in, LIM_PARAM, 65);
    e->pPublicData = in_buffer(in, e->ulPublicDataLen, LIM_PARAM);
    *len = u8(in) % 8 ? sizeof *e : u8(in);
    return e;
}

static void mechanism_of(Input *in, CK_MECHANISM *m)
{
    uint8_t b = u8(in);
    m->mechanism = b == 0xFF ? u32(in) : MECHS[b % N_MECHS];
    m->pParameter = NULL;
    m->ulParameterLen = 0;
    switch (u8(in) % 4) {
    case 0:                                 /* the right kind of parameter for the mechanism */
        if (m->mechanism == CKM_AES_GCM)
            m->pParameter = gcm_params(in, &m->ulParameterLen);
        else if (m->mechanism == CKM_ECDH1_DERIVE)
            m->pParameter = ecdh_params(in, &m->ulParameterLen);
        else if (m->mechanism == CKM_AES_CBC || m->mechanism == CKM_AES_CBC_PAD) {
            m->ulParameterLen = u8(in) & 1 ? 16 : length(in, LIM_PARAM, 16);
            m->pParameter = in_buffer(in, m->ulParameterLen, LIM_PARAM);
        } else if (m->mechanism == CKM_SHA256_HMAC_GENERAL) {
            CK_ULONG *v = keep(malloc(sizeof *v));
            *v = u8(in);
            m->pParameter = v;
            m->ulParameterLen = sizeof *v;
        }
        break;
    case 1:                                 /* flat bytes of any length */
        m->ulParameterLen = length(in, LIM_PARAM, 8);
        m->pParameter = in_buffer(in, m->ulParameterLen, LIM_PARAM);
        break;
    case 2:                                 /* NULL with a length */
        m->ulParameterLen = length(in, LIM_PARAM, 16);
        break;
    default:
        break;
    }
}

/* ---- per-input state ---- */
static CK_SESSION_HANDLE sess;
static CK_OBJECT_HANDLE handles[MAX_HANDLES];
static CK_ULONG n_handles;

static void remember(CK_OBJECT_HANDLE h)
{
    if (n_handles < MAX_HANDLES)
        handles[n_handles++] = h;
}

static CK_OBJECT_HANDLE handle_of(Input *in)
{
    uint8_t b = u8(in);
    if (b >= 0xF0 || !n_handles)
        return b == 0xFF ? u32(in) : b;
    return handles[b % n_handles];
}

/* One output call with the two-call convention: NULL buffer, short, exact or absurd. */
#define OUTPUT_CALL(id, name, expr_with_buf_len)                                                  \
    do {                                                                                          \
        CK_ULONG cap = length(in, OUT_MAX, 64), got;                                              \
        int query = u8(in) % 4 == 0, null_len = u8(in) % 32 == 0;                                 \
        Out o = out_buffer(query ? 0 : cap);                                                      \
        CK_BYTE_PTR buf = query ? NULL : o.p;                                                     \
        CK_ULONG_PTR plen = null_len ? NULL : &got;                                               \
        CK_RV rv;                                                                                 \
        got = cap;                                                                                \
        rv = check(id, name, (expr_with_buf_len));                                                \
        check_out(name, o, rv, query ? (CK_ULONG)-1 : cap, got);                                  \
    } while (0)

static void step(Input *in)
{
    uint8_t op = u8(in) % 22;
    CK_MECHANISM m;
    CK_ATTRIBUTE *t;
    CK_ULONG n, len;
    CK_OBJECT_HANDLE h = 0;
    void *data;

    switch (op) {
    case 0:
        n = template_of(in, &t);
        if (check(0, "C_CreateObject", fl->C_CreateObject(sess, t, n, &h)) == CKR_OK)
            remember(h);
        break;
    case 1: {
        CK_OBJECT_HANDLE found[8];
        CK_ULONG got = 0;
        n = template_of(in, &t);
        if (check(1, "C_FindObjectsInit", fl->C_FindObjectsInit(sess, t, n)) == CKR_OK) {
            CK_ULONG max = u8(in) % 9;
            if (check(2, "C_FindObjects", fl->C_FindObjects(sess, found, max, &got)) == CKR_OK
                && got > max)
                finding("C_FindObjects returned more than asked", "C_FindObjects", CKR_OK);
            check(3, "C_FindObjectsFinal", fl->C_FindObjectsFinal(sess));
        }
        break;
    }
    case 2: {                               /* C_GetAttributeValue with lying capacities */
        CK_ULONG count = 1 + u8(in) % 5, i, cap[5];
        CK_ATTRIBUTE a[5];
        Out o[5];
        CK_RV rv;
        h = handle_of(in);
        for (i = 0; i < count; i++) {
            a[i].type = attr_type(in);
            cap[i] = length(in, LIM_ATTRIBUTE, 8);
            o[i] = out_buffer(cap[i] > LIM_ATTRIBUTE ? OUT_MAX : cap[i]);
            a[i].pValue = u8(in) % 4 == 0 ? NULL : o[i].p;
            a[i].ulValueLen = cap[i];
        }
        rv = check(4, "C_GetAttributeValue", fl->C_GetAttributeValue(sess, h, a, count));
        for (i = 0; i < count; i++) {
            check_out("C_GetAttributeValue", o[i], rv, cap[i], 0);
            if (a[i].pValue && a[i].ulValueLen != CK_UNAVAILABLE_INFORMATION
                && a[i].ulValueLen > cap[i])
                finding("attribute length over its buffer", "C_GetAttributeValue", rv);
        }
        break;
    }
    case 3:
        h = handle_of(in);
        n = template_of(in, &t);
        check(5, "C_SetAttributeValue", fl->C_SetAttributeValue(sess, h, t, n));
        break;
    case 4:
        h = handle_of(in);
        n = template_of(in, &t);
        {
            CK_OBJECT_HANDLE copy = 0;
            if (check(6, "C_CopyObject", fl->C_CopyObject(sess, h, t, n, &copy)) == CKR_OK)
                remember(copy);
        }
        break;
    case 5:
        mechanism_of(in, &m);
        check(7, "C_SignInit", fl->C_SignInit(sess, &m, handle_of(in)));
        break;
    case 6:
        len = length(in, LIM_DATA, 32);
        data = in_buffer(in, len, LIM_DATA);
        OUTPUT_CALL(8, "C_Sign", fl->C_Sign(sess, data, len, buf, plen));
        break;
    case 7:
        mechanism_of(in, &m);
        check(9, "C_DigestInit", fl->C_DigestInit(sess, &m));
        break;
    case 8:
        len = length(in, LIM_DATA, 64);
        data = in_buffer(in, len, LIM_DATA);
        check(10, "C_DigestUpdate", fl->C_DigestUpdate(sess, data, len));
        break;
    case 9:
        OUTPUT_CALL(11, "C_DigestFinal", fl->C_DigestFinal(sess, buf, plen));
        break;
    case 10:
        mechanism_of(in, &m);
        check(12, "C_EncryptInit", fl->C_EncryptInit(sess, &m, handle_of(in)));
        break;
    case 11:
        len = length(in, LIM_DATA, 32);
        data = in_buffer(in, len, LIM_DATA);
        OUTPUT_CALL(13, "C_Encrypt", fl->C_Encrypt(sess, data, len, buf, plen));
        break;
    case 12:
        mechanism_of(in, &m);
        check(14, "C_DecryptInit", fl->C_DecryptInit(sess, &m, handle_of(in)));
        break;
    case 13:
        len = length(in, LIM_DATA, 32);
        data = in_buffer(in, len, LIM_DATA);
        OUTPUT_CALL(15, "C_Decrypt", fl->C_Decrypt(sess, data, len, buf, plen));
        break;
    case 14: {
        CK_ULONG want = length(in, LIM_RANDOM, 32);
        Out o = out_buffer(want > LIM_RANDOM ? 16 : want);
        CK_RV rv = check(16, "C_GenerateRandom", fl->C_GenerateRandom(sess, o.p, want));
        check_out("C_GenerateRandom", o, rv, (CK_ULONG)-1, 0);
        break;
    }
    case 15:
        check(17, "C_DestroyObject", fl->C_DestroyObject(sess, handle_of(in)));
        break;
    case 16:
        len = length(in, LIM_DATA, 64);
        data = in_buffer(in, len, LIM_DATA);
        OUTPUT_CALL(18, "C_Digest", fl->C_Digest(sess, data, len, buf, plen));
        break;
    case 17:
        len = length(in, LIM_DATA, 32);
        data = in_buffer(in, len, LIM_DATA);
        check(19, "C_SignUpdate", fl->C_SignUpdate(sess, data, len));
        OUTPUT_CALL(20, "C_SignFinal", fl->C_SignFinal(sess, buf, plen));
        break;
    case 18: {
        CK_ULONG slen;
        void *sig;
        mechanism_of(in, &m);
        check(21, "C_VerifyInit", fl->C_VerifyInit(sess, &m, handle_of(in)));
        len = length(in, LIM_DATA, 32);
        data = in_buffer(in, len, LIM_DATA);
        slen = length(in, LIM_DATA, 64);
        sig = in_buffer(in, slen, LIM_DATA);
        check(22, "C_Verify", fl->C_Verify(sess, data, len, sig, slen));
        break;
    }
    case 19:
        mechanism_of(in, &m);
        n = template_of(in, &t);
        if (check(23, "C_GenerateKey", fl->C_GenerateKey(sess, &m, t, n, &h)) == CKR_OK)
            remember(h);
        break;
    case 20: {
        static const CK_USER_TYPE users[] = {CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC};
        uint8_t b = u8(in);
        CK_USER_TYPE user = b == 0xFF ? u32(in) : users[b % 3];
        len = length(in, LIM_PIN, 4);
        data = u8(in) % 16 ? in_buffer(in, len, LIM_PIN) : NULL;
        check(24, "C_Login", fl->C_Login(sess, user, data, len));
        break;
    }
    default:
        check(25, "C_Logout", fl->C_Logout(sess));
        break;
    }
}

/* ---- the filestore: snapshot at start, restored before every input ---- */
typedef struct {
    char name[256];
    char *data;
    size_t len;
} File;
static File files[32];
static size_t n_files;
static char store[4096];

static void snapshot(void)
{
    DIR *d = opendir(store);
    struct dirent *e;
    if (!d) {
        fprintf(stderr, "cannot open the filestore %s\n", store);
        exit(2);
    }
    while ((e = readdir(d)) && n_files < 32) {
        char path[16384];
        struct stat st;
        FILE *f;
        snprintf(path, sizeof path, "%s/%s", store, e->d_name);
        if (stat(path, &st) || !S_ISREG(st.st_mode) || strlen(e->d_name) >= 256)
            continue;
        f = fopen(path, "rb");
        if (!f)
            continue;
        files[n_files].data = malloc((size_t)st.st_size + 1);
        files[n_files].len = fread(files[n_files].data, 1, (size_t)st.st_size, f);
        strcpy(files[n_files].name, e->d_name);
        fclose(f);
        n_files++;
    }
    closedir(d);
}

static void restore(void)
{
    DIR *d = opendir(store);
    struct dirent *e;
    size_t i;
    while (d && (e = readdir(d))) {
        char path[16384];
        int known = e->d_name[0] == '.';
        for (i = 0; i < n_files && !known; i++)
            known = strcmp(files[i].name, e->d_name) == 0;
        snprintf(path, sizeof path, "%s/%s", store, e->d_name);
        if (!known)
            unlink(path);
    }
    if (d)
        closedir(d);
    for (i = 0; i < n_files; i++) {
        char path[16384];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s", store, files[i].name);
        f = fopen(path, "wb");
        if (!f || fwrite(files[i].data, 1, files[i].len, f) != files[i].len) {
            fprintf(stderr, "cannot restore %s\n", path);
            exit(2);
        }
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *module = getenv("ATECC_FUZZ_MODULE");
    const char *fs = getenv("ATECC_PKCS11_FILESTORE");
    void *h;
    CK_C_GetFunctionList gfl;
    (void)argc;
    (void)argv;
    if (!module || !fs) {
        fprintf(stderr, "set ATECC_FUZZ_MODULE and ATECC_PKCS11_FILESTORE\n");
        exit(2);
    }
    snprintf(store, sizeof store, "%s", fs);
    snapshot();
    h = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    gfl = h ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
    if (!gfl || gfl(&fl) != CKR_OK) {
        fprintf(stderr, "cannot load %s: %s\n", module, dlerror());
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Input in = {data, size};
    CK_ULONG steps = 0, found = 0;
    CK_RV rv;
    size_t i;

    restore();
    if ((rv = fl->C_Initialize(NULL)) != CKR_OK)
        finding("C_Initialize failed", "C_Initialize", rv);
    pycov_start();
    rv = fl->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess);
    if (rv != CKR_OK)
        finding("C_OpenSession failed", "C_OpenSession", rv);
    /* Private objects need a login; without a configured PIN any PIN logs in. */
    fl->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4);
    n_handles = 0;
    if (fl->C_FindObjectsInit(sess, NULL, 0) == CKR_OK) {
        fl->C_FindObjects(sess, handles, MAX_HANDLES / 2, &found);
        fl->C_FindObjectsFinal(sess);
        n_handles = found;
    }
    while (in.n && steps++ < MAX_STEPS)
        step(&in);
    if ((rv = fl->C_Finalize(NULL)) != CKR_OK)
        finding("C_Finalize failed", "C_Finalize", rv);
    pycov_flush();
    for (i = 0; i < n_owned; i++)
        free(owned[i]);
    n_owned = 0;
    return 0;
}

#ifdef REPLAY
/* Replay: run each file once; exit 0 when none is a finding (a finding aborts). */
int main(int argc, char **argv)
{
    int i;
    LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        static uint8_t buf[1 << 20];
        size_t n;
        if (!f) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 2;
        }
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        alarm(60);                          /* a hang is a finding */
        LLVMFuzzerTestOneInput(buf, n);
        alarm(0);
        printf("ran %s\n", argv[i]);
        fflush(stdout);
    }
    printf("REPLAYED %d inputs\n", argc - 1);
    return 0;
}
#endif
