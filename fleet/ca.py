"""The certificate authority: its key and certificate, and everything it signs.

Owns: creating a root CA (EC P-256 key, self-signed certificate), issuing TLS server certificates,
issuing device certificates from chip-signed CSRs (recorded in the registry), and publishing CRLs.

CA directory layout::

    ca.key          EC P-256 private key, PKCS#8 PEM, mode 0600
    ca.crt          self-signed CA certificate, PEM
    registry.json   issued device certificates (:mod:`fleet.registry`)

Profiles (all signatures ECDSA with SHA-256):

* CA:      basicConstraints CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical), SKI.
* server:  basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
           extendedKeyUsage serverAuth, subjectAltName DNS/IP, SKI, AKI.
* device:  basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
           extendedKeyUsage clientAuth, SKI, AKI. The subject is copied from the CSR, whose
           extensions are ignored: the CA decides what a device may do, not the request.

Serial numbers are random positive 159-bit integers (at most 20 bytes, RFC 5280 §4.1.2.2), checked
against the registry under its lock, so they are unique per CA.

Must not: talk to the chip (``atecc.certs.csr``) or know how the registry stores records.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atecc.fileio import atomic_write
from fleet import FleetError
from fleet.registry import DeviceRecord, Registry, format_serial, format_time, parse_time
from fleet.subjects import common_name, parse_subject

CA_KEY_NAME = "ca.key"
CA_CERT_NAME = "ca.crt"

#: Backdating of notBefore, so a peer whose clock is a little behind still accepts a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)

# --- the CA --------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertificateAuthority:
    """A loaded CA directory."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def registry(self) -> Registry:
        return Registry.in_directory(self.directory)

    @property
    def certificate_path(self) -> Path:
        return self.directory / CA_CERT_NAME

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Load ``ca.key`` and ``ca.crt`` from ``directory`` and check that they belong together."""
        base = Path(directory)
        key_path, cert_path = base / CA_KEY_NAME, base / CA_CERT_NAME
        for path in (key_path, cert_path):
            if not path.is_file():
                raise FleetError(
                    f"{path} not found (create the CA with 'atecc ca init --dir {base}')"
                )
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (ValueError, TypeError) as exc:
            raise FleetError(f"cannot load the CA in {base}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise FleetError(f"{key_path} is not an EC private key")
        if key.public_key() != cert.public_key():
            raise FleetError(f"{key_path} does not belong to {cert_path}")
        return cls(base, key, cert)

    def _key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _builder(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        serial: int,
        not_before: datetime,
        not_after: datetime,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._key_identifier(), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
        )

    # -- server certificates ---------------------------------------------------------------------

    def issue_server_certificate(
        self,
        *,
        dns_names: list[str],
        ip_addresses: list[str] | None = None,
        days: int = 365,
        cn: str | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A fresh P-256 key and a serverAuth certificate for it; CN defaults to the first name."""
        _check_days(days)
        ips = []
        for text in ip_addresses or []:
            try:
                ips.append(ipaddress.ip_address(text))
            except ValueError:
                raise FleetError(f"{text!r} is not an IP address") from None
        if not dns_names and not ips:
            raise FleetError("a server certificate needs at least one --dns or --ip name")
        names: list[x509.GeneralName] = []
        for dns in dns_names:
            if not dns or any(c.isspace() for c in dns):
                raise FleetError(f"{dns!r} is not a DNS name")
            names.append(x509.DNSName(dns))
        names.extend(x509.IPAddress(ip) for ip in ips)
        subject_cn = cn or (dns_names[0] if dns_names else str(ips[0]))
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]),
                key.public_key(),
                x509.random_serial_number(),
                now - CLOCK_SKEW,
                now + timedelta(days=days),
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return key, cert

    # -- device certificates ---------------------------------------------------------------------

    def issue_device_certificate(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        days: int | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> x509.Certificate:
        """Verify ``csr``, issue a clientAuth certificate for it, and record it in the registry.

        Validity is ``days`` from now, or the explicit ``not_before``/``not_after`` (tests use
        those for expired certificates). The device ID is the CSR's common name.
        """
        if not csr.is_signature_valid:
            raise FleetError("the CSR's signature does not verify (not signed by its own key)")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FleetError("the CSR's key is not an EC key (devices use P-256)")
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise FleetError(f"the CSR's key is on {public_key.curve.name}, not P-256")
        device_id = common_name(csr.subject)
        if not device_id:
            raise FleetError("the CSR's subject has no CN (the CN is the device ID)")
        now = _now()
        if days is not None:
            _check_days(days)
            not_before = now - CLOCK_SKEW
            not_after = now + timedelta(days=days)
        if not_before is None or not_after is None or not_after <= not_before:
            raise FleetError("give the validity in days")
        registry = self.registry
        with registry.transaction() as data:
            used = {r.serial_number for r in data.devices}
            serial = x509.random_serial_number()
            while serial in used:  # 2**-159 per issue; cheap to make it certain
                serial = x509.random_serial_number()
            cert = (
                self._builder(csr.subject, public_key, serial, not_before, not_after)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
                )
                .sign(self.key, hashes.SHA256())
            )
            data.devices.append(
                DeviceRecord(
                    serial=format_serial(serial),
                    device_id=device_id,
                    certificate=_cert_pem(cert).decode("ascii"),
                    issued=format_time(now),
                    expires=format_time(not_after),
                )
            )
        return cert

    # -- revocation ------------------------------------------------------------------------------

    def build_crl(self, *, days: int = 30) -> x509.CertificateRevocationList:
        """A CRL of every revoked registry entry, numbered from the registry's counter."""
        _check_days(days)
        now = _now()
        with self.registry.transaction() as data:
            data.crl_number += 1
            number = data.crl_number
            revoked = [r for r in data.devices if r.revoked_at is not None]
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + timedelta(days=days))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._key_identifier(), critical=False)
        )
        for record in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(record.serial_number)
                .revocation_date(parse_time(str(record.revoked_at)))
            )
            reason = x509.ReasonFlags(record.reason or "unspecified")
            if reason is not x509.ReasonFlags.unspecified:
                # RFC 5280 §5.3.1: omit the reasonCode rather than use unspecified.
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self.key, hashes.SHA256())


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _check_days(days: int) -> None:
    if days < 1 or days > 100 * 366:
        raise FleetError(f"validity must be 1..36600 days, not {days}")


def init_ca(
    directory: str | os.PathLike[str], subject: str | x509.Name, *, days: int = 3650
) -> CertificateAuthority:
    """Create ``directory`` (if needed) with a new CA key (0600) and self-signed certificate.

    Refuses to touch a directory that already holds a CA key or certificate.
    """
    _check_days(days)
    name = parse_subject(subject) if isinstance(subject, str) else subject
    base = Path(directory)
    for existing in (base / CA_KEY_NAME, base / CA_CERT_NAME):
        if existing.exists():
            raise FleetError(f"{existing} already exists; not replacing a CA")
    base.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(base / CA_KEY_NAME, _key_pem(key), mode=0o600)
    atomic_write(base / CA_CERT_NAME, _cert_pem(cert), mode=0o644)
    return CertificateAuthority(base, key, cert)


def write_key(path: str | os.PathLike[str], key: ec.EllipticCurvePrivateKey) -> None:
    """Save a private key as unencrypted PKCS#8 PEM, mode 0600."""
    atomic_write(path, _key_pem(key), mode=0o600)


def write_certificate(path: str | os.PathLike[str], cert: x509.Certificate) -> None:
    atomic_write(path, _cert_pem(cert), mode=0o644)


def _load_pem_or_der(path: str | os.PathLike[str], pem: Any, der: Any, what: str) -> Any:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return pem(raw) if b"-----BEGIN" in raw else der(raw)
    except ValueError as exc:
        raise FleetError(f"{path} is not {what} ({exc})") from None


def load_csr(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    """A CSR from a PEM or DER file."""
    csr: x509.CertificateSigningRequest = _load_pem_or_der(
        path, x509.load_pem_x509_csr, x509.load_der_x509_csr, "a certificate request"
    )
    return csr


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """A certificate from a PEM or DER file."""
    cert: x509.Certificate = _load_pem_or_der(
        path, x509.load_pem_x509_certificate, x509.load_der_x509_certificate, "a certificate"
    )
    return cert
