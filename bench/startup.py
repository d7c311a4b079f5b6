#!/usr/bin/env python3
"""Where a direct-mode process start goes: the imports of the first signature, one step at a
time, each in the order the module meets them, in fresh isolated interpreters (``python -I``, as
the embedded one is), plus an empty interpreter's own start.

    .venv/bin/python bench/startup.py [--runs N] [--out FILE]

Prints a table (median and minimum over N fresh interpreters, milliseconds; a step's time is
what it adds to the steps above it, so shared stdlib modules count where first imported) and
writes it to FILE when given. No timed assertion anywhere: ``bench/run.py`` measures the whole
process, this says where it goes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: (label, statement), in the order a first signature imports them (emulator in-process).
STEPS: tuple[tuple[str, str], ...] = (
    (
        "stdlib every Python program here needs (re, enum, typing, threading...)",
        "import re, enum, typing, threading, weakref, collections, struct, functools",
    ),
    ("pathlib (with urllib.parse, ipaddress)", "import pathlib"),
    ("json (metadata store)", "import json"),
    ("ctypes (smbus2's i2c messages)", "import ctypes"),
    ("_cffi_backend", "import _cffi_backend"),
    ("cryptoki.constants (PKCS#11 enums)", "import cryptoki.constants"),
    ("cryptoki._abi (with errors, types, limits, session)", "import cryptoki._abi"),
    ("cryptoki.library (token core)", "import cryptoki.library"),
    ("slot files (atecc.slotfile, cryptoki.config)", "import atecc.slotfile, cryptoki.config"),
    (
        "chip backend and driver (atecc.device, smbus2)",
        "import cryptoki.backends.atecc, atecc.device, smbus2",
    ),
    ("emulator (atecc.emulator.bus)", "import atecc.emulator.bus"),
    ("hashlib (CKA_ID, digests; loads libcrypto)", "import hashlib"),
    ("Trust&GO certificate rebuild", "import atecc.certs.rebuild"),
    (
        "cryptography EC + hashes (the emulator's ECDSA)",
        "from cryptography.hazmat.primitives import hashes\n"
        "from cryptography.hazmat.primitives.asymmetric import ec, utils",
    ),
    (
        "cryptography's OpenSSL backend (ec.ECDSA() imports it)",
        "import cryptography.hazmat.backends.openssl.backend",
    ),
    ("logging (not imported by a quiet C host any more)", "import logging"),
    ("dataclasses (not on the module's path any more)", "import dataclasses"),
)

# The child imports nothing a step measures (not even json): the steps come as a Python literal
# and the times go back as one line of numbers.
_CHILD = """
import sys, time
out = []
for statement in eval(sys.argv[1]):
    t = time.perf_counter()
    exec(statement)
    out.append(time.perf_counter() - t)
print(" ".join(repr(x) for x in out))
"""


def measure(python: str, runs: int, root: Path) -> tuple[list[list[float]], list[float]]:
    per_step: list[list[float]] = [[] for _ in STEPS]
    empty: list[float] = []
    statements = repr([statement for _, statement in STEPS])
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([python, "-I", "-c", "pass"], check=True)
        empty.append((time.perf_counter() - t0) * 1e3)
        out = subprocess.run(
            [python, "-I", "-c", _CHILD, statements],
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
        ).stdout
        for i, seconds in enumerate(out.split()):
            per_step[i].append(float(seconds) * 1e3)
    return per_step, empty


def render(per_step: list[list[float]], empty: list[float], runs: int) -> str:
    lines = [
        f"Direct-mode start-up, step by step ({runs} fresh `python -I` interpreters; ms, "
        "median (min)):",
        "",
        "| step | adds |",
        "|---|---:|",
        f"| an empty interpreter: process start to exit | {statistics.median(empty):.1f} "
        f"({min(empty):.1f}) |",
    ]
    total = 0.0
    for (label, _), values in zip(STEPS, per_step, strict=True):
        lines.append(f"| {label} | {statistics.median(values):.1f} ({min(values):.1f}) |")
        if not label.startswith(("logging", "dataclasses")):
            total += statistics.median(values)
    lines.append(
        f"| imports of a first signature (sum of the medians above the last two) | {total:.1f} |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="fresh interpreters (default 15)")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    if not 1 <= args.runs <= 1000:
        ap.error("--runs must be 1..1000")
    root = Path(__file__).resolve().parents[1]
    per_step, empty = measure(sys.executable, args.runs, root)
    table = render(per_step, empty, args.runs)
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
