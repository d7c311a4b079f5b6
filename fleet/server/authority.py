"""What the server knows about client certificates beyond the CA's signature.

Owns: the registry look-up of a client certificate by serial (an indexed query, cached for a
short while: a second at most, and on SQLite also only until another process commits), the
verdict on a certificate the TLS layer verified (registered, the very certificate registered for
that serial and CN, active), and loading the CRL file (signed by the CA, re-read when it changes)
for the TLS context to check.

A registry that cannot be asked (database down, file unreadable) refuses the client: fail
closed, with the reason in the log line.

Must not: accept connections or speak TLS (``tls.py``, ``loop.py``); write the registry.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atecc.fileio import read_limited
from fleet import FleetError
from fleet.ca_dir import load_ca_certificate
from fleet.registry import REVOKED, DeviceRecord, format_serial, open_registry

#: A CRL of 1M revoked serials is about 70 MB of PEM.
MAX_CRL_BYTES = 256 << 20


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    device_id: str | None = None
    serial: str | None = None


def identity(cert: x509.Certificate) -> tuple[str | None, str]:
    """``(device ID, serial)`` of a certificate, for the log line."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    device_id = str(names[-1].value) if names else None
    return device_id, format_serial(cert.serial_number)


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Authority:
    """The CA certificate, the registry (by serial, cached) and the CRL file."""

    #: Records looked up within this many seconds are reused (SQLite: only until another
    #: process commits a change, whichever comes first).
    CACHE_TTL_S = 1.0
    CACHE_MAX = 4096

    def __init__(
        self,
        ca_dir: Path,
        crl_path: Path | None,
        log: Callable[[str], None],
        *,
        registry_url: str | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self.ca_cert = load_ca_certificate(ca_dir)
        self.registry = open_registry(ca_dir, registry_url)
        self.crl_path = crl_path
        self._log = log
        self._lock = threading.Lock()
        self._ttl = cache_ttl_s
        self._cache: dict[int, tuple[float, DeviceRecord | None]] = {}
        self._cache_stamp = self.registry.change_stamp()

    def close(self) -> None:
        self.registry.close()

    def lookup(self, serial: int) -> DeviceRecord | None:
        """The registry record of ``serial`` (an indexed query, cached for a short while)."""
        with self._lock:
            stamp = self.registry.change_stamp()
            if stamp != self._cache_stamp:
                self._cache.clear()
                self._cache_stamp = stamp
            now = time.monotonic()
            hit = self._cache.get(serial)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
            record = self.registry.get(serial)
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[serial] = (now, record)
            return record

    def check(self, cert: x509.Certificate) -> Verdict:
        """The verdict on a client certificate whose chain, dates and CRL entry the TLS layer
        has verified: it must be the certificate the registry holds for its serial, active."""
        device_id, serial = identity(cert)
        try:
            record = self.lookup(cert.serial_number)
        except FleetError as exc:
            return Verdict(False, f"registry unavailable ({exc})", device_id, serial)
        if record is None:
            return Verdict(False, "unregistered (serial not in the registry)", device_id, serial)
        if record.device_id != device_id or record.certificate != cert.public_bytes(
            serialization.Encoding.DER
        ):
            return Verdict(
                False,
                "unregistered (not the certificate registered for this serial)",
                device_id,
                serial,
            )
        if record.status == REVOKED:
            why = record.reason or "unspecified"
            return Verdict(
                False,
                f"revoked ({why}, in the registry since {record.revoked_at})",
                device_id,
                serial,
            )
        return Verdict(True, "registered and active", device_id, serial)

    def load_crl(self) -> x509.CertificateRevocationList | None:
        """The CRL file, checked to be the CA's (None when the server has no ``--crl``)."""
        if self.crl_path is None:
            return None
        path = self.crl_path
        try:
            raw = read_limited(path, max_bytes=MAX_CRL_BYTES)
            crl = (
                x509.load_pem_x509_crl(raw) if b"-----BEGIN" in raw else x509.load_der_x509_crl(raw)
            )
        except (OSError, ValueError) as exc:
            raise FleetError(f"cannot load the CRL {path}: {exc}") from None
        public_key = self.ca_cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FleetError("the CA's key is not an EC key")
        if crl.issuer != self.ca_cert.subject or not crl.is_signature_valid(public_key):
            raise FleetError(f"the CRL {path} is not signed by the CA")
        next_update = crl.next_update_utc
        if next_update is not None and next_update < datetime.now(UTC):
            self._log(
                f"warning: the CRL {path} is past its nextUpdate: every client is refused "
                "until a new one is published"
            )
        return crl
