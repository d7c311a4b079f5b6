"""Migration from the registry of earlier versions: ``registry.json`` (format version 1).

Owns: reading that file (bounded, regular files only, its own ``flock`` held so an older
``atecc`` cannot write it meanwhile), importing every record and the CRL counter into a database
registry in one transaction, and then renaming it ``registry.json.migrated`` (kept as a backup,
never deleted). The import is recorded in the database (``json_migrated``), so a crash between
the commit and the rename never imports twice: the next open only finishes the rename.

Format version 1::

    {"version": 1, "crl_number": 2,
     "devices": [{"serial": "5A0F…", "device_id": "…", "certificate": "-----BEGIN…",
                  "issued": "2026-01-01T00:00:00Z", "expires": "2027-01-01T00:00:00Z",
                  "status": "revoked", "revoked_at": "2026-02-01T00:00:00Z",
                  "reason": "keyCompromise"}]}

A malformed, unreadable or other-version file is an error and stays untouched (fail closed).

Must not: write the JSON format (nothing writes it any more).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from atecc.fileio import FileLock, read_limited
from fleet import FleetError
from fleet.registry.records import ACTIVE, REVOKED, DeviceRecord, format_serial, key_id_of
from fleet.registry.store import Registry, Transaction

JSON_NAME = "registry.json"
MIGRATED_SUFFIX = ".migrated"
FORMAT_VERSION = 1
#: registry.json was rewritten whole on every change; 1M devices made about 900 MB.
MAX_JSON_BYTES = 4 << 30


def _record(item: Any, where: Path) -> DeviceRecord:
    if not isinstance(item, dict):
        raise FleetError(f"{where}: a device entry is not an object")
    try:
        cert = x509.load_pem_x509_certificate(str(item["certificate"]).encode("ascii"))
        status = str(item.get("status", ACTIVE))
        if status not in (ACTIVE, REVOKED):
            raise ValueError(f"status {status!r}")
        serial = format_serial(int(str(item["serial"]), 16))
        if serial != format_serial(cert.serial_number):
            raise ValueError(f"serial {serial} does not match its certificate")
        return DeviceRecord(
            serial=serial,
            device_id=str(item["device_id"]),
            key_id=key_id_of(cert.public_key()),
            certificate=cert.public_bytes(serialization.Encoding.DER),
            issued=str(item["issued"]),
            expires=str(item["expires"]),
            status=status,
            revoked_at=None if item.get("revoked_at") is None else str(item["revoked_at"]),
            reason=None if item.get("reason") is None else str(item["reason"]),
        )
    except (KeyError, ValueError, TypeError, UnicodeError, FleetError) as exc:
        raise FleetError(f"{where}: malformed device entry ({exc})") from None


def read_json_registry(path: Path) -> tuple[list[DeviceRecord], int]:
    """The records and CRL number of a version-1 ``registry.json``."""
    try:
        raw = read_limited(path, max_bytes=MAX_JSON_BYTES, follow_symlinks=False)
        doc = json.loads(raw)
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise FleetError(f"{path}: malformed registry ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise FleetError(f"{path}: unsupported registry version {version!r}")
    devices = doc.get("devices", [])
    if not isinstance(devices, list):
        raise FleetError(f"{path}: 'devices' is not a list")
    try:
        crl_number = int(doc.get("crl_number", 0))
    except (TypeError, ValueError):
        raise FleetError(f"{path}: 'crl_number' is not a number") from None
    return [_record(item, path) for item in devices], crl_number


def migrate_json(ca_dir: str | os.PathLike[str], registry: Registry) -> int | None:
    """Import ``<ca_dir>/registry.json`` into ``registry`` if it is there and not yet imported.

    Returns the number of records imported, or None when there was nothing to do.
    """
    path = Path(ca_dir) / JSON_NAME
    if not path.exists() and not path.is_symlink():
        return None
    with FileLock(path.with_name(JSON_NAME + ".lock")):
        if not path.exists() and not path.is_symlink():
            return None  # another process finished the migration meanwhile
        records, crl_number = read_json_registry(path)

        def work(txn: Transaction) -> int | None:
            if txn.meta("json_migrated"):
                return None
            txn.insert_many(records)
            current = txn.meta("crl_number") or 0
            txn.set_meta("crl_number", max(current, crl_number))
            txn.set_meta("json_migrated", 1)
            return len(records)

        imported: int | None = registry.run(work)
        backup = path.with_name(JSON_NAME + MIGRATED_SUFFIX)
        if imported is None and backup.exists():
            raise FleetError(
                f"{path} is back although the registry imported one before ({backup}): "
                "move it away; nothing was imported from it"
            )
        os.replace(path, backup)
    return imported
