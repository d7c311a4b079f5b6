"""cryptoauthlib-compatible PKCS#11 slot files (``<N>.conf``) and opening the device they name.

Owns: parsing ``key = value`` slot files (``#`` starts a comment), the two interface kinds --
real I2C (``interface = i2c,<8-bit address>,<bus>``) and our emulator extension
(``interface = emulator,<state path>[,fast|realistic]``) --, :func:`open_device` that turns an
interface into a :class:`~atecc.device.Device`, and locating the slot-file directory.

This is the ONE place where cryptoauthlib's 8-bit I2C address form is converted to the 7-bit
form the rest of the code uses (ARCHITECTURE.md §1).

How cryptoauthlib reads ``interface`` (facts only, from its pkcs11 config reader): the value is
split on commas; the address and the bus are both parsed as hexadecimal numbers (``strtol(...,
16)``), an optional 4th field is the baud rate in decimal; missing fields keep the library
defaults -- address 0xC0 (7-bit 0x60), bus 2. We parse the same way, so ``i2c,0x6A,1`` is bus 1,
7-bit address 0x35, and note that a bus written ``10`` means bus 16, as in cryptoauthlib.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from atecc.environment import secure_getenv
from atecc.fileio import FileRefusedError, read_limited
from atecc.lazylog import get_logger
from atecc.record import field, record

if TYPE_CHECKING:
    from atecc.device import Device

log = get_logger(__name__)

#: Env var naming the slot-file directory (our name; cryptoauthlib has only the conf file).
FILESTORE_ENV = "ATECC_PKCS11_FILESTORE"
#: cryptoauthlib's library config file, whose ``filestore`` key names the slot-file directory.
LIBRARY_CONF = Path("/etc/cryptoauthlib/cryptoauthlib.conf")
DEFAULT_FILESTORE = Path("/var/lib/cryptoauthlib")

DEFAULT_LABEL = "00ABC"
#: cryptoauthlib's default I2C interface (``cfg_ateccx08a_i2c_default``): 8-bit 0xC0, bus 2.
DEFAULT_I2C_ADDRESS8 = 0xC0
DEFAULT_I2C_BUS = 2
OBJECT_KINDS = ("private", "public", "certificate", "secret")
TIMINGS = ("fast", "realistic")


class SlotFileError(ValueError):
    """A slot file is malformed; the message is ``<file>:<line>: <what>``."""


@record(frozen=True)
class I2CInterface:
    """A chip on Linux I2C bus ``bus`` at 7-bit address ``address7``."""

    bus: int
    address7: int
    baud: int | None = None  #: kept for completeness; Linux sets the bus speed, not us


@record(frozen=True)
class EmulatorInterface:
    """An emulated chip persisted in ``state_path``."""

    state_path: Path
    timing: str = "fast"


Interface = I2CInterface | EmulatorInterface


@record(frozen=True)
class SlotObject:
    """One ``object = <kind>,<label>,<slot>`` line."""

    kind: str
    label: str
    slot: int
    line: int


@record
class SlotFile:
    """A parsed slot file. ``slot_number`` comes from the file name ``<N>.conf``."""

    path: Path
    slot_number: int | None
    interface: Interface
    device: str = "ATECC608"
    label: str = DEFAULT_LABEL
    freeslots: tuple[int, ...] = ()
    objects: list[SlotObject] = field(default_factory=list)
    #: ``root_ca = <PEM file>``: the CA that signed the chip's signer certificate when it is not
    #: Microchip's (an emulated Trust&GO chip's own root); relative to the slot file's directory
    root_ca: Path | None = None
    #: the PKCS#11 layer's keys (``user_pin``), as key -> (value, line number)
    extra: dict[str, tuple[str, int]] = field(default_factory=dict)


def _int_auto(text: str, *, base: int) -> int:
    """Parse like ``strtol(text, NULL, base)`` for base 16 (an ``0x`` prefix is allowed)."""
    text = text.strip()
    if base == 16 and text.lower().startswith("0x"):
        text = text[2:]
    return int(text, base)


def parse_interface(value: str, *, base_dir: Path, where: str = "") -> Interface:
    """Parse an ``interface`` value; ``base_dir`` anchors relative emulator paths."""
    parts = [p.strip() for p in value.split(",")]
    kind = parts[0].lower()
    prefix = f"{where}: " if where else ""
    if kind == "i2c":
        try:
            address8 = _int_auto(parts[1], base=16) if len(parts) > 1 and parts[1] else None
            bus = _int_auto(parts[2], base=16) if len(parts) > 2 and parts[2] else None
            baud = int(parts[3]) if len(parts) > 3 and parts[3] else None
        except ValueError as exc:
            raise SlotFileError(f"{prefix}bad i2c interface {value!r}: {exc}") from None
        if len(parts) > 4:
            raise SlotFileError(f"{prefix}i2c interface takes at most address, bus and baud")
        address8 = DEFAULT_I2C_ADDRESS8 if address8 is None else address8
        if not 0 < address8 <= 0xFF or address8 & 1:
            raise SlotFileError(
                f"{prefix}I2C address 0x{address8:X} must be the 8-bit form (even, 0x02..0xFE),"
                " e.g. 0x6A for a Trust&GO part at 7-bit 0x35"
            )
        return I2CInterface(
            bus=DEFAULT_I2C_BUS if bus is None else bus, address7=address8 >> 1, baud=baud
        )
    if kind == "emulator":
        if len(parts) < 2 or not parts[1]:
            raise SlotFileError(f"{prefix}emulator interface needs a state file path")
        if len(parts) > 3:
            raise SlotFileError(f"{prefix}emulator interface takes a path and a timing only")
        timing = parts[2].lower() if len(parts) > 2 and parts[2] else "fast"
        if timing not in TIMINGS:
            raise SlotFileError(f"{prefix}emulator timing must be 'fast' or 'realistic'")
        path = Path(os.path.expanduser(parts[1]))
        if not path.is_absolute():
            path = base_dir / path
        return EmulatorInterface(state_path=path, timing=timing)
    if kind in ("hid", "spi", "swi", "uart"):
        raise SlotFileError(
            f"{prefix}interface {parts[0]!r} is cryptoauthlib's, not supported by this module "
            "(i2c or emulator)"
        )
    raise SlotFileError(f"{prefix}unknown interface {parts[0]!r} (expected i2c or emulator)")


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Largest slot file read (a real one is a few hundred bytes); a larger one is refused.
MAX_SLOT_FILE_BYTES = 64 * 1024


def _key_value(line: str) -> tuple[str, str] | None:
    """``key = value`` split at the first ``=`` (linear in the line's length; a regular
    expression with a lazy value and trailing blanks took minutes on a long line)."""
    key, sep, value = line.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        return None
    return key, value.strip()


#: Keys that belong to the PKCS#11 layer (read there from ``SlotFile.extra``), not to cryptoauthlib.
PKCS11_KEYS = frozenset({"user_pin"})
#: Every key a slot file may have: cryptoauthlib's for an ATECC (its TA100-only PIN handles are
#: not), ``root_ca`` (ours) and the PKCS#11 layer's. Any other key is an error: a typo must not
#: silently give a token without what the line meant to say.
KNOWN_KEYS = (
    frozenset({"interface", "device", "label", "freeslots", "object", "root_ca"}) | PKCS11_KEYS
)

#: ``device`` values: the part, optionally with the product it was provisioned as (cryptoauthlib
#: loads the factory objects of TNGTLS, TFLXTLS and TNGLORA parts; this module those of TNGTLS).
DEVICE_PARTS = ("ATECC608", "ATECC608A", "ATECC608B")
DEVICE_PRODUCTS = ("", "-TNGTLS", "-TFLXTLS", "-TNGLORA")
DEVICES = tuple(part + product for part in DEVICE_PARTS for product in DEVICE_PRODUCTS)


def check_device(value: str, where: str) -> str:
    """The ``device`` value, upper-cased, or a SlotFileError naming the nearest known one."""
    device = value.strip().upper()
    if device in DEVICES:
        if device.endswith(("-TFLXTLS", "-TNGLORA")):
            log.warning(
                "%s: %s: its factory objects are not shown by this module; name them with "
                "'object =' lines",
                where,
                device,
            )
        return device
    if device.startswith(("ATECC508", "ATECC108", "ATSHA", "TA100")):
        raise SlotFileError(f"{where}: {value} is not supported by this module (ATECC608 only)")
    import difflib  # only for the error message: every C_Initialize passes through here

    near = difflib.get_close_matches(device, DEVICES, n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    raise SlotFileError(
        f"{where}: unknown device {value!r} (ATECC608, ATECC608A or ATECC608B, optionally with "
        f"-TNGTLS, -TFLXTLS or -TNGLORA{hint})"
    )


def parse_slot_file(path: str | os.PathLike[str]) -> SlotFile:
    """Read and validate one slot file.

    :raises SlotFileError: ``<file>:<line>: message`` for the first malformed line.
    :raises OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        text = read_limited(path, max_bytes=MAX_SLOT_FILE_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SlotFileError(f"{path}: not UTF-8 text") from exc
    except FileRefusedError as exc:
        raise SlotFileError(f"{path}: {exc.strerror}") from exc
    stem = path.name.removesuffix(".conf")
    slot_number = int(stem) if stem.isdigit() else None
    interface: Interface | None = None
    result = SlotFile(
        path=path,
        slot_number=slot_number,
        interface=I2CInterface(DEFAULT_I2C_BUS, DEFAULT_I2C_ADDRESS8 >> 1),
    )
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        where = f"{path}:{lineno}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pair = _key_value(line)
        if pair is None:
            raise SlotFileError(f"{where}: expected 'key = value', got {line[:80]!r}")
        key, value = pair[0].lower(), pair[1]
        if key != "object" and key in seen:
            log.warning(
                "%s: %s repeated (first on line %d); the last one wins", where, key, seen[key]
            )
        seen[key] = lineno
        if key == "interface":
            interface = parse_interface(value, base_dir=path.parent, where=where)
        elif key == "device":
            result.device = check_device(value, where)
        elif key == "label":
            if not value:
                raise SlotFileError(f"{where}: empty label")
            if len(value.encode()) > 32:
                raise SlotFileError(f"{where}: label longer than 32 bytes (PKCS#11 token label)")
            result.label = value
        elif key == "freeslots":
            result.freeslots = _parse_slot_list(value, where)
        elif key == "object":
            result.objects.append(_parse_object(value, where, lineno))
        elif key == "root_ca":
            if not value:
                raise SlotFileError(f"{where}: root_ca needs a file name")
            result.root_ca = path.parent / value
        elif key in PKCS11_KEYS:
            result.extra[key] = (value, lineno)
        else:
            import difflib

            near = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise SlotFileError(
                f"{where}: unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))}{hint})"
            )
    if interface is not None:
        result.interface = interface
    return result


def _parse_slot_list(value: str, where: str) -> tuple[int, ...]:
    slots: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or not 0 <= int(item) <= 15:
            raise SlotFileError(f"{where}: freeslots entry {item!r} is not a slot 0..15")
        slots.append(int(item))
    return tuple(slots)


def _parse_object(value: str, where: str, lineno: int) -> SlotObject:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3:
        raise SlotFileError(f"{where}: object needs '<kind>,<label>,<slot>', got {value!r}")
    kind, label, slot_text = parts
    kind = kind.lower()
    if kind not in OBJECT_KINDS:
        raise SlotFileError(f"{where}: object kind {kind!r} not one of {', '.join(OBJECT_KINDS)}")
    if not label:
        raise SlotFileError(f"{where}: object label is empty")
    if not slot_text.isdigit() or not 0 <= int(slot_text) <= 15:
        raise SlotFileError(f"{where}: object slot {slot_text!r} is not 0..15")
    return SlotObject(kind, label, int(slot_text), lineno)


def open_device(interface: Interface) -> Device:
    """Open the chip an interface names: a real bus or an emulated one.

    I2C: ``open_bus`` + :class:`~atecc.transport.I2CTransport` with the default lock path.
    Emulator: ``EmulatedBus`` on the state file, addressed at the chip's effective I2C address
    from its config zone (byte 16, or byte 85 when ChipMode enables it -- as after a power
    cycle), locking the bus's ``lock_path``.
    """
    from atecc.device import Device
    from atecc.transport import I2CTransport

    if isinstance(interface, I2CInterface):
        from atecc import i2c

        bus = i2c.open_bus(interface.bus)
        lock_path = i2c.default_lock_path(interface.bus, interface.address7)
        return Device(I2CTransport(bus, interface.address7, lock_path=lock_path))
    from atecc.config_zone import ConfigZone
    from atecc.emulator.bus import EmulatedBus
    from atecc.emulator.state import StateFile

    config = StateFile(interface.state_path).load().config
    address7 = ConfigZone(bytes(config)).effective_i2c_address7
    ebus = EmulatedBus(interface.state_path, timing=interface.timing)
    return Device(I2CTransport(ebus, address7, lock_path=ebus.lock_path))


def filestore_dir(
    explicit: str | os.PathLike[str] | None = None, *, conf: Path = LIBRARY_CONF
) -> Path:
    """Directory holding the slot files: ``explicit``, else ``$ATECC_PKCS11_FILESTORE``, else the
    ``filestore`` key of cryptoauthlib.conf, else ``/var/lib/cryptoauthlib``."""
    return filestore_source(explicit, conf=conf)[0]


def filestore_source(
    explicit: str | os.PathLike[str] | None = None, *, conf: Path = LIBRARY_CONF
) -> tuple[Path, str]:
    """:func:`filestore_dir` and where it came from, in words (for ``atecc doctor``)."""
    if explicit is not None:
        return Path(explicit), "--filestore"
    env = secure_getenv(FILESTORE_ENV)  # a path: never from a setuid caller's environment
    if env:
        return Path(env), f"${FILESTORE_ENV}"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_FILESTORE, f"the default (no {conf})"
    for raw in text.splitlines():
        pair = _key_value(raw.split("#", 1)[0])
        if pair is not None and pair[0].lower() == "filestore" and pair[1]:
            return Path(pair[1]), f"filestore in {conf}"
    return DEFAULT_FILESTORE, f"the default ({conf} names no filestore)"


def select_slot_file(directory: str | os.PathLike[str], slot: int | None = None) -> Path:
    """``<directory>/<slot>.conf``, or the lowest-numbered slot file when ``slot`` is None.

    :raises SlotFileError: the directory, that slot file, or any slot file is missing; the
        message says how to create one.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SlotFileError(
            f"filestore {directory} does not exist (create a chip with "
            "'atecc emulator init --filestore DIR' or set ATECC_PKCS11_FILESTORE)"
        )
    if slot is not None:
        path = directory / f"{slot}.conf"
        if not path.is_file():
            raise SlotFileError(f"no slot file {path}")
        return path
    found = list_slot_files(directory)
    if not found:
        raise SlotFileError(f"no slot files (<N>.conf) in {directory}")
    return found[0]


def list_slot_files(directory: str | os.PathLike[str]) -> list[Path]:
    """``<N>.conf`` files in ``directory``, sorted by N (so ``10.conf`` follows ``2.conf``)."""
    found = [
        p
        for p in Path(directory).glob("*.conf")
        if p.name.removesuffix(".conf").isdigit() and p.is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.removesuffix(".conf")))
