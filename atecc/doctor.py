"""``atecc doctor``: check the whole set-up, one line per check, each problem with its fix.

Owns: the checks the driver layer can make -- where the filestore comes from (``--filestore``,
``$ATECC_PKCS11_FILESTORE``, cryptoauthlib.conf, the default) and whether another user could
change it; each slot file (parsed, unknown keys and values named with file and line; mode);
each I2C bus device (exists, this user may open it, and if not which group may); the chip at the
configured address (wake, revision, serial; the addresses other parts answer on when it does not
answer); its locks; an emulator's state file -- and the output: a table, or ``--json``; exit
status 1 when any check FAILs.

Other layers add their checks through the ``atecc.doctor`` entry-point group, whose objects are
``checks(filestore: Path) -> list[Finding]``: the PKCS#11 layer checks the built module (loaded
by a C host), each token as the module sees it (a refused metadata file, a locked PIN, a
misconfigured slot file), the OpenSSL engine and provider, and the p11-kit registration.

Must not: change anything (no writes to the chip or to files), or stop at the first problem.
"""

from __future__ import annotations

import argparse
import grp
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from atecc import clichip
from atecc.cliutil import add_command, emit

#: Entry-point group of other layers' checks (see the module docstring).
DOCTOR_GROUP = "atecc.doctor"

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"

#: 7-bit addresses ATECC608 parts ship with: generic 0xC0, Trust&GO TLS 0x6A, TrustFLEX 0x6C,
#: and 0xB0 (8-bit) that some LoRa parts use.
KNOWN_ADDRESSES7 = (0x60, 0x35, 0x36, 0x58)

log = logging.getLogger("atecc.doctor")


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``status`` is ok, info, warn or FAIL; ``fix`` says what to do."""

    check: str
    status: str
    detail: str
    fix: str = ""


# --- filestore and slot files --------------------------------------------------------------------


def check_filestore(explicit: str | None) -> tuple[Finding, Path, list[Path]]:
    from atecc import slotfile
    from atecc.fileio import ownership_problem

    directory, source = slotfile.filestore_source(explicit)
    where = f"{directory} (from {source})"
    if not directory.exists():
        return (
            Finding(
                "filestore",
                FAIL,
                f"{where} does not exist",
                "create a chip there ('atecc emulator init --filestore DIR'), copy a slot file "
                "into it (conf/i2c/0.conf for a chip on I2C bus 1), or point "
                "ATECC_PKCS11_FILESTORE at the right directory",
            ),
            directory,
            [],
        )
    if not directory.is_dir():
        return Finding("filestore", FAIL, f"{where} is not a directory"), directory, []
    problem = ownership_problem(directory)
    if problem:
        return (
            Finding(
                "filestore",
                FAIL,
                f"{where} is {problem}: the module refuses it",
                f"chmod go-w {directory} (and own it, or let root own it)",
            ),
            directory,
            [],
        )
    try:
        files = slotfile.list_slot_files(directory)
    except OSError as exc:
        return Finding("filestore", FAIL, f"{where}: {exc.strerror}"), directory, []
    if not files:
        return (
            Finding(
                "filestore",
                FAIL,
                f"{where} has no slot files (<N>.conf): the module shows no slots",
                "'atecc emulator init' for an emulated chip, or copy conf/i2c/0.conf for a chip "
                "on I2C bus 1",
            ),
            directory,
            [],
        )
    count = f"{len(files)} slot file{'s' if len(files) != 1 else ''}"
    return Finding("filestore", OK, f"{where}: {count}"), directory, files


def check_slot_file(path: Path) -> tuple[Finding, Any]:
    from atecc import slotfile
    from atecc.fileio import ownership_problem

    name = f"slot-file {path.name}"
    problem = ownership_problem(path)
    if problem:
        return (
            Finding(
                name, FAIL, f"{path} is {problem}: the module refuses it", f"chmod go-w {path}"
            ),
            None,
        )
    try:
        parsed = slotfile.parse_slot_file(path)
    except slotfile.SlotFileError as exc:
        return (
            Finding(
                name,
                FAIL,
                str(exc),
                "correct that line (README: 'Configuration (slot files)'); the token of this "
                "slot is absent until then",
            ),
            None,
        )
    except OSError as exc:
        return Finding(name, FAIL, f"{path}: {exc.strerror or exc}"), None
    detail = (
        f"device {parsed.device}, label {parsed.label}, "
        f"{clichip.describe_interface(parsed.interface)}"
    )
    return Finding(name, OK, detail), parsed


# --- the bus and the chip ------------------------------------------------------------------------


def check_i2c_bus(bus: int) -> Finding:
    """``/dev/i2c-N`` exists and this user may open it (tried with open(), as the driver does)."""
    import errno

    name = f"i2c-bus {bus}"
    path = Path(f"/dev/i2c-{bus}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return Finding(
                name,
                FAIL,
                f"{path} does not exist",
                "enable I2C (Raspberry Pi: dtparam=i2c_arm=on and dtparam=i2c_arm_baudrate=100000 "
                "in /boot/firmware/config.txt, then reboot) and load i2c-dev (modprobe i2c-dev); "
                "'ls /dev/i2c-*' lists the buses there are",
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return _no_permission(name, path)
        return Finding(name, FAIL, f"{path} cannot be opened: {exc.strerror}")
    os.close(fd)
    return Finding(name, OK, f"{path} can be opened")


def _no_permission(name: str, path: Path) -> Finding:
    try:
        st = path.stat()
        group = grp.getgrgid(st.st_gid).gr_name
        mode = f"{stat.S_IMODE(st.st_mode):o}"
    except (OSError, KeyError):
        group, mode = "i2c", "?"
    return Finding(
        name,
        FAIL,
        f"{path} exists but this user may not open it (group {group}, mode {mode})",
        f"sudo usermod -aG {group} $USER, then log in again",
    )


def _answers(bus: int, address7: int) -> bool:
    from atecc.device import Device
    from atecc.errors import AteccError
    from atecc.i2c import open_bus
    from atecc.transport import I2CTransport

    try:
        device = Device(I2CTransport(open_bus(bus), address7))
    except OSError:
        return False
    try:
        device.revision()
        return True
    except (AteccError, OSError):
        return False
    finally:
        device.close()


def check_chip(path: Path, parsed: Any) -> list[Finding]:
    """The chip answers (wake, revision, serial), and its locks."""
    from atecc.errors import AteccError
    from atecc.slotfile import I2CInterface, open_device

    name = f"chip {path.name}"
    where = clichip.describe_interface(parsed.interface)
    try:
        device = open_device(parsed.interface)
    except OSError as exc:
        return [Finding(name, FAIL, f"cannot open {where}: {exc.strerror or exc}")]
    try:
        revision = bytes(device.revision())
        config = device.config_zone()
    except (AteccError, OSError) as exc:
        finding = Finding(name, FAIL, f"no chip answers at {where}: {exc}")
        iface = parsed.interface
        if isinstance(iface, I2CInterface):
            others = [a for a in KNOWN_ADDRESSES7 if a != iface.address7]
            answering = [a for a in others if _answers(iface.bus, a)]
            if answering:
                a = answering[0]
                fix = (
                    f"a chip answers at 7-bit 0x{a:02X}: interface = i2c,0x{a << 1:02X},"
                    f"{iface.bus:X} (8-bit address, as cryptoauthlib writes it)"
                )
            else:
                fix = (
                    "check power and wiring (SDA, SCL, GND, 3.3 V); the wake pulse needs the "
                    "bus at 100 kHz or slower (dtparam=i2c_arm_baudrate=100000); 'i2cdetect -y "
                    f"{iface.bus}' shows what answers"
                )
            finding = Finding(finding.check, FAIL, finding.detail, fix)
        return [finding]
    finally:
        device.close()
    found = [
        Finding(
            name,
            OK,
            f"{config.model} (revision {revision.hex()}), serial {config.serial.hex().upper()}, "
            f"at {where}",
        )
    ]
    locks = f"locks {path.name}"
    if not config.is_config_locked:
        found.append(
            Finding(
                locks,
                FAIL,
                "the configuration zone is unlocked: a blank part, which the module cannot use "
                "(its random bytes are a test pattern, it has no keys)",
                "provision it: 'atecc provision --dry-run', then 'atecc provision --yes'",
            )
        )
    elif not config.is_data_locked:
        found.append(
            Finding(
                locks,
                WARN,
                "the data zone is unlocked: anyone with the chip can replace its keys",
                "finish provisioning: 'atecc provision --yes'",
            )
        )
    else:
        found.append(Finding(locks, OK, "configuration and data zones locked"))
    return found


def check_emulator_state(path: Path, parsed: Any) -> Finding:
    from atecc.config_zone import ConfigZone
    from atecc.emulator.state import StateFile, StateFileError
    from atecc.fileio import ownership_problem

    name = f"emulator-state {path.name}"
    state_path = parsed.interface.state_path
    try:
        state = StateFile(state_path).load()
    except StateFileError as exc:
        return Finding(
            name,
            FAIL,
            str(exc),
            "make a new chip: 'atecc emulator reset --slot N' (or 'emulator init --force')",
        )
    problem = ownership_problem(state_path)
    if problem:
        return Finding(name, WARN, f"{state_path} is {problem}", f"chmod go-w {state_path}")
    zone = ConfigZone(bytes(state.config))
    return Finding(name, OK, f"{state_path}: {state.profile}, serial {zone.serial.hex().upper()}")


# --- running the checks --------------------------------------------------------------------------


def _guarded(name: str, run: Callable[[], Iterable[Finding]]) -> list[Finding]:
    """A check that fails unexpectedly is a finding of its own, never the end of the report."""
    try:
        return list(run())
    except Exception as exc:
        log.debug("check %s failed", name, exc_info=True)
        return [Finding(name, FAIL, f"the check itself failed: {exc}")]


def _plugin_checks() -> list[tuple[str, Callable[[Path], Iterable[Finding]]]]:
    from importlib.metadata import entry_points

    found = []
    for entry in sorted(entry_points(group=DOCTOR_GROUP), key=lambda e: e.name):
        try:
            found.append((entry.name, entry.load()))
        except ImportError as exc:
            found.append((entry.name, _broken(entry.value, exc)))
    return found


def _broken(value: str, exc: Exception) -> Callable[[Path], Iterable[Finding]]:
    def report(_: Path) -> Iterable[Finding]:
        return [Finding(f"layer {value}", FAIL, f"cannot be loaded: {exc}")]

    return report


def diagnose(explicit: str | None, slot: int | None = None) -> tuple[Path, list[Finding]]:
    """Every check, in order: the driver's, then the other layers'."""
    from atecc.slotfile import EmulatorInterface, I2CInterface

    found, directory, files = check_filestore(explicit)
    findings = [found]
    if slot is not None:
        files = [p for p in files if p.stem == str(slot)]
    buses_seen: set[int] = set()
    for path in files:
        finding, parsed = check_slot_file(path)
        findings.append(finding)
        if parsed is None:
            continue
        iface = parsed.interface
        if isinstance(iface, I2CInterface) and iface.bus not in buses_seen:
            buses_seen.add(iface.bus)
            bus_finding = check_i2c_bus(iface.bus)
            findings.append(bus_finding)
            if bus_finding.status == FAIL:
                continue
        if isinstance(iface, EmulatorInterface):
            state_finding = check_emulator_state(path, parsed)
            findings.append(state_finding)
            if state_finding.status == FAIL:
                continue
        findings += _guarded(f"chip {path.name}", partial(check_chip, path, parsed))
    if files or directory.is_dir():
        for name, checks in _plugin_checks():
            findings += _guarded(name, partial(checks, directory))
    return directory, findings


def format_report(directory: Path, findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = []
    for f in findings:
        lines.append(f"{f.status:<5} {f.check:<{width}}  {f.detail}")
        if f.fix:
            lines.append(f"{'':<5} {'':<{width}}  fix: {f.fix}")
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    if fails or warns:
        lines.append(f"{_count(fails, 'problem')}, {_count(warns, 'warning')}")
    else:
        lines.append("everything checked is fine")
    return "\n".join(lines)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def cmd_doctor(args: argparse.Namespace) -> int:
    directory, findings = diagnose(getattr(args, "filestore", None), getattr(args, "slot", None))
    ok = not any(f.status == FAIL for f in findings)
    emit(
        args,
        {"ok": ok, "filestore": str(directory), "checks": [asdict(f) for f in findings]},
        format_report(directory, findings),
    )
    return 0 if ok else 1


def add_subcommands(commands: Any) -> None:
    add_command(
        commands,
        "doctor",
        cmd_doctor,
        "check the whole set-up and say how to fix what is wrong; exit status 1 when a check fails",
        example=["atecc doctor", "atecc doctor --filestore ./fs --json"],
        parents=[clichip.common_parser()],
        details="Checks: where the filestore comes from and who may change it; each slot file "
        "(unknown keys and values with file:line); /dev/i2c-N and its group; the chip at the "
        "configured address (and the addresses parts ship with when it does not answer), its "
        "revision and locks; an emulator's state file; the PKCS#11 module loaded by a C host "
        "and its Python; each token as the module sees it; the OpenSSL engine and provider; "
        "the p11-kit registration. Nothing is changed.",
    )
