"""The ``atecc`` command-line tool: one command for a chip's whole life, every layer's subcommands.

Owns: assembling the parser (``--version``, bare ``atecc`` = help), loading other layers'
subcommands, ``module-path``, and :func:`main`'s error contract: a failure is one line
``atecc: error: ...`` on stderr with exit status 2 for bad input or state and 1 for a chip, bus
or I/O failure, never a traceback (``-v`` adds it, for bug reports) and never an internal class
name (:func:`atecc.cliutil.failure`). The driver's own commands live in
:mod:`atecc.cmd_chip` (``info``, ``config``, ``random``, ``certs``, ``pubkey``, ``verify``,
``raw``), :mod:`atecc.cmd_emulator` (``emulator init|run|list|reset|delete``),
:mod:`atecc.doctor` (``doctor``) and :mod:`atecc.completion` (``completion bash``); each
command's ``--help`` has a description and an example.

Other layers add their subcommands (the fleet's ``ca``, ``csr``, ``provision``...; the PKCS#11
layer's ``sign`` and ``openssl-config``) without this module naming them: each declares an entry
point in the ``atecc.commands`` group whose object is ``add_subcommands(subparsers)``. Entry
points rather than a list of module names here, because ``atecc`` sits below every other layer
and must import none of them, not even by name through importlib; and a layer that is not
installed simply adds nothing. The group is consulted lazily (:func:`_wants_plugins`): a command
of the driver's own never pays for ``importlib.metadata`` (about 80 ms of imports), only
``--help``, no command, or a command this module does not know does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from atecc import __version__, clichip
from atecc.cliutil import (
    EXIT_ERROR,
    EXIT_USAGE,
    PROG,
    CliError,
    add_command,
    emit,
    failure,
    print_error,
)
from atecc.cmd_chip import parse_hex

__all__ = ["CliError", "build_parser", "main", "parse_hex"]

log = logging.getLogger("atecc.cli")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (``atecc: error: ...``), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


#: Entry-point group naming the function that returns the PKCS#11 library's path.
MODULE_PATH_GROUP = "atecc.pkcs11_module"


def pkcs11_module_path() -> str:
    """The PKCS#11 library's path, from the layer that builds it (this one never imports it)."""
    from importlib.metadata import entry_points

    found = list(entry_points(group=MODULE_PATH_GROUP))
    if not found:
        raise CliError("no PKCS#11 module is installed with this tool")
    try:
        return str(found[0].load()())
    except (ImportError, OSError) as exc:
        raise CliError(f"the PKCS#11 module is not available ({exc})") from None


def cmd_module_path(args: argparse.Namespace) -> int:
    path = pkcs11_module_path()
    emit(args, {"module": path}, path)
    return 0


def _version() -> str:
    return f"{PROG} {__version__} (Python {sys.version.split()[0]})"


def build_parser(*, with_plugins: bool = True) -> argparse.ArgumentParser:
    from atecc import cmd_chip, cmd_emulator, completion, doctor

    parser = _Parser(
        prog=PROG,
        description="ATECC608 secure element: emulate, provision, inspect and diagnose a chip,\n"
        "use its keys, and run a device fleet around it.\n"
        "'atecc COMMAND --help' shows each command's options and an example.",
        epilog="start here:\n"
        "  atecc emulator init --filestore ./fs   # an emulated Trust&GO chip\n"
        "  atecc --filestore ./fs info\n"
        "  atecc doctor                            # what is wrong with this set-up?",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[clichip.common_parser()],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd_emulator.add_subcommands(commands)
    cmd_chip.add_subcommands(commands)
    doctor.add_subcommands(commands)
    completion.add_subcommands(commands)
    add_command(
        commands,
        "module-path",
        cmd_module_path,
        "absolute path of the PKCS#11 library (for --module, p11-kit, OpenSSL)",
        example='pkcs11-tool --module "$(atecc module-path)" -L',
    )
    if with_plugins:
        for add_subcommands in _plugin_registrars():
            add_subcommands(commands)
    return parser


#: Entry-point group through which other layers register subcommands (see the module docstring).
COMMAND_GROUP = "atecc.commands"
#: The commands this layer defines itself.
OWN_COMMANDS = frozenset(
    {
        "emulator",
        "info",
        "config",
        "random",
        "certs",
        "pubkey",
        "verify",
        "raw",
        "doctor",
        "module-path",
        "completion",
    }
)
#: Commands of this layer that still need every layer's subcommands (they describe them all).
_NEEDS_ALL_COMMANDS = frozenset({"completion"})
#: Options of the top-level parser that take a value (to find the command word in argv).
_VALUE_OPTIONS = frozenset({"--filestore", "--slot"})


def _plugin_registrars() -> list[Callable[[Any], None]]:
    from importlib.metadata import entry_points

    found = []
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except ImportError as exc:  # a broken layer must not take the driver's commands down
            log.warning("subcommands of %s not available: %s", entry.value, exc)
    return found


def _wants_plugins(argv: Sequence[str]) -> bool:
    """Whether the command line needs another layer's subcommands (or the full --help)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif arg in ("-h", "--help"):
            return True
        elif not arg.startswith("-"):
            return arg not in OWN_COMMANDS or arg in _NEEDS_ALL_COMMANDS
    return True  # no command: the help lists every command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atecc`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_plugins=_wants_plugins(argv))
    if not [a for a in argv if a not in ("-v", "--verbose")]:
        parser.print_help()  # bare `atecc`: what it can do, not an error
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help/--version (0) or a usage error already printed
        return int(exc.code or 0)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format=f"{PROG}: %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and friends: not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        message, status = failure(exc)
        print_error(message)
        return status


if __name__ == "__main__":
    sys.exit(main())
