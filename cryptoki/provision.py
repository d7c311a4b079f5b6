"""Provisioning through the token itself: put an issued certificate next to its key.

Owns: ``store_certificate``, which ``atecc cert-store`` and ``atecc provision`` call, and
``stored_certificates`` (what a session finds stored for a key). They drive the same core that
the C library exposes (a private :class:`~cryptoki.library.Library` in this process through
:func:`cryptoki.keyuse.token_session`: the same C_Initialize / C_OpenSession / C_Login /
C_FindObjects / C_CreateObject rules, the same PIN counter), so what it writes is exactly what
``pkcs11-tool --login --write-object`` would write, and every PKCS#11 client then sees the
certificate with the key's CKA_ID.

Idempotent: the same certificate stored again changes nothing; a different certificate for a key
that already has a stored one (a destroyable token object with the key's CKA_ID -- the chip's
own factory certificates do not count) is refused unless ``replace`` is given, which destroys the
old one and stores the new one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from atecc.record import record
from cryptoki.attributes import encode_ulong
from cryptoki.constants import CKA, CKC, CKO

_TRUE, _FALSE = b"\x01", b"\x00"

#: Returns the user PIN when the token wants one (``atecc.pinentry``).
PinSource = Callable[[], bytes]


def _no_pin() -> bytes:
    from atecc.cliutil import UsageError

    raise UsageError("the token needs the user PIN: give --pin-file FILE or set ATECC_PIN")


@record(frozen=True)
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
    pin_source: PinSource = _no_pin,
) -> StoredCertificate:
    """Store ``cert_der`` as a token certificate object next to the private key it certifies.

    The certificate's public key decides which key: its CKA_ID is SHA-1(04||X||Y), the ID the
    token gives that key. Refuses (ValueError) a certificate whose key is not on the token, so a
    certificate can never be filed next to the wrong key. The session logs in first (with the
    user PIN from ``pin_source`` when the token requires one, see :mod:`cryptoki.keyuse`): a
    private key is not even visible before.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from cryptoki.keyuse import token_session

    cert = x509.load_der_x509_certificate(cert_der)
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ValueError("the certificate's key is not a P-256 key, so it is not on this chip")
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_id = hashlib.sha1(point).digest()

    with token_session(filestore, slot_id, pin_source) as tok:
        lib, session = tok.lib, tok.session
        template = [(CKA.CLASS, encode_ulong(CKO.PRIVATE_KEY)), (CKA.ID, key_id)]
        lib.find_objects_init(session, template)
        keys = lib.find_objects(session, 2)
        lib.find_objects_final(session)
        if not keys:
            raise ValueError(
                f"no private key with ID {key_id.hex()} on the token in slot {slot_id}: this "
                "certificate was not issued for a key of this chip"
            )
        (key_label,) = lib.get_attribute_value(session, keys[0], [CKA.LABEL])
        name = key_label.decode(errors="replace") if isinstance(key_label, bytes) else "?"
        stored = stored_certificates(lib, session, key_id)
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
                (CKA.CLASS, encode_ulong(CKO.CERTIFICATE)),
                (CKA.CERTIFICATE_TYPE, encode_ulong(CKC.X_509)),
                (CKA.TOKEN, _TRUE),
                (CKA.PRIVATE, _FALSE),
                (CKA.LABEL, label.encode()),
                (CKA.ID, key_id),
                (CKA.VALUE, cert_der),
            ],
        )
    return StoredCertificate(slot_id, label, key_id, name, "replaced" if stored else "stored")


def stored_certificates(lib: Any, session: int, key_id: bytes) -> list[tuple[int, bytes, str]]:
    """``(handle, DER, label)`` of the destroyable certificates filed under ``key_id``."""
    lib.find_objects_init(session, [(CKA.CLASS, encode_ulong(CKO.CERTIFICATE)), (CKA.ID, key_id)])
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
