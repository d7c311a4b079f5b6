"""Factory provisioning of an emulated Trust&GO chip with the project's own CA (chip §6.8).

Owns: creating an EMULATED root CA, a signer key and certificate (template 1, signed by that
root) and the device certificate (template 2 or 3, signed by the signer), and returning what the
emulator stores: the two compressed certificates, the signer public key and the OTP template
code. The root is self-signed and clearly marked as emulated; it is never Microchip's and nothing
signed here must be trusted outside tests and development.

Every certificate is produced by :func:`atecc.certs.rebuild.build_certificate` *before* signing, and
the signature is taken over exactly those TBS bytes, so what a host later rebuilds from the chip is
byte-for-byte what was signed. The private keys of the root and the signer are discarded.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from atecc.certs.compressed import (
    FORMAT_V0,
    FORMAT_V1,
    CertificateError,
    CompressedCert,
)
from atecc.certs.rebuild import build_certificate, public_key_object, tbs_certificate
from atecc.certs.templates import (
    ORGANIZATION,
    OTP_CODE_TEMPLATE_2,
    OTP_CODE_TEMPLATE_3,
    ROOT_CN,
    SIGNER_TEMPLATE,
    TEMPLATES,
    CertTemplate,
)
from atecc.record import record

ROOT_ORGANIZATION = "Emulated Trust&GO Root"
ROOT_COMMON_NAME = "ATECC608 Emulator Root CA (EMULATED, not Microchip)"

#: A subject impossible to mistake for Microchip's; with it only the signatures and key
#: identifiers link signer and root, so name-based path building (OpenSSL) cannot use it.
ROOT_NAME_EMULATED = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ROOT_ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, ROOT_COMMON_NAME),
    ]
)
#: The issuer name template 1 carries (fixed in its skeleton). A root with this subject lets
#: name-based path building (OpenSSL, ``cryptography.x509.verification``) link the signer to the
#: root; with :data:`ROOT_NAME_EMULATED` only the signatures and key identifiers link them.
#: This is the default, so `openssl verify` and TLS stacks can check the chain of an emulated
#: chip. The root's key is the emulator's own, never Microchip's; the certificate says so in a
#: comment extension (:data:`EMULATED_COMMENT`) and its file is named ``<chip>.root-ca.pem``.
ROOT_NAME_AS_TEMPLATE = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN),
    ]
)


@record(frozen=True)
class FactoryCerts:
    """What the factory leaves on (and beside) one emulated chip.

    On the chip: ``device_compressed`` → slot 10, ``signer_public_key`` (padded) → slot 11,
    ``signer_compressed`` → slot 12, ``otp_code`` → OTP bytes 0-7. Beside it: the root CA
    certificate (``root_ca_pem`` / ``root_ca_der``), the host's trust anchor. ``device_der`` and
    ``signer_der`` are the full certificates a host rebuilds, for checks.
    """

    device_compressed: bytes
    signer_public_key: bytes
    signer_compressed: bytes
    otp_code: bytes
    root_ca_pem: bytes
    root_ca_der: bytes
    signer_id: bytes
    device_der: bytes = b""
    signer_der: bytes = b""
    root_public_key: bytes = b""


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """X||Y (64 bytes) of a P-256 public key."""
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]


def _on_the_hour(when: datetime) -> datetime:
    # Compressed dates are naive UTC with hour granularity (chip §6.5).
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(minute=0, second=0, microsecond=0)


def _format_for(issue: datetime, expire_years: int) -> int:
    # Version 0 holds years 2000-2031 and up to 31 years of validity; beyond that use version 1.
    return FORMAT_V0 if issue.year <= 2031 and expire_years <= 31 else FORMAT_V1


def _sign_into(
    tmpl: CertTemplate,
    *,
    issue: datetime,
    signer_id: bytes,
    subject_public_key: bytes,
    issuer_key: ec.EllipticCurvePrivateKey,
    device_serial: bytes | None = None,
    eui48: bytes | None = None,
) -> tuple[CompressedCert, bytes]:
    """Fill ``tmpl``, sign its TBS with ``issuer_key``; return the compressed and full certs."""
    expire_years = tmpl.default_expire_years
    unsigned = CompressedCert(
        signature=bytes(64),
        issue_date=issue,
        expire_years=expire_years,
        signer_id=signer_id,
        template_id=tmpl.template_id,
        chain_id=tmpl.chain_id,
        sn_source=tmpl.sn_source,
        format_version=_format_for(issue, expire_years),
    )
    issuer_public_key = public_key_bytes(issuer_key.public_key())
    options = {
        "issuer_public_key": issuer_public_key,
        "device_serial": device_serial,
        "eui48": eui48,
    }
    draft = build_certificate(tmpl, unsigned, subject_public_key, **options)
    r, s = decode_dss_signature(issuer_key.sign(tbs_certificate(draft), ec.ECDSA(hashes.SHA256())))
    signed = CompressedCert(
        signature=r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        issue_date=unsigned.issue_date,
        expire_years=unsigned.expire_years,
        signer_id=unsigned.signer_id,
        template_id=unsigned.template_id,
        chain_id=unsigned.chain_id,
        sn_source=unsigned.sn_source,
        format_version=unsigned.format_version,
    )
    return signed, build_certificate(tmpl, signed, subject_public_key, **options)


#: Netscape-comment extension (OID 2.16.840.1.113730.1.13, IA5String) on every emulated root.
EMULATED_COMMENT = "EMULATED ATECC608 root CA made by the atecc emulator; not a Microchip key"


def make_root_ca(
    key: ec.EllipticCurvePrivateKey, issue: datetime, name: x509.Name = ROOT_NAME_AS_TEMPLATE
) -> x509.Certificate:
    """A self-signed root CA certificate for ``key``, marked as emulated by a comment."""
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(issue.replace(tzinfo=UTC))
        # No well-defined expiry (RFC 5280 §4.1.2.5), so the root outlives every signer it issues.
        .not_valid_after(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("2.16.840.1.113730.1.13"),
                b"\x16" + bytes([len(EMULATED_COMMENT)]) + EMULATED_COMMENT.encode("ascii"),
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_tng_chain(
    device_public_key: bytes,
    serial: bytes,
    *,
    now: datetime | None = None,
    root_key: ec.EllipticCurvePrivateKey | None = None,
    signer_key: ec.EllipticCurvePrivateKey | None = None,
    signer_id: bytes | None = None,
    signer_issue: datetime | None = None,
    device_issue: datetime | None = None,
    device_template: int = 2,
    eui48: bytes | None = None,
    root_name: x509.Name | None = None,
) -> FactoryCerts:
    """Provision the Trust&GO certificate chain for a chip (chip §6.8).

    :param device_public_key: X||Y of the chip's slot-0 key.
    :param serial: the chip's 9-byte serial number.
    :param now: issue time for both certificates (default: current UTC time), on the hour.
    :param root_key: root CA key (default: fresh P-256 key).
    :param signer_key: signer key (default: fresh P-256 key).
    :param signer_id: 2-byte signer ID (default: random).
    :param signer_issue: signer issue date, overriding ``now``.
    :param device_issue: device issue date, overriding ``now``.
    :param device_template: 2 (legacy, the default) or 3 (needs ``eui48``: 12 ASCII characters
        the emulator also stores in slot 5).
    :param root_name: subject of the root certificate (default :data:`ROOT_NAME_AS_TEMPLATE`,
        so the chain is buildable by issuer name; :data:`ROOT_NAME_EMULATED` is the alternative).
    :raises CertificateError: bad sizes or an unknown template.
    """
    if len(device_public_key) != 64:
        raise CertificateError("device public key must be 64 bytes X||Y")
    if len(serial) != 9:
        raise CertificateError("the chip serial number is 9 bytes")
    if device_template not in (2, 3):
        raise CertificateError(f"device template must be 2 or 3, not {device_template}")
    issue = _on_the_hour(now if now is not None else datetime.now(UTC))
    root_key = root_key or ec.generate_private_key(ec.SECP256R1())
    signer_key = signer_key or ec.generate_private_key(ec.SECP256R1())
    signer_id = signer_id if signer_id is not None else os.urandom(2)
    if len(signer_id) != 2:
        raise CertificateError("signer ID is 2 bytes")
    try:
        public_key_object(bytes(device_public_key))
    except ValueError as exc:
        raise CertificateError("device public key is not a point on P-256") from exc

    root_cert = make_root_ca(
        root_key, issue - timedelta(days=1), root_name or ROOT_NAME_AS_TEMPLATE
    )
    signer_public_key = public_key_bytes(signer_key.public_key())
    signer_compressed, signer_der = _sign_into(
        SIGNER_TEMPLATE,
        issue=_on_the_hour(signer_issue) if signer_issue else issue,
        signer_id=signer_id,
        subject_public_key=signer_public_key,
        issuer_key=root_key,
    )
    device_compressed, device_der = _sign_into(
        TEMPLATES[device_template],
        issue=_on_the_hour(device_issue) if device_issue else issue,
        signer_id=signer_id,
        subject_public_key=bytes(device_public_key),
        issuer_key=signer_key,
        device_serial=bytes(serial),
        eui48=eui48,
    )
    return FactoryCerts(
        device_compressed=device_compressed.to_bytes(),
        signer_public_key=signer_public_key,
        signer_compressed=signer_compressed.to_bytes(),
        otp_code=OTP_CODE_TEMPLATE_2 if device_template == 2 else OTP_CODE_TEMPLATE_3,
        root_ca_pem=root_cert.public_bytes(serialization.Encoding.PEM),
        root_ca_der=root_cert.public_bytes(serialization.Encoding.DER),
        signer_id=signer_id,
        device_der=device_der,
        signer_der=signer_der,
        root_public_key=public_key_bytes(root_key.public_key()),
    )
