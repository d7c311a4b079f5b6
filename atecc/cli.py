"""The ``atecc`` command-line tool: create emulated chips and look at any chip through the driver.

Owns: argument parsing, choosing the chip (filestore directory → slot file → interface), and
printing. Every read goes through :class:`atecc.device.Device`, so what this tool shows is what
the PKCS#11 module sees. Commands::

    atecc emulator init [--device D] [--filestore DIR] [--slot N] [--force]
    atecc emulator run [--bus N] [--state FILE] [--timing T] [--log FILE] -- COMMAND ...
    atecc info | config | random | certs       [--json]
    atecc raw "07 30 00 00 00 03 5D"           [--json]
    atecc module-path

Errors never show a traceback: each becomes one line ``atecc: error: ...`` on stderr and a
non-zero exit status (``-v`` adds the traceback, for bug reports).

Other layers add their subcommands (the fleet's ``ca``, ``csr``, ``serve``...) without this module
naming them: each declares an entry point in the ``atecc.commands`` group whose object is
``add_subcommands(subparsers)``. Entry points rather than a list of module names here, because
``atecc`` sits below every other layer and must import none of them, not even by name through
importlib; and a layer that is not installed simply adds nothing. The group is consulted lazily
(:func:`_wants_plugins`): a command of this module's own (``info``, ``config``...) never pays
for ``importlib.metadata`` (about 80 ms of imports), only ``--help``, no command, or a command this
module does not know does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from atecc.device import Device
    from atecc.slotfile import SlotFile

PROG = "atecc"
DEVICES = ("ATECC608-TNGTLS", "ATECC608")
EXIT_ERROR = 1
EXIT_USAGE = 2

log = logging.getLogger("atecc.cli")


class CliError(Exception):
    """A user-facing failure whose message is the whole story (no traceback needed)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (``atecc: error: ...``), like ours."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{PROG} --help')\n")


# --- choosing the chip ---------------------------------------------------------------------------


def _filestore(args: argparse.Namespace) -> Path:
    from atecc import slotfile

    return Path(slotfile.filestore_dir(getattr(args, "filestore", None)))


def _slot_file(args: argparse.Namespace) -> SlotFile:
    """The parsed slot file the command talks to (``--slot N`` or the first one)."""
    from atecc import slotfile

    path = slotfile.select_slot_file(_filestore(args), getattr(args, "slot", None))
    return slotfile.parse_slot_file(path)


def _open(args: argparse.Namespace) -> tuple[Device, SlotFile]:
    from atecc import slotfile

    slot_file = _slot_file(args)
    interface = slot_file.interface
    try:
        return slotfile.open_device(interface), slot_file
    except OSError as exc:
        if isinstance(interface, slotfile.I2CInterface):
            where = f"I2C bus {interface.bus}, address 0x{interface.address7:02X}"
        else:
            where = f"emulator state {interface.state_path}"
        raise CliError(f"cannot open the chip of {slot_file.path} ({where}): {exc}") from exc


def _root_ca(slot_file: SlotFile) -> bytes | None:
    """The root CA certificate (PEM) the slot file's ``root_ca`` names, if any."""
    if slot_file.root_ca is None:
        return None
    try:
        return slot_file.root_ca.read_bytes()
    except OSError as exc:
        raise CliError(f"{slot_file.path}: root_ca {slot_file.root_ca}: {exc.strerror}") from exc


# --- commands ------------------------------------------------------------------------------------


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2))
    else:
        print(text)


def cmd_emulator_init(args: argparse.Namespace) -> int:
    from atecc.emulator import profiles

    if args.device not in DEVICES:
        raise CliError(f"unknown device {args.device!r} (choose {', '.join(DEVICES)})")
    slot = getattr(args, "slot", 0)
    if not 0 <= slot <= 255:
        raise CliError(f"slot must be 0..255, not {slot}")
    directory = _filestore(args)
    state_path = directory / f"chip{slot}.json"
    conf_path = directory / f"{slot}.conf"
    root_path = Path(profiles.root_ca_path(state_path))
    existing = [p for p in (state_path, conf_path) if p.exists()]
    if existing and not args.force:
        raise CliError(f"{existing[0]} already exists (use --force to replace it)")
    directory.mkdir(parents=True, exist_ok=True)
    for path in (state_path, root_path):
        # A replaced chip must not leave the old chip's root CA behind.
        if args.force and path.exists():
            path.unlink()
    state = profiles.create_chip(state_path, device=args.device)
    root_line = (
        f"# The emulated root CA that signed the chip's signer certificate.\n"
        f"root_ca = {root_path.name}\n"
        if root_path.is_file()
        else ""
    )
    conf_path.write_text(
        f"# Emulated {args.device}, created by '{PROG} emulator init'.\n"
        f"# interface = emulator,<state file>[,fast|realistic]; relative to this file.\n"
        f"interface = emulator,{state_path.name}\n"
        f"device = {args.device}\n"
        f"label = {slot:02d}ABC\n"
        f"{root_line}"
    )
    config = bytes(getattr(state, "config", b""))
    serial = (config[0:4] + config[8:13]).hex().upper() if len(config) == 128 else "?"
    print(f"created {state_path} ({args.device}, serial {serial})")
    print(f"created {conf_path}")
    if root_path.is_file():
        print(f"created {root_path} (emulated root CA: trust it only for testing)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    device, slot_file = _open(args)
    try:
        config = device.config_zone()
        revision = device.revision()
    finally:
        device.close()
    from atecc.certs.csr import device_id_for_serial

    data = {
        "serial": config.serial.hex().upper(),
        "device_id": device_id_for_serial(bytes(config.serial)),
        "revision": bytes(revision).hex().upper(),
        "model": config.model,
        "config_locked": config.is_config_locked,
        "data_locked": config.is_data_locked,
        "i2c_address": f"0x{config.i2c_address7:02X}",
        "device": slot_file.device,
        "label": slot_file.label,
        "slot_file": str(slot_file.path),
    }
    text = "\n".join(
        [
            f"serial        {data['serial']}",
            f"device id     {data['device_id']} (the CN of 'atecc csr')",
            f"model         {data['model']} (revision {data['revision']})",
            f"i2c address   {data['i2c_address']} (7-bit)",
            f"config zone   {'locked' if data['config_locked'] else 'UNLOCKED'}",
            f"data zone     {'locked' if data['data_locked'] else 'UNLOCKED'}",
        ]
    )
    _emit(args, data, text)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    device, _ = _open(args)
    try:
        config = device.config_zone()
    finally:
        device.close()
    data = {
        "serial": config.serial.hex().upper(),
        "model": config.model,
        "config_locked": config.is_config_locked,
        "data_locked": config.is_data_locked,
        "config_zone": config.data.hex().upper(),
        "slots": [
            {
                "slot": row.slot,
                "type": row.key_type,
                "read": row.read,
                "write": row.write,
                "use": row.use,
                "lock": row.lock,
            }
            for row in config.describe_slots()
        ],
    }
    _emit(args, data, config.format_table())
    return 0


def cmd_random(args: argparse.Namespace) -> int:
    device, _ = _open(args)
    try:
        value = bytes(device.random())
    finally:
        device.close()
    _emit(args, {"random": value.hex().upper()}, value.hex().upper())
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from atecc.certs.compressed import CertificateError
    from atecc.certs.factory import public_key_bytes
    from atecc.certs.rebuild import read_chain
    from atecc.errors import ExecutionError

    device, slot_file = _open(args)
    root_pem = _root_ca(slot_file)
    root_key = None
    if root_pem is not None:
        root_public = x509.load_pem_x509_certificate(root_pem).public_key()
        if isinstance(root_public, ec.EllipticCurvePublicKey):
            root_key = public_key_bytes(root_public)
    try:
        device_der, signer_der = read_chain(device, root_public_key=root_key)
    except (CertificateError, ExecutionError) as exc:
        raise CliError(f"no Trust&GO certificate chain on this chip ({exc})") from exc
    finally:
        device.close()

    def pem(der: bytes) -> str:
        cert = x509.load_der_x509_certificate(der)
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    data = {"device": pem(device_der), "signer": pem(signer_der), "root": None}
    if root_pem is not None:
        data["root"] = root_pem.decode("ascii")
    text = "".join(v for v in (data["device"], data["signer"], data["root"]) if v)
    _emit(args, data, text.rstrip("\n"))
    return 0


def parse_hex(text: str) -> bytes:
    """Bytes from hex written with or without spaces/colons (``07 30 00 00 00 03 5D``)."""
    cleaned = "".join(text.replace(":", " ").replace(",", " ").split())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CliError(f"malformed hex {text!r}") from None


def cmd_raw(args: argparse.Namespace) -> int:
    from atecc.packet import decode_command

    packet = parse_hex(" ".join(args.packet))
    try:
        decode_command(packet)
    except ValueError as exc:
        raise CliError(f"not a command packet: {exc}") from None
    device, _ = _open(args)
    try:
        reply = bytes(device.raw(packet))
    finally:
        device.close()
    spaced = reply.hex(" ").upper()
    _emit(args, {"command": packet.hex(" ").upper(), "reply": spaced}, spaced)
    return 0


#: Entry-point group naming the function that returns the PKCS#11 library's path.
MODULE_PATH_GROUP = "atecc.pkcs11_module"


def cmd_module_path(args: argparse.Namespace) -> int:
    # The PKCS#11 layer registers where its library is (pyproject.toml); this layer never
    # imports it.
    from importlib.metadata import entry_points

    found = list(entry_points(group=MODULE_PATH_GROUP))
    if not found:
        raise CliError("no PKCS#11 module is installed with this tool")
    try:
        module_path = found[0].load()
    except ImportError as exc:
        raise CliError(f"the Cryptoki module is not available ({exc})") from None
    print(module_path())
    return 0


def _add_emulator_run(emulator_commands: Any) -> None:
    """``atecc emulator run [--bus N] [--state FILE] ... -- COMMAND ...`` (atecc.emulator.run)."""
    run = emulator_commands.add_parser(
        "run",
        parents=[_common(json_option=False)],
        help="run a program with /dev/i2c-N served by an emulated chip",
        description="Start COMMAND with /dev/i2c-N served by an emulated ATECC608 (any program "
        "using the Linux I2C device, e.g. cryptoauthlib or this project's i2c slot files).",
    )
    run.add_argument("--bus", type=int, default=1, metavar="N", help="I2C bus number (default 1)")
    run.add_argument(
        "--state",
        metavar="FILE",
        help="chip state file, created with --device if missing (default: a throwaway chip)",
    )
    run.add_argument("--device", default="ATECC608-TNGTLS", help="profile for a new chip")
    run.add_argument("--timing", default="fast", choices=("fast", "realistic"))
    run.add_argument("--log", metavar="FILE", help="write every I2C transfer, decoded, to FILE")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")

    def cmd_emulator_run(args: argparse.Namespace) -> int:
        from atecc.emulator.run import RunError, run

        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if args.device not in DEVICES:
            raise CliError(f"unknown device {args.device!r} (choose {', '.join(DEVICES)})")
        try:
            return run(
                command,
                state_path=args.state,
                bus_number=args.bus,
                timing=args.timing,
                device=args.device,
                log_path=args.log,
            )
        except RunError as exc:
            raise CliError(str(exc)) from None

    run.set_defaults(func=cmd_emulator_run)


# --- parser --------------------------------------------------------------------------------------


def _common(json_option: bool) -> _Parser:
    # Defaults are SUPPRESS so that an option given before the command is not reset by the
    # subcommand's copy of it (argparse applies subparser defaults last).
    common = _Parser(add_help=False)
    common.add_argument(
        "--filestore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="slot-file directory (default: $ATECC_PKCS11_FILESTORE, else /var/lib/cryptoauthlib)",
    )
    common.add_argument(
        "--slot",
        metavar="N",
        type=int,
        default=argparse.SUPPRESS,
        help="slot file <N>.conf to use (default: the first one)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log driver activity; show tracebacks on errors",
    )
    if json_option:
        common.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
        )
    return common


def build_parser(*, with_plugins: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="ATECC608 secure element: emulator setup and chip inspection.",
        parents=[_common(json_option=False)],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    emulator = commands.add_parser("emulator", help="manage emulated chips")
    emulator_commands = emulator.add_subparsers(dest="emulator_command", required=True)
    init = emulator_commands.add_parser(
        "init",
        parents=[_common(json_option=False)],
        help="create an emulated chip and its slot file",
    )
    init.add_argument(
        "--device",
        default="ATECC608-TNGTLS",
        help=f"chip profile: {' or '.join(DEVICES)} (default ATECC608-TNGTLS)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing chip")
    init.set_defaults(func=cmd_emulator_init)
    _add_emulator_run(emulator_commands)

    read_commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("info", "serial number, revision, model, locks, I2C address", cmd_info),
        ("config", "the configuration zone as a slot table", cmd_config),
        ("random", "32 random bytes from the chip", cmd_random),
        ("certs", "device and signer certificates (PEM), and the emulated root", cmd_certs),
    ]
    for name, text, func in read_commands:
        sub = commands.add_parser(name, parents=[_common(json_option=True)], help=text)
        sub.set_defaults(func=func)
    raw = commands.add_parser(
        "raw",
        parents=[_common(json_option=True)],
        help="send one raw command packet (COUNT..CRC) and print the reply",
    )
    raw.add_argument("packet", nargs="+", help='hex bytes, e.g. "07 30 00 00 00 03 5D"')
    raw.set_defaults(func=cmd_raw)
    module = commands.add_parser(
        "module-path", parents=[_common(json_option=False)], help="path of the PKCS#11 library"
    )
    module.set_defaults(func=cmd_module_path)

    if with_plugins:
        for add_subcommands in _plugin_registrars():
            add_subcommands(commands)
    return parser


#: Entry-point group through which other layers register subcommands (see the module docstring).
COMMAND_GROUP = "atecc.commands"
#: The commands this module defines itself.
OWN_COMMANDS = frozenset({"emulator", "info", "config", "random", "certs", "raw", "module-path"})
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
            return arg not in OWN_COMMANDS
    return True  # no command: the usage error lists every command


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, CliError | OSError | ValueError):
        return text
    return f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atecc`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_plugins=_wants_plugins(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error already printed as one line
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
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
