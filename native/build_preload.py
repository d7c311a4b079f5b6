"""Build of the I2C preload shim ``atecc/emulator/libatecc_i2c_preload.so`` (``i2c_preload.c``).

Owns: the compiler command line for the shim, a plain C shared library with no Python in it
(``atecc emulator run`` preloads it into the programs it starts). Called by ``setup.py``'s
``build_ext`` next to the Cryptoki library, so every install builds both.

Must not: be imported at run time (``native/`` is build-time only).

CLI: ``python -m native.build_preload [OUT.so]``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

LIBRARY_NAME = "libatecc_i2c_preload.so"
REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).resolve().with_name("i2c_preload.c")
DEFAULT_TARGET = REPO_ROOT / "atecc" / "emulator" / LIBRARY_NAME
#: Interposed definitions of open/read/... must not meet glibc's fortified inline wrappers.
CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-U_FORTIFY_SOURCE")
#: Only the interposed functions are exported.
LDFLAGS = ("-fvisibility=hidden", "-Wl,-z,now", "-ldl", "-lpthread")


def compiler() -> list[str]:
    """``$CC`` split like a shell would, else ``cc``."""
    return shlex.split(os.environ.get("CC", "")) or ["cc"]


def build(target: str | os.PathLike[str] = DEFAULT_TARGET, *, verbose: bool = False) -> Path:
    """Compile the shim to ``target`` (written atomically) and return its absolute path."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cmd = [*compiler(), *CFLAGS, "-o", str(partial), str(SOURCE), *LDFLAGS]
    if verbose:
        print(" ".join(shlex.quote(c) for c in cmd))
    try:
        subprocess.run(cmd, check=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else DEFAULT_TARGET
    try:
        print(build(target, verbose=True))
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"build_preload: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
