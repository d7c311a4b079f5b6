"""Choosing the chip an ``atecc`` command talks to: filestore → slot file → interface → Device.

Owns: the options every chip command takes (``--filestore``, ``--slot``, ``-v``), opening the
chip they name with a one-line error that says where it looked, and the warning a command gives
when the chip's lock state makes its answer meaningless (an unlocked chip's "random" bytes are a
fixed test pattern; a key in an unlocked data zone can be replaced by anyone).

Must not: print a command's result (the command modules) or import an upper layer.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from atecc.cliutil import UsageError, warn

if TYPE_CHECKING:
    from atecc.config_zone import ConfigZone
    from atecc.device import Device
    from atecc.slotfile import Interface, SlotFile

log = logging.getLogger("atecc.cli")


def device_options(parser: argparse.ArgumentParser) -> None:
    """``--filestore``, ``--slot`` and ``-v`` on a command (or the top-level parser).

    Defaults are SUPPRESS, so an option given before the command is not reset by the
    subcommand's copy of it (argparse applies subparser defaults last).
    """
    parser.add_argument(
        "--filestore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="slot-file directory (default: $ATECC_PKCS11_FILESTORE, else the filestore of "
        "/etc/cryptoauthlib/cryptoauthlib.conf, else /var/lib/cryptoauthlib)",
    )
    parser.add_argument(
        "--slot",
        metavar="N",
        type=int,
        default=argparse.SUPPRESS,
        help="slot file <N>.conf to use (default: the lowest-numbered one)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="say what is done (slot file, chip commands); tracebacks on errors",
    )


def common_parser() -> argparse.ArgumentParser:
    """A parent parser carrying :func:`device_options`."""
    parser = argparse.ArgumentParser(add_help=False)
    device_options(parser)
    return parser


def filestore(args: argparse.Namespace) -> Path:
    from atecc import slotfile

    return Path(slotfile.filestore_dir(getattr(args, "filestore", None)))


def slot_file_path(args: argparse.Namespace) -> Path:
    """``<filestore>/<N>.conf`` for ``--slot N``, else the lowest-numbered slot file."""
    from atecc import slotfile

    try:
        return slotfile.select_slot_file(filestore(args), getattr(args, "slot", None))
    except slotfile.SlotFileError as exc:
        raise UsageError(str(exc)) from None


def slot_file(args: argparse.Namespace) -> SlotFile:
    """The parsed slot file the command talks to."""
    from atecc import slotfile

    path = slot_file_path(args)
    try:
        return slotfile.parse_slot_file(path)
    except slotfile.SlotFileError as exc:
        raise UsageError(str(exc)) from None


def describe_interface(interface: Interface) -> str:
    from atecc.slotfile import I2CInterface

    if isinstance(interface, I2CInterface):
        bus = interface.bus
        return f"I2C bus {bus} (/dev/i2c-{bus}), address 0x{interface.address7:02X}"
    return f"emulator state {interface.state_path}"


def open_chip(args: argparse.Namespace) -> tuple[Device, SlotFile]:
    """The Device of the command's slot file, and that slot file."""
    from atecc import slotfile

    parsed = slot_file(args)
    where = describe_interface(parsed.interface)
    log.info("slot file %s: %s", parsed.path, where)
    try:
        return slotfile.open_device(parsed.interface), parsed
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot open the chip of {parsed.path} ({where}): {reason}") from None


def lock_warning(config: ConfigZone, what: str) -> None:
    """Say on stderr when ``what`` the command prints means little because of the locks."""
    if not config.is_config_locked:
        if what == "random":
            warn(
                "the configuration zone is unlocked: the chip answers a fixed test pattern "
                "(FFFF0000...), not random bytes; provision it first ('atecc provision')"
            )
        else:
            warn(
                f"the configuration zone is unlocked: the chip's {what} cannot be trusted yet; "
                "provision it first ('atecc provision')"
            )
    elif not config.is_data_locked and what != "random":
        warn(
            f"the data zone is unlocked: the chip's {what} can be replaced by anyone with the "
            "chip (GenKey and PrivWrite work on every key slot until the data lock); lock it "
            "('atecc provision')"
        )


def warn_if_unlocked(args: argparse.Namespace, what: str) -> None:
    """:func:`lock_warning` for a command that uses the chip through another layer (the token):
    one config read; a chip that cannot be read is left for that layer to report."""
    from atecc.errors import AteccError

    try:
        device, _ = open_chip(args)
    except UsageError:
        return
    try:
        config = device.config_zone()
    except (AteccError, OSError):
        return
    finally:
        device.close()
    lock_warning(config, what)
