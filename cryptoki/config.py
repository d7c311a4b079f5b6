"""Slot files → token configurations, read once per C_Initialize.

Owns: finding the filestore directory, parsing every ``<N>.conf`` in it through
``atecc.slotfile`` (the cryptoauthlib-compatible parser), turning each into a frozen
:class:`TokenConfig`, and naming the per-token metadata file. A slot file that fails to parse is
logged as ``<file>:<line>: message`` and skipped; the others still become slots.
Must not: open a device or talk to the chip (C_Initialize stays cheap and never fails because a
chip is missing).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any

log = getLogger("cryptoki.config")

DEFAULT_LABEL = "00ABC"  #: cryptoauthlib's default token label, kept for drop-in use

#: Free slots C_GenerateKeyPair (GenKey) and C_GenerateKey (AES keys written in clear) may use
#: when the slot file has no ``freeslots`` line, by device type. Trust&GO parts ship slots 2-4 as
#: GenKey-able P-256 private slots and slot 9 as an always-writable AES slot; other parts are
#: customer-provisioned and get none unless the slot file says so. Each use checks the slot's
#: config first, so a slot listed here that the chip does not allow is simply skipped.
DEFAULT_FREESLOTS: dict[str, tuple[int, ...]] = {"ATECC608-TNGTLS": (2, 3, 4, 9)}

#: ``user_pin`` values: ``required`` turns on CKF_LOGIN_REQUIRED with a user PIN.
USER_PIN_VALUES = ("required", "none")

_SLOT_FILE_RE = re.compile(r"^(\d+)\.conf$")


@dataclass(frozen=True)
class ObjectSpec:
    """One ``object = kind,label,slot`` line of a slot file."""

    kind: str  #: "private", "public", "certificate" or "secret"
    label: str
    slot: int


@dataclass(frozen=True)
class TokenConfig:
    """Everything a slot file says about one token."""

    slot_id: int
    path: Path
    interface: Any  #: atecc.slotfile interface object, handed to the backend untouched
    device: str
    label: str
    freeslots: tuple[int, ...]
    objects: tuple[ObjectSpec, ...] = ()
    user_pin_required: bool = False  #: ``user_pin = required``: login with a user PIN

    @property
    def is_tngtls(self) -> bool:
        return self.device.upper().endswith("TNGTLS")

    @property
    def metadata_path(self) -> Path:
        """``<N>.pkcs11.json`` next to ``<N>.conf``: labels and IDs of generated keys."""
        return self.path.with_name(f"{self.slot_id}.pkcs11.json")


def _field(obj: Any, *names: str, default: Any = None) -> Any:
    """First attribute of ``obj`` among ``names`` that exists (tolerates parser field naming)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def _object_spec(entry: Any) -> ObjectSpec:
    if isinstance(entry, (tuple, list)):
        kind, label, slot = entry[0], entry[1], entry[2]
    else:
        kind = _field(entry, "kind", "type", "cls")
        label = _field(entry, "label", "name")
        slot = _field(entry, "slot", "key_id")
    return ObjectSpec(kind=str(kind).lower(), label=str(label), slot=int(slot))


def token_config(slot_id: int, path: Path, parsed: Any) -> TokenConfig:
    """Build a TokenConfig from an ``atecc.slotfile.SlotFile``."""
    device = str(_field(parsed, "device", default="ATECC608") or "ATECC608")
    label = _field(parsed, "label", default=None) or DEFAULT_LABEL
    freeslots = _field(parsed, "freeslots", default=None)
    if freeslots is None or (not freeslots and device.upper() in DEFAULT_FREESLOTS):
        freeslots = DEFAULT_FREESLOTS.get(device.upper(), ())
    objects = tuple(_object_spec(o) for o in (_field(parsed, "objects", default=()) or ()))
    extra = _field(parsed, "extra", default=None) or {}
    pin_value = extra.get("user_pin")
    user_pin_required = False
    if pin_value is not None:
        text, line = pin_value if isinstance(pin_value, tuple) else (pin_value, 0)
        if str(text).strip().lower() not in USER_PIN_VALUES:
            raise ValueError(f"{path}:{line}: user_pin must be one of {', '.join(USER_PIN_VALUES)}")
        user_pin_required = str(text).strip().lower() == "required"
    return TokenConfig(
        slot_id=slot_id,
        path=path,
        interface=_field(parsed, "interface"),
        device=device,
        label=str(label),
        freeslots=tuple(int(s) for s in freeslots),
        objects=objects,
        user_pin_required=user_pin_required,
    )


def filestore() -> Path:
    """The directory holding slot files (see ``atecc.slotfile.filestore_dir``)."""
    from atecc.slotfile import filestore_dir

    return Path(filestore_dir())


def load(directory: Path | None = None) -> list[TokenConfig]:
    """Parse every ``<N>.conf`` in the filestore, sorted by slot ID; broken files are skipped.

    :param directory: override the filestore (tests); default :func:`filestore`.
    """
    from atecc.slotfile import SlotFileError, parse_slot_file

    directory = directory if directory is not None else filestore()
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        log.warning("filestore %s cannot be read: %s; no slots", directory, exc.strerror)
        return []
    configs: list[TokenConfig] = []
    for name in names:
        m = _SLOT_FILE_RE.match(name)
        if not m:
            continue
        path = Path(directory) / name
        try:
            parsed = parse_slot_file(path)
            configs.append(token_config(int(m.group(1)), path, parsed))
        except SlotFileError as exc:
            # The parser's message already reads "<file>:<line>: what is wrong".
            log.error("slot file skipped: %s", exc)
        except (OSError, ValueError, TypeError) as exc:
            log.error("slot file skipped: %s: %s", path, exc)
    configs.sort(key=lambda c: c.slot_id)
    return configs
