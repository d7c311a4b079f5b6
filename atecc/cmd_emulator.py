"""``atecc emulator ...``: emulated chips and their slot files.

Owns: ``emulator init`` (a new chip and its slot file), ``list`` (the emulated chips of a
filestore, with serial and locks), ``reset`` (the same slot back to a fresh part of its profile,
keeping the serial number), ``delete`` (the chip, its slot file and the token's metadata), and
``run`` (any program with ``/dev/i2c-N`` served by an emulated chip, :mod:`atecc.emulator.run`).

Must not: touch a slot file whose interface is a real I2C bus (reset and delete refuse it).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from atecc import clichip
from atecc.cliutil import PROG, CliError, UsageError, add_command, add_group, emit
from atecc.fileio import atomic_write

DEVICES = ("ATECC608-TNGTLS", "ATECC608")


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r} (choose {', '.join(DEVICES)})")


def _slot_number(args: argparse.Namespace, default: int | None = 0) -> int:
    slot = getattr(args, "slot", default)
    if slot is None:
        raise UsageError("name the chip with --slot N (see 'atecc emulator list')")
    if not 0 <= slot <= 65535:
        raise UsageError(f"slot must be 0..65535, not {slot}")
    return int(slot)


def write_slot_file(conf_path: Path, state_path: Path, device: str, slot: int) -> None:
    """The slot file of an emulated chip (atomic; relative paths, so the filestore can move)."""
    from atecc.emulator import profiles

    root_path = Path(profiles.root_ca_path(state_path))
    root_line = (
        "# The emulated root CA that signed the chip's signer certificate.\n"
        f"root_ca = {root_path.name}\n"
        if root_path.is_file()
        else ""
    )
    text = (
        f"# Emulated {device}, created by '{PROG} emulator init'.\n"
        "# interface = emulator,<state file>[,fast|realistic]; relative to this file.\n"
        f"interface = emulator,{state_path.name}\n"
        f"device = {device}\n"
        f"label = {slot:02d}ABC\n"
        f"{root_line}"
    )
    atomic_write(conf_path, text.encode(), mode=0o644)


def _new_chip(state_path: Path, device: str, serial: bytes | None = None) -> str:
    from atecc.emulator import profiles

    root_path = Path(profiles.root_ca_path(state_path))
    for path in (state_path, root_path):  # a replaced chip must not leave its root CA behind
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    state = profiles.create_chip(state_path, device=device, serial=serial)
    config = bytes(state.config)
    return (config[0:4] + config[8:13]).hex().upper()


def cmd_init(args: argparse.Namespace) -> int:
    _check_device(args.device)
    slot = _slot_number(args)
    directory = clichip.filestore(args)
    state_path = directory / f"chip{slot}.json"
    conf_path = directory / f"{slot}.conf"
    existing = [p for p in (state_path, conf_path) if p.exists()]
    if existing and not args.force:
        raise UsageError(f"{existing[0]} already exists (use --force to replace it)")
    directory.mkdir(parents=True, exist_ok=True)
    serial = _new_chip(state_path, args.device)
    write_slot_file(conf_path, state_path, args.device, slot)
    _drop_metadata(directory, slot)
    from atecc.emulator import profiles

    root_path = Path(profiles.root_ca_path(state_path))
    lines = [f"created {state_path} ({args.device}, serial {serial})", f"created {conf_path}"]
    if root_path.is_file():
        lines.append(f"created {root_path} (emulated root CA: trust it only for testing)")
    if args.device == "ATECC608":
        lines.append(f"a blank chip: provision it with '{PROG} provision --help'")
    emit(
        args,
        {
            "state": str(state_path),
            "slot_file": str(conf_path),
            "device": args.device,
            "serial": serial,
            "root_ca": str(root_path) if root_path.is_file() else None,
        },
        "\n".join(lines),
    )
    return 0


def _emulated(path: Path) -> Any:
    """The parsed slot file at ``path`` if its interface is an emulator, else None."""
    from atecc import slotfile

    try:
        parsed = slotfile.parse_slot_file(path)
    except (slotfile.SlotFileError, OSError):
        return None
    return parsed if isinstance(parsed.interface, slotfile.EmulatorInterface) else None


def _chip_summary(state_path: Path) -> dict[str, Any]:
    from atecc.config_zone import ConfigZone
    from atecc.emulator.state import StateFile, StateFileError

    try:
        state = StateFile(state_path).load()
    except StateFileError as exc:
        return {"state": str(state_path), "problem": str(exc)}
    zone = ConfigZone(bytes(state.config))
    return {
        "state": str(state_path),
        "profile": state.profile,
        "serial": zone.serial.hex().upper(),
        "config_locked": zone.is_config_locked,
        "data_locked": zone.is_data_locked,
    }


def cmd_list(args: argparse.Namespace) -> int:
    from atecc import slotfile

    directory = clichip.filestore(args)
    if not directory.is_dir():
        raise UsageError(f"filestore {directory} does not exist")
    chips = []
    for path in slotfile.list_slot_files(directory):
        parsed = _emulated(path)
        if parsed is not None:
            chips.append(
                {
                    "slot": int(path.stem),
                    "slot_file": str(path),
                    **_chip_summary(parsed.interface.state_path),
                }
            )
    lines = []
    for chip in chips:
        if "problem" in chip:
            lines.append(f"{chip['slot']:>3}  {chip['state']}  {chip['problem']}")
            continue
        locks = (
            f"config {'locked' if chip['config_locked'] else 'UNLOCKED'}, "
            f"data {'locked' if chip['data_locked'] else 'UNLOCKED'}"
        )
        lines.append(
            f"{chip['slot']:>3}  {Path(chip['state']).name}  {chip['profile']}  "
            f"serial {chip['serial']}  {locks}"
        )
    if not chips:
        lines.append(f"no emulated chips in {directory} (create one: {PROG} emulator init)")
    emit(args, {"filestore": str(directory), "chips": chips}, "\n".join(lines))
    return 0


def _emulated_slot(args: argparse.Namespace) -> tuple[Path, int, Any]:
    directory = clichip.filestore(args)
    slot = _slot_number(args, default=None)
    conf_path = directory / f"{slot}.conf"
    if not conf_path.is_file():
        raise UsageError(f"no slot file {conf_path}")
    parsed = _emulated(conf_path)
    if parsed is None:
        raise UsageError(f"{conf_path} does not name an emulated chip: it is left alone")
    return directory, slot, parsed


def _drop_metadata(directory: Path, slot: int) -> list[str]:
    """The token's metadata (keys, objects, PINs of the old chip) goes with the chip."""
    removed = []
    for name in (f"{slot}.pkcs11.json", f"{slot}.pkcs11.json.lock"):
        path = directory / name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path))
    return removed


def cmd_reset(args: argparse.Namespace) -> int:
    from atecc.emulator.state import StateFile, StateFileError

    directory, slot, parsed = _emulated_slot(args)
    state_path = parsed.interface.state_path
    try:
        old = StateFile(state_path).load()
        serial: bytes | None = bytes(old.config[0:4] + old.config[8:13])
        profile = old.profile
    except StateFileError:
        serial, profile = None, parsed.device  # an unreadable state: start over
    device = args.device or (profile if profile in DEVICES else parsed.device)
    _check_device(device)
    new_serial = _new_chip(state_path, device, serial)
    write_slot_file(directory / f"{slot}.conf", state_path, device, slot)
    removed = _drop_metadata(directory, slot)
    emit(
        args,
        {
            "slot": slot,
            "state": str(state_path),
            "device": device,
            "serial": new_serial,
            "removed": removed,
        },
        f"reset {state_path}: a fresh {device} with serial {new_serial}"
        + (f"; removed {', '.join(removed)}" if removed else ""),
    )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from atecc.emulator import profiles

    directory, slot, parsed = _emulated_slot(args)
    state_path = parsed.interface.state_path
    candidates = [
        state_path,
        Path(profiles.root_ca_path(state_path)),
        state_path.with_name(state_path.name + ".lock"),
        state_path.with_name(state_path.name + ".bus.lock"),
        directory / f"{slot}.conf",
    ]
    removed = []
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path))
    removed += _drop_metadata(directory, slot)
    emit(args, {"slot": slot, "removed": removed}, "removed " + ", ".join(removed))
    return 0


def _add_run(sub: Any) -> None:
    """``atecc emulator run [--bus N] [--state FILE] ... -- COMMAND ...`` (atecc.emulator.run)."""
    run = add_command(
        sub,
        "run",
        _cmd_run,
        "run a program with /dev/i2c-N served by an emulated chip",
        example=[
            "atecc emulator run --state chip.json -- atecc --filestore conf/i2c info",
            "atecc emulator run --state chip.json --log i2c.log -- python3 my_cryptoauthlib_app.py",
        ],
        json_option=False,
        parents=[clichip.common_parser()],
        details="Any program using the Linux I2C device (cryptoauthlib, this project's i2c slot "
        "files, a C program) talks to the emulated ATECC608 instead; exits with its status.",
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


def _cmd_run(args: argparse.Namespace) -> int:
    from atecc.emulator.run import RunError, run

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    _check_device(args.device)
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


def add_subcommands(commands: Any) -> None:
    sub = add_group(
        commands,
        "emulator",
        "create, list, reset and delete emulated chips; run programs against one",
        example=["atecc emulator init --filestore ./fs", "atecc emulator list --filestore ./fs"],
    )
    parents = [clichip.common_parser()]
    init = add_command(
        sub,
        "init",
        cmd_init,
        "create an emulated chip and its slot file <N>.conf in the filestore",
        example=[
            "atecc emulator init --filestore ./fs                     # a Trust&GO part",
            "atecc emulator init --filestore ./fs --device ATECC608   # a blank part",
        ],
        parents=parents,
    )
    init.add_argument(
        "--device",
        default="ATECC608-TNGTLS",
        help=f"chip profile: {' or '.join(DEVICES)} (blank, unlocked; default ATECC608-TNGTLS)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing chip")
    _add_run(sub)
    add_command(
        sub,
        "list",
        cmd_list,
        "the emulated chips of the filestore: slot, state file, profile, serial, locks",
        example="atecc emulator list --json",
        parents=parents,
    )
    reset = add_command(
        sub,
        "reset",
        cmd_reset,
        "make an emulated chip a fresh part again (same serial; keys, certificates and the "
        "token's metadata are gone)",
        example="atecc emulator reset --slot 0 --device ATECC608   # back to a blank part",
        parents=parents,
    )
    reset.add_argument(
        "--device", help=f"profile of the fresh part ({' or '.join(DEVICES)}; default: as before)"
    )
    add_command(
        sub,
        "delete",
        cmd_delete,
        "delete an emulated chip: its state file, root CA, slot file and token metadata",
        example="atecc emulator delete --slot 0",
        parents=parents,
    )
