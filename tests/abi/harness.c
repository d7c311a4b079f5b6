/* C host for the Cryptoki library's ABI tests (tests/abi/test_harness.py compiles and runs it).
 *
 * Owns: loading the module the way C hosts do (dlopen RTLD_LOCAL, C_GetFunctionList /
 * C_GetInterface) and calling entry points with bad arguments: NULL pointers, invalid handles,
 * short buffers, calls before C_Initialize, double C_Initialize. Each check compares the exact
 * CK_RV; a crash fails the test by the exit status. Compiled against p11-kit's pkcs11.h, an
 * independent description of the 2.40 ABI; the 3.0 additions (CK_INTERFACE and the longer
 * function list) are declared here because p11-kit 0.24's header predates them.
 *
 * Modes:  harness MODULE checks   the bad-argument battery (exit 0 = every check passed)
 *         harness MODULE env      load + initialise, print the embedded interpreter's facts
 *         harness MODULE fork     fork children while another thread is inside the module
 *         harness MODULE threads  8 threads race to be the first caller of C_Initialize
 *         harness MODULE limits G lengths over the module's limits (G = lengths), a huge
 *                                 ulValueLen before an exact buffer (get-attribute), the end
 *                                 of an operation after an error (termination), state checks
 *                                 before parameter decoding (parameters)
 *         harness MODULE raise    an unexpected Python exception inside an entry point
 * Output goes to stdout, one "FAIL ..." line per failed check, then a summary line.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

/* ---- PKCS#11 3.0 additions (test-only declarations) ---- */
typedef struct {
    CK_UTF8CHAR *pInterfaceName;
    void *pFunctionList;
    CK_FLAGS flags;
} T_INTERFACE;
typedef CK_RV (*T_GetInterfaceList)(T_INTERFACE *, CK_ULONG *);
typedef CK_RV (*T_GetInterface)(CK_UTF8CHAR *, CK_VERSION *, T_INTERFACE **, CK_FLAGS);
typedef CK_RV (*T_SessionOnly)(CK_SESSION_HANDLE);
typedef CK_RV (*T_LoginUser)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR *, CK_ULONG,
                             CK_UTF8CHAR *, CK_ULONG);
#define N_240 68
#define N_30 92
#define IDX_LOGIN_USER 70               /* 0-based slot index after `version` */
#define IDX_MESSAGE_ENCRYPT_FINAL 76
#define IDX_MESSAGE_VERIFY_FINAL 91
#define T_CKF_INTERFACE_FORK_SAFE 0x1UL

#define BAD_SESSION ((CK_SESSION_HANDLE)0xDEAD)
#define BAD_OBJECT ((CK_OBJECT_HANDLE)0xBEEF)
#define BAD_SLOT ((CK_SLOT_ID)9999)

static int checks, failures;
static CK_FUNCTION_LIST *fl;

static void expect(const char *what, CK_RV got, CK_RV want)
{
    checks++;
    if (got != want) {
        failures++;
        printf("FAIL %s: rv 0x%lx, expected 0x%lx\n", what, (unsigned long)got,
               (unsigned long)want);
    }
}

static void expect_true(const char *what, int cond)
{
    checks++;
    if (!cond) {
        failures++;
        printf("FAIL %s\n", what);
    }
}

static void **slots_of(void *list)        /* the function pointers after CK_VERSION */
{
    return (void **)((char *)list + offsetof(CK_FUNCTION_LIST, C_Initialize));
}

static void *load(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("FAIL dlopen: %s\n", dlerror());
        exit(2);
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    if (!gfl || gfl(&fl) != CKR_OK || !fl) {
        printf("FAIL C_GetFunctionList unusable\n");
        exit(2);
    }
    return h;
}

/* ---------------------------------------------------------------------------------------- */

static void check_entry_points(void *h)
{
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    T_GetInterfaceList gil = (T_GetInterfaceList)dlsym(h, "C_GetInterfaceList");
    T_GetInterface gi = (T_GetInterface)dlsym(h, "C_GetInterface");
    T_INTERFACE list[4], *itf = NULL;
    CK_ULONG n = 0;
    CK_VERSION v30 = {3, 0}, v240 = {2, 40}, v32 = {3, 2};
    int i, all;

    expect_true("C_GetInterfaceList exported", gil != NULL);
    expect_true("C_GetInterface exported", gi != NULL);
    if (!gil || !gi)
        return;

    expect("C_GetFunctionList(NULL)", gfl(NULL), CKR_ARGUMENTS_BAD);
    expect_true("2.40 list version", fl->version.major == 2 && fl->version.minor == 40);
    for (i = 0, all = 1; i < N_240; i++)
        all &= slots_of(fl)[i] != NULL;
    expect_true("every 2.40 slot filled", all);
    expect_true("2.40 list's C_GetFunctionList works", fl->C_GetFunctionList != NULL);

    expect("C_GetInterfaceList(NULL, NULL)", gil(NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetInterfaceList count", gil(NULL, &n), CKR_OK);
    expect_true("two interfaces", n == 2);
    n = 1;
    expect("C_GetInterfaceList short", gil(list, &n), CKR_BUFFER_TOO_SMALL);
    expect_true("short list reports 2", n == 2);
    n = 4;
    expect("C_GetInterfaceList", gil(list, &n), CKR_OK);
    expect_true("list count 2", n == 2);
    for (i = 0; i < 2 && n == 2; i++)
        expect_true("interface name PKCS 11",
                    strcmp((char *)list[i].pInterfaceName, "PKCS 11") == 0);

    expect("C_GetInterface(ppInterface NULL)", gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
    expect("C_GetInterface default", gi(NULL, NULL, &itf, 0), CKR_OK);
    if (itf) {
        CK_VERSION *v = (CK_VERSION *)itf->pFunctionList;
        expect_true("default interface is 3.0", v->major == 3 && v->minor == 0);
        for (i = 0, all = 1; i < N_30; i++)
            all &= slots_of(itf->pFunctionList)[i] != NULL;
        expect_true("every 3.0 slot filled", all);
        for (i = 0, all = 1; i < N_240; i++)
            all &= slots_of(itf->pFunctionList)[i] == slots_of(fl)[i];
        expect_true("3.0 list extends the 2.40 list", all);
    }
    itf = NULL;
    expect("C_GetInterface PKCS 11 3.0", gi((CK_UTF8CHAR *)"PKCS 11", &v30, &itf, 0), CKR_OK);
    expect_true("3.0 interface", itf && ((CK_VERSION *)itf->pFunctionList)->major == 3);
    itf = NULL;
    expect("C_GetInterface PKCS 11 2.40", gi((CK_UTF8CHAR *)"PKCS 11", &v240, &itf, 0), CKR_OK);
    expect_true("2.40 interface is C_GetFunctionList's list", itf && itf->pFunctionList == fl);
    itf = NULL;
    expect("C_GetInterface PKCS 11 3.2", gi((CK_UTF8CHAR *)"PKCS 11", &v32, &itf, 0),
           CKR_ARGUMENTS_BAD);
    expect_true("3.2 leaves ppInterface alone", itf == NULL);
    expect("C_GetInterface unknown name", gi((CK_UTF8CHAR *)"Vendor X", NULL, &itf, 0),
           CKR_ARGUMENTS_BAD);
    expect("C_GetInterface fork-safe flag", gi(NULL, NULL, &itf, T_CKF_INTERFACE_FORK_SAFE),
           CKR_ARGUMENTS_BAD);
}

static void check_before_initialize(void)
{
    CK_INFO info;
    CK_ULONG n = 0;
    CK_SESSION_HANDLE s = 0;
    CK_C_INITIALIZE_ARGS args;

    expect("C_GetInfo before C_Initialize", fl->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_GetInfo(NULL)", fl->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetSlotList before C_Initialize", fl->C_GetSlotList(CK_FALSE, NULL, &n),
           CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_OpenSession before C_Initialize",
           fl->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_CloseSession before C_Initialize", fl->C_CloseSession(BAD_SESSION),
           CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("C_Finalize before C_Initialize", fl->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

    memset(&args, 0, sizeof args);
    args.pReserved = (void *)&args;
    expect("C_Initialize pReserved non-NULL", fl->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    memset(&args, 0, sizeof args);
    args.CreateMutex = (CK_CREATEMUTEX)(void *)&check_before_initialize;   /* 1 of 4 */
    expect("C_Initialize partial mutex callbacks", fl->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    expect("still not initialised", fl->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static int blank_padded(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] == 0)
            return 0;
    return 1;
}

static void check_no_session(void)
{
    CK_INFO info;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_SESSION_INFO sess;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_ATTRIBUTE attr = {CKA_CLASS, NULL, 0};
    CK_OBJECT_HANDLE objs[4], obj = 0, pub = 0;
    CK_BYTE buf[64];
    CK_ULONG n = sizeof buf;
    CK_SESSION_HANDLE s = 0;

    expect("C_GetInfo(NULL) initialised", fl->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    memset(&info, 0, sizeof info);
    expect("C_GetInfo", fl->C_GetInfo(&info), CKR_OK);
    expect_true("cryptokiVersion set", info.cryptokiVersion.major >= 2);
    expect_true("manufacturerID blank-padded", blank_padded(info.manufacturerID, 32));
    expect_true("libraryDescription blank-padded", blank_padded(info.libraryDescription, 32));

    expect("C_GetSlotList(pulCount NULL)", fl->C_GetSlotList(CK_FALSE, NULL, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_GetSlotInfo bad slot", fl->C_GetSlotInfo(BAD_SLOT, &si), CKR_SLOT_ID_INVALID);
    expect("C_GetSlotInfo(NULL)", fl->C_GetSlotInfo(BAD_SLOT, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetTokenInfo bad slot", fl->C_GetTokenInfo(BAD_SLOT, &ti), CKR_SLOT_ID_INVALID);
    expect("C_GetTokenInfo(NULL)", fl->C_GetTokenInfo(BAD_SLOT, NULL), CKR_ARGUMENTS_BAD);
    expect("C_GetMechanismList(pulCount NULL)", fl->C_GetMechanismList(0, NULL, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_GetMechanismList bad slot", fl->C_GetMechanismList(BAD_SLOT, NULL, &n),
           CKR_SLOT_ID_INVALID);
    expect("C_GetMechanismInfo(NULL)", fl->C_GetMechanismInfo(0, CKM_ECDSA, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_OpenSession(phSession NULL)",
           fl->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("C_OpenSession bad slot",
           fl->C_OpenSession(BAD_SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_SLOT_ID_INVALID);

    /* invalid session handle, valid pointers */
    expect("C_CloseSession bad", fl->C_CloseSession(BAD_SESSION), CKR_SESSION_HANDLE_INVALID);
    expect("C_GetSessionInfo bad", fl->C_GetSessionInfo(BAD_SESSION, &sess),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_Login bad", fl->C_Login(BAD_SESSION, CKU_USER, (CK_UTF8CHAR *)"1234", 4),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_Logout bad", fl->C_Logout(BAD_SESSION), CKR_SESSION_HANDLE_INVALID);
    expect("C_FindObjectsInit bad", fl->C_FindObjectsInit(BAD_SESSION, NULL, 0),
           CKR_SESSION_HANDLE_INVALID);
    n = 0;
    expect("C_FindObjects bad", fl->C_FindObjects(BAD_SESSION, objs, 4, &n),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_FindObjectsFinal bad", fl->C_FindObjectsFinal(BAD_SESSION),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_SignInit bad", fl->C_SignInit(BAD_SESSION, &mech, BAD_OBJECT),
           CKR_SESSION_HANDLE_INVALID);
    n = sizeof buf;
    expect("C_Sign bad", fl->C_Sign(BAD_SESSION, buf, 32, buf, &n), CKR_SESSION_HANDLE_INVALID);
    expect("C_GenerateRandom bad", fl->C_GenerateRandom(BAD_SESSION, buf, 16),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_GetAttributeValue bad", fl->C_GetAttributeValue(BAD_SESSION, BAD_OBJECT, &attr, 1),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_DestroyObject bad", fl->C_DestroyObject(BAD_SESSION, BAD_OBJECT),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_CreateObject bad", fl->C_CreateObject(BAD_SESSION, &attr, 1, &obj),
           CKR_SESSION_HANDLE_INVALID);

    /* NULL pointers that make the call meaningless: ARGUMENTS_BAD before any handle check */
    expect("C_GetSessionInfo(NULL)", fl->C_GetSessionInfo(BAD_SESSION, NULL), CKR_ARGUMENTS_BAD);
    expect("C_FindObjects(phObject NULL)", fl->C_FindObjects(BAD_SESSION, NULL, 4, &n),
           CKR_ARGUMENTS_BAD);
    expect("C_FindObjects(pulObjectCount NULL)", fl->C_FindObjects(BAD_SESSION, objs, 4, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_Sign(pulSignatureLen NULL)", fl->C_Sign(BAD_SESSION, buf, 32, buf, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_Sign(pData NULL, len 32)", fl->C_Sign(BAD_SESSION, NULL, 32, buf, &n),
           CKR_ARGUMENTS_BAD);
    expect("C_GenerateRandom(NULL)", fl->C_GenerateRandom(BAD_SESSION, NULL, 16),
           CKR_ARGUMENTS_BAD);
    expect("C_SignInit(pMechanism NULL)", fl->C_SignInit(BAD_SESSION, NULL, BAD_OBJECT),
           CKR_ARGUMENTS_BAD);
    expect("C_CreateObject(pTemplate NULL)", fl->C_CreateObject(BAD_SESSION, NULL, 3, &obj),
           CKR_ARGUMENTS_BAD);
    expect("C_CreateObject(phObject NULL)", fl->C_CreateObject(BAD_SESSION, &attr, 1, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_GetAttributeValue(pTemplate NULL)",
           fl->C_GetAttributeValue(BAD_SESSION, BAD_OBJECT, NULL, 2), CKR_ARGUMENTS_BAD);
    expect("C_GetObjectSize(NULL)", fl->C_GetObjectSize(BAD_SESSION, BAD_OBJECT, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_GenerateKeyPair(phPrivateKey NULL)",
           fl->C_GenerateKeyPair(BAD_SESSION, &mech, NULL, 0, NULL, 0, &pub, NULL),
           CKR_ARGUMENTS_BAD);
    expect("C_Finalize(pReserved non-NULL)", fl->C_Finalize((void *)&n), CKR_ARGUMENTS_BAD);

    /* C stubs */
    expect("C_GetFunctionStatus", fl->C_GetFunctionStatus(BAD_SESSION), CKR_FUNCTION_NOT_PARALLEL);
    expect("C_CancelFunction", fl->C_CancelFunction(BAD_SESSION), CKR_FUNCTION_NOT_PARALLEL);
    expect("C_SignRecoverInit", fl->C_SignRecoverInit(BAD_SESSION, &mech, BAD_OBJECT),
           CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_WrapKey", fl->C_WrapKey(BAD_SESSION, &mech, 1, 2, buf, &n),
           CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_DigestEncryptUpdate", fl->C_DigestEncryptUpdate(BAD_SESSION, buf, 1, buf, &n),
           CKR_FUNCTION_NOT_SUPPORTED);
}

static void check_3_0_functions(void *h)
{
    T_GetInterface gi = (T_GetInterface)dlsym(h, "C_GetInterface");
    T_INTERFACE *itf = NULL;
    void **slot;
    if (!gi || gi(NULL, NULL, &itf, 0) != CKR_OK)
        return;
    slot = slots_of(itf->pFunctionList);
    expect("C_LoginUser bad session",
           ((T_LoginUser)slot[IDX_LOGIN_USER])(BAD_SESSION, CKU_USER, (CK_UTF8CHAR *)"1234", 4,
                                               (CK_UTF8CHAR *)"u", 1),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_MessageEncryptFinal", ((T_SessionOnly)slot[IDX_MESSAGE_ENCRYPT_FINAL])(BAD_SESSION),
           CKR_FUNCTION_NOT_SUPPORTED);
    expect("C_MessageVerifyFinal", ((T_SessionOnly)slot[IDX_MESSAGE_VERIFY_FINAL])(BAD_SESSION),
           CKR_FUNCTION_NOT_SUPPORTED);
}

/* With a token present: short buffers, invalid object handles, attribute conventions. */
static void check_with_token(CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE s = 0;
    CK_OBJECT_HANDLE objs[64];
    CK_ULONG n = 0, i, size = 0;
    CK_BYTE buf[256], sig[128];
    CK_MECHANISM_TYPE mechs[1];
    CK_OBJECT_CLASS cls = 0;
    CK_BYTE tiny[1];
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};

    n = 0;
    expect("C_GetMechanismList count", fl->C_GetMechanismList(slot, NULL, &n), CKR_OK);
    if (n > 1) {
        CK_ULONG want = n;
        n = 1;
        expect("C_GetMechanismList short", fl->C_GetMechanismList(slot, mechs, &n),
               CKR_BUFFER_TOO_SMALL);
        expect_true("C_GetMechanismList short reports the count", n == want);
    }
    expect("C_OpenSession", fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    if (!s)
        return;
    expect("C_GenerateRandom", fl->C_GenerateRandom(s, buf, 32), CKR_OK);
    expect("C_GenerateRandom 0 bytes", fl->C_GenerateRandom(s, buf, 0), CKR_OK);
    n = sizeof sig;
    expect("C_Sign without C_SignInit", fl->C_Sign(s, buf, 32, sig, &n),
           CKR_OPERATION_NOT_INITIALIZED);
    expect("C_GetObjectSize bad object", fl->C_GetObjectSize(s, BAD_OBJECT, &size),
           CKR_OBJECT_HANDLE_INVALID);
    {
        CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof cls};
        expect("C_GetAttributeValue bad object", fl->C_GetAttributeValue(s, BAD_OBJECT, &a, 1),
               CKR_OBJECT_HANDLE_INVALID);
    }
    expect("C_SignInit bad key", fl->C_SignInit(s, &ecdsa, BAD_OBJECT), CKR_KEY_HANDLE_INVALID);
    checks++;
    if (fl->C_DestroyObject(s, BAD_OBJECT) == CKR_OK) {
        failures++;
        printf("FAIL C_DestroyObject bad object returned CKR_OK\n");
    }

    /* FindObjects: one handle at a time never writes more than asked */
    expect("C_FindObjectsInit all", fl->C_FindObjectsInit(s, NULL, 0), CKR_OK);
    expect("C_FindObjectsInit twice", fl->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
    n = 0;
    {
        CK_OBJECT_HANDLE one[2] = {0, 0x5A5A};
        CK_ULONG got = 99;
        expect("C_FindObjects max 1", fl->C_FindObjects(s, one, 1, &got), CKR_OK);
        expect_true("C_FindObjects wrote at most 1", got <= 1 && one[1] == 0x5A5A);
        if (got == 1)
            objs[n++] = one[0];
        expect("C_FindObjects max 0", fl->C_FindObjects(s, NULL, 0, &got), CKR_OK);
        expect_true("C_FindObjects max 0 found 0", got == 0);
    }
    {
        CK_ULONG got = 0;
        expect("C_FindObjects rest", fl->C_FindObjects(s, objs + n, 63 - n, &got), CKR_OK);
        n += got;
    }
    expect("C_FindObjectsFinal", fl->C_FindObjectsFinal(s), CKR_OK);
    expect("C_FindObjects after final", fl->C_FindObjects(s, objs, 1, &size),
           CKR_OPERATION_NOT_INITIALIZED);

    for (i = 0; i < n && i < 8; i++) {
        CK_ATTRIBUTE t[3];
        CK_BYTE label[256];
        t[0].type = CKA_CLASS; t[0].pValue = &cls; t[0].ulValueLen = sizeof cls;
        t[1].type = CKA_LABEL; t[1].pValue = NULL; t[1].ulValueLen = 0;
        t[2].type = 0x7FFFFFF0UL; t[2].pValue = label; t[2].ulValueLen = sizeof label;
        expect("C_GetAttributeValue with an invalid type",
               fl->C_GetAttributeValue(s, objs[i], t, 3), CKR_ATTRIBUTE_TYPE_INVALID);
        expect_true("valid entry filled (native CK_ULONG)", t[0].ulValueLen == sizeof(CK_ULONG));
        expect_true("NULL pValue gets the length", t[1].ulValueLen != CK_UNAVAILABLE_INFORMATION);
        expect_true("invalid type marked unavailable", t[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);

        t[0].type = CKA_CLASS; t[0].pValue = tiny; t[0].ulValueLen = sizeof tiny;
        expect("C_GetAttributeValue short buffer", fl->C_GetAttributeValue(s, objs[i], t, 1),
               CKR_BUFFER_TOO_SMALL);
        expect_true("short entry marked unavailable", t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);

        if (cls == CKO_PRIVATE_KEY) {
            CK_ATTRIBUTE v = {CKA_VALUE, buf, sizeof buf};
            CK_RV rv = fl->C_GetAttributeValue(s, objs[i], &v, 1);
            expect_true("private CKA_VALUE is never readable",
                        (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID)
                            && v.ulValueLen == CK_UNAVAILABLE_INFORMATION);
        }
    }
    expect("C_CloseSession", fl->C_CloseSession(s), CKR_OK);
    expect("C_CloseSession twice", fl->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
}

static int mode_checks(const char *path)
{
    void *h = load(path);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 0;
    CK_C_INITIALIZE_ARGS args;

    check_entry_points(h);
    check_before_initialize();

    expect("C_Initialize", fl->C_Initialize(NULL), CKR_OK);
    expect("C_Initialize twice", fl->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    check_no_session();
    check_3_0_functions(h);

    expect("C_GetSlotList count", fl->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    if (n > 0) {
        CK_ULONG want = n;
        n = 0;
        expect("C_GetSlotList short", fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
        expect_true("C_GetSlotList short reports the count", n == want);
        n = 8;
        expect("C_GetSlotList", fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
        check_with_token(slots[0]);
        printf("INFO token checks ran on slot %lu\n", (unsigned long)slots[0]);
    } else {
        printf("INFO no token present: token checks skipped\n");
    }
    expect("C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    expect("C_Finalize twice", fl->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    expect("C_Initialize CKF_OS_LOCKING_OK", fl->C_Initialize(&args), CKR_OK);
    expect("C_Finalize again", fl->C_Finalize(NULL), CKR_OK);

    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

/* Loaded from a C host: prove which interpreter and packages the module runs on. */
static int mode_env(const char *path)
{
    CK_INFO info;
    int (*run)(const char *);
    int (*ensure)(void);
    void (*release)(int);
    load(path);
    expect("C_Initialize", fl->C_Initialize(NULL), CKR_OK);
    expect("C_GetInfo", fl->C_GetInfo(&info), CKR_OK);
    printf("INFO manufacturer %.32s\n", info.manufacturerID);
    /* libpython is in the global scope now (the module promoted it). */
    run = (int (*)(const char *))dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    ensure = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    release = (void (*)(int))dlsym(RTLD_DEFAULT, "PyGILState_Release");
    expect_true("libpython symbols are global", run && ensure && release);
    if (run && ensure && release) {
        int g = ensure();
        fflush(stdout);
        run("import sys, cryptoki, cffi\n"
            "print('PY prefix', sys.prefix)\n"
            "print('PY executable', sys.executable)\n"
            "print('PY cryptoki', cryptoki.__file__)\n"
            "print('PY cffi', cffi.__file__)\n"
            "print('PY flags isolated', sys.flags.isolated, 'utf8', sys.flags.utf8_mode)\n"
            "sys.stdout.flush()\n");
        release(g);
    }
    expect("C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

/* ---- fork while another thread is inside Python ---- */
static volatile int stop_busy;

static void *busy(void *arg)
{
    CK_INFO info;
    (void)arg;
    while (!stop_busy)
        fl->C_GetInfo(&info);
    return NULL;
}

static int child_body(void)
{
    CK_INFO info;
    CK_ULONG n = 0;
    alarm(20);                  /* a deadlocked child dies of SIGALRM */
    if (fl->C_GetInfo(&info) != CKR_CRYPTOKI_NOT_INITIALIZED)
        return 3;
    if (fl->C_Initialize(NULL) != CKR_OK)
        return 4;
    if (fl->C_GetInfo(&info) != CKR_OK || fl->C_GetSlotList(CK_FALSE, NULL, &n) != CKR_OK)
        return 5;
    if (fl->C_Finalize(NULL) != CKR_OK)
        return 6;
    return 0;
}

static int mode_fork(const char *path, int rounds)
{
    pthread_t t;
    int i;
    load(path);
    expect("C_Initialize", fl->C_Initialize(NULL), CKR_OK);
    pthread_create(&t, NULL, busy, NULL);
    usleep(20000);
    for (i = 0; i < rounds; i++) {
        int status = 0;
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_body());
        waitpid(pid, &status, 0);
        checks++;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failures++;
            if (WIFSIGNALED(status))
                printf("FAIL child %d killed by signal %d%s\n", i, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? " (deadlock)" : "");
            else
                printf("FAIL child %d exit status %d\n", i, WEXITSTATUS(status));
        }
        usleep(2000);
    }
    stop_busy = 1;
    pthread_join(t, NULL);
    expect("parent C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

/* ---- concurrent first calls: the interpreter starts exactly once ---- */
#define N_THREADS 8
static pthread_barrier_t barrier;
static CK_RV thread_rv[N_THREADS];

static void *racer(void *arg)
{
    long i = (long)arg;
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    pthread_barrier_wait(&barrier);
    thread_rv[i] = fl->C_Initialize(&args);
    return NULL;
}

static int mode_threads(const char *path)
{
    pthread_t t[N_THREADS];
    long i;
    int ok = 0, already = 0;
    load(path);
    pthread_barrier_init(&barrier, NULL, N_THREADS);
    for (i = 0; i < N_THREADS; i++)
        pthread_create(&t[i], NULL, racer, (void *)i);
    for (i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += thread_rv[i] == CKR_OK;
        already += thread_rv[i] == CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    expect_true("exactly one C_Initialize succeeded", ok == 1);
    expect_true("the others saw ALREADY_INITIALIZED", already == N_THREADS - 1);
    expect("C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

/* ---- lengths from C are checked before anything is read (limits.py) ---- */
#define HUGE_LEN ((CK_ULONG)0xFFFFFFFFUL)
#define BIG_COUNT ((CK_ULONG)1 << 40)

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    if (fl->C_FindObjectsInit(s, &t, 1) != CKR_OK)
        return 0;
    fl->C_FindObjects(s, &h, 1, &n);
    fl->C_FindObjectsFinal(s);
    return n ? h : 0;
}

static void check_length_limits(CK_SESSION_HANDLE s)
{
    CK_BBOOL yes = CK_TRUE;
    CK_OBJECT_CLASS data_class = CKO_DATA;
    CK_BYTE one[1] = {0}, buf[64];
    CK_ULONG n;
    CK_OBJECT_HANDLE obj = 0;
    CK_ATTRIBUTE bool_huge[2] = {{CKA_CLASS, &data_class, sizeof data_class},
                                 {CKA_TOKEN, &yes, HUGE_LEN}};
    CK_ATTRIBUTE ulong_huge[1] = {{CKA_CLASS, &data_class, HUGE_LEN}};
    CK_ATTRIBUTE label_over[1] = {{CKA_LABEL, one, 32 * 1024 + 1}};
    CK_ATTRIBUTE unit[1] = {{CKA_CLASS, &data_class, sizeof data_class}};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM ecdsa_huge_param = {CKM_ECDSA, one, BIG_COUNT};

    expect("C_CreateObject CK_BBOOL with ulValueLen 0xFFFFFFFF",
           fl->C_CreateObject(s, bool_huge, 2, &obj), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_CreateObject CK_ULONG with ulValueLen 0xFFFFFFFF",
           fl->C_CreateObject(s, ulong_huge, 1, &obj), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_CreateObject attribute one byte over MAX_ATTRIBUTE_BYTES",
           fl->C_CreateObject(s, label_over, 1, &obj), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_CreateObject ulCount 2^40", fl->C_CreateObject(s, unit, BIG_COUNT, &obj),
           CKR_ARGUMENTS_BAD);
    expect("C_FindObjectsInit ulCount 2^40", fl->C_FindObjectsInit(s, unit, BIG_COUNT),
           CKR_ARGUMENTS_BAD);
    expect("C_GetAttributeValue ulCount 2^40",
           fl->C_GetAttributeValue(s, 1, unit, BIG_COUNT), CKR_ARGUMENTS_BAD);
    expect("C_SetAttributeValue ulValueLen 0xFFFFFFFF",
           fl->C_SetAttributeValue(s, 1, bool_huge + 1, 1), CKR_ATTRIBUTE_VALUE_INVALID);
    expect("C_Login ulPinLen 0xFFFFFFFF", fl->C_Login(s, CKU_USER, one, HUGE_LEN),
           CKR_PIN_INCORRECT);
    expect("C_SignInit ulParameterLen 2^40", fl->C_SignInit(s, &ecdsa_huge_param, 1),
           CKR_MECHANISM_PARAM_INVALID);

    alarm(20);          /* today a 2^63-byte request asks the chip 32 bytes at a time, forever */
    expect("C_GenerateRandom 2^63 bytes", fl->C_GenerateRandom(s, buf, (CK_ULONG)1 << 63),
           CKR_DATA_LEN_RANGE);
    expect("C_GenerateRandom MAX_RANDOM_BYTES + 1",
           fl->C_GenerateRandom(s, buf, 64 * 1024 + 1), CKR_DATA_LEN_RANGE);
    alarm(0);

    expect("C_DigestInit", fl->C_DigestInit(s, &sha), CKR_OK);
    expect("C_DigestUpdate ulPartLen 0xFFFFFFFF", fl->C_DigestUpdate(s, one, HUGE_LEN),
           CKR_DATA_LEN_RANGE);
    expect("the failed C_DigestUpdate ended the digest", fl->C_DigestUpdate(s, one, 1),
           CKR_OPERATION_NOT_INITIALIZED);
    expect("C_DigestInit again", fl->C_DigestInit(s, &sha), CKR_OK);
    n = sizeof buf;
    expect("C_Digest ulDataLen 2^40", fl->C_Digest(s, one, BIG_COUNT, buf, &n),
           CKR_DATA_LEN_RANGE);
    n = sizeof buf;
    expect("the failed C_Digest ended the digest", fl->C_Digest(s, one, 1, buf, &n),
           CKR_OPERATION_NOT_INITIALIZED);
}

/* C_GetAttributeValue: a huge ulValueLen in front of a buffer exactly as large as the value. */
static void check_get_attribute_huge_capacity(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
    CK_BYTE *exact;
    CK_ULONG need, i;
    CK_ATTRIBUTE a = {CKA_EC_POINT, NULL, 0};
    int intact = 1;
    expect("C_GetAttributeValue CKA_EC_POINT length", fl->C_GetAttributeValue(s, key, &a, 1),
           CKR_OK);
    need = a.ulValueLen;
    if (need == CK_UNAVAILABLE_INFORMATION || need > 4096)
        return;
    exact = malloc(need + 64);
    memset(exact, 0xA5, need + 64);
    a.pValue = exact;
    a.ulValueLen = HUGE_LEN;
    expect("C_GetAttributeValue with ulValueLen 0xFFFFFFFF",
           fl->C_GetAttributeValue(s, key, &a, 1), CKR_OK);
    expect_true("ulValueLen is the value's length", a.ulValueLen == need);
    for (i = need; i < need + 64; i++)
        intact &= exact[i] == 0xA5;
    expect_true("nothing written past the value", intact);
    free(exact);
}

/* Every error but CKR_BUFFER_TOO_SMALL ends C_Sign's operation, also one the ABI raises. */
static void check_termination(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    CK_BYTE hash[32] = {1}, sig[64];
    CK_ULONG n = 0;

    expect("C_SignInit", fl->C_SignInit(s, &ecdsa, key), CKR_OK);
    expect("C_Sign length query", fl->C_Sign(s, hash, sizeof hash, NULL, &n), CKR_OK);
    n = 1;
    expect("C_Sign short buffer", fl->C_Sign(s, hash, sizeof hash, sig, &n),
           CKR_BUFFER_TOO_SMALL);
    expect("C_Sign(pulSignatureLen NULL)", fl->C_Sign(s, hash, sizeof hash, sig, NULL),
           CKR_ARGUMENTS_BAD);
    n = sizeof sig;
    expect("the failed C_Sign ended the operation", fl->C_Sign(s, hash, sizeof hash, sig, &n),
           CKR_OPERATION_NOT_INITIALIZED);

    expect("C_SignInit again", fl->C_SignInit(s, &ecdsa, key), CKR_OK);
    n = sizeof sig;
    expect("C_Sign(pData NULL, 32)", fl->C_Sign(s, NULL, 32, sig, &n), CKR_ARGUMENTS_BAD);
    expect("C_SignInit after the ended operation", fl->C_SignInit(s, &ecdsa, key), CKR_OK);
    n = sizeof sig;
    expect("C_Sign", fl->C_Sign(s, hash, sizeof hash, sig, &n), CKR_OK);
}

/* The core's order: session, operation state, mechanism, key, then the parameter. */
static void check_parameter_after_state(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    CK_BYTE junk[8] = {0};
    CK_MECHANISM gcm_bad = {CKM_AES_GCM, junk, 3};          /* no CK_GCM_PARAMS is 3 bytes */
    CK_MECHANISM null_param = {CKM_AES_CBC, NULL, 16};
    CK_MECHANISM huge_param = {CKM_ECDSA, junk, BIG_COUNT};
    CK_MECHANISM hmac_huge = {CKM_SHA256_HMAC_GENERAL, junk, BIG_COUNT};
    CK_BYTE sig[64];
    CK_ULONG n = sizeof sig;

    expect("bad CK_GCM_PARAMS, bad session", fl->C_EncryptInit(BAD_SESSION, &gcm_bad, key),
           CKR_SESSION_HANDLE_INVALID);
    expect("NULL pParameter with a length, bad session",
           fl->C_DecryptInit(BAD_SESSION, &null_param, key), CKR_SESSION_HANDLE_INVALID);
    expect("2^40-byte parameter, bad session", fl->C_SignInit(BAD_SESSION, &huge_param, key),
           CKR_SESSION_HANDLE_INVALID);
    expect("C_SignInit", fl->C_SignInit(s, &ecdsa, key), CKR_OK);
    expect("2^40-byte parameter, operation active", fl->C_SignInit(s, &huge_param, key),
           CKR_OPERATION_ACTIVE);
    expect("2^40-byte HMAC parameter, bad key", fl->C_VerifyInit(s, &hmac_huge, BAD_OBJECT),
           CKR_KEY_HANDLE_INVALID);
    expect("C_Sign", fl->C_Sign(s, junk, 8, sig, &n), CKR_OK);
}

static int mode_limits(const char *path, const char *group)
{
    CK_SESSION_HANDLE s = 0;
    CK_OBJECT_HANDLE priv, pub;
    load(path);
    expect("C_Initialize", fl->C_Initialize(NULL), CKR_OK);
    expect("C_OpenSession", fl->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                              &s), CKR_OK);
    priv = find_one(s, CKO_PRIVATE_KEY);
    pub = find_one(s, CKO_PUBLIC_KEY);
    expect_true("the token has a private and a public key", priv && pub);
    if (strcmp(group, "lengths") == 0)
        check_length_limits(s);
    else if (!priv || !pub)
        ;
    else if (strcmp(group, "get-attribute") == 0)
        check_get_attribute_huge_capacity(s, pub);
    else if (strcmp(group, "termination") == 0)
        check_termination(s, priv);
    else if (strcmp(group, "parameters") == 0)
        check_parameter_after_state(s, priv);
    else
        expect_true("known group of limits checks", 0);
    expect("C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

/* ---- an unexpected exception inside an entry point: CKR_GENERAL_ERROR, no traceback ---- */
static int mode_raise(const char *path)
{
    CK_INFO info;
    int (*run)(const char *);
    int (*ensure)(void);
    void (*release)(int);
    load(path);
    expect("C_Initialize", fl->C_Initialize(NULL), CKR_OK);
    run = (int (*)(const char *))dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    ensure = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    release = (void (*)(int))dlsym(RTLD_DEFAULT, "PyGILState_Release");
    expect_true("libpython symbols are global", run && ensure && release);
    if (run && ensure && release) {
        int g = ensure();
        /* Fault injection: the core's C_GetInfo raises what no code path should. */
        run("import cryptoki.library as l\n"
            "def broken():\n"
            "    raise ZeroDivisionError('injected\\nsecond line')\n"
            "l.LIBRARY.get_info = broken\n");
        release(g);
    }
    expect("C_GetInfo raising ZeroDivisionError", fl->C_GetInfo(&info), CKR_GENERAL_ERROR);
    expect("C_Finalize", fl->C_Finalize(NULL), CKR_OK);
    printf("%s %d checks, %d failed\n", failures ? "FAILED" : "PASSED", checks, failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODULE checks|env|fork [rounds]|threads|limits GROUP|raise\n",
                argv[0]);
        return 2;
    }
    if (strcmp(argv[2], "checks") == 0)
        return mode_checks(argv[1]);
    if (strcmp(argv[2], "env") == 0)
        return mode_env(argv[1]);
    if (strcmp(argv[2], "fork") == 0)
        return mode_fork(argv[1], argc > 3 ? atoi(argv[3]) : 20);
    if (strcmp(argv[2], "threads") == 0)
        return mode_threads(argv[1]);
    if (strcmp(argv[2], "limits") == 0)
        return mode_limits(argv[1], argc > 3 ? argv[3] : "");
    if (strcmp(argv[2], "raise") == 0)
        return mode_raise(argv[1]);
    fprintf(stderr, "unknown mode %s\n", argv[2]);
    return 2;
}
