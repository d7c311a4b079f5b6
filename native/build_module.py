"""cffi embedding build of the Cryptoki shared library ``cryptoki/libatecc_pkcs11.so``.

Owns: the C side of the module. :func:`make_ffi` returns an ``FFI`` whose ``set_source()``
preamble holds everything that must not depend on Python being alive:

* the interpreter start-up (an isolated ``PyConfig`` whose ``program_name`` is the build-time
  ``sys.executable`` so CPython finds the venv's ``pyvenv.cfg``, or ``ATECC_PKCS11_PYTHON`` --
  never in a setuid/setgid process (AT_SECURE), whose caller owns the environment; libpython
  promoted to ``RTLD_GLOBAL`` first, because C hosts ``dlopen`` us ``RTLD_LOCAL`` and Python's
  own extension modules need ``Py*`` symbols in the global scope);
* the checks that the interpreter can run the Python side: a Python host must run the same X.Y
  (a different X.Y would share our ``Py*`` references and hang or corrupt memory), and every
  interpreter must find the runtime dependencies (``RUNTIME_MODULES``); a host that fails gets
  ``CKR_GENERAL_ERROR`` and one line on stderr pointing at the broker, never a traceback (the
  init code reports its own failures the same way, through ``p11_start_failed``);
* ``pthread_atfork`` handlers that do what ``os.fork()`` does around the GIL;
* one ``static`` wrapper per Python-backed function, which returns ``CKR_GENERAL_ERROR`` when
  Python could not be started (cffi's own fallback would return 0, i.e. ``CKR_OK``);
* typed stubs for the functions the token does not implement, the static 2.40 and 3.0 function
  lists with every slot filled, and the three exported entry points ``C_GetFunctionList``,
  ``C_GetInterfaceList`` and ``C_GetInterface`` (pure C: they work before Python starts).

Everything else is ``static``/hidden so the function lists can never be interposed by another
module's ``C_*`` symbols; ``-fvisibility=hidden`` leaves exported only the three entry points and
cffi's ``PyInit_*`` (checked by ``tests/abi/test_exports.py``). The Python side is
``cryptoki._abi``; the embedding init code only imports it, calls ``register(ffi, lib)`` and sets
``lib.p11_ready = 1`` last.

Must not: be imported at run time (``native/`` is build-time only), contain token logic, or
write to stdout (the host owns it; start-up failures go to stderr).

CLI: ``python -m native.build_module OUT.so`` (default ``cryptoki/libatecc_pkcs11.so``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

import cffi

if __package__ in (None, ""):  # `python native/build_module.py` as well as `-m native.build_module`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from native.cdefs import FUNCTIONS, N_FUNCTIONS_240, TYPES

#: The cffi module name; ``PyInit_<this>`` is exported, and the init code imports it.
MODULE_NAME = "_atecc_pkcs11_cffi"
#: Library file name inside the ``cryptoki`` package.
LIBRARY_NAME = "libatecc_pkcs11.so"
#: Environment variable that overrides the recorded interpreter (``program_name``).
PYTHON_ENV_VAR = "ATECC_PKCS11_PYTHON"
#: Modules the Python side needs on the interpreter's path: the runtime dependencies of
#: pyproject.toml (cffi's is its ``_cffi_backend``), checked before cffi starts.
RUNTIME_MODULES = ("_cffi_backend", "cryptography", "smbus2")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = REPO_ROOT / "cryptoki" / LIBRARY_NAME

#: Functions implemented in Python by ``cryptoki._abi`` (each has a ``Core`` method).
PYTHON_FUNCTIONS: frozenset[str] = frozenset(
    """
    C_Initialize C_Finalize C_GetInfo C_GetSlotList C_GetSlotInfo C_GetTokenInfo
    C_WaitForSlotEvent C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN
    C_OpenSession C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState
    C_SetOperationState C_Login C_LoginUser C_Logout C_SessionCancel
    C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue
    C_SetAttributeValue C_FindObjectsInit C_FindObjects C_FindObjectsFinal
    C_EncryptInit C_Encrypt C_EncryptUpdate C_EncryptFinal
    C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal
    C_DigestInit C_Digest C_DigestUpdate C_DigestKey C_DigestFinal
    C_SignInit C_Sign C_SignUpdate C_SignFinal C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal
    C_GenerateKey C_GenerateKeyPair C_DeriveKey C_SeedRandom C_GenerateRandom
    """.split()
)

#: Implemented in C: the entry points (usable before C_Initialize) and the legacy §5.16
#: functions, which the spec says should simply return CKR_FUNCTION_NOT_PARALLEL.
C_FUNCTIONS = {
    "C_GetFunctionList": "p11_get_function_list",
    "C_GetInterfaceList": "p11_get_interface_list",
    "C_GetInterface": "p11_get_interface",
    "C_GetFunctionStatus": "p11_not_parallel_C_GetFunctionStatus",
    "C_CancelFunction": "p11_not_parallel_C_CancelFunction",
}

#: The only C_ symbols the library exports.
EXPORTS = ("C_GetFunctionList", "C_GetInterfaceList", "C_GetInterface")


def _arg_names(params: str) -> str:
    """``"CK_ULONG a, CK_BYTE_PTR b"`` -> ``"a, b"`` (every parameter is ``TYPE name``)."""
    return ", ".join(p.split()[-1].lstrip("*") for p in params.split(","))


def _c_string(text: str) -> str:
    """A C string literal for ``text`` (octal escapes for anything unusual)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?' or not 0x20 <= byte < 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _package_version() -> str:
    """``cryptoki.__version__``, read from the source (the build must not import the package)."""
    text = (REPO_ROOT / "cryptoki" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise RuntimeError("cryptoki/__init__.py has no __version__")
    return match.group(1)


def check_python() -> None:
    """Refuse a static libpython: the interpreter must be a shared library to be embedded."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise RuntimeError(
            f"{sys.executable} was built without --enable-shared (Py_ENABLE_SHARED=0). "
            "The Cryptoki module embeds libpython and needs a shared build; with pyenv use "
            "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install <version>."
        )
    if not sysconfig.get_config_var("INSTSONAME") or not sysconfig.get_config_var("LIBDIR"):
        raise RuntimeError("sysconfig does not name libpython's INSTSONAME/LIBDIR")


# --------------------------------------------------------------------------------------------
# C text


_PRELUDE = r"""
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#define CKR_OK                      0x000UL
#define CKR_GENERAL_ERROR           0x005UL
#define CKR_ARGUMENTS_BAD           0x007UL
#define CKR_FUNCTION_NOT_PARALLEL   0x051UL
#define CKR_FUNCTION_NOT_SUPPORTED  0x054UL
#define CKR_BUFFER_TOO_SMALL        0x150UL

#define P11_LIKELY(x) __builtin_expect(!!(x), 1)
#define P11_EXPORT __attribute__((visibility("default")))
"""

_RUNTIME = r"""
/* ---- start-up ------------------------------------------------------------------------------
 * p11_ready is set by the embedding init code, as its last statement, once cryptoki._abi has
 * attached every extern "Python" function. Until then no Python-backed call may run: cffi's own
 * fallback for a failed start-up returns 0 (CKR_OK) with zeroed outputs. */
static int p11_ready = 0;
static int p11_started = 0;          /* fast path: Python up and p11_ready seen */
static int p11_preinit_failed = 0;   /* set once, inside pthread_once */
static int p11_failure_reported = 0;
static int p11_start_explained = 0;  /* the init code said, in one line, why it failed */
static pthread_once_t p11_preinit_once = PTHREAD_ONCE_INIT;
static pthread_once_t p11_atfork_once = PTHREAD_ONCE_INIT;

/* Host stdout may be a protocol stream: diagnostics go to stderr only. */
static void p11_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("atecc-pkcs11: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
}

/* AT_SECURE: a setuid/setgid program, or one that gained capabilities or changed LSM domain. Its
 * environment belongs to whoever started it, so no setting that chooses code (the interpreter,
 * and through it the Python path) may come from there. */
static int p11_secure_mode(void) { return getauxval(AT_SECURE) != 0; }

/* getenv() for settings that choose code; NULL (with one line saying so) in secure mode. */
static const char *p11_code_setting(const char *name)
{
    const char *value = getenv(name);
    if (value && *value && p11_secure_mode()) {
        p11_log("ignoring %s in a setuid/setgid process (its caller controls the environment)",
                name);
        return NULL;
    }
    return value;
}

static const char *p11_package_version(void) { return P11_PACKAGE_VERSION; }

/* Called by the embedding init code when it cannot start: one line, then every call fails. */
static void p11_start_failed(const char *why)
{
    __atomic_store_n(&p11_start_explained, 1, __ATOMIC_RELEASE);
    p11_log("the Python side could not start (%s); every call returns CKR_GENERAL_ERROR", why);
}
static const char *p11_python_function_names(void) { return P11_PYTHON_FUNCTIONS; }

/* Absolute path of this shared object (for the init code's sys.path fallback). */
static const char *p11_module_file(void)
{
    Dl_info info;
    if (dladdr((void *)&p11_module_file, &info) && info.dli_fname)
        return info.dli_fname;
    return "";
}

/* What a Python host that cannot run the module in-process is told to do instead. */
#define P11_BROKER_HINT "use it through the broker: run `atecc broker` and load " \
    "p11-kit-client.so (README: Broker mode)"

/* A Python host must run the X.Y we were compiled for: our Py* references bind to the host's
 * libpython through the global scope, so any other X.Y is an ABI mismatch (and cffi's start-up
 * spin lock never clears on 3.12+). */
static int p11_same_python_version(void)
{
    char want[16];
    const char *have = Py_GetVersion();
    size_t have_len = strcspn(have, " ");
    int n = snprintf(want, sizeof want, "%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    if (strncmp(have, want, (size_t)n) == 0 && !(have[n] >= '0' && have[n] <= '9'))
        return 1;
    p11_log("cannot run in this process: it runs Python %.*s and this module was built for "
            "Python %s; %s", (int)(have_len > 32 ? 32 : have_len), have, want, P11_BROKER_HINT);
    return 0;
}

/* The modules the Python side needs from the interpreter's sys.path (the package's runtime
 * dependencies), checked before cffi starts: cffi's own failure is a traceback on the host's
 * stderr and a dead module. The first, _cffi_backend, is imported (cffi's start-up needs it
 * next anyway); the others are imported lazily by the Python side, so they are only looked up,
 * and only in a Python host (in a C host the interpreter is the package's own environment, and
 * looking costs start-up time). Takes the GIL if need be. */
static int p11_has_dependencies(int hosted)
{
    static const char *const needed[] = { P11_RUNTIME_MODULES, NULL };
    char missing[160] = "";
    const char *where = "?";
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *util = NULL, *exe;
    size_t i;
    for (i = 0; needed[i] && (i == 0 || hosted); i++) {
        PyObject *found;
        if (i == 0) {
            found = PyImport_ImportModule(needed[0]);
        } else {
            if (!util && !(util = PyImport_ImportModule("importlib.util")))
                PyErr_Clear();
            found = util ? PyObject_CallMethod(util, "find_spec", "s", needed[i]) : NULL;
        }
        if (!found)
            PyErr_Clear();
        if (!found || found == Py_None) {
            if (missing[0])
                strncat(missing, ", ", sizeof missing - strlen(missing) - 1);
            strncat(missing, needed[i], sizeof missing - strlen(missing) - 1);
        }
        Py_XDECREF(found);
    }
    Py_XDECREF(util);
    exe = PySys_GetObject("executable");     /* borrowed */
    if (missing[0] && exe && PyUnicode_Check(exe) && !(where = PyUnicode_AsUTF8(exe))) {
        PyErr_Clear();
        where = "?";
    }
    if (missing[0] && hosted)
        p11_log("cannot run in this process: its Python (%s) lacks %s, which the module needs "
                "in-process; install the package there, or %s", where, missing, P11_BROKER_HINT);
    else if (missing[0])
        p11_log("the module's Python (%s) lacks %s: reinstall the package (pip install) in that "
                "environment", where, missing);
    PyGILState_Release(gil);
    return missing[0] == '\0';
}

static void p11_report_status(const char *what, PyStatus st)
{
    p11_log("%s failed: %s%s%s", what, st.func ? st.func : "", st.func ? ": " : "",
            st.err_msg ? st.err_msg : "(no message)");
}

/* Runs once per process (pthread_once), before cffi's own start-up. */
static void p11_preinit(void)
{
    PyStatus st;
    PyPreConfig pre;
    PyConfig config;
    const char *program;

    if (Py_IsInitialized()) {               /* loaded into a running Python: reuse it */
        if (!p11_same_python_version() || !p11_has_dependencies(1))
            p11_preinit_failed = 1;
        return;
    }
    /* Promote libpython (already mapped as our DT_NEEDED) to the global scope so that extension
     * modules dlopen()ed by Python (_cffi_backend, cryptography) resolve their Py* symbols. */
    if (!dlopen(P11_LIBPYTHON_SONAME, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
        p11_log("could not promote %s to RTLD_GLOBAL: %s", P11_LIBPYTHON_SONAME, dlerror());

    /* Isolated: ignore PYTHONHOME/PYTHONPATH/... of the host (a bad PYTHONHOME is fatal), no
     * user site, no locale change in the host process, UTF-8 mode whatever the host locale. */
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) {
        p11_report_status("Python pre-initialisation", st);
        p11_preinit_failed = 1;
        return;
    }
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;     /* the host owns signals */
    config.site_import = 1;                 /* venv site-packages and .pth (editable installs) */
    program = p11_code_setting(P11_PYTHON_ENV_VAR);
    if (!program || !*program)
        program = P11_PYTHON_EXECUTABLE;
    /* program_name = the venv's python: CPython then finds pyvenv.cfg and sets up sys.prefix and
     * sys.path exactly as that interpreter would, whatever the host's PATH. */
    st = PyConfig_SetBytesString(&config, &config.program_name, program);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        p11_report_status("Python initialisation", st);
        p11_log("interpreter: %s (override with %s)", program, P11_PYTHON_ENV_VAR);
        p11_preinit_failed = 1;
        return;
    }
    PyEval_SaveThread();                    /* cffi expects the GIL to be free */
    if (!p11_has_dependencies(0))
        p11_preinit_failed = 1;
}

/* fork() while another thread holds the GIL leaves the child waiting for a GIL owner that does
 * not exist. Like os.fork(): take the GIL and Python's fork locks around the fork. A caller that
 * already holds the GIL is os.fork() itself, which does this on its own. */
static int p11_fork_held = 0;
static PyGILState_STATE p11_fork_gil;

static void p11_atfork_prepare(void)
{
    if (!Py_IsInitialized() || PyGILState_Check()) {
        p11_fork_held = 0;
        return;
    }
    p11_fork_gil = PyGILState_Ensure();
    PyOS_BeforeFork();
    p11_fork_held = 1;
}

static void p11_atfork_parent(void)
{
    if (p11_fork_held) {
        p11_fork_held = 0;
        PyOS_AfterFork_Parent();
        PyGILState_Release(p11_fork_gil);
    }
}

static void p11_atfork_child(void)
{
    if (p11_fork_held) {
        p11_fork_held = 0;
        PyOS_AfterFork_Child();
        PyGILState_Release(p11_fork_gil);
    }
}

static void p11_register_atfork(void)
{
    if (pthread_atfork(p11_atfork_prepare, p11_atfork_parent, p11_atfork_child) != 0)
        p11_log("pthread_atfork failed; fork() while another thread is in the module may hang");
}

static __attribute__((noinline)) int p11_start_slow(void)
{
    pthread_once(&p11_preinit_once, p11_preinit);
    if (p11_preinit_failed)
        return -1;
    if (cffi_start_python() != 0 || !__atomic_load_n(&p11_ready, __ATOMIC_ACQUIRE)) {
        if (!__atomic_load_n(&p11_start_explained, __ATOMIC_ACQUIRE) &&
            !__atomic_exchange_n(&p11_failure_reported, 1, __ATOMIC_ACQ_REL))
            p11_log("the Python side (cryptoki._abi) did not start; every call returns "
                    "CKR_GENERAL_ERROR");
        return -1;
    }
    pthread_once(&p11_atfork_once, p11_register_atfork);
    __atomic_store_n(&p11_started, 1, __ATOMIC_RELEASE);
    return 0;
}

/* 0 when Python-backed calls may run. One relaxed-cost load on the fast path. */
static inline int p11_ensure_python(void)
{
    if (P11_LIKELY(__atomic_load_n(&p11_started, __ATOMIC_ACQUIRE)))
        return 0;
    return p11_start_slow();
}
"""

_INTERFACES = r"""
/* ---- interfaces (PKCS#11 v3.0 §5.4) -----------------------------------------------------
 * Pure C, usable before C_Initialize and without Python. The 3.0 list is the default
 * interface; C_GetFunctionList hands out the 2.40 list for 2.x callers. */
static CK_CHAR p11_interface_name[] = "PKCS 11";
static CK_INTERFACE p11_interfaces[2] = {
    { p11_interface_name, &p11_list_30, 0 },
    { p11_interface_name, &p11_list_240, 0 },
};
#define P11_N_INTERFACES (sizeof p11_interfaces / sizeof p11_interfaces[0])

static CK_RV p11_get_function_list(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (!ppFunctionList)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &p11_list_240;
    return CKR_OK;
}

static CK_RV p11_get_interface_list(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
    if (!pulCount)
        return CKR_ARGUMENTS_BAD;
    if (!pInterfacesList) {
        *pulCount = P11_N_INTERFACES;
        return CKR_OK;
    }
    if (*pulCount < P11_N_INTERFACES) {
        *pulCount = P11_N_INTERFACES;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(pInterfacesList, p11_interfaces, sizeof p11_interfaces);
    *pulCount = P11_N_INTERFACES;
    return CKR_OK;
}

/* NULL name: any name; NULL version: any version; flags: all requested bits must be set.
 * First match in list order, so (NULL, NULL) is the 3.0 default. No match: CKR_ARGUMENTS_BAD
 * (the OpenSSL pkcs11-provider then asks again for the default interface). */
static CK_RV p11_get_interface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                               CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
    size_t i;
    if (!ppInterface)
        return CKR_ARGUMENTS_BAD;
    for (i = 0; i < P11_N_INTERFACES; i++) {
        CK_INTERFACE *itf = &p11_interfaces[i];
        const CK_VERSION *v = (const CK_VERSION *)itf->pFunctionList;   /* first member */
        if (pInterfaceName && strcmp((const char *)pInterfaceName,
                                     (const char *)itf->pInterfaceName) != 0)
            continue;
        if (pVersion && (pVersion->major != v->major || pVersion->minor != v->minor))
            continue;
        if ((itf->flags & flags) != flags)
            continue;
        *ppInterface = itf;
        return CKR_OK;
    }
    return CKR_ARGUMENTS_BAD;
}

P11_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    return p11_get_function_list(ppFunctionList);
}

P11_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
    return p11_get_interface_list(pInterfacesList, pulCount);
}

P11_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                                CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
    return p11_get_interface(pInterfaceName, pVersion, ppInterface, flags);
}
"""


def _slot_function(name: str) -> str:
    """The static C function that fills ``name``'s slot in the function lists."""
    if name in PYTHON_FUNCTIONS:
        return f"p11_w_{name}"
    return C_FUNCTIONS.get(name, f"p11_unsupported_{name}")


def _generated_functions() -> str:
    """Forward declarations, wrappers, stubs and the two function lists."""
    out: list[str] = []
    out.append("/* ---- generated from native/cdefs.py FUNCTIONS ---- */\n")
    out.append("static CK_FUNCTION_LIST p11_list_240;\nstatic CK_FUNCTION_LIST_3_0 p11_list_30;\n")
    # extern "Python" functions are static in cffi's output; declare them for our wrappers.
    for name, params in FUNCTIONS:
        if name in PYTHON_FUNCTIONS:
            out.append(f"static CK_RV py_{name}({params});\n")
    out.append(
        "\n/* Every unimplemented slot gets a typed stub (no calls through a mismatched\n"
        " * function-pointer type); all share this one answer. */\n"
        "static CK_RV p11_unsupported(void) { return CKR_FUNCTION_NOT_SUPPORTED; }\n"
    )
    for name, params in FUNCTIONS:
        args = _arg_names(params)
        if name in PYTHON_FUNCTIONS:
            out.append(
                f"static CK_RV p11_w_{name}({params})\n{{\n"
                f"    if (p11_ensure_python() != 0)\n        return CKR_GENERAL_ERROR;\n"
                f"    return py_{name}({args});\n}}\n"
            )
        elif name in ("C_GetFunctionStatus", "C_CancelFunction"):
            out.append(
                f"static CK_RV p11_not_parallel_{name}({params})\n{{\n"
                f"    (void)hSession;\n    return CKR_FUNCTION_NOT_PARALLEL;\n}}\n"
            )
        elif name not in C_FUNCTIONS:
            voids = "".join(f"(void){a}; " for a in args.split(", "))
            out.append(
                f"static CK_RV p11_unsupported_{name}({params})\n"
                f"{{ {voids}return p11_unsupported(); }}\n"
            )
    # Interface functions are defined after the lists; declare them for the initialisers.
    out.append(
        "static CK_RV p11_get_function_list(CK_FUNCTION_LIST_PTR_PTR);\n"
        "static CK_RV p11_get_interface_list(CK_INTERFACE_PTR, CK_ULONG_PTR);\n"
        "static CK_RV p11_get_interface(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR,"
        " CK_FLAGS);\n"
    )
    for var, major, minor, entries in (
        ("p11_list_240", 2, 40, FUNCTIONS[:N_FUNCTIONS_240]),
        ("p11_list_30", 3, 0, FUNCTIONS),
    ):
        struct = "CK_FUNCTION_LIST" if var == "p11_list_240" else "CK_FUNCTION_LIST_3_0"
        body = "".join(f"    .{n} = {_slot_function(n)},\n" for n, _ in entries)
        out.append(
            f"static {struct} {var} = {{\n    .version = {{ {major}, {minor} }},\n{body}}};\n"
        )
    return "".join(out)


def _cdef() -> str:
    """What Python sees of the module: the types, the ready flag, build facts, the externs."""
    externs = "".join(
        f"    CK_RV py_{name}({params});\n"
        for name, params in FUNCTIONS
        if name in PYTHON_FUNCTIONS
    )
    return (
        TYPES
        + "\nextern int p11_ready;\n"
        + "const char *p11_package_version(void);\n"
        + "const char *p11_python_function_names(void);\n"
        + "const char *p11_module_file(void);\n"
        + "int p11_secure_mode(void);\n"
        + "void p11_start_failed(const char *why);\n"
        + 'extern "Python" {\n'
        + externs
        + "}\n"
    )


def _init_code() -> str:
    """Python run once inside the module, after PyInit (so _cffi_backend is importable).

    Whatever goes wrong becomes one line on stderr (``p11_start_failed``) and a dead module whose
    every call fails, never a traceback in the host's output; the traceback goes to the module's
    log at DEBUG when the log can be set up at all."""
    return f"""\
import sys
from {MODULE_NAME} import ffi, lib
def _start():
    try:
        import cryptoki._abi as _abi
    except ImportError:
        # The host's sys.path keeps priority; fall back to the tree this library sits in.
        import os
        _root = os.path.dirname(os.path.dirname(ffi.string(lib.p11_module_file()).decode()))
        if _root and _root not in sys.path:
            sys.path.append(_root)
        import cryptoki._abi as _abi
    import cryptoki
    want = ffi.string(lib.p11_package_version()).decode()
    if getattr(cryptoki, "__version__", None) != want:
        raise ImportError(
            f"this process imports cryptoki {{getattr(cryptoki, '__version__', '?')}} from "
            f"{{cryptoki.__file__}}, the library is {{want}}"
        )
    _abi.register(ffi, lib)
try:
    _start()
except BaseException as exc:
    why = " ".join(f"{{type(exc).__name__}}: {{exc}}".split())[:300]
    lib.p11_start_failed(why.encode("utf-8", "replace"))
    try:
        from cryptoki.log import get_logger
        get_logger().debug("start-up failed", exc_info=True)
    except BaseException:
        pass
else:
    lib.p11_ready = 1
"""


def make_ffi(
    target_path: str | os.PathLike[str] | None = None, *, python_executable: str | None = None
) -> cffi.FFI:
    """The FFI for the Cryptoki library.

    :param target_path: where the library will be written (only checked for a plain name: the
        library finds its own location at run time with ``dladdr``).
    :param python_executable: interpreter recorded as ``program_name`` (default
        ``sys.executable``; for a venv this must be the venv's ``bin/python``, not resolved).
    """
    check_python()
    if target_path is not None and not str(target_path).endswith(".so"):
        raise ValueError(f"target must be a plain .so path, got {target_path}")
    executable = python_executable or sys.executable
    if not os.path.isabs(executable):
        raise ValueError(f"python executable must be an absolute path: {executable}")
    names = sorted(PYTHON_FUNCTIONS)
    defines = (
        f"#define P11_PYTHON_EXECUTABLE {_c_string(executable)}\n"
        f"#define P11_PYTHON_ENV_VAR {_c_string(PYTHON_ENV_VAR)}\n"
        f"#define P11_LIBPYTHON_SONAME {_c_string(sysconfig.get_config_var('INSTSONAME'))}\n"
        f"#define P11_PACKAGE_VERSION {_c_string(_package_version())}\n"
        f"#define P11_PYTHON_FUNCTIONS {_c_string(' '.join(names))}\n"
        f"#define P11_RUNTIME_MODULES {', '.join(_c_string(m) for m in RUNTIME_MODULES)}\n"
    )
    ffi = cffi.FFI()
    ffi.cdef(_cdef())
    ffi.embedding_init_code(_init_code())
    ffi.set_source(
        MODULE_NAME,
        _PRELUDE + defines + TYPES + _RUNTIME + _generated_functions() + _INTERFACES,
        libraries=["dl", "pthread"],
        # Hidden by default: only P11_EXPORT functions and cffi's PyMODINIT_FUNC are exported,
        # and calls/pointers inside the library bind locally (never to another module's C_*).
        extra_compile_args=["-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
        extra_link_args=[
            f"-Wl,-rpath,{sysconfig.get_config_var('LIBDIR')}",  # our libpython, not the loader's
            "-Wl,-z,nodelete",  # the interpreter keeps pointers into us after dlclose
            "-Wl,--exclude-libs,ALL",
            "-Wl,--no-undefined",
        ],
    )
    return ffi


def build(
    target: str | os.PathLike[str] = DEFAULT_TARGET,
    *,
    tmpdir: str | None = None,
    python_executable: str | None = None,
    verbose: bool = False,
) -> Path:
    """Compile the library to ``target`` and return its absolute path."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    ffi = make_ffi(target, python_executable=python_executable)
    with tempfile.TemporaryDirectory(prefix="atecc-p11-build-") as scratch:
        work = Path(tmpdir).resolve() if tmpdir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        out = ffi.compile(tmpdir=str(work), target=str(target), verbose=verbose)
    return Path(out).resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m native.build_module", description="Build the Cryptoki shared library."
    )
    parser.add_argument(
        "output",
        nargs="?",
        default=str(DEFAULT_TARGET),
        help=f"output .so path (default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="interpreter to record as program_name (default: sys.executable)",
    )
    parser.add_argument("--tmpdir", default=None, help="keep the generated C and objects here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        path = build(
            args.output, tmpdir=args.tmpdir, python_executable=args.python, verbose=args.verbose
        )
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
