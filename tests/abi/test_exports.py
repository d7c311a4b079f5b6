"""(c) Symbol hygiene of the built library: only the three entry points (and cffi's PyInit_) are
exported, so no other module's C_* can interpose on our function lists and ours cannot leak;
libpython is found through RUNPATH; the library is never unloaded."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

EXPECTED = {
    "C_GetFunctionList",
    "C_GetInterfaceList",
    "C_GetInterface",
    "PyInit__atecc_pkcs11_cffi",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (binutils) is not installed")
    return path


def test_only_entry_points_are_exported(module_path: Path) -> None:
    out = subprocess.run(
        [_tool("nm"), "-D", "--defined-only", str(module_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert exported == EXPECTED


def test_dynamic_section(module_path: Path) -> None:
    out = subprocess.run(
        [_tool("readelf"), "-d", str(module_path)], capture_output=True, text=True, check=True
    ).stdout
    assert f"[{sysconfig.get_config_var('INSTSONAME')}]" in out  # NEEDED libpython3.X.so
    assert sysconfig.get_config_var("LIBDIR") in out  # RUNPATH: our libpython, not the loader's
    assert "NODELETE" in out
