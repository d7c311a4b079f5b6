"""Per-token metadata file: what the chip cannot keep about the token's objects, failing closed.

Owns: the on-disk format of ``<filestore>/<N>.pkcs11.json`` and safe concurrent access to it.
The chip keeps the private and secret keys; this file keeps what the chip cannot: CKA_LABEL,
CKA_ID, the public point (so that listing objects needs no chip round trip), whether a slot (or an
AES key block) is taken, objects created by applications, persistent copies of chip keys,
attribute changes, the token label set by C_InitToken, and PIN hashes with their wrong-try
counters. Must not: hold any private or secret key material, or a PIN.

Fail closed: a file that cannot be read, is not a regular file, is too large, is not JSON, has a
wrong checksum, a version newer than this code, a malformed entry, or belongs to another chip is
an error (:class:`MetadataError`, CKR_DEVICE_ERROR), never "empty": the token that owns it is
absent with that reason, and the file is never rewritten (every write is a read-modify-write
that starts with a successful read). Only a missing file reads as empty (a new token).

Format (version 3; versions 1 and 2, which have no checksum, are read and upgraded on the next
write)::

    {"format": "atecc-pkcs11-token", "version": 3, "chip_serial": "0123...EE",
     "keys": [{"slot": 2, "label": "mykey", "id": "<hex>", "public_key": "<hex X||Y>"},
              {"slot": 3, "label": "tmp", "id": "<hex>", "public_key": "<hex>",
               "session_pid": 4242, "private": true, "public_destroyed": true}],
     "secret_keys": [{"slot": 9, "key_block": 0, "uid": "<hex>", "label": "aes", "id": "<hex>",
                      "local": true, "attrs": {"260": true, "261": true}}],
     "objects": [{"uid": "<hex>", "attrs": {"0": 1, "3": "my label", "17": "<hex DER>"}}],
     "copies": [{"uid": "<hex>", "source": "tng:0:priv", "attrs": {"3": "copy"}}],
     "overrides": {"tng:0:priv": {"3": "new label", "258": "<hex id>"}},
     "label": "my token",
     "pins": {"user": {"scheme": "scrypt", ...}, "so": {...}},
     "failures": {"user": 2, "so": 0},
     "checksum": "sha256:<hex over the canonical JSON of everything else>"}

``keys`` are EC key pairs made by C_GenerateKeyPair (a half destroyed on its own is marked, the
record goes when both are); ``secret_keys`` AES keys written into a chip slot's key block by
C_GenerateKey or C_CreateObject (the key bytes stay on the chip; the record says which 16 bytes
of which slot are taken); ``objects`` token objects made with C_CreateObject (public information
only); ``copies`` token objects made by C_CopyObject of a chip key (they name the original by its
stable key); ``overrides`` C_SetAttributeValue changes to objects the chip or the slot file
defines; ``pins`` salted scrypt hashes only, and ``failures`` the wrong-PIN counts, so every
process sees one counter.

An entry with ``session_pid`` is a session key (CKA_TOKEN false) of a live process: its slot is
taken while that process runs, and free again once it is gone.

Concurrency: writers hold an exclusive ``flock`` on ``<N>.pkcs11.json.lock`` across
read-modify-write (and across slot selection + GenKey, so two processes never pick the same
slot); the file is replaced atomically and durably (``atecc.fileio.atomic_write``), mode 0600.
Readers need no lock: they see the old file or the new one.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atecc.fileio import FileLock, FileRefusedError, atomic_write, read_limited
from atecc.lazylog import get_logger
from atecc.record import field, record
from cryptoki import errors, limits
from cryptoki.attributes import KIND, Kind

log = get_logger("cryptoki.store")

FORMAT = "atecc-pkcs11-token"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


class MetadataError(errors.DeviceError):
    """The metadata file cannot be trusted (unreadable, corrupt, newer, another chip's)."""


# -- strict field readers: a wrong type is an error, never a default --------------------------
def _typed(value: Any, kind: type, name: str) -> Any:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} is not an integer")
    if kind is not int and not isinstance(value, kind):
        raise ValueError(f"{name} is not a {kind.__name__}")
    return value


def _get(doc: Any, key: str, kind: type, default: Any = ...) -> Any:
    if not isinstance(doc, dict):
        raise ValueError("an entry is not an object")
    if key not in doc:
        if default is ...:
            raise ValueError(f"{key!r} missing")
        return default
    return _typed(doc[key], kind, repr(key))


def _hex(doc: Any, key: str, default: Any = ...) -> bytes:
    value = _get(doc, key, str, default)
    return value if isinstance(value, bytes) else bytes.fromhex(value)


def _slot(value: int) -> int:
    if not 0 <= value < 16:
        raise ValueError(f"slot {value} outside 0..15")
    return value


@record(frozen=True)
class KeyRecord:
    """One generated key pair living in a chip slot."""

    slot: int
    label: str
    id: bytes
    public_key: bytes  #: 64-byte X||Y
    session_pid: int | None = None  #: owner process for session key pairs, None for token keys
    derive: bool = False  #: CKA_DERIVE granted at generation
    mechanisms: tuple[int, ...] | None = None  #: CKA_ALLOWED_MECHANISMS if the caller narrowed it
    subject: bytes = b""  #: CKA_SUBJECT given at generation
    private: bool | None = None  #: CKA_PRIVATE of the private half, None: the token's default
    public_private: bool = False  #: CKA_PRIVATE of the public half
    private_destroyed: bool = False  #: the private key was destroyed (and erased on the chip)
    public_destroyed: bool = False  #: the public key object was destroyed

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "slot": self.slot,
            "label": self.label,
            "id": self.id.hex(),
            "public_key": self.public_key.hex(),
        }
        if self.session_pid is not None:
            doc["session_pid"] = self.session_pid
        if self.derive:
            doc["derive"] = True
        if self.mechanisms is not None:
            doc["mechanisms"] = list(self.mechanisms)
        if self.subject:
            doc["subject"] = self.subject.hex()
        if self.private is not None:
            doc["private"] = self.private
        if self.public_private:
            doc["public_private"] = True
        if self.private_destroyed:
            doc["private_destroyed"] = True
        if self.public_destroyed:
            doc["public_destroyed"] = True
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> KeyRecord:
        mechanisms = _get(doc, "mechanisms", list, None)
        if mechanisms is not None and not all(
            isinstance(m, int) and not isinstance(m, bool) for m in mechanisms
        ):
            raise ValueError("'mechanisms' is not a list of integers")
        public_key = _hex(doc, "public_key")
        if len(public_key) != 64:
            raise ValueError("'public_key' is not 64 bytes")
        return cls(
            slot=_slot(_get(doc, "slot", int)),
            label=_get(doc, "label", str, ""),
            id=_hex(doc, "id", ""),
            public_key=public_key,
            session_pid=_get(doc, "session_pid", int, None),
            derive=_get(doc, "derive", bool, False),
            mechanisms=tuple(mechanisms) if mechanisms is not None else None,
            subject=_hex(doc, "subject", ""),
            private=_get(doc, "private", bool, None),
            public_private=_get(doc, "public_private", bool, False),
            private_destroyed=_get(doc, "private_destroyed", bool, False),
            public_destroyed=_get(doc, "public_destroyed", bool, False),
        )

    @property
    def alive(self) -> bool:
        """The private key still holds its slot: not destroyed, and a token key or a session
        key of a process that still runs."""
        if self.private_destroyed:
            return False
        return self.session_pid is None or pid_alive(self.session_pid)


def attrs_to_json(attrs: dict[int, Any]) -> dict[str, object]:
    """Typed attribute values → JSON (bools, ints, strings; bytes and dates as hex)."""
    out: dict[str, object] = {}
    for attr_type, value in attrs.items():
        kind = KIND.get(attr_type)
        if kind is Kind.BOOL:
            out[str(attr_type)] = bool(value)
        elif kind is Kind.ULONG:
            out[str(attr_type)] = int(value)
        elif kind is Kind.UTF8:
            out[str(attr_type)] = str(value)
        elif kind is Kind.ULONG_ARRAY:
            out[str(attr_type)] = [int(v) for v in value]
        else:
            out[str(attr_type)] = bytes(value).hex()
    return out


def attrs_from_json(doc: Any) -> dict[int, Any]:
    """The inverse of :func:`attrs_to_json`, strict about types; unknown attribute types are
    an error (a newer writer knew something this code does not)."""
    if not isinstance(doc, dict):
        raise ValueError("'attrs' is not an object")
    out: dict[int, Any] = {}
    for key, value in doc.items():
        attr_type = int(key)
        kind = KIND.get(attr_type)
        if kind is None:
            raise ValueError(f"unknown attribute type {key}")
        if kind is Kind.BOOL:
            ok = isinstance(value, bool)
        elif kind is Kind.ULONG:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is Kind.UTF8:
            ok = isinstance(value, str)
        elif kind is Kind.ULONG_ARRAY:
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(f"attribute {key} has a value of the wrong type")
        if kind is Kind.ULONG_ARRAY:
            out[attr_type] = tuple(value)
        elif kind in (Kind.BYTES, Kind.DATE):
            out[attr_type] = bytes.fromhex(value)
        else:
            out[attr_type] = value
    return out


@record(frozen=True)
class SecretRecord:
    """One AES key held in 16 bytes (``key_block``) of a chip slot."""

    slot: int
    key_block: int
    uid: str
    label: str
    id: bytes
    local: bool = True  #: made by C_GenerateKey (chip random), False when imported
    session_pid: int | None = None
    attrs: dict[int, Any] = field(default_factory=dict)  #: usage flags asked for (CKA_ENCRYPT..)

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "slot": self.slot,
            "key_block": self.key_block,
            "uid": self.uid,
            "label": self.label,
            "id": self.id.hex(),
            "local": self.local,
            "attrs": attrs_to_json(self.attrs),
        }
        if self.session_pid is not None:
            doc["session_pid"] = self.session_pid
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> SecretRecord:
        block = _get(doc, "key_block", int, 0)
        if block not in (0, 1, 2, 3):
            raise ValueError(f"key block {block} outside 0..3")
        return cls(
            slot=_slot(_get(doc, "slot", int)),
            key_block=block,
            uid=_get(doc, "uid", str),
            label=_get(doc, "label", str, ""),
            id=_hex(doc, "id", ""),
            local=_get(doc, "local", bool, True),
            session_pid=_get(doc, "session_pid", int, None),
            attrs=attrs_from_json(_get(doc, "attrs", dict, {})),
        )

    @property
    def alive(self) -> bool:
        return self.session_pid is None or pid_alive(self.session_pid)


@record(frozen=True)
class ObjectRecord:
    """A token object created with C_CreateObject (no secret material), by unique ID."""

    uid: str
    attrs: dict[int, Any]

    def to_json(self) -> dict[str, object]:
        return {"uid": self.uid, "attrs": attrs_to_json(self.attrs)}

    @classmethod
    def from_json(cls, doc: Any) -> ObjectRecord:
        return cls(uid=_get(doc, "uid", str), attrs=attrs_from_json(_get(doc, "attrs", dict)))


@record(frozen=True)
class CopyRecord:
    """A token object made by C_CopyObject of a chip key: it names the original's stable key
    and keeps its own attributes (the key itself stays where the original's is)."""

    uid: str
    source: str
    attrs: dict[int, Any]

    def to_json(self) -> dict[str, object]:
        return {"uid": self.uid, "source": self.source, "attrs": attrs_to_json(self.attrs)}

    @classmethod
    def from_json(cls, doc: Any) -> CopyRecord:
        return cls(
            uid=_get(doc, "uid", str),
            source=_get(doc, "source", str),
            attrs=attrs_from_json(_get(doc, "attrs", dict)),
        )


@record
class Metadata:
    """Everything in one metadata file (see the module docstring)."""

    keys: list[KeyRecord] = field(default_factory=list)
    secrets: list[SecretRecord] = field(default_factory=list)
    objects: list[ObjectRecord] = field(default_factory=list)
    copies: list[CopyRecord] = field(default_factory=list)
    overrides: dict[str, dict[int, Any]] = field(default_factory=dict)
    label: str | None = None  #: set by C_InitToken; None: the slot file's
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (EPERM still means it exists)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def checksum(doc: dict[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON of ``doc`` without its checksum."""
    import hashlib  # lazy: loads libcrypto, which C_Initialize does not need

    body = {k: v for k, v in doc.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def _parse(doc: Any, chip_serial: str) -> Metadata:
    """A whole document → Metadata; raises ValueError/TypeError for anything off."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a token metadata file")
    version = doc.get("version")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"written by a newer version (format version {version!r})")
    if version >= 3 and doc.get("checksum") != checksum(doc):
        raise ValueError("checksum mismatch (the file was changed or damaged)")
    serial = doc.get("chip_serial")
    if serial and chip_serial and str(serial).upper() != chip_serial.upper():
        raise ValueError(f"written for chip {serial}, this token's chip is {chip_serial}")
    meta = Metadata(
        keys=[KeyRecord.from_json(e) for e in _get(doc, "keys", list, [])],
        secrets=[SecretRecord.from_json(e) for e in _get(doc, "secret_keys", list, [])],
        objects=[ObjectRecord.from_json(e) for e in _get(doc, "objects", list, [])],
        copies=[CopyRecord.from_json(e) for e in _get(doc, "copies", list, [])],
        overrides={str(k): attrs_from_json(v) for k, v in _get(doc, "overrides", dict, {}).items()},
        label=_get(doc, "label", str, None),
        pins={k: _typed(v, dict, f"pin {k!r}") for k, v in _get(doc, "pins", dict, {}).items()},
        failures={
            k: _typed(v, int, f"failures {k!r}") for k, v in _get(doc, "failures", dict, {}).items()
        },
    )
    return meta


class MetadataStore:
    """Access to one token's metadata file.

    :param path: the JSON file (``TokenConfig.metadata_path``).
    :param chip_serial: hex serial of the chip this token talks to.
    """

    def __init__(self, path: Path, chip_serial: str) -> None:
        self.path = Path(path)
        self.chip_serial = chip_serial
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"))

    def fingerprint(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of the file, or None if absent: cheap change detection."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> list[KeyRecord]:
        """The key-pair records (see :meth:`load` for everything)."""
        return self.load().keys

    def _refuse(self, reason: str) -> MetadataError:
        # Logged by the token (once per reason), which knows what it means for the slot.
        return MetadataError(f"metadata {self.path.name}: {reason}")

    def load(self) -> Metadata:
        """The whole file; an empty Metadata only when there is no file at all.

        :raises MetadataError: the file exists but cannot be trusted (see the module docstring).
        """
        try:
            raw = read_limited(
                self.path, max_bytes=limits.MAX_METADATA_BYTES, follow_symlinks=False
            )
        except FileNotFoundError:
            return Metadata()
        except FileRefusedError as exc:
            raise self._refuse(exc.strerror or str(exc)) from None
        except OSError as exc:
            raise self._refuse(f"cannot read: {exc.strerror or exc}") from None
        try:
            return _parse(json.loads(raw), self.chip_serial)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise self._refuse(str(exc) or type(exc).__name__) from None

    def write(self, records: list[KeyRecord]) -> None:
        """Replace the key-pair records, keeping the other sections (caller holds the lock)."""
        meta = self.load()
        meta.keys = list(records)
        self.save(meta)

    def save(self, meta: Metadata) -> None:
        """Replace the file atomically with ``meta`` (caller holds :meth:`locked` and read the
        file first, so a file that cannot be trusted is never overwritten)."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "chip_serial": self.chip_serial,
            "keys": [r.to_json() for r in sorted(meta.keys, key=lambda r: r.slot)],
        }
        if meta.secrets:
            doc["secret_keys"] = [
                r.to_json() for r in sorted(meta.secrets, key=lambda r: (r.slot, r.key_block))
            ]
        if meta.objects:
            doc["objects"] = [r.to_json() for r in meta.objects]
        if meta.copies:
            doc["copies"] = [r.to_json() for r in meta.copies]
        overrides = {k: attrs_to_json(v) for k, v in meta.overrides.items() if v}
        if overrides:
            doc["overrides"] = overrides
        if meta.label is not None:
            doc["label"] = meta.label
        if meta.pins:
            doc["pins"] = meta.pins
        if meta.failures:
            doc["failures"] = meta.failures
        doc["checksum"] = checksum(doc)
        data = json.dumps(doc, indent=1).encode("utf-8") + b"\n"
        if len(data) > limits.MAX_METADATA_BYTES:
            raise errors.DeviceMemory("the token's metadata would exceed its size limit")
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            raise _store_error(self.path, exc) from exc

    def locked(self) -> _StoreLock:
        """Exclusive inter-process lock for read-modify-write (and slot allocation)."""
        return _StoreLock(self)

    def modify(self, change: Callable[[Metadata], None]) -> Metadata:
        """Apply ``change(meta)`` (in place) under the lock and save; returns the new Metadata."""
        with self.locked():
            meta = self.load()
            change(meta)
            self.save(meta)
            return meta


def _store_error(path: Path, exc: OSError) -> errors.FunctionFailed:
    log.error("metadata store %s: %s", path, exc)
    return errors.FunctionFailed(f"metadata store {path}: {exc.strerror or exc}")


class _StoreLock:
    """What :meth:`MetadataStore.locked` returns: the file lock, with I/O failures (a read-only
    or missing filestore) reported as CKR_FUNCTION_FAILED before anything touched the chip."""

    __slots__ = ("_store",)

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        try:
            self._store._lock.acquire()
        except OSError as exc:
            raise _store_error(self._store._lock.path, exc) from exc

    def __exit__(self, *exc: object) -> None:
        self._store._lock.release()
