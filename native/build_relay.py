"""cffi build of the broker's C side: the extension module ``broker._relay``.

Owns: turning ``native/broker_relay.c`` (p11-kit loading and the per-connection framing relay)
into an ordinary CPython extension module, with the PKCS#11 types of ``native/cdefs.py`` so that
the broker can also call a module's function list (``atecc broker --check``). The functions are
called with the GIL released (cffi does that for every call), so one connection never holds up
another.

Must not: be imported at run time (``native/`` is build-time only) or link libp11-kit (the relay
finds it with ``dlopen`` when the broker starts, so building needs no -dev package and a machine
without p11-kit gets a clear message from the broker instead of an import error).

CLI: ``python -m native.build_relay [OUT_DIR]`` (default: the ``broker`` package directory).
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
from pathlib import Path

import cffi

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from native.cdefs import TYPES

MODULE_NAME = "broker._relay"
REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).resolve().parent / "broker_relay.c"
DEFAULT_DIR = REPO_ROOT / "broker"

_CDEF = """
struct relay_limits {
    uint32_t max_options;
    uint32_t max_body;
    int handshake_ms;
    int message_ms;
    int idle_ms;
};
struct relay_stats {
    int end;
    int sys_errno;
    unsigned long requests;
};
const char *relay_p11kit_error(void);
const char *relay_p11kit_message(void);
void *relay_module_load(const char *path);
unsigned long relay_module_initialize(void *module);
unsigned long relay_module_finalize(void *module);
void relay_module_release(void *module);
int relay_serve(void *module, int client_fd, const struct relay_limits *lim, int stop_fd,
                struct relay_stats *st);
"""


def make_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(TYPES + _CDEF)
    ffi.set_source(
        MODULE_NAME,
        TYPES + SOURCE.read_text(encoding="utf-8"),
        libraries=["dl", "pthread"],
        extra_compile_args=["-Wall", "-Wno-unused-function"],
    )
    return ffi


def build(out_dir: str | Path = DEFAULT_DIR, *, tmpdir: str | None = None) -> Path:
    """Compile ``broker._relay`` into ``out_dir`` (the ``broker`` package directory)."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = out_dir / f"_relay{suffix}"
    with tempfile.TemporaryDirectory(prefix="atecc-relay-build-") as scratch:
        work = Path(tmpdir).resolve() if tmpdir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        out = make_ffi().compile(tmpdir=str(work), target=str(target))
    return Path(out).resolve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m native.build_relay", description="Build the broker's C relay."
    )
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument("--tmpdir", default=None, help="keep the generated C and objects here")
    args = parser.parse_args(argv)
    print(build(args.out_dir, tmpdir=args.tmpdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
