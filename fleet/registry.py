"""The registry of issued device certificates: one JSON file in the CA directory.

Owns: the file format, locking and atomic replacement of ``<ca dir>/registry.json``, and the
record of each issued device certificate -- serial number (upper-case hex, as ``openssl x509
-serial`` prints it), device ID (the certificate's CN), the certificate PEM, issue and expiry
times, and status (``active`` / ``revoked`` with the revocation time and reason). It also keeps
the CRL number counter, so CRL numbers only ever increase.

Writers hold an exclusive ``flock`` on ``registry.json.lock`` (a separate file, because the
registry itself is replaced by rename) for the whole read-modify-write, so two ``atecc ca sign``
processes never lose each other's records or hand out the same serial. Readers (the mTLS server)
need no lock: the file is only ever replaced whole.

Must not: sign anything (``ca.py``) or parse certificates beyond what a record stores.

File format (``version`` 1)::

    {"version": 1, "crl_number": 2,
     "devices": [{"serial": "5A0F…", "device_id": "…", "certificate": "-----BEGIN…",
                  "issued": "2026-01-01T00:00:00Z", "expires": "2027-01-01T00:00:00Z",
                  "status": "revoked", "revoked_at": "2026-02-01T00:00:00Z",
                  "reason": "keyCompromise"}]}
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atecc.fileio import atomic_write
from fleet import FleetError

REGISTRY_NAME = "registry.json"
FORMAT_VERSION = 1
ACTIVE = "active"
REVOKED = "revoked"


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (how the registry stores every time)."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def format_serial(serial: int) -> str:
    """Upper-case hex with an even number of digits, like ``openssl x509 -serial``."""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def parse_serial(text: str) -> int:
    """A serial number from hex written with or without ``0x``, colons or spaces."""
    cleaned = "".join(text.replace(":", " ").split())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise FleetError(f"serial {text!r} is not hexadecimal") from None
    if value <= 0:
        raise FleetError(f"serial {text!r} is not a positive number")
    return value


@dataclass
class DeviceRecord:
    """One issued device certificate."""

    serial: str
    device_id: str
    certificate: str
    issued: str
    expires: str
    status: str = ACTIVE
    revoked_at: str | None = None
    reason: str | None = None

    @property
    def serial_number(self) -> int:
        return int(self.serial, 16)

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> DeviceRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in item.items() if k in names})


@dataclass
class RegistryData:
    """The whole registry as read from disk; mutate it inside :meth:`Registry.transaction`."""

    devices: list[DeviceRecord] = field(default_factory=list)
    crl_number: int = 0

    def find_serial(self, serial: int) -> DeviceRecord | None:
        for record in self.devices:
            if record.serial_number == serial:
                return record
        return None

    def find_device_id(self, device_id: str) -> list[DeviceRecord]:
        return [r for r in self.devices if r.device_id == device_id]

    def to_json(self) -> bytes:
        doc = {
            "version": FORMAT_VERSION,
            "crl_number": self.crl_number,
            "devices": [dataclasses.asdict(r) for r in self.devices],
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: Path) -> RegistryData:
        try:
            doc = json.loads(raw)
            if doc.get("version") != FORMAT_VERSION:
                raise FleetError(f"{where}: unsupported registry version {doc.get('version')!r}")
            return cls(
                devices=[DeviceRecord.from_json(item) for item in doc.get("devices", [])],
                crl_number=int(doc.get("crl_number", 0)),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise FleetError(f"{where}: malformed registry ({exc})") from None


class Registry:
    """The registry file of one CA directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @classmethod
    def in_directory(cls, ca_dir: str | os.PathLike[str]) -> Registry:
        return cls(Path(ca_dir) / REGISTRY_NAME)

    def load(self) -> RegistryData:
        """The registry as it is now (empty when the file does not exist yet). No lock needed."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RegistryData()
        return RegistryData.from_json(raw, self.path)

    @contextmanager
    def transaction(self) -> Iterator[RegistryData]:
        """Exclusive read-modify-write: yields the data, saves it atomically on normal exit."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.load()
            yield data
            atomic_write(self.path, data.to_json(), mode=0o644)
        finally:
            os.close(fd)  # closing releases the flock

    # -- operations ------------------------------------------------------------------------------

    def revoke(
        self,
        *,
        serial: int | None = None,
        device_id: str | None = None,
        reason: str = "unspecified",
        when: datetime | None = None,
    ) -> list[DeviceRecord]:
        """Mark the certificate with ``serial``, or every active one of ``device_id``, revoked.

        Returns the records revoked by this call. Revoking an already revoked certificate is an
        error (its original time and reason stay, as the CRL must keep them).
        """
        if (serial is None) == (device_id is None):
            raise FleetError("give exactly one of a serial number or a device ID")
        moment = format_time(when or datetime.now(UTC))
        with self.transaction() as data:
            if serial is not None:
                record = data.find_serial(serial)
                if record is None:
                    raise FleetError(
                        f"no certificate with serial {format_serial(serial)} in {self.path}"
                    )
                targets = [record]
            else:
                targets = data.find_device_id(str(device_id))
                if not targets:
                    raise FleetError(f"no certificate for device {device_id!r} in {self.path}")
            active = [r for r in targets if r.status == ACTIVE]
            if not active:
                which = targets[0].serial if serial is not None else device_id
                raise FleetError(f"{which} is already revoked")
            for record in active:
                record.status = REVOKED
                record.revoked_at = moment
                record.reason = reason
        return active
