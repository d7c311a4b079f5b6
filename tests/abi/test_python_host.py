"""(d) The library loaded into a process that already runs Python.

Same X.Y (the venv's python, through cffi's ABI mode like python-pkcs11 or PyKCS11 would): the
library must reuse that interpreter, not start a second one, and work. Another X.Y: the version
guard must refuse cleanly with CKR_GENERAL_ERROR instead of hanging in cffi's start-up spin lock.
Each host runs in its own process, because the library binds to the interpreter it first meets.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ._support import REPO, describe, host_env, require_core, run

SAME_VERSION_HOST = r"""
import importlib.util, sys
so, cdefs_path = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("cdefs", cdefs_path)
cdefs = importlib.util.module_from_spec(spec); spec.loader.exec_module(cdefs)
import cffi
ffi = cffi.FFI()
ffi.cdef(cdefs.TYPES + "CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR);")
lib = ffi.dlopen(so)
pp = ffi.new("CK_FUNCTION_LIST_PTR *")
assert lib.C_GetFunctionList(pp) == 0
fl = pp[0]
assert "cryptoki._abi" not in sys.modules          # nothing Python-side has run yet
assert fl.C_Initialize(ffi.NULL) == 0
info = ffi.new("CK_INFO *")
assert fl.C_GetInfo(info) == 0
print("manufacturer", bytes(ffi.buffer(info.manufacturerID)).decode().rstrip())
print("version", info.cryptokiVersion.major, info.cryptokiVersion.minor)
# The module's Python side lives in *this* interpreter: its modules are in our sys.modules.
print("reused", "cryptoki._abi" in sys.modules and "_atecc_pkcs11_cffi" in sys.modules)
import cryptoki._abi
print("abi-registered", cryptoki._abi._ffi is not None)
count = ffi.new("CK_ULONG *")
assert fl.C_GetSlotList(0, ffi.NULL, count) == 0
print("slots", count[0])
assert fl.C_Finalize(ffi.NULL) == 0
assert fl.C_GetInfo(info) == 0x190                   # CKR_CRYPTOKI_NOT_INITIALIZED
print("done")
"""

OTHER_VERSION_HOST = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
fl = ctypes.c_void_p()
assert lib.C_GetFunctionList(ctypes.byref(fl)) == 0
# CK_FUNCTION_LIST: CK_VERSION (padded to 8 bytes), then C_Initialize.
addr = ctypes.c_void_p.from_address(fl.value + 8).value
c_initialize = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(addr)
print("rv", c_initialize(None))
print("rv", c_initialize(None))
"""


def test_same_version_python_host_reuses_interpreter(module_path: Path, filestore: Path) -> None:
    env = host_env(filestore)
    proc = run(
        [sys.executable, "-c", SAME_VERSION_HOST, module_path, REPO / "native" / "cdefs.py"],
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout
    assert "manufacturer Microchip" in out, describe(proc)
    assert "version 3 0" in out
    assert "reused True" in out
    assert "abi-registered True" in out
    assert "slots 1" in out
    assert "done" in out


def _other_python() -> str:
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in ("3.12", "3.13", "3.10"):
        if version == mine:
            continue
        found = shutil.which(f"python{version}")
        pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        candidates = [
            *sorted((pyenv_root / "versions").glob(f"{version}.*/bin/python3")),
            *([found] if found and "/shims/" not in found else []),
        ]
        if candidates:
            return str(candidates[0])
    pytest.skip("no Python of another X.Y is installed")


def test_other_version_python_host_is_refused(module_path: Path, tmp_path: Path) -> None:
    require_core()
    proc = run([_other_python(), "-c", OTHER_VERSION_HOST, module_path], env=host_env(), timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["rv", "5", "rv", "5"], describe(proc)  # CKR_GENERAL_ERROR
    assert "was built for Python" in proc.stderr
