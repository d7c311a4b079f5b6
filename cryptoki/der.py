"""The few DER structures the token reads and writes, done by hand.

Owns: P-256 public key encodings (CKA_EC_POINT, SubjectPublicKeyInfo), the CKA_ID rule, the
accepted spellings of CKA_EC_PARAMS, and pulling issuer/subject/serial/SPKI out of an X.509
certificate. Kept free of ``cryptography`` on purpose: listing objects happens on every cold start
of every client process, and importing ``cryptography`` costs more than the whole listing.
Must not: verify anything (that is the mechanisms' job) or accept curves other than P-256.
"""

from __future__ import annotations

from atecc.der import children, read_tlv
from atecc.record import record
from cryptoki.constants import P256_EC_PARAMS

#: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ... } header
#: for a 65-byte uncompressed point (RFC 5480 §2).
_SPKI_P256_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")

#: Spellings of CKA_EC_PARAMS accepted for P-256 at key generation. The OID is what the spec
#: wants and what pkcs11-tool (``--key-type EC:prime256v1``) and p11tool send; some older tools
#: send the curve name as a PrintableString, which the spec permits ("curveName" choice of
#: ECParameters in PKCS#11 3.0 §6.3.3 is for EC_EDWARDS, but tolerance costs nothing here).
P256_EC_PARAMS_ACCEPTED: frozenset[bytes] = frozenset(
    {
        P256_EC_PARAMS,
        b"\x13\x0aprime256v1",
        b"\x13\x09secp256r1",
        b"\x0c\x0aprime256v1",  # the same names as UTF8String
        b"\x0c\x09secp256r1",
    }
)


def uncompressed_point(pub64: bytes) -> bytes:
    """04 || X || Y from the chip's 64-byte X || Y."""
    if len(pub64) != 64:
        raise ValueError("a P-256 public key is 64 bytes X||Y")
    return b"\x04" + bytes(pub64)


def ec_point(pub64: bytes) -> bytes:
    """CKA_EC_POINT: the DER OCTET STRING wrapping 04||X||Y (PKCS#11 3.0 §6.3.3)."""
    return b"\x04\x41" + uncompressed_point(pub64)


def spki(pub64: bytes) -> bytes:
    """CKA_PUBLIC_KEY_INFO: DER SubjectPublicKeyInfo of a P-256 key."""
    return _SPKI_P256_PREFIX + uncompressed_point(pub64)


def sha1(data: bytes) -> bytes:
    # hashlib imported on first use: it loads OpenSSL's libcrypto through _hashlib (~2-3 ms),
    # which a start that only lists slots never needs.
    import hashlib

    return hashlib.sha1(data).digest()


def key_id(pub64: bytes) -> bytes:
    """CKA_ID shared by a key pair and its certificate: SHA-1 over 04||X||Y.

    This is the value OpenSSL puts in subjectKeyIdentifier (RFC 5280 §4.2.1.2 method 1 hashes the
    BIT STRING contents, i.e. the same bytes), so certificates issued elsewhere line up too.
    """
    return sha1(uncompressed_point(pub64))


def spki_id(spki_der: bytes) -> bytes:
    """CKA_ID for a certificate's key: :func:`key_id` for P-256, SHA-1 of the SPKI otherwise."""
    if len(spki_der) == len(_SPKI_P256_PREFIX) + 65 and spki_der.startswith(_SPKI_P256_PREFIX):
        return key_id(spki_der[-64:])
    return sha1(spki_der)


def point_xy(value: bytes) -> bytes | None:
    """X||Y of a P-256 point given as 04||X||Y or as its DER OCTET STRING, if on the curve."""
    raw = value
    if len(raw) == 67 and raw[:2] == b"\x04\x41":
        raw = raw[2:]
    if len(raw) != 65 or raw[0] != 0x04:
        return None
    xy = raw[1:]
    return xy if on_curve(xy) else None


#: P-256 domain parameters (FIPS 186-4 D.1.2.3), for the on-curve check.
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def on_curve(xy: bytes) -> bool:
    """True when X||Y is an affine point of P-256 (y² = x³ - 3x + b mod p)."""
    if len(xy) != 64:
        return False
    x = int.from_bytes(xy[:32], "big")
    y = int.from_bytes(xy[32:], "big")
    if not (0 <= x < _P and 0 <= y < _P):
        return False
    return (y * y - (x * x * x - 3 * x + _B)) % _P == 0


@record(frozen=True)
class CertFields:
    """The parts of an X.509 certificate PKCS#11 exposes as attributes, as DER TLVs."""

    serial_number: bytes  #: CKA_SERIAL_NUMBER: the DER INTEGER, tag and length included
    issuer: bytes  #: CKA_ISSUER: DER Name
    subject: bytes  #: CKA_SUBJECT: DER Name
    spki: bytes  #: CKA_PUBLIC_KEY_INFO


def parse_certificate(cert: bytes) -> CertFields:
    """Pick serial, issuer, subject and SPKI out of ``tbsCertificate`` (RFC 5280 §4.1).

    :raises ValueError: not a DER certificate.
    """
    tag, start, end, _ = read_tlv(cert)
    if tag != 0x30:
        raise ValueError("certificate is not a SEQUENCE")
    parts = children(cert, start, end)
    if not parts or parts[0][0] != 0x30:
        raise ValueError("certificate has no tbsCertificate")
    _, tbs_start, _ = parts[0]
    _, ts, te, _ = read_tlv(cert, tbs_start)
    tbs = children(cert, ts, te)
    if tbs and tbs[0][0] == 0xA0:  # [0] EXPLICIT version, absent for v1
        tbs = tbs[1:]
    if len(tbs) < 6 or tbs[0][0] != 0x02:
        raise ValueError("tbsCertificate is too short")

    def take(i: int) -> bytes:
        return bytes(cert[tbs[i][1] : tbs[i][2]])

    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    return CertFields(serial_number=take(0), issuer=take(2), subject=take(4), spki=take(5))


def check_value(value: bytes) -> bytes:
    """CKA_CHECK_VALUE of a certificate: the first 3 bytes of SHA-1 of CKA_VALUE (§4.6.3)."""
    return sha1(value)[:3]
