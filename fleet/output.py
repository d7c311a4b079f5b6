"""Where the fleet commands put what they make: ``--out`` files, stdout, and ``--json``.

Owns: writing an ``--out`` target the way a user means it --

* ``-`` is standard output;
* a missing path or an existing regular file is replaced atomically (temporary file, fsync,
  rename: a reader or a crash never sees half a certificate);
* anything else that exists -- a FIFO, a character device such as ``/dev/stdout`` or
  ``/dev/null``, a symlink -- is opened and written *in place*, never replaced by a regular file
  (a symlink is followed; a regular file reached through one is truncated and rewritten). A
  private key written in place to a regular file gets mode 0600 first.

and printing a command's result: one JSON object with ``--json``, else the human lines.

Must not: decide what to write (the commands) or write anything but the target it is given.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
from typing import Any

from atecc.fileio import atomic_write
from fleet import FleetError

STDOUT = "-"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_out(target: str, data: bytes, *, mode: int = 0o644) -> str:
    """Write ``data`` to the ``--out`` target (see the module docstring); returns a name for
    messages ("stdout" or the path)."""
    if target == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "stdout"
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        atomic_write(target, data, mode=mode)
        return target
    if stat.S_ISREG(st.st_mode):
        atomic_write(target, data, mode=mode)
        return target
    if stat.S_ISDIR(st.st_mode):
        raise FleetError(f"{target} is a directory")
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FleetError(f"{target} is a symlink to nothing") from None
        raise FleetError(f"cannot open {target}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FleetError(f"{target} leads to a directory")
        if stat.S_ISREG(st.st_mode):
            if mode & 0o077 == 0:
                os.fchmod(fd, mode)  # a private key: not readable by others, not even once
            os.ftruncate(fd, 0)
        _write_all(fd, data)
        if stat.S_ISREG(st.st_mode):
            os.fsync(fd)
    finally:
        os.close(fd)
    return target


def check_outputs(args: argparse.Namespace, *targets: str | None) -> None:
    """Refuse ``--json`` together with an ``--out -`` (both would go to stdout), and two
    outputs to stdout."""
    to_stdout = [t for t in targets if t == STDOUT]
    if len(to_stdout) > 1:
        raise FleetError("only one output can go to stdout ('-')")
    if to_stdout and getattr(args, "json", False):
        raise FleetError("--json and --out - both write to stdout: give --out a file")


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """The command's result on stdout: JSON with ``--json``, else ``text``. When the command's
    output itself went to stdout, the human text goes to stderr so the two never mix."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    elif STDOUT in {getattr(args, name, None) for name in ("out", "out_key", "out_cert")}:
        print(text, file=sys.stderr)
    else:
        print(text)
