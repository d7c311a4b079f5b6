"""One issued device certificate, and the notations the registry uses for it.

Owns: :class:`DeviceRecord` (what the registry stores per certificate), serial numbers as text
(upper-case hex with an even number of digits, as ``openssl x509 -serial`` prints them), times as
text (ISO 8601 UTC to the second with a ``Z``: fixed width, so they sort as strings on every
engine), and the key ID (hex SHA-1 of the uncompressed public point ``04||X||Y``: the CKA_ID the
token gives the key, so ``p11tool`` listings and the registry name a key alike).

Must not: talk to a database (``store.py``) or sign anything (``fleet.ca``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleet import FleetError

ACTIVE = "active"
REVOKED = "revoked"
KEY_COMPROMISE = "keyCompromise"


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (how the registry stores every time)."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def format_serial(serial: int) -> str:
    """Upper-case hex with an even number of digits, like ``openssl x509 -serial``."""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


#: RFC 5280 §4.1.2.2: at most 20 octets.
MAX_SERIAL = (1 << 160) - 1


def parse_serial(text: str) -> int:
    """A serial number from hex written with or without ``0x``, colons or spaces."""
    cleaned = "".join(text.replace(":", " ").split())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if len(cleaned) > 42:
        raise FleetError(f"serial {text[:50]!r}... is longer than 20 bytes")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise FleetError(f"serial {text!r} is not hexadecimal") from None
    if value <= 0 or value > MAX_SERIAL:
        raise FleetError(f"serial {text!r} is not a positive number of at most 20 bytes")
    return value


def key_id_of(public_key: Any) -> str:
    """Hex SHA-1 of the uncompressed EC point (the token's CKA_ID for that key)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise FleetError("not an EC public key")
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha1(point).hexdigest().upper()


@dataclass(frozen=True)
class DeviceRecord:
    """One issued device certificate (``certificate`` is DER)."""

    serial: str
    device_id: str
    key_id: str
    certificate: bytes
    issued: str
    expires: str
    status: str = ACTIVE
    revoked_at: str | None = None
    reason: str | None = None

    @property
    def serial_number(self) -> int:
        return int(self.serial, 16)

    @property
    def certificate_pem(self) -> str:
        cert = x509.load_der_x509_certificate(self.certificate)
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @classmethod
    def for_certificate(
        cls, cert: x509.Certificate, device_id: str, *, issued: datetime
    ) -> DeviceRecord:
        return cls(
            serial=format_serial(cert.serial_number),
            device_id=device_id,
            key_id=key_id_of(cert.public_key()),
            certificate=cert.public_bytes(serialization.Encoding.DER),
            issued=format_time(issued),
            expires=format_time(cert.not_valid_after_utc),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as ``--json`` prints it (the certificate as PEM)."""
        return {
            "serial": self.serial,
            "device_id": self.device_id,
            "key_id": self.key_id,
            "status": self.status,
            "issued": self.issued,
            "expires": self.expires,
            "revoked_at": self.revoked_at,
            "reason": self.reason,
            "certificate": self.certificate_pem,
        }
