"""Where a command gets the token's user PIN from, when the token wants one.

Owns: the three sources, in this order -- ``--pin-file FILE`` (its first line), the ``ATECC_PIN``
environment variable, and a prompt on the terminal that does not echo -- and the option that
names the file. There is deliberately no ``--pin VALUE``: a command line is visible to every user
of the machine (``ps``, ``/proc/<pid>/cmdline``).

The PIN is read only when asked for (:class:`PinSource` is called by the layer that knows whether
the token needs one), so a token without a PIN never prompts. Must not: check, keep, log or print
a PIN; checking is the token's job (the PKCS#11 layer counts every try).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from atecc.cliutil import UsageError, warn
from atecc.fileio import FileRefusedError, read_limited

PIN_ENV = "ATECC_PIN"
#: A PIN file larger than this is not a PIN file.
MAX_PIN_FILE_BYTES = 4096

#: Returns the PIN (bytes); raises :class:`~atecc.cliutil.UsageError` when there is none.
PinSource = Callable[[], bytes]


def add_pin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin-file",
        metavar="FILE",
        help=f"the user PIN, first line of FILE (else ${PIN_ENV}, else a prompt); asked only "
        "when the token has 'user_pin = required'",
    )


def pin_source(args: argparse.Namespace, *, what: str = "the token") -> PinSource:
    """The PIN source a command's arguments give (see the module docstring)."""
    path = getattr(args, "pin_file", None)

    def read() -> bytes:
        if path:
            return _from_file(path)
        value = os.environ.get(PIN_ENV)
        if value is not None:
            if not value:
                raise UsageError(f"${PIN_ENV} is empty")
            return value.encode()
        if not sys.stdin.isatty():
            raise UsageError(
                f"{what} needs the user PIN: give --pin-file FILE or set {PIN_ENV} "
                "(there is no terminal to ask on)"
            )
        import getpass

        try:
            typed = getpass.getpass(f"User PIN for {what}: ")
        except (EOFError, KeyboardInterrupt):
            raise UsageError("no PIN typed") from None
        if not typed:
            raise UsageError("no PIN typed")
        return typed.encode()

    return read


def _from_file(path: str) -> bytes:
    try:
        raw = read_limited(path, max_bytes=MAX_PIN_FILE_BYTES)
    except FileRefusedError as exc:
        raise UsageError(f"--pin-file {path}: {exc.strerror}") from None
    except OSError as exc:
        raise UsageError(f"--pin-file {path}: {exc.strerror}") from None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if mode & 0o044:
        warn(f"--pin-file {path} is readable by other users (chmod 600 {path})")
    line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise UsageError(f"--pin-file {path}: the first line is empty")
    return line
