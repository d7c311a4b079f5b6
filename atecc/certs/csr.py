"""Certificate requests signed by the chip's own key, through the driver (no OpenSSL engine).

Owns: the device ID derived from the chip serial number, and building a PKCS#10 request
(RFC 2986) around a chip key:

1. ``CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name,
   subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }`` -- the subject
   is one CN (a UTF8String), the key is the slot's P-256 public point ``04 || X || Y``, and the
   attribute set is empty;
2. SHA-256 of that DER, signed by :meth:`atecc.device.Device.sign_digest` (the key never leaves
   the chip);
3. ``CertificationRequest ::= SEQUENCE { info, ecdsa-with-SHA256, BIT STRING (Ecdsa-Sig-Value) }``.

The result is checked with ``cryptography`` before it is returned, so a request that would not
verify is never written.

Device ID: ``uuid5(DEVICE_ID_NAMESPACE, <serial number as 18 upper-case hex digits>)``, e.g. the
chip ``0123XXXXXXXXXXXXEE`` always gets the same UUID, and no two chips share one. The namespace is
a fixed random UUID chosen for this project; changing it would rename every device.

Must not: sign with anything but the chip, or hold a CA key.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from atecc.certs.templates import (
    OID_COMMON_NAME,
    OID_EC_PUBLIC_KEY,
    OID_ECDSA_WITH_SHA256,
    OID_PRIME256V1,
)
from atecc.der import bit_string, ecdsa_sig_value, integer, oid, seq, set_of, tlv, utf8


class CsrError(ValueError):
    """A request that cannot be built (bad serial, key or CN, or a chip signature that fails)."""


#: Namespace of device IDs (a fixed, randomly generated UUID; see the module docstring).
DEVICE_ID_NAMESPACE = uuid.UUID("6f1d3b0e-7c2a-4e59-9a51-2b8d0c4f7e13")

#: Chip key slot of the Trust&GO device key.
DEFAULT_KEY_SLOT = 0


class SigningDevice(Protocol):
    """The part of :class:`atecc.device.Device` a CSR needs."""

    def serial_number(self) -> bytes: ...

    def get_public_key(self, slot: int) -> bytes: ...

    def sign_digest(self, slot: int, digest: bytes) -> bytes: ...


def device_id_for_serial(serial: bytes) -> str:
    """The device ID of the chip with this 9-byte serial number (a UUID string)."""
    if len(serial) != 9:
        raise CsrError(f"a chip serial number has 9 bytes, not {len(serial)}")
    return str(uuid.uuid5(DEVICE_ID_NAMESPACE, serial.hex().upper()))


def subject_public_key_info(public_key: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a P-256 point given as 64 bytes ``X || Y``."""
    if len(public_key) != 64:
        raise CsrError(f"a P-256 public key is 64 bytes X||Y, not {len(public_key)}")
    algorithm = seq(oid(OID_EC_PUBLIC_KEY), oid(OID_PRIME256V1))
    return seq(algorithm, bit_string(b"\x04" + public_key))


def certification_request_info(common_name: str, public_key: bytes) -> bytes:
    """DER CertificationRequestInfo: version 0, subject CN, the key, empty attributes [0]."""
    if not common_name:
        raise CsrError("the CN must not be empty")
    subject = seq(set_of(seq(oid(OID_COMMON_NAME), utf8(common_name))))
    attributes = tlv(0xA0, b"")  # [0] IMPLICIT SET OF Attribute, constructed, empty
    return seq(integer(0), subject, subject_public_key_info(public_key), attributes)


def build_csr(
    device: SigningDevice,
    *,
    common_name: str | None = None,
    slot: int = DEFAULT_KEY_SLOT,
    serial: bytes | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR for the key in chip ``slot``, signed by the chip.

    :param common_name: the subject CN; default :func:`device_id_for_serial` of ``serial``
        (read from the chip when not given).
    """
    if common_name is None:
        if serial is None:
            serial = bytes(device.serial_number())
        common_name = device_id_for_serial(serial)
    public_key = bytes(device.get_public_key(slot))
    info = certification_request_info(common_name, public_key)
    signature = bytes(device.sign_digest(slot, hashlib.sha256(info).digest()))
    if len(signature) != 64:
        raise CsrError(f"the chip returned a {len(signature)}-byte signature, not 64")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    der = seq(info, seq(oid(OID_ECDSA_WITH_SHA256)), bit_string(ecdsa_sig_value(r, s)))
    csr = x509.load_der_x509_csr(der)
    if not csr.is_signature_valid:
        raise CsrError(f"the chip's signature over the CSR does not verify (slot {slot})")
    return csr


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)
