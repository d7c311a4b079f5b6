"""Our own DER templates for the Trust&GO (TNGTLS) signer and device certificates (chip §6.6).

Owns: the template bytes and the position of every dynamic field in them. The templates are
*generated* here from a structural description with a few DER helpers; no byte array is copied
from cryptoauthlib (its licence forbids it). What makes a rebuilt certificate byte-identical to
the one the factory signed is only the skeleton (everything outside the dynamic fields); the spec
gives a SHA-256 of each skeleton, and the tests pin our generated templates to those values.

Placeholder contents of the dynamic fields (serial, dates, keys, key IDs, names) are arbitrary but
well-formed, so a template is itself a parseable certificate. The offsets are found by searching
for the unique placeholder values after generation, and checked against the spec's table on import,
so a change in the structure cannot silently move a field.

Templates:

* 1 — signer certificate, issued by the root ("Crypto Authentication Root CA 002").
* 2 — legacy device certificate, subject CN "<18 hex chars of the device SN> ATECC".
* 3 — current device certificate, subject CN "sn<18 hex chars>", subjectAltName with the
  device's EUI-48 (copied from slot 5).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from atecc.certs.compressed import SnSource
from atecc.der import (
    bit_string,
    boolean_true,
    integer,
    octet_string,
    oid,
    printable,
    seq,
    set_of,
    signature_bit_string,
    tlv,
    tlv_long,
    utf8,
)
from atecc.record import field, record

# --- X.509 vocabulary ----------------------------------------------------------------------------

OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_PRIME256V1 = "1.2.840.10045.3.1.7"
OID_ORGANIZATION = "2.5.4.10"
OID_COMMON_NAME = "2.5.4.3"
OID_SERIAL_NUMBER = "2.5.4.5"
OID_KEY_USAGE = "2.5.29.15"
OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_SUBJECT_KEY_ID = "2.5.29.14"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
OID_SUBJECT_ALT_NAME = "2.5.29.17"

ORGANIZATION = "Microchip Technology Inc"
ROOT_CN = "Crypto Authentication Root CA 002"
SIGNER_CN_PREFIX = "Crypto Authentication Signer "

#: Key identifier of Microchip's "Crypto Authentication Root CA 002" (chip §6.4): the signer
#: template's default AKI, left in place when the host does not know the root's public key.
MICROCHIP_ROOT_KEY_ID = bytes.fromhex("7AED7D6DC6B7789DB23801A5E84A8CB0A40E2A8C")


def _algorithm_ecdsa_sha256() -> bytes:
    # AlgorithmIdentifier without parameters (RFC 5758 §3.2).
    return seq(oid(OID_ECDSA_WITH_SHA256))


def _name(common_name: str) -> bytes:
    # O first, then CN, each in its own RDN, both UTF8String (chip §6.6).
    return seq(
        set_of(seq(oid(OID_ORGANIZATION), utf8(ORGANIZATION))),
        set_of(seq(oid(OID_COMMON_NAME), utf8(common_name))),
    )


def _validity(issue: str, expire: str) -> bytes:
    return seq(tlv(0x17, issue.encode("ascii")), tlv(0x18, expire.encode("ascii")))


def _spki(public_key: bytes) -> bytes:
    return seq(
        seq(oid(OID_EC_PUBLIC_KEY), oid(OID_PRIME256V1)),
        bit_string(b"\x04" + public_key),
    )


def _extension(oid_text: str, value: bytes, *, critical: bool = False) -> bytes:
    return seq(oid(oid_text), *((boolean_true(),) if critical else ()), octet_string(value))


def _key_usage(bits: bytes) -> bytes:
    # ``bits`` is the BIT STRING content: unused-bit count, then the flags.
    return _extension(OID_KEY_USAGE, tlv(0x03, bits), critical=True)


def _basic_constraints(ca: bool) -> bytes:
    body = seq(boolean_true(), integer(0)) if ca else seq()
    return _extension(OID_BASIC_CONSTRAINTS, body, critical=True)


def _ski(key_id: bytes) -> bytes:
    return _extension(OID_SUBJECT_KEY_ID, octet_string(key_id))


def _aki(key_id: bytes) -> bytes:
    return _extension(OID_AUTHORITY_KEY_ID, seq(tlv(0x80, key_id)))


def _san_eui48(value: str) -> bytes:
    # directoryName [4] holding a Name with one serialNumber RDN.
    directory_name = tlv(0xA4, seq(set_of(seq(oid(OID_SERIAL_NUMBER), printable(value)))))
    return _extension(OID_SUBJECT_ALT_NAME, seq(directory_name))


def _certificate(tbs_items: list[bytes], signature: bytes) -> bytes:
    tbs = tlv_long(0x30, b"".join(tbs_items))
    return tlv_long(0x30, tbs + _algorithm_ecdsa_sha256() + signature)


# --- Placeholders --------------------------------------------------------------------------------
# Distinct, well-formed values, each unique in its template, so that a search finds the field.


def _placeholder(label: str, length: int) -> bytes:
    return hashlib.sha256(b"atecc template placeholder " + label.encode()).digest()[:length]


def _placeholder_serial(label: str) -> bytes:
    raw = bytearray(_placeholder(label, 16))
    raw[0] = (raw[0] & 0x7F) | 0x40  # the shape SN source 0xA produces
    return bytes(raw)


# Points of P-256 (2G and 3G, G the generator), so the placeholder keys are valid curve points.
_2G = bytes.fromhex(
    "7CF27B188D034F7E8A52380304B51AC3C08969E277F21B35A60B48FC47669978"
    "07775510DB8ED040293D9AC69F7430DBBA7DADE63CE982299E04B79D227873D1"
)
_3G = bytes.fromhex(
    "5ECBE4D1A6330A44C8F7EF951D4BF165E6C6B721EFADA985FB41661BC6E7FD6C"
    "8734640C4998FF7E374B06CE1A64A2ECD82AB036384FB83D9A79B127A27D5032"
)

_ISSUE = datetime(2024, 1, 1, 0)
# Placeholder signature lengths chosen so that template lengths equal the originals (the outer
# length in bytes 2-3 is part of the skeleton): R with its top bit set (33-byte INTEGER) and S
# without it gives a 74-byte signatureValue; both without gives 73.
_R_HIGH = int.from_bytes(b"\x80" + _placeholder("signature r", 31), "big")
_R_LOW = int.from_bytes(b"\x7f" + _placeholder("signature r", 31), "big")
_S_LOW = int.from_bytes(b"\x7f" + _placeholder("signature s", 31), "big")


def _sha1(data: bytes) -> bytes:
    # X.509 key identifiers are SHA-1 by definition (RFC 5280 §4.2.1.2); not a security use.
    return hashlib.sha1(data).digest()


def key_id(public_key: bytes) -> bytes:
    """Key identifier as the templates use it: SHA-1(04 || X || Y) (RFC 5280 §4.2.1.2 method 1)."""
    if len(public_key) != 64:
        raise ValueError("public key must be 64 bytes X||Y")
    return _sha1(b"\x04" + public_key)


# --- Template description ------------------------------------------------------------------------


@record(frozen=True)
class Field:
    """A dynamic field: ``length`` bytes at ``offset`` in the template."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@record(frozen=True)
class CertTemplate:
    """One certificate template and where its dynamic fields are.

    ``fields`` names (present only when the template has them): ``serial_number``, ``issue_date``,
    ``expire_date``, ``signer_id``, ``public_key``, ``subject_key_id``, ``authority_key_id``,
    ``sn03`` / ``sn48`` (device-SN hex characters), ``eui48`` (template 3).
    """

    name: str
    template_id: int
    chain_id: int
    sn_source: int
    default_expire_years: int
    der: bytes
    tbs_offset: int
    tbs_length: int
    signature_offset: int
    fields: dict[str, Field] = field(default_factory=dict)

    def skeleton(self) -> bytes:
        """Bytes [0, signature offset) with every dynamic field zeroed (chip §6.6 check values)."""
        out = bytearray(self.der[: self.signature_offset])
        for f in self.fields.values():
            out[f.offset : f.end] = bytes(f.length)
        return bytes(out)

    def skeleton_sha256(self) -> str:
        return hashlib.sha256(self.skeleton()).hexdigest().upper()


def _locate(der: bytes, value: bytes) -> int:
    first = der.find(value)
    if first < 0 or der.find(value, first + 1) >= 0:
        raise AssertionError("template placeholder not found exactly once")
    return first


def _make_template(
    *,
    name: str,
    template_id: int,
    expire_years: int,
    tbs_items: list[bytes],
    signature: bytes,
    placeholders: dict[str, bytes],
    expected: dict[str, tuple[int, int]],
    expected_size: int,
    expected_tbs: int,
    expected_signature_offset: int,
) -> CertTemplate:
    der = _certificate(tbs_items, signature)
    fields = {key: Field(_locate(der, value), len(value)) for key, value in placeholders.items()}
    template = CertTemplate(
        name=name,
        template_id=template_id,
        chain_id=0,
        sn_source=SnSource.PUB_KEY_HASH,
        default_expire_years=expire_years,
        der=der,
        tbs_offset=4,
        tbs_length=4 + int.from_bytes(der[6:8], "big"),  # header 30 82 HH LL + content
        signature_offset=len(der) - len(signature),
        fields=fields,
    )
    # Cross-check the generated layout against the spec's table (§6.6): a structural change that
    # moved a field would make rebuilt certificates differ from what the factory signed.
    got = {key: (f.offset, f.length) for key, f in fields.items()}
    if got != expected or (len(der), template.tbs_length, template.signature_offset) != (
        expected_size,
        expected_tbs,
        expected_signature_offset,
    ):
        raise AssertionError(
            f"template {template_id} layout differs from chip §6.6: {got}, size {len(der)},"
            f" tbs {template.tbs_length}, signature at {template.signature_offset}"
        )
    return template


def _signer_template() -> CertTemplate:
    serial = _placeholder_serial("signer serial")
    issue, expire = "240101000000Z", "20550101000000Z"
    signer_id = "A5C3"
    # The default AKI is the real Microchip root's: rebuild keeps it when the root key is unknown.
    ski, aki = key_id(_2G), MICROCHIP_ROOT_KEY_ID
    tbs = [
        tlv(0xA0, integer(2)),  # version v3
        tlv(0x02, serial),
        _algorithm_ecdsa_sha256(),
        _name(ROOT_CN),
        _validity(issue, expire),
        _name(SIGNER_CN_PREFIX + signer_id),
        _spki(_2G),
        tlv(
            0xA3,
            seq(
                _key_usage(b"\x01\x86"),  # digitalSignature, keyCertSign, cRLSign
                _basic_constraints(ca=True),
                _ski(ski),
                _aki(aki),
            ),
        ),
    ]
    return _make_template(
        name="TNGTLS signer",
        template_id=1,
        expire_years=31,
        tbs_items=tbs,
        signature=signature_bit_string(_R_HIGH, _S_LOW),
        placeholders={
            "serial_number": serial,
            "issue_date": issue.encode(),
            "expire_date": expire.encode(),
            "signer_id": signer_id.encode(),
            "public_key": _2G,
            "subject_key_id": ski,
            "authority_key_id": aki,
        },
        expected={
            "serial_number": (15, 16),
            "issue_date": (128, 13),
            "expire_date": (143, 15),
            "signer_id": (235, 4),
            "public_key": (266, 64),
            "subject_key_id": (381, 20),
            "authority_key_id": (414, 20),
        },
        expected_size=520,
        expected_tbs=430,
        expected_signature_offset=446,
    )


def _device_fields(sn03: str, sn48: str, serial: bytes, signer_id: str) -> dict[str, bytes]:
    return {
        "serial_number": serial,
        "issue_date": b"240101000000Z",
        "expire_date": b"20520101000000Z",
        "signer_id": signer_id.encode(),
        "sn03": sn03.encode(),
        "sn48": sn48.encode(),
        "public_key": _3G,
        "subject_key_id": key_id(_3G),
        "authority_key_id": key_id(_2G),
    }


def _device_tbs(
    serial: bytes, signer_id: str, subject_cn: str, extensions: list[bytes]
) -> list[bytes]:
    return [
        tlv(0xA0, integer(2)),
        tlv(0x02, serial),
        _algorithm_ecdsa_sha256(),
        _name(SIGNER_CN_PREFIX + signer_id),
        _validity("240101000000Z", "20520101000000Z"),
        _name(subject_cn),
        _spki(_3G),
        tlv(0xA3, seq(*extensions)),
    ]


def _device_extensions(prefix: list[bytes]) -> list[bytes]:
    return [
        *prefix,
        _basic_constraints(ca=False),
        _key_usage(b"\x03\x88"),  # digitalSignature, keyAgreement
        _ski(key_id(_3G)),
        _aki(key_id(_2G)),
    ]


def _device_template_2() -> CertTemplate:
    serial = _placeholder_serial("device serial 2")
    sn03, sn48, signer_id = "0123A1B2", "C3D4E5F6EE", "5A3C"
    return _make_template(
        name="TNGTLS device (legacy)",
        template_id=2,
        expire_years=28,
        tbs_items=_device_tbs(serial, signer_id, f"{sn03}{sn48} ATECC", _device_extensions([])),
        signature=signature_bit_string(_R_HIGH, _S_LOW),
        placeholders=_device_fields(sn03, sn48, serial, signer_id),
        expected={
            "serial_number": (15, 16),
            "signer_id": (120, 4),
            "issue_date": (128, 13),
            "expire_date": (143, 15),
            "sn03": (206, 8),
            "sn48": (214, 10),
            "public_key": (257, 64),
            "subject_key_id": (366, 20),
            "authority_key_id": (399, 20),
        },
        expected_size=505,
        expected_tbs=415,
        expected_signature_offset=431,
    )


def _device_template_3() -> CertTemplate:
    serial = _placeholder_serial("device serial 3")
    sn03, sn48, signer_id, eui = "0123A1B2", "C3D4E5F6EE", "5A3C", "F0E1D2C3B4A5"
    fields = _device_fields(sn03, sn48, serial, signer_id)
    fields["eui48"] = eui.encode()
    return _make_template(
        name="TNGTLS device",
        template_id=3,
        expire_years=28,
        tbs_items=_device_tbs(
            serial, signer_id, f"sn{sn03}{sn48}", _device_extensions([_san_eui48("eui48_" + eui)])
        ),
        signature=signature_bit_string(_R_LOW, _S_LOW),
        placeholders=fields,
        expected={
            "serial_number": (15, 16),
            "signer_id": (120, 4),
            "issue_date": (128, 13),
            "expire_date": (143, 15),
            "sn03": (208, 8),
            "sn48": (216, 10),
            "public_key": (253, 64),
            "eui48": (355, 12),
            "subject_key_id": (408, 20),
            "authority_key_id": (441, 20),
        },
        expected_size=546,
        expected_tbs=457,
        expected_signature_offset=473,
    )


SIGNER_TEMPLATE = _signer_template()
DEVICE_TEMPLATE_LEGACY = _device_template_2()
DEVICE_TEMPLATE = _device_template_3()

TEMPLATES: dict[int, CertTemplate] = {
    t.template_id: t for t in (SIGNER_TEMPLATE, DEVICE_TEMPLATE_LEGACY, DEVICE_TEMPLATE)
}

#: OTP bytes 0-7 (ASCII) naming the device template a Trust&GO chip uses (chip §6.4).
OTP_CODES: dict[bytes, int] = {
    b"wdNxAjae": 2,
    b"Rsuy5YJh": 2,
    b"KQp2ZkD8": 3,
    b"x6tjuZMy": 3,
}
OTP_CODE_TEMPLATE_2 = b"wdNxAjae"
OTP_CODE_TEMPLATE_3 = b"KQp2ZkD8"


def template(template_id: int) -> CertTemplate:
    """The template with this ID (1 signer, 2 legacy device, 3 device).

    :raises KeyError: no such template.
    """
    return TEMPLATES[template_id]
