"""Per-token metadata file: which chip slots hold keys made by C_GenerateKeyPair, and their names.

Owns: the on-disk format of ``<filestore>/<N>.pkcs11.json`` and safe concurrent access to it.
The chip keeps the private and secret keys; this file keeps what the chip cannot: CKA_LABEL,
CKA_ID, the public point (so that listing objects needs no chip round trip), whether a slot (or an
AES key block) is taken, objects created by applications, attribute changes, and PIN hashes with
their wrong-try counters. Must not: hold any private or secret key material, or a PIN.

Format (version 2; version 1 files, which have only ``keys``, are read too)::

    {"format": "atecc-pkcs11-token", "version": 2, "chip_serial": "0123...EE",
     "keys": [{"slot": 2, "label": "mykey", "id": "<hex>", "public_key": "<hex X||Y>"},
              {"slot": 3, "label": "tmp", "id": "<hex>", "public_key": "<hex>",
               "session_pid": 4242}],
     "secret_keys": [{"slot": 9, "key_block": 0, "uid": "<hex>", "label": "aes", "id": "<hex>",
                      "local": true, "attrs": {"260": true, "261": true}}],
     "objects": [{"uid": "<hex>", "attrs": {"0": 1, "3": "my label", "17": "<hex DER>"}}],
     "overrides": {"tng:priv:0": {"3": "new label", "258": "<hex id>"}},
     "pins": {"user": {"scheme": "scrypt", "n": 16384, "r": 8, "p": 1, "salt": "<hex>",
                       "hash": "<hex>"}, "so": {...}},
     "failures": {"user": 2, "so": 0}}

``keys`` are EC key pairs made by C_GenerateKeyPair; ``secret_keys`` AES keys written into a chip
slot's key block by C_GenerateKey or C_CreateObject (the key bytes stay on the chip only; the
record says which 16 bytes of which slot are taken); ``objects`` are token objects made with
C_CreateObject (certificates, EC public keys, data objects: public information only) with their
attributes typed as JSON (numbers as CKA values in decimal, byte strings in hex); ``overrides``
are C_SetAttributeValue changes (CKA_LABEL, CKA_ID, ...) to objects the chip or the slot file
defines, keyed by the object's stable name; ``pins`` holds salted scrypt hashes only (never a
PIN), and ``failures`` the consecutive wrong-PIN counts, so every process sees one counter.

An entry with ``session_pid`` is a session key pair (CKA_TOKEN false) of a live process: its slot
is taken while that process runs, and free again once the process is gone (a crashed process
cannot clean up after itself). ``chip_serial`` ties the file to one chip; a file written for
another chip is ignored rather than trusted.

Concurrency: writers hold an exclusive ``flock`` on ``<N>.pkcs11.json.lock`` across
read-modify-write (and across slot selection + GenKey, so two processes never pick the same
slot); the file itself is replaced atomically (write temp, fsync, rename), mode 0600. Readers
need no lock: they see the old file or the new one.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import getLogger
from pathlib import Path
from typing import Any

from atecc.fileio import FileLock, atomic_write
from cryptoki import errors
from cryptoki.attributes import KIND, Kind

log = getLogger("cryptoki.store")

FORMAT = "atecc-pkcs11-token"
VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
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
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> KeyRecord:
        pid = doc.get("session_pid")
        return cls(
            slot=int(doc["slot"]),  # type: ignore[call-overload]
            label=str(doc.get("label", "")),
            id=bytes.fromhex(str(doc.get("id", ""))),
            public_key=bytes.fromhex(str(doc["public_key"])),
            session_pid=int(pid) if pid is not None else None,  # type: ignore[call-overload]
            derive=bool(doc.get("derive", False)),
            mechanisms=(
                tuple(int(m) for m in doc["mechanisms"])  # type: ignore[attr-defined]
                if doc.get("mechanisms") is not None
                else None
            ),
            subject=bytes.fromhex(str(doc.get("subject", ""))),
        )

    @property
    def alive(self) -> bool:
        """Token keys always; session keys while their owner process exists."""
        return self.session_pid is None or pid_alive(self.session_pid)


def attrs_to_json(attrs: dict[int, Any]) -> dict[str, object]:
    """Typed attribute values → JSON (bools, ints, strings; bytes and dates as hex)."""
    out: dict[str, object] = {}
    for attr_type, value in attrs.items():
        kind = KIND.get(attr_type)
        if kind in (Kind.BOOL,):
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


def attrs_from_json(doc: dict[str, object]) -> dict[int, Any]:
    """The inverse of :func:`attrs_to_json`; unknown attribute types are dropped."""
    out: dict[int, Any] = {}
    for key, value in doc.items():
        attr_type = int(key)
        kind = KIND.get(attr_type)
        if kind is None:
            continue
        if kind is Kind.BOOL:
            out[attr_type] = bool(value)
        elif kind is Kind.ULONG:
            out[attr_type] = int(value)  # type: ignore[call-overload]
        elif kind is Kind.UTF8:
            out[attr_type] = str(value)
        elif kind is Kind.ULONG_ARRAY:
            out[attr_type] = tuple(int(v) for v in value)  # type: ignore[attr-defined]
        else:
            out[attr_type] = bytes.fromhex(str(value))
    return out


@dataclass(frozen=True)
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
    def from_json(cls, doc: dict[str, Any]) -> SecretRecord:
        pid = doc.get("session_pid")
        return cls(
            slot=int(doc["slot"]),
            key_block=int(doc.get("key_block", 0)),
            uid=str(doc["uid"]),
            label=str(doc.get("label", "")),
            id=bytes.fromhex(str(doc.get("id", ""))),
            local=bool(doc.get("local", True)),
            session_pid=int(pid) if pid is not None else None,
            attrs=attrs_from_json(dict(doc.get("attrs", {}))),
        )

    @property
    def alive(self) -> bool:
        return self.session_pid is None or pid_alive(self.session_pid)


@dataclass(frozen=True)
class ObjectRecord:
    """A token object created with C_CreateObject (no secret material), by unique ID."""

    uid: str
    attrs: dict[int, Any]

    def to_json(self) -> dict[str, object]:
        return {"uid": self.uid, "attrs": attrs_to_json(self.attrs)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ObjectRecord:
        return cls(uid=str(doc["uid"]), attrs=attrs_from_json(dict(doc["attrs"])))


@dataclass
class Metadata:
    """Everything in one metadata file (see the module docstring)."""

    keys: list[KeyRecord] = field(default_factory=list)
    secrets: list[SecretRecord] = field(default_factory=list)
    objects: list[ObjectRecord] = field(default_factory=list)
    overrides: dict[str, dict[int, Any]] = field(default_factory=dict)
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


def _store_error(path: Path, exc: OSError) -> errors.FunctionFailed:
    log.error("metadata store %s: %s", path, exc)
    return errors.FunctionFailed(f"metadata store {path}: {exc.strerror or exc}")


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
        except OSError:  # absent, or a directory we may not search: no records either way
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> list[KeyRecord]:
        """The key-pair records (see :meth:`load` for everything)."""
        return self.load().keys

    def load(self) -> Metadata:
        """The whole file, or an empty Metadata when absent, unreadable or for another chip."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return Metadata()
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable metadata, ignored: %s", self.path, exc)
            return Metadata()
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            log.error("%s: not a token metadata file, ignored", self.path)
            return Metadata()
        if doc.get("version") not in READABLE_VERSIONS:
            log.error(
                "%s: metadata version %r not understood, ignored", self.path, doc.get("version")
            )
            return Metadata()
        serial = doc.get("chip_serial")
        if serial and self.chip_serial and str(serial).upper() != self.chip_serial.upper():
            log.warning(
                "%s: written for chip %s, this token's chip is %s; ignored",
                self.path,
                serial,
                self.chip_serial,
            )
            return Metadata()
        meta = Metadata()
        for entry in doc.get("keys", []):
            self._entry(meta.keys, KeyRecord.from_json, entry, "keys")
        for entry in doc.get("secret_keys", []):
            self._entry(meta.secrets, SecretRecord.from_json, entry, "secret_keys")
        for entry in doc.get("objects", []):
            self._entry(meta.objects, ObjectRecord.from_json, entry, "objects")
        try:
            meta.overrides = {
                str(k): attrs_from_json(dict(v)) for k, v in dict(doc.get("overrides", {})).items()
            }
            meta.pins = {str(k): dict(v) for k, v in dict(doc.get("pins", {})).items()}
            meta.failures = {str(k): int(v) for k, v in dict(doc.get("failures", {})).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            log.error("%s: bad overrides/PIN section ignored: %s", self.path, exc)
        return meta

    def _entry(self, target: list[Any], parse: Callable[[Any], Any], doc: Any, name: str) -> None:
        try:
            target.append(parse(doc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("%s: bad %s entry skipped: %s", self.path, name, exc)

    def write(self, records: list[KeyRecord]) -> None:
        """Replace the key-pair records, keeping the other sections (caller holds the lock)."""
        meta = self.load()
        meta.keys = list(records)
        self.save(meta)

    def save(self, meta: Metadata) -> None:
        """Replace the file atomically with ``meta`` (caller holds :meth:`locked`)."""
        doc: dict[str, object] = {
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
        if meta.overrides:
            doc["overrides"] = {k: attrs_to_json(v) for k, v in meta.overrides.items() if v}
        if meta.pins:
            doc["pins"] = meta.pins
        if meta.failures:
            doc["failures"] = meta.failures
        try:
            atomic_write(self.path, json.dumps(doc, indent=1).encode("utf-8") + b"\n")
        except OSError as exc:
            raise _store_error(self.path, exc) from exc

    def locked(self) -> _StoreLock:
        """Exclusive inter-process lock for read-modify-write (and slot allocation)."""
        return _StoreLock(self)

    def update(self, change: Callable[[list[KeyRecord]], list[KeyRecord]]) -> list[KeyRecord]:
        """Apply ``change(records) -> records`` under the lock, write, return the new list."""
        with self.locked():
            records = change(self.read())
            self.write(records)
            return records

    def modify(self, change: Callable[[Metadata], None]) -> Metadata:
        """Apply ``change(meta)`` (in place) under the lock and save; returns the new Metadata."""
        with self.locked():
            meta = self.load()
            change(meta)
            self.save(meta)
            return meta


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
