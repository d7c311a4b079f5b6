"""Provisioning through the token itself: put an issued certificate next to its key.

Owns: ``store_certificate``, which the ``atecc cert-store`` command calls. It drives the same core
that the C library exposes (a private :class:`~cryptoki.library.Library` in this process, the same
C_Initialize / C_OpenSession / C_FindObjects / C_CreateObject rules), so what it writes is exactly
what ``pkcs11-tool --write-object`` would write, and every PKCS#11 client then sees the
certificate with the key's CKA_ID.

Idempotent: the same certificate stored again changes nothing; a different certificate for a key
that already has a stored one (a destroyable token object with the key's CKA_ID -- the chip's
own factory certificates do not count) is refused unless ``replace`` is given, which destroys the
old one and stores the new one.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptoki import errors
from cryptoki.constants import CKA, CKC, CKF, CKO

_TRUE, _FALSE = b"\x01", b"\x00"


def _ulong(value: int) -> bytes:
    return struct.pack("@L", value)


@dataclass(frozen=True)
class StoredCertificate:
    slot_id: int
    label: str
    key_id: bytes
    key_label: str
    action: str = "stored"  # "stored", "unchanged" or "replaced"


def store_certificate(
    filestore: str | os.PathLike[str],
    slot_id: int,
    cert_der: bytes,
    label: str,
    *,
    replace: bool = False,
) -> StoredCertificate:
    """Store ``cert_der`` as a token certificate object next to the private key it certifies.

    The certificate's public key decides which key: its CKA_ID is SHA-1(04||X||Y), the ID the
    token gives that key. Refuses (ValueError) a certificate whose key is not on the token, so a
    certificate can never be filed next to the wrong key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from cryptoki.library import Library

    cert = x509.load_der_x509_certificate(cert_der)
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ValueError("the certificate's key is not a P-256 key, so it is not on this chip")
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_id = hashlib.sha1(point).digest()

    lib = Library(filestore=filestore)
    lib.initialize(None)
    try:
        session = lib.open_session(slot_id, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        lib.find_objects_init(session, [(CKA.CLASS, _ulong(CKO.PRIVATE_KEY)), (CKA.ID, key_id)])
        keys = lib.find_objects(session, 2)
        lib.find_objects_final(session)
        if not keys:
            raise ValueError(
                f"no private key with ID {key_id.hex()} on the token in slot {slot_id}: this "
                "certificate was not issued for a key of this chip"
            )
        (key_label,) = lib.get_attribute_value(session, keys[0], [CKA.LABEL])
        name = key_label.decode(errors="replace") if isinstance(key_label, bytes) else "?"
        stored = _stored_certificates(lib, session, key_id)
        if any(value == cert_der for _, value, _ in stored):
            return StoredCertificate(slot_id, label, key_id, name, "unchanged")
        if stored and not replace:
            labels = ", ".join(repr(old_label) for _, _, old_label in stored)
            raise ValueError(
                f"a different certificate ({labels}) is stored for this key already: "
                "--force replaces it"
            )
        for handle, _, _ in stored:
            lib.destroy_object(session, handle)
        lib.create_object(
            session,
            [
                (CKA.CLASS, _ulong(CKO.CERTIFICATE)),
                (CKA.CERTIFICATE_TYPE, _ulong(CKC.X_509)),
                (CKA.TOKEN, _TRUE),
                (CKA.PRIVATE, _FALSE),
                (CKA.LABEL, label.encode()),
                (CKA.ID, key_id),
                (CKA.VALUE, cert_der),
            ],
        )
    except errors.Pkcs11Error as exc:
        raise ValueError(f"the token refused: {exc}") from None
    finally:
        lib.finalize()
    return StoredCertificate(slot_id, label, key_id, name, "replaced" if stored else "stored")


def _stored_certificates(lib: Any, session: int, key_id: bytes) -> list[tuple[int, bytes, str]]:
    """``(handle, DER, label)`` of the destroyable certificates filed under ``key_id``."""
    lib.find_objects_init(session, [(CKA.CLASS, _ulong(CKO.CERTIFICATE)), (CKA.ID, key_id)])
    handles = lib.find_objects(session, 64)
    lib.find_objects_final(session)
    found = []
    for handle in handles:
        value, destroyable, cert_label = lib.get_attribute_value(
            session, handle, [CKA.VALUE, CKA.DESTROYABLE, CKA.LABEL]
        )
        if destroyable == _TRUE:
            text = cert_label.decode(errors="replace") if isinstance(cert_label, bytes) else "?"
            found.append((handle, bytes(value), text))
    return found
