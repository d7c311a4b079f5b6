"""Helpers shared by the ABI tests (paths, subprocess runner, filestores, clean host env).

Owns: nothing stateful; fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LIBRARY = REPO / "cryptoki" / "libatecc_pkcs11.so"
BUILD_SOURCES = (REPO / "native" / "build_module.py", REPO / "native" / "cdefs.py")
P11KIT_INCLUDE = Path("/usr/include/p11-kit-1")


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output (never raises on a non-zero status)."""
    return subprocess.run(
        [str(c) for c in cmd], env=env, timeout=timeout, capture_output=True, text=True, cwd=cwd
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def compile_c_host(source: Path, out: Path, *flags: str) -> Path:
    """``source`` built with gcc against p11-kit's pkcs11.h (an independent copy of the ABI), as
    ``out``; skips the test where gcc or the header is missing, fails it on a compile error."""
    import shutil

    gcc = shutil.which("gcc")
    if gcc is None or not (P11KIT_INCLUDE / "p11-kit" / "pkcs11.h").exists():
        pytest.skip("gcc or p11-kit's pkcs11.h (libp11-kit-dev) is not installed")
    cmd = [gcc, "-std=gnu11", "-Wall", "-Werror", "-O1", f"-I{P11KIT_INCLUDE}", *flags]
    proc = run([*cmd, str(source), "-o", str(out), "-ldl", "-lpthread"])
    if proc.returncode != 0:
        pytest.fail(f"compiling {source.name} failed:\n{describe(proc)}")
    return out


def core_importable() -> bool:
    """True when the Cryptoki core and the emulator exist (they are written in parallel)."""
    try:
        import atecc.emulator.profiles  # noqa: F401
        import cryptoki.library  # noqa: F401
    except ImportError:
        return False
    return True


def require_core() -> None:
    if not core_importable():
        pytest.skip(
            "cryptoki.library or atecc.emulator is not importable yet: these checks "
            "need the real Cryptoki core behind the ABI"
        )


def make_filestore(directory: Path, *, with_token: bool = True) -> Path:
    """A filestore with one emulated Trust&GO chip as slot 0 (or an empty one)."""
    directory.mkdir(parents=True, exist_ok=True)
    if with_token:
        from atecc.emulator.profiles import create_chip

        create_chip(directory / "chip0.json", "ATECC608-TNGTLS")
        (directory / "0.conf").write_text(
            "interface = emulator,chip0.json\ndevice = ATECC608-TNGTLS\nlabel = 00ABC\n"
            "root_ca = chip0.root-ca.pem\n",
            encoding="utf-8",
        )
    return directory


def host_env(filestore: Path | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for a host process: no venv on PATH, no inherited Python config."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C",
    }
    if filestore is not None:
        env["ATECC_PKCS11_FILESTORE"] = str(filestore)
    env.update(extra)
    return env


def native_cdefs() -> ModuleType:
    """``native/cdefs.py`` (build-time code, not on sys.path at test time), loaded by path."""
    name = "_abi_tests_native_cdefs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "native" / "cdefs.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
