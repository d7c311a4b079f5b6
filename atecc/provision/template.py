"""Configuration templates for provisioning a blank ATECC608, and what they change.

Owns: :class:`Template` (the config bytes a template sets, and each slot's role: which keys are
generated, which key the token shows as ``device``, which slots the module may use for new keys),
the built-in ``tls-identity`` template, templates read from a file the user supplies (128 bytes
of hex, as Microchip's tools dump a config zone, or a JSON slot table), the checks that a
template leaves a chip the module can use (before anything is locked), and the human diff
between a chip's config and a template's.

What a template never changes: bytes 0-15 (factory: serial, revision, AES and I2C enables), the
I2C address (byte 16: this tool does not move a chip to another address), UserExtra and the lock
bytes (84-87, changed only by UpdateExtra and Lock), and, unless it says so, the ChipMode byte and
the monotonic counters (52-67).

Must not: talk to the chip (``atecc.provision.plan`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from atecc.config_zone import ConfigZone, SlotRow
from atecc.constants import (
    CFG_CHIP_MODE,
    CFG_CHIP_OPTIONS,
    CFG_I2C_ADDRESS,
    CFG_KEY_CONFIG,
    CFG_SLOT_CONFIG,
    CFG_SLOT_LOCKED,
    CONFIG_ZONE_SIZE,
    SLOT_COUNT,
    KeyType,
)

#: Config bytes the Write command can set before the config lock (chip §3.1).
WRITABLE = frozenset(range(16, 84)) | frozenset(range(88, 128))
#: ... of which a template from a file never changes these (see the module docstring).
KEPT = frozenset({CFG_I2C_ADDRESS})
#: Counters and ChipMode: kept unless a template names them.
COUNTERS = frozenset(range(52, 68))

#: Named config fields for the diff: (name, first byte, length).
FIELDS = (
    ("I2C address", CFG_I2C_ADDRESS, 1),
    ("reserved (17)", 17, 1),
    ("CountMatch", 18, 1),
    ("ChipMode", CFG_CHIP_MODE, 1),
    ("Counter[0]", 52, 8),
    ("Counter[1]", 60, 8),
    ("UseLock", 68, 1),
    ("VolatileKeyPermission", 69, 1),
    ("SecureBoot", 70, 2),
    ("KdflvLoc", 72, 1),
    ("KdflvStr", 73, 2),
    ("reserved (75-83)", 75, 9),
    ("SlotLocked", CFG_SLOT_LOCKED, 2),
    ("ChipOptions", CFG_CHIP_OPTIONS, 2),
    ("X509format", 92, 4),
)

MAX_TEMPLATE_BYTES = 64 * 1024


class TemplateError(ValueError):
    """A template that cannot be read, or that would leave a chip the module cannot use."""


@dataclass(frozen=True)
class SlotRole:
    """What a template does with one slot beyond its SlotConfig/KeyConfig."""

    slot: int
    role: str
    generate: bool = False  #: GenKey creates its key during provisioning
    label: str | None = None  #: the token shows this key (``object = private,<label>,<slot>``)
    free: bool = False  #: listed in ``freeslots``: the module may put new keys here


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    #: config offset -> byte value, for writable bytes only
    assignments: dict[int, int] = field(default_factory=dict)
    roles: tuple[SlotRole, ...] = ()

    def apply(self, current: bytes) -> bytes:
        """The config image the chip should have: ``current`` with this template's bytes."""
        if len(current) != CONFIG_ZONE_SIZE:
            raise ValueError("a config zone is 128 bytes")
        image = bytearray(current)
        for offset, value in self.assignments.items():
            image[offset] = value
        return bytes(image)

    @property
    def generated(self) -> tuple[int, ...]:
        return tuple(r.slot for r in self.roles if r.generate)

    @property
    def labelled(self) -> tuple[SlotRole, ...]:
        return tuple(r for r in self.roles if r.label)

    @property
    def freeslots(self) -> tuple[int, ...]:
        return tuple(r.slot for r in self.roles if r.free)


def _set16(assignments: dict[int, int], offset: int, value: int) -> None:
    assignments[offset] = value & 0xFF
    assignments[offset + 1] = value >> 8 & 0xFF


def _slot(assignments: dict[int, int], slot: int, slot_config: int, key_config: int) -> None:
    _set16(assignments, CFG_SLOT_CONFIG + 2 * slot, slot_config)
    _set16(assignments, CFG_KEY_CONFIG + 2 * slot, key_config)


#: The TLS device-identity layout, in the spirit of Microchip's TrustFLEX TLS: SlotConfig,
#: KeyConfig and role of each slot (chip §3.4, §3.5 for the bits).
TLS_IDENTITY_SLOTS = (
    # slot 0: ext-sign + ECDH, GenKey allowed after the lock (a new key later), PubInfo (the
    # public key, and its digest with GenKey mode 0x08, can be computed), lockable, ReqRandom
    (0x2085, 0x0073, SlotRole(0, "device identity key (P-256)", generate=True, label="device")),
    # slot 1: internal sign only (attestation of GenKey digests), permanent
    (0x0082, 0x0053, SlotRole(1, "attestation key, internal sign only (P-256)", generate=True)),
    (0x2085, 0x0073, SlotRole(2, "spare P-256 key (C_GenerateKeyPair)", free=True)),
    (0x2085, 0x0073, SlotRole(3, "spare P-256 key (C_GenerateKeyPair)", free=True)),
    (0x2085, 0x0073, SlotRole(4, "spare P-256 key (C_GenerateKeyPair)", free=True)),
    (0x0F0F, 0x003C, SlotRole(5, "data, 36 bytes")),
    (0x0F0F, 0x003C, SlotRole(6, "data, 36 bytes")),
    (0x0F0F, 0x003C, SlotRole(7, "data, 36 bytes")),
    (0x0F0F, 0x003C, SlotRole(8, "data, 416 bytes (e.g. a full DER certificate)")),
    # slot 9: an AES key slot, clear 32-byte writes (C_GenerateKey / AES import), secret
    (0x0F8F, 0x0038, SlotRole(9, "AES-128 keys (C_GenerateKey)", free=True)),
    (0x0F0F, 0x003C, SlotRole(10, "certificate data (compressed device certificate)")),
    (0x0F0F, 0x003C, SlotRole(11, "certificate data (signer public key)")),
    (0x0F0F, 0x003C, SlotRole(12, "certificate data (compressed signer certificate)")),
    (0x0F0F, 0x0030, SlotRole(13, "P-256 public key")),
    (0x0F0F, 0x0030, SlotRole(14, "P-256 public key")),
    (0x0F0F, 0x0030, SlotRole(15, "P-256 public key")),
)


def tls_identity() -> Template:
    assignments: dict[int, int] = {17: 0, 18: 0}
    for offset in range(68, 84):  # UseLock, VolatileKeyPermission, SecureBoot, KDF IV: off
        assignments[offset] = 0
    _set16(assignments, CFG_SLOT_LOCKED, 0xFFFF)  # no slot individually locked
    _set16(assignments, CFG_CHIP_OPTIONS, 0x0000)  # no IO protection key, ECDH output in clear
    for offset in range(92, 96):
        assignments[offset] = 0  # no X.509 formats
    roles = []
    for slot_config, key_config, role in TLS_IDENTITY_SLOTS:
        _slot(assignments, role.slot, slot_config, key_config)
        roles.append(role)
    return Template(
        "tls-identity",
        "a TLS device identity: slot 0 a P-256 key the token shows as 'device' (GenKey "
        "allowed, public key derivable), slot 1 an attestation key, slots 2-4 spare keys, "
        "slot 9 AES keys, data and certificate slots",
        assignments,
        tuple(roles),
    )


BUILT_IN = {"tls-identity": tls_identity}


# --- templates from files ------------------------------------------------------------------------


def load(name_or_path: str) -> Template:
    """A built-in template by name, or one read from a file (hex or JSON, see the module)."""
    if name_or_path in BUILT_IN:
        return BUILT_IN[name_or_path]()
    path = Path(name_or_path)
    if not path.exists():
        raise TemplateError(
            f"no template {name_or_path!r}: a built-in name ({', '.join(BUILT_IN)}) or a file "
            "(128 hex bytes, or a JSON slot table)"
        )
    from atecc.fileio import FileRefusedError, read_limited

    try:
        text = read_limited(path, max_bytes=MAX_TEMPLATE_BYTES).decode("utf-8")
    except (FileRefusedError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("{"):
        return from_json(text, name=path.name)
    return from_hex(text, name=path.name)


def from_hex(text: str, *, name: str = "hex") -> Template:
    """A full 128-byte config image in hex (spaces, newlines, ``0x`` and ``:`` allowed;
    ``#`` starts a comment). Bytes the Write command cannot set, and the I2C address, are
    ignored; the lowest P-256 private slot's key is generated and shown as ``device``."""
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    cleaned = "".join(
        " ".join(lines).replace("0x", " ").replace(",", " ").replace(":", " ").split()
    )
    try:
        image = bytes.fromhex(cleaned)
    except ValueError:
        raise TemplateError(f"{name}: not hex") from None
    if len(image) != CONFIG_ZONE_SIZE:
        raise TemplateError(f"{name}: a config zone is 128 bytes, this has {len(image)}")
    assignments = {o: image[o] for o in WRITABLE - KEPT}
    zone = ConfigZone(image)
    private = [n for n in range(SLOT_COUNT) if zone.is_private_key_slot(n)]
    roles = []
    for n in range(SLOT_COUNT):
        if private and n == private[0]:
            roles.append(SlotRole(n, "device key", generate=True, label="device"))
        elif n in private and zone.slot_config(n).genkey_allowed:
            roles.append(SlotRole(n, "spare P-256 key", free=True))
    return Template(name, f"the config image in {name}", assignments, tuple(roles))


_JSON_KEYS = {"description", "base", "slots", "chip_mode", "chip_options"}
_SLOT_KEYS = {"slot_config", "key_config", "role", "generate", "label", "free"}


def _int(value: object, where: str, bits: int) -> int:
    try:
        number = int(str(value), 0) if not isinstance(value, int) else value
    except ValueError:
        raise TemplateError(f"{where}: {value!r} is not a number") from None
    if not 0 <= number < 1 << bits:
        raise TemplateError(f"{where}: {value!r} does not fit {bits} bits")
    return number


def from_json(text: str, *, name: str = "json") -> Template:
    """A JSON slot table::

        {"base": "tls-identity",
         "slots": {"5": {"slot_config": "0x2085", "key_config": "0x0073", "free": true}},
         "chip_mode": "0x00", "chip_options": "0x0000"}

    ``base`` (optional) starts from a built-in template; each slot entry sets SlotConfig and
    KeyConfig (both needed without a base for that slot) and its role: ``generate`` (GenKey now),
    ``label`` (shown by the token), ``free`` (``freeslots``)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"{name}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise TemplateError(f"{name}: the template is a JSON object")
    unknown = set(doc) - _JSON_KEYS
    if unknown:
        raise TemplateError(f"{name}: unknown keys {sorted(unknown)} (known: {sorted(_JSON_KEYS)})")
    base = load(str(doc["base"])) if "base" in doc else Template(name, "")
    assignments = dict(base.assignments)
    roles = {r.slot: r for r in base.roles}
    slots = doc.get("slots", {})
    if not isinstance(slots, dict):
        raise TemplateError(f"{name}: 'slots' maps slot numbers to objects")
    for key, entry in slots.items():
        where = f"{name}: slot {key}"
        slot = _int(key, where, 4)
        if not isinstance(entry, dict) or set(entry) - _SLOT_KEYS:
            raise TemplateError(f"{where}: an object with keys among {sorted(_SLOT_KEYS)}")
        old = roles.get(slot, SlotRole(slot, ""))
        for field_name, offset in (
            ("slot_config", CFG_SLOT_CONFIG),
            ("key_config", CFG_KEY_CONFIG),
        ):
            if field_name in entry:
                _set16(assignments, offset + 2 * slot, _int(entry[field_name], where, 16))
            elif offset + 2 * slot not in assignments:
                raise TemplateError(f"{where}: {field_name} is needed (no base sets it)")
        roles[slot] = replace(
            old,
            role=str(entry.get("role", old.role or "as configured")),
            generate=bool(entry.get("generate", old.generate)),
            label=entry.get("label", old.label),
            free=bool(entry.get("free", old.free)),
        )
    if "chip_mode" in doc:
        assignments[CFG_CHIP_MODE] = _int(doc["chip_mode"], f"{name}: chip_mode", 8)
    if "chip_options" in doc:
        _set16(
            assignments, CFG_CHIP_OPTIONS, _int(doc["chip_options"], f"{name}: chip_options", 16)
        )
    description = str(doc.get("description", base.description or f"the slot table in {name}"))
    return Template(
        name, description, assignments, tuple(sorted(roles.values(), key=lambda r: r.slot))
    )


# --- checks and the diff -------------------------------------------------------------------------


def check(template: Template, image: bytes) -> None:
    """Refuse (before anything is written or locked) a template that would leave the chip
    useless to the module: generated keys that GenKey cannot create, a shown key that cannot
    sign or give its public key, free slots that cannot take a new key."""
    zone = ConfigZone(image)
    labels = [r.label for r in template.roles if r.label]
    if len(labels) != len(set(labels)):
        raise TemplateError(f"{template.name}: two keys share a label")
    if not any(r.generate for r in template.roles):
        raise TemplateError(f"{template.name}: generates no key")
    for role in template.roles:
        sc, kc = zone.slot_config(role.slot), zone.key_config(role.slot)
        where = f"{template.name}: slot {role.slot}"
        is_key = kc.private and kc.key_type == KeyType.P256 and sc.is_secret
        if (role.generate or role.label) and not is_key:
            raise TemplateError(
                f"{where}: a generated or shown key needs KeyConfig private P-256 and "
                "SlotConfig IsSecret"
            )
        if role.label and not (sc.external_sign and kc.pub_info):
            raise TemplateError(
                f"{where}: the token's key {role.label!r} needs external sign (SlotConfig bit 0) "
                "and PubInfo (KeyConfig bit 1)"
            )
        if role.free and not (
            (is_key and sc.genkey_allowed)
            or (kc.key_type == KeyType.AES and sc.write_mode == "always")
        ):
            raise TemplateError(
                f"{where}: a free slot must be a P-256 key slot GenKey may refill after the lock, "
                "or an AES slot with clear writes"
            )


def _slot_text(row: SlotRow) -> str:
    return f"{row.key_type}; read {row.read}; write {row.write}; use {row.use}; {row.lock}"


def diff(current: bytes, target: bytes, template: Template) -> list[str]:
    """Lines saying what the template changes, field by field and slot by slot."""
    before, after = ConfigZone(current), ConfigZone(target)
    lines = []
    for name, offset, length in FIELDS:
        old, new = current[offset : offset + length], target[offset : offset + length]
        if old != new:
            lines.append(f"{name:<22} {old.hex().upper()} -> {new.hex().upper()}")
    roles = {r.slot: r for r in template.roles}
    for n in range(SLOT_COUNT):
        old_sc, new_sc = before.slot_config(n).raw, after.slot_config(n).raw
        old_kc, new_kc = before.key_config(n).raw, after.key_config(n).raw
        role = roles.get(n)
        if (old_sc, old_kc) == (new_sc, new_kc) and role is None:
            continue
        what = f" -- {role.role}" if role is not None and role.role else ""
        lines.append(
            f"slot {n:<2} SlotConfig {old_sc:04X} -> {new_sc:04X}, "
            f"KeyConfig {old_kc:04X} -> {new_kc:04X}{what}"
        )
        if (old_sc, old_kc) != (new_sc, new_kc):
            lines.append(f"        now:   {_slot_text(before.describe_slot(n))}")
            lines.append(f"        after: {_slot_text(after.describe_slot(n))}")
    return lines


__all__ = [
    "BUILT_IN",
    "SlotRole",
    "Template",
    "TemplateError",
    "check",
    "diff",
    "from_hex",
    "from_json",
    "load",
]
