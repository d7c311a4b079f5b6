"""Rebuild full X.509 DER certificates from a template and a compressed certificate (chip §6.7).

Owns: filling a :class:`~atecc.certs.templates.CertTemplate` with the dynamic values (public key,
key identifiers, dates, signer ID, device-SN characters, EUI-48, serial number, signature) and
reading what that needs from a chip (:func:`read_chain`). The factory (:mod:`atecc.certs.factory`)
signs exactly what :func:`build_certificate` produces, so the two cannot drift apart.

Nothing here signs or trusts anything: a rebuilt certificate is only as good as its signature,
which the caller verifies against the issuer key it trusts (:func:`verify_signature`).

Rebuilding is on the path of every process's first object listing, so it needs no
``cryptography`` (its x509 import alone costs more than the rest of the listing): the DER is
built by hand, the root key is read with :mod:`atecc.der`, and only :func:`verify_signature` and
:func:`public_key_object` import ``cryptography``, when called.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from atecc.certs.compressed import (
    COMPRESSED_CERT_SIZE,
    FORMAT_V0,
    CertificateError,
    CompressedCert,
    SnSource,
    expire_generalized_time,
    utc_time,
)
from atecc.certs.templates import (
    SIGNER_TEMPLATE,
    TEMPLATES,
    CertTemplate,
    key_id,
    signature_bit_string,
)
from atecc.constants import PUBLIC_KEY_SIZE, Zone
from atecc.der import children, oid, read_tlv

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

#: Trust&GO certificate slots (chip §6.4).
DEVICE_CERT_SLOT = 10
SIGNER_PUBLIC_KEY_SLOT = 11
SIGNER_CERT_SLOT = 12
DEVICE_KEY_SLOT = 0
EUI48_SLOT = 5  # template 3 copies bytes 0-11 of this slot into subjectAltName

SERIAL_NUMBER_SIZE = 16
PADDED_PUBLIC_KEY_SIZE = 72


class ChipReader(Protocol):
    """The part of :class:`atecc.device.Device` that :func:`read_chain` uses."""

    def read_bytes(self, zone: Zone, slot: int, offset: int, length: int) -> bytes: ...

    def get_public_key(self, slot: int) -> bytes: ...

    def serial_number(self) -> bytes: ...


def pad_public_key(public_key: bytes) -> bytes:
    """72-byte slot form of a public key: ``00*4 ‖ X ‖ 00*4 ‖ Y`` (chip §3.8)."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise CertificateError("public key must be 64 bytes X||Y")
    return bytes(4) + public_key[:32] + bytes(4) + public_key[32:]


def unpad_public_key(slot_data: bytes) -> bytes:
    """X||Y from the 72-byte slot form; the pad bytes (validity nibble included) are ignored."""
    if len(slot_data) != PADDED_PUBLIC_KEY_SIZE:
        raise CertificateError("a padded public key is 72 bytes")
    return bytes(slot_data[4:36] + slot_data[40:72])


def serial_from_public_key(public_key: bytes, compressed: CompressedCert) -> bytes:
    """Serial number for SN source 0xA (chip §6.5, §6.7 step 4).

    SHA-256 over the subject's X||Y and the encoded dates (plus the year bits of byte 71 for
    format 1/2), first 16 bytes, with the top bit cleared and bit 6 set so that the INTEGER is
    positive and always 16 bytes long.
    """
    message = public_key + compressed.encoded_dates
    if compressed.format_version != FORMAT_V0:
        message += bytes((compressed.byte71 & 0xF0,))
    serial = bytearray(hashlib.sha256(message).digest()[:SERIAL_NUMBER_SIZE])
    serial[0] = (serial[0] & 0x7F) | 0x40
    return bytes(serial)


def _check_compressed(tmpl: CertTemplate, compressed: CompressedCert) -> None:
    # cryptoauthlib refuses a compressed cert that names another template, chain or SN source;
    # so do we, because filling the wrong template gives a certificate whose signature fails.
    mismatches = [
        name
        for name, ours, theirs in (
            ("template ID", tmpl.template_id, compressed.template_id),
            ("chain ID", tmpl.chain_id, compressed.chain_id),
            ("serial-number source", tmpl.sn_source, compressed.sn_source),
        )
        if ours != theirs
    ]
    if mismatches:
        raise CertificateError(
            f"compressed certificate does not match template {tmpl.template_id} "
            f"({', '.join(mismatches)})"
        )
    if tmpl.sn_source != SnSource.PUB_KEY_HASH:
        raise CertificateError(f"serial-number source {tmpl.sn_source:#x} is not supported")


def build_certificate(
    tmpl: CertTemplate,
    compressed: CompressedCert,
    subject_public_key: bytes,
    *,
    issuer_public_key: bytes | None = None,
    device_serial: bytes | None = None,
    eui48: bytes | None = None,
) -> bytes:
    """Full DER certificate (chip §6.7 steps 3-5).

    :param tmpl: the template the compressed certificate names.
    :param compressed: dates, signer ID and signature.
    :param subject_public_key: X||Y of the certified key.
    :param issuer_public_key: X||Y of the issuing key, for the authority key identifier; ``None``
        keeps the template's AKI (for the signer template: Microchip's root).
    :param device_serial: 9-byte chip serial number; required by the device templates.
    :param eui48: 12 ASCII characters (slot 5 bytes 0-11); required by template 3.
    :raises CertificateError: inconsistent inputs.
    """
    _check_compressed(tmpl, compressed)
    if len(subject_public_key) != PUBLIC_KEY_SIZE:
        raise CertificateError("subject public key must be 64 bytes X||Y")
    values: dict[str, bytes] = {
        "serial_number": serial_from_public_key(subject_public_key, compressed),
        "issue_date": utc_time(compressed.issue_date).encode("ascii"),
        "expire_date": expire_generalized_time(
            compressed.issue_date, compressed.expire_years
        ).encode("ascii"),
        "signer_id": compressed.signer_id_hex.encode("ascii"),
        "public_key": subject_public_key,
        "subject_key_id": key_id(subject_public_key),
    }
    if issuer_public_key is not None:
        values["authority_key_id"] = key_id(issuer_public_key)
    if "sn03" in tmpl.fields:
        if device_serial is None or len(device_serial) != 9:
            raise CertificateError("device certificates need the 9-byte chip serial number")
        values["sn03"] = device_serial[:4].hex().upper().encode("ascii")
        values["sn48"] = device_serial[4:].hex().upper().encode("ascii")
    if "eui48" in tmpl.fields:
        if eui48 is None or len(eui48) != tmpl.fields["eui48"].length:
            raise CertificateError("template 3 needs the 12 EUI-48 characters from slot 5")
        values["eui48"] = eui48

    der = bytearray(tmpl.der[: tmpl.signature_offset])
    for name, value in values.items():
        f = tmpl.fields[name]
        if len(value) != f.length:
            raise CertificateError(f"{name}: {len(value)} bytes for a {f.length}-byte field")
        der[f.offset : f.end] = value
    der += signature_bit_string(compressed.r, compressed.s)
    # Only the outer length changes with the signature's size; the TBS length is fixed because
    # every dynamic field has a fixed size (chip §6.7 step 5).
    der[2:4] = (len(der) - 4).to_bytes(2, "big")
    return bytes(der)


def tbs_certificate(der: bytes) -> bytes:
    """The signed part (tbsCertificate, header included) of a template-shaped certificate."""
    if len(der) < 8 or der[0:2] != b"\x30\x82" or der[4:6] != b"\x30\x82":
        raise CertificateError("not a certificate with 2-byte-length SEQUENCEs")
    return der[4 : 8 + int.from_bytes(der[6:8], "big")]


def public_key_object(public_key: bytes) -> ec.EllipticCurvePublicKey:
    """A ``cryptography`` key from 64 bytes X||Y (P-256)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public_key)


_EC_PUBLIC_KEY = oid("1.2.840.10045.2.1")
_P256 = oid("1.2.840.10045.3.1.7")


def certificate_public_key(cert: bytes) -> bytes | None:
    """X||Y of a DER certificate's subject key if it is an uncompressed P-256 point, else None.

    :raises ValueError: not a DER certificate.
    """
    _, start, end, _ = read_tlv(cert)
    _, tbs_start, _ = children(cert, start, end)[0]
    _, ts, te, _ = read_tlv(cert, tbs_start)
    tbs = children(cert, ts, te)
    if tbs and tbs[0][0] == 0xA0:  # [0] EXPLICIT version
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise ValueError("tbsCertificate is too short")
    _, ks, ke, _ = read_tlv(cert, tbs[5][1])  # subjectPublicKeyInfo
    algorithm, key = children(cert, ks, ke)[:2]
    _, as_, ae, _ = read_tlv(cert, algorithm[1])
    if cert[as_:ae] != _EC_PUBLIC_KEY + _P256 or cert[key[1]] != 0x03:
        return None
    _, vs, ve, _ = read_tlv(cert, key[1])
    point = cert[vs:ve]
    if len(point) != 2 + PUBLIC_KEY_SIZE or point[:2] != b"\x00\x04":
        return None
    return bytes(point[2:])


def load_root_public_key(path: str | os.PathLike[str]) -> bytes | None:
    """X||Y of the P-256 key of the PEM certificate at ``path`` (None if absent, unreadable or
    not P-256): the key an emulated chip's signer certificate names as its authority."""
    try:
        text = Path(path).read_text(encoding="ascii")
        body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END", 1)[0]
        return certificate_public_key(base64.b64decode("".join(body.split()), validate=True))
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def verify_signature(der: bytes, issuer_public_key: bytes) -> bool:
    """Whether the certificate's ECDSA-SHA256 signature verifies with the issuer's X||Y."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = x509.load_der_x509_certificate(der)
    try:
        public_key_object(issuer_public_key).verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def read_compressed(device: ChipReader, slot: int) -> CompressedCert:
    """Read and decode the compressed certificate stored in ``slot``."""
    return CompressedCert.from_bytes(device.read_bytes(Zone.DATA, slot, 0, COMPRESSED_CERT_SIZE))


def read_signer_public_key(device: ChipReader) -> bytes:
    """X||Y of the signer key stored in slot 11."""
    return unpad_public_key(
        device.read_bytes(Zone.DATA, SIGNER_PUBLIC_KEY_SLOT, 0, PADDED_PUBLIC_KEY_SIZE)
    )


def read_chain(
    device: ChipReader,
    *,
    root_public_key: bytes | None = None,
    device_public_key: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Rebuild the device and signer certificates of a Trust&GO chip: ``(device_der, signer_der)``.

    Reads slots 10, 11 and 12, the serial number, the slot-0 public key (GenKey mode 0) and, for
    template 3, slot 5. The device template is the one the compressed certificate names.

    :param root_public_key: X||Y of the root that signed the signer certificate; needed for the
        signer's authority key identifier unless the root is Microchip's own (the template's
        default), e.g. the emulator's root CA stored beside its state file.
    :param device_public_key: X||Y of slot 0 when the caller has just read it (saves a GenKey,
        which the chip executes as slowly as a signature).
    :raises CertificateError: a slot does not hold a usable compressed certificate.
    :raises atecc.errors.AteccError: the chip could not be read.
    """
    signer_public_key = read_signer_public_key(device)
    signer_compressed = read_compressed(device, SIGNER_CERT_SLOT)
    signer_der = build_certificate(
        SIGNER_TEMPLATE,
        signer_compressed,
        signer_public_key,
        issuer_public_key=root_public_key,
    )
    device_compressed = read_compressed(device, DEVICE_CERT_SLOT)
    tmpl = TEMPLATES.get(device_compressed.template_id)
    if tmpl is None or tmpl is SIGNER_TEMPLATE:
        raise CertificateError(
            f"slot {DEVICE_CERT_SLOT} names unknown device template {device_compressed.template_id}"
        )
    eui48 = None
    if "eui48" in tmpl.fields:
        eui48 = device.read_bytes(Zone.DATA, EUI48_SLOT, 0, tmpl.fields["eui48"].length)
    device_der = build_certificate(
        tmpl,
        device_compressed,
        device_public_key or device.get_public_key(DEVICE_KEY_SLOT),
        issuer_public_key=signer_public_key,
        device_serial=device.serial_number(),
        eui48=eui48,
    )
    return device_der, signer_der
