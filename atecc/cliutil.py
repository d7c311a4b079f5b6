"""What every ``atecc`` subcommand shares, whichever layer registers it.

Owns: the error contract (:class:`CliError` and :func:`failure`: one ``atecc: error: ...`` line,
exit status 2 for bad input or state, 1 for a chip or I/O failure, never a traceback nor an
internal class name), how a command is declared (:func:`add_command`: a one-line description and
an example in its ``--help``, ``--json`` where it prints data), where results go
(:func:`emit`, :func:`write_out`: ``--out -`` is stdout, an existing FIFO/device/symlink is
written in place, a regular file replaced atomically), and the confirmation an irreversible step
needs (:func:`confirm`).

The driver's own commands (``atecc.cli`` and its command modules) and the upper layers' (fleet,
the PKCS#11 layer) use these, so every command behaves alike. Must not: know any command.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from atecc.fileio import atomic_write

PROG = "atecc"
EXIT_ERROR = 1  #: a chip, bus or I/O failure, or a check that found a problem
EXIT_USAGE = 2  #: bad input or state (the user can fix the command line or the files)
STDOUT = "-"

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure whose message is the whole story; ``status`` is the exit status."""

    status = EXIT_ERROR

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(CliError):
    """Bad input or state: a wrong argument, a missing or malformed file (exit status 2)."""

    status = EXIT_USAGE


# --- errors --------------------------------------------------------------------------------------


def failure(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception that ended a command.

    Chip errors say what the chip answered in words (``chip status 0x0F: execution error
    (...)``), file errors name the file the user gave, never a temporary file; nothing names a
    Python class.
    """
    from atecc.errors import AteccError, NoDevice

    if isinstance(exc, CliError):
        return _words(str(exc)), exc.status
    if isinstance(exc, NoDevice):
        return _words(f"no chip answers: {exc}"), EXIT_ERROR
    if isinstance(exc, AteccError):
        return _words(f"chip: {exc}"), EXIT_ERROR
    if isinstance(exc, FileNotFoundError):
        where = f"{exc.filename}: " if exc.filename else ""
        return _words(f"{where}{exc.strerror or 'not found'}"), EXIT_USAGE
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return _words(f"{where}{exc.strerror or exc}"), EXIT_ERROR
    if isinstance(exc, ValueError | TypeError):
        return _words(str(exc) or "invalid value"), EXIT_USAGE
    return _words(f"unexpected failure ({exc}); '{PROG} -v ...' shows the details"), EXIT_ERROR


def _words(text: str) -> str:
    return " ".join(text.split()) or "failed"


def print_error(message: str) -> None:
    print(f"{PROG}: error: {_words(message)}", file=sys.stderr)


def warn(message: str) -> None:
    """A one-line warning on stderr (never mixed into a command's data on stdout)."""
    print(f"{PROG}: warning: {_words(message)}", file=sys.stderr)


def guarded(func: Handler) -> Handler:
    """Turn every failure of ``func`` into one ``atecc: error:`` line and an exit status (for
    handlers that may be called without :func:`atecc.cli.main` around them)."""

    @wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except Exception as exc:
            if getattr(args, "verbose", False):
                import traceback

                traceback.print_exc()
            message, status = failure(exc)
            print_error(message)
            return status

    return wrapper


# --- declaring commands --------------------------------------------------------------------------


def add_command(
    subparsers: Any,
    name: str,
    func: Handler,
    text: str,
    *,
    example: str | list[str],
    json_option: bool = True,
    parents: list[argparse.ArgumentParser] | None = None,
    details: str = "",
    **kw: Any,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` has ``text`` (one line) as its description, ``details``
    below it, and the example(s) at the end; ``--json`` when it prints data."""
    examples = [example] if isinstance(example, str) else example
    description = text[:1].upper() + text[1:] + ("." if not text.endswith(".") else "")
    if details:
        description += "\n\n" + details
    parser = subparsers.add_parser(
        name,
        help=text,
        description=description,
        epilog="example"
        + ("s" if len(examples) > 1 else "")
        + ":\n"
        + "\n".join(f"  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents or [],
        # no prefixes: `--pin 1234` must be an error, not `--pin-file 1234` (echoing the PIN)
        allow_abbrev=False,
        **kw,
    )
    if json_option:
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=func)
    return parser


def add_group(subparsers: Any, name: str, text: str, *, example: str | list[str]) -> Any:
    """A command with subcommands of its own (``atecc emulator ...``); returns their subparsers."""
    group = add_command(
        subparsers, name, _needs_subcommand, text, example=example, json_option=False
    )
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def _needs_subcommand(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires it
    raise UsageError("a subcommand is required")


# --- output --------------------------------------------------------------------------------------


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """The command's result on stdout: JSON with ``--json``, else ``text``. When the command's
    output itself went to stdout, the human text goes to stderr so the two never mix."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    elif STDOUT in {getattr(args, name, None) for name in ("out", "out_key", "out_cert")}:
        print(text, file=sys.stderr)
    elif text:
        print(text)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_out(target: str, data: bytes, *, mode: int = 0o644) -> str:
    """Write ``data`` to an ``--out`` target; returns a name for messages ("stdout" or the path).

    ``-`` is standard output; a missing path or an existing regular file is replaced atomically
    (temporary file, fsync, rename); anything else that exists -- a FIFO, a character device
    such as ``/dev/stdout``, a symlink -- is opened and written in place, never replaced by a
    regular file. A private file (``mode`` without group/other bits) written in place gets that
    mode first.
    """
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
        raise UsageError(f"{target} is a directory")
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UsageError(f"{target} is a symlink to nothing") from None
        raise UsageError(f"cannot open {target}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{target} leads to a directory")
        if stat.S_ISREG(st.st_mode):
            if mode & 0o077 == 0:
                os.fchmod(fd, mode)  # a private file: not readable by others, not even once
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
        raise UsageError("only one output can go to stdout ('-')")
    if to_stdout and getattr(args, "json", False):
        raise UsageError("--json and --out - both write to stdout: give --out a file")


# --- irreversible steps --------------------------------------------------------------------------


def confirm(question: str, *, yes: bool, refusal: str) -> None:
    """Go on only with ``--yes``, or a "yes" typed when standard input is a terminal.

    :param refusal: the error when there is neither (what to rerun with).
    :raises UsageError: no confirmation.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(refusal)
    print(f"{question} Type 'yes' to go on: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer != "yes":
        raise UsageError(f"not confirmed; {refusal}")
