"""The certificate authority: everything it signs, and what it records when it does.

Owns: TLS server certificates, device certificates from chip-signed CSRs (each recorded in the
registry in the same transaction that picked its serial, and refused for a key whose earlier
certificate was revoked for keyCompromise unless forced), and CRLs built from the registry's
revoked rows. The CA directory itself (files, recoverable creation) is :mod:`fleet.ca_dir`.

Profiles (all signatures ECDSA with SHA-256):

* CA:      basicConstraints CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical), SKI.
* server:  basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
           extendedKeyUsage serverAuth, subjectAltName DNS/IP, SKI, AKI.
* device:  basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
           extendedKeyUsage clientAuth, SKI, AKI. The subject is copied from the CSR, whose
           extensions are ignored: the CA decides what a device may do, not the request.

Serial numbers are random positive 159-bit integers (at most 20 bytes, RFC 5280 §4.1.2.2),
unique per CA (the registry's primary key, checked inside the issuing transaction).

Must not: talk to the chip (``atecc.certs.csr``) or hold SQL (``fleet.registry``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet import FleetError
from fleet.ca_dir import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    CLOCK_SKEW,
    check_days,
    create_ca_files,
    key_usage,
    load_ca_files,
    now,
)
from fleet.registry import (
    KEY_COMPROMISE,
    REVOKED,
    DeviceRecord,
    Registry,
    Transaction,
    key_id_of,
    open_registry,
)
from fleet.subjects import common_name, parse_subject


@dataclass
class CertificateAuthority:
    """A loaded CA directory and (opened on first use) its registry; close it when done."""

    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    registry_url: str | None = None
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = open_registry(self.directory, self.registry_url)
        return self._registry

    @property
    def certificate_path(self) -> Path:
        return self.directory / CA_CERT_NAME

    @property
    def key_path(self) -> Path:
        return self.directory / CA_KEY_NAME

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, registry_url: str | None = None
    ) -> CertificateAuthority:
        """Load ``ca.key`` and ``ca.crt`` from ``directory`` and check that they belong together."""
        base = Path(directory)
        key, cert = load_ca_files(base)
        return cls(base, key, cert, registry_url)

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
            .add_extension(key_usage(digital_signature=True), critical=True)
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
        check_days(days)
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
        start = now()
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]),
                key.public_key(),
                x509.random_serial_number(),
                start - CLOCK_SKEW,
                start + timedelta(days=days),
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
        force: bool = False,
    ) -> x509.Certificate:
        """Verify ``csr``, issue a clientAuth certificate for it, and record it in the registry.

        Validity is ``days`` from now, or the explicit ``not_before``/``not_after`` (tests use
        those for expired certificates). The device ID is the CSR's common name. A key whose
        earlier certificate was revoked for keyCompromise is refused unless ``force``.
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
        issued = now()
        if days is not None:
            check_days(days)
            not_before = issued - CLOCK_SKEW
            not_after = issued + timedelta(days=days)
        if not_before is None or not_after is None or not_after <= not_before:
            raise FleetError("give the validity in days")
        key_id = key_id_of(public_key)
        start, end = not_before, not_after

        def work(txn: Transaction) -> x509.Certificate:
            compromised = [
                r for r in txn.for_key(key_id) if r.status == REVOKED and r.reason == KEY_COMPROMISE
            ]
            if compromised and not force:
                first = compromised[0]
                raise FleetError(
                    f"the key of this CSR (key ID {key_id}) had certificate {first.serial} "
                    f"revoked for keyCompromise on {first.revoked_at}: a compromised key is not "
                    "certified again (use --force if it really is safe)"
                )
            serial = x509.random_serial_number()
            while txn.serial_taken(serial):  # 2**-159 per issue; cheap to make it certain
                serial = x509.random_serial_number()
            cert = (
                self._builder(csr.subject, public_key, serial, start, end)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
                )
                .sign(self.key, hashes.SHA256())
            )
            txn.insert(DeviceRecord.for_certificate(cert, device_id, issued=issued))
            return cert

        cert: x509.Certificate = self.registry.run(work)
        return cert

    # -- revocation ------------------------------------------------------------------------------

    def build_crl(self, *, days: int = 30) -> x509.CertificateRevocationList:
        """A CRL of every revoked certificate in the registry, with the next CRL number.

        The number is taken and the revoked rows read in one transaction, so a CRL with a higher
        number lists at least what every lower-numbered one listed.
        """
        check_days(days)

        def work(txn: Transaction) -> tuple[int, list[tuple[str, str, str | None]]]:
            return txn.next_crl_number(), list(txn.revoked())

        number, revoked = self.registry.run(work)
        issued = now()
        entries = [_revoked_entry(*row) for row in revoked]
        builder = (
            x509.CertificateRevocationListBuilder(
                issuer_name=self.certificate.subject,
                last_update=issued,
                next_update=issued + timedelta(days=days),
                revoked_certificates=entries,  # one list: add_revoked_certificate copies each time
            )
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._key_identifier(), critical=False)
        )
        return builder.sign(self.key, hashes.SHA256())


def _revoked_entry(serial: str, revoked_at: str, reason: str | None) -> x509.RevokedCertificate:
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(int(serial, 16))
        .revocation_date(datetime.fromisoformat(revoked_at))
    )
    flag = x509.ReasonFlags(reason or "unspecified")
    if flag is not x509.ReasonFlags.unspecified:
        # RFC 5280 §5.3.1: omit the reasonCode rather than use unspecified.
        entry = entry.add_extension(x509.CRLReason(flag), critical=False)
    return entry.build()


def init_ca(
    directory: str | os.PathLike[str],
    subject: str | x509.Name,
    *,
    days: int = 3650,
    registry_url: str | None = None,
) -> CertificateAuthority:
    """Create the CA in ``directory`` (or finish one whose creation was cut short, keeping its
    key; see :mod:`fleet.ca_dir`). ``registry_url`` is recorded in ``fleet.conf``."""
    name = parse_subject(subject) if isinstance(subject, str) else subject
    config = None
    if registry_url is not None:
        from fleet.registry import CONFIG_NAME, config_text

        config = (CONFIG_NAME, config_text(registry_url))
    base, key, cert, _ = create_ca_files(directory, name, days=days, config=config)
    return CertificateAuthority(base, key, cert, registry_url)
