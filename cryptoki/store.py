"""Per-token metadata file: which chip slots hold keys made by C_GenerateKeyPair, and their names.

Owns: the on-disk format of ``<filestore>/<N>.pkcs11.json`` and safe concurrent access to it.
The chip keeps the private keys; this file keeps what the chip cannot: CKA_LABEL, CKA_ID, the
public point (so that listing objects needs no chip round trip) and whether a slot is taken.
Must not: hold any private or secret key material.

Format (version 1)::

    {"format": "atecc-pkcs11-token", "version": 1, "chip_serial": "0123...EE",
     "keys": [{"slot": 2, "label": "mykey", "id": "<hex>", "public_key": "<hex X||Y>"},
              {"slot": 3, "label": "tmp", "id": "<hex>", "public_key": "<hex>",
               "session_pid": 4242}]}

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

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cryptoki.store")

FORMAT = "atecc-pkcs11-token"
VERSION = 1


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


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (EPERM still means it exists)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class MetadataStore:
    """Access to one token's metadata file.

    :param path: the JSON file (``TokenConfig.metadata_path``).
    :param chip_serial: hex serial of the chip this token talks to.
    """

    def __init__(self, path: Path, chip_serial: str) -> None:
        self.path = Path(path)
        self.chip_serial = chip_serial
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def fingerprint(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of the file, or None if absent: cheap change detection."""
        try:
            st = os.stat(self.path)
        except OSError:  # absent, or a directory we may not search: no records either way
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> list[KeyRecord]:
        """The records, or [] when the file is absent, unreadable or for another chip."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable metadata, ignored: %s", self.path, exc)
            return []
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            log.error("%s: not a token metadata file, ignored", self.path)
            return []
        if doc.get("version") != VERSION:
            log.error("%s: metadata version %r not understood, ignored", self.path,
                      doc.get("version"))
            return []
        serial = doc.get("chip_serial")
        if serial and self.chip_serial and str(serial).upper() != self.chip_serial.upper():
            log.warning("%s: written for chip %s, this token's chip is %s; ignored",
                        self.path, serial, self.chip_serial)
            return []
        records = []
        for entry in doc.get("keys", []):
            try:
                records.append(KeyRecord.from_json(entry))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("%s: bad key entry skipped: %s", self.path, exc)
        return records

    def write(self, records: list[KeyRecord]) -> None:
        """Replace the file atomically with ``records`` (caller holds :meth:`locked`)."""
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "chip_serial": self.chip_serial,
            "keys": [r.to_json() for r in sorted(records, key=lambda r: r.slot)],
        }
        data = json.dumps(doc, indent=1).encode("utf-8") + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive inter-process lock for read-modify-write (and slot allocation)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def update(self, change: Callable[[list[KeyRecord]], list[KeyRecord]]) -> list[KeyRecord]:
        """Apply ``change(records) -> records`` under the lock, write, return the new list."""
        with self.locked():
            records = change(self.read())
            self.write(records)
            return records
