"""C_CreateObject and C_CopyObject templates → complete attribute sets for new objects.

Owns: which classes an application may create on this token (CKO_DATA, X.509 certificates, P-256
public keys, and AES secret keys, whose value goes into a chip slot), the attributes each gets by
default, the consistency checks between the DER the caller gives and the attributes it claims,
and the rules for copies. Must not: allocate chip slots, write files (the token does) or decide
visibility (the library does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptoki import attributes, der, errors, policy, templates
from cryptoki.constants import (
    CK_UNAVAILABLE_INFORMATION,
    CKA,
    CKC,
    CKK,
    CKO,
    P256_EC_PARAMS,
    CertificateCategory,
)
from cryptoki.objects import EC_SIGN_MECHANISMS, MODIFIABLE_ATTRS, Pkcs11Object
from cryptoki.types import Template


def new_uid() -> str:
    """CKA_UNIQUE_ID of a created object: 128 random bits, hex."""
    return os.urandom(16).hex()  # = secrets.token_hex(16)


@dataclass(frozen=True)
class AesImport:
    """A C_CreateObject of an AES key: the token writes ``value`` into a free key block."""

    value: bytes
    request: policy.SecretKeyRequest


def _storage_defaults(values: dict[int, Any], uid: str) -> dict[int, Any]:
    return {
        CKA.TOKEN: bool(values.get(CKA.TOKEN, False)),
        CKA.PRIVATE: bool(values.get(CKA.PRIVATE, False)),
        CKA.LABEL: str(values.get(CKA.LABEL, "")),
        CKA.MODIFIABLE: bool(values.get(CKA.MODIFIABLE, True)),
        CKA.COPYABLE: bool(values.get(CKA.COPYABLE, True)),
        CKA.DESTROYABLE: bool(values.get(CKA.DESTROYABLE, True)),
        CKA.UNIQUE_ID: uid,
    }


def _require_key_type(template: Template, expected: int, refusal: str) -> None:
    """CKA_KEY_TYPE must be in the template (TEMPLATE_INCOMPLETE) and be ``expected``
    (TEMPLATE_INCONSISTENT with ``refusal``)."""
    key_types = [attributes.decode(t, v) for t, v in template if t == CKA.KEY_TYPE]
    if not key_types:
        raise errors.TemplateIncomplete("CKA_KEY_TYPE is required")
    if key_types[0] != expected:
        raise errors.TemplateInconsistent(refusal)


def _class_of(template: Template) -> int:
    classes = {attributes.decode(t, v) for t, v in template if t == CKA.CLASS}
    if not classes:
        raise errors.TemplateIncomplete("CKA_CLASS is required")
    if len(classes) > 1:
        raise errors.TemplateInconsistent("CKA_CLASS given twice, differently")
    return int(classes.pop())


def build(template: Template, *, pin_configured: bool) -> dict[int, Any] | AesImport:
    """Validate a C_CreateObject template; the attributes of the new object, or an AES import.

    :raises errors.TemplateIncomplete: a required attribute is missing.
    :raises errors.TemplateInconsistent: a class or value this token cannot create.
    :raises errors.AttributeValueInvalid: a value that cannot be right (bad DER, bad point).
    """
    cls = _class_of(template)
    if cls == CKO.DATA:
        return _data(templates.validate(templates.DATA_CREATE, template))
    if cls == CKO.CERTIFICATE:
        return _certificate(templates.validate(templates.CERTIFICATE_CREATE, template))
    if cls == CKO.PUBLIC_KEY:
        _require_key_type(template, CKK.EC, "only EC (P-256) public keys can be created")
        return _ec_public(templates.validate(templates.EC_PUBLIC_CREATE, template))
    if cls == CKO.SECRET_KEY:
        _require_key_type(template, CKK.AES, "only AES keys can be imported (into a chip slot)")
        values = templates.validate(templates.AES_CREATE, template)
        if CKA.VALUE not in values:
            raise errors.TemplateIncomplete("CKA_VALUE is required")
        value = bytes(values[CKA.VALUE])
        if len(value) != 16:
            raise errors.AttributeValueInvalid("the chip holds AES-128 keys (16 bytes) only")
        request = policy.secret_key_request(
            values, pin_configured=pin_configured, value_len_required=False
        )
        return AesImport(value, request)
    if cls == CKO.PRIVATE_KEY:
        raise errors.TemplateInconsistent("private keys are made on the chip, not imported")
    raise errors.TemplateInconsistent(f"objects of class 0x{cls:X} cannot be created here")


def _data(values: dict[int, Any]) -> dict[int, Any]:
    uid = new_uid()
    attrs = _storage_defaults(values, uid)
    attrs.update(
        {
            CKA.CLASS: CKO.DATA,
            CKA.APPLICATION: str(values.get(CKA.APPLICATION, "")),
            CKA.OBJECT_ID: bytes(values.get(CKA.OBJECT_ID, b"")),
            CKA.VALUE: bytes(values.get(CKA.VALUE, b"")),
        }
    )
    return attrs


def _certificate(values: dict[int, Any]) -> dict[int, Any]:
    if CKA.CERTIFICATE_TYPE not in values:
        raise errors.TemplateIncomplete("CKA_CERTIFICATE_TYPE is required")
    if values[CKA.CERTIFICATE_TYPE] != CKC.X_509:
        raise errors.TemplateInconsistent("only X.509 certificates can be created")
    if CKA.VALUE not in values:
        raise errors.TemplateIncomplete("CKA_VALUE (the DER certificate) is required")
    value = bytes(values[CKA.VALUE])
    try:
        if der.der_length(value) != len(value):
            raise ValueError("trailing bytes after the certificate")
        fields = der.parse_certificate(value)
    except ValueError as exc:
        raise errors.AttributeValueInvalid(f"CKA_VALUE is not a DER certificate: {exc}") from None
    check = der.check_value(value)
    if CKA.CHECK_VALUE in values and bytes(values[CKA.CHECK_VALUE]) != check:
        raise errors.AttributeValueInvalid("CKA_CHECK_VALUE does not match the certificate")
    if CKA.PUBLIC_KEY_INFO in values and bytes(values[CKA.PUBLIC_KEY_INFO]) not in (
        b"",
        fields.spki,
    ):
        raise errors.AttributeValueInvalid("CKA_PUBLIC_KEY_INFO does not match the certificate")
    uid = new_uid()
    attrs = _storage_defaults(values, uid)
    attrs.update(
        {
            CKA.CLASS: CKO.CERTIFICATE,
            CKA.CERTIFICATE_TYPE: CKC.X_509,
            CKA.TRUSTED: False,
            CKA.CERTIFICATE_CATEGORY: int(
                values.get(CKA.CERTIFICATE_CATEGORY, CertificateCategory.UNSPECIFIED)
            ),
            CKA.CHECK_VALUE: check,
            CKA.START_DATE: bytes(values.get(CKA.START_DATE, b"")),
            CKA.END_DATE: bytes(values.get(CKA.END_DATE, b"")),
            CKA.PUBLIC_KEY_INFO: fields.spki,
            # The caller's SUBJECT/ISSUER/SERIAL are what it wants to search by (pkcs11-tool and
            # p11tool send the DER's own); without them, the DER's are used.
            CKA.SUBJECT: bytes(values.get(CKA.SUBJECT, fields.subject)),
            CKA.ID: bytes(values.get(CKA.ID, der.spki_id(fields.spki))),
            CKA.ISSUER: bytes(values.get(CKA.ISSUER, fields.issuer)),
            CKA.SERIAL_NUMBER: bytes(values.get(CKA.SERIAL_NUMBER, fields.serial_number)),
            CKA.VALUE: value,
            CKA.URL: str(values.get(CKA.URL, "")),
            CKA.HASH_OF_SUBJECT_PUBLIC_KEY: bytes(values.get(CKA.HASH_OF_SUBJECT_PUBLIC_KEY, b"")),
            CKA.HASH_OF_ISSUER_PUBLIC_KEY: bytes(values.get(CKA.HASH_OF_ISSUER_PUBLIC_KEY, b"")),
            CKA.JAVA_MIDP_SECURITY_DOMAIN: int(values.get(CKA.JAVA_MIDP_SECURITY_DOMAIN, 0)),
        }
    )
    return attrs


def _ec_public(values: dict[int, Any]) -> dict[int, Any]:
    if CKA.EC_PARAMS not in values:
        raise errors.TemplateIncomplete("CKA_EC_PARAMS is required")
    if CKA.EC_POINT not in values:
        raise errors.TemplateIncomplete("CKA_EC_POINT is required")
    policy.check_ec_params(values[CKA.EC_PARAMS])
    pub = point_xy(bytes(values[CKA.EC_POINT]))
    if pub is None:
        raise errors.AttributeValueInvalid("CKA_EC_POINT is not a P-256 point")
    if CKA.PUBLIC_KEY_INFO in values and bytes(values[CKA.PUBLIC_KEY_INFO]) not in (
        b"",
        der.spki(pub),
    ):
        raise errors.AttributeValueInvalid("CKA_PUBLIC_KEY_INFO does not match CKA_EC_POINT")
    uid = new_uid()
    attrs = _storage_defaults(values, uid)
    attrs.update(
        {
            CKA.CLASS: CKO.PUBLIC_KEY,
            CKA.KEY_TYPE: CKK.EC,
            CKA.ID: bytes(values.get(CKA.ID, der.key_id(pub))),
            CKA.START_DATE: bytes(values.get(CKA.START_DATE, b"")),
            CKA.END_DATE: bytes(values.get(CKA.END_DATE, b"")),
            CKA.DERIVE: False,
            CKA.LOCAL: False,
            CKA.KEY_GEN_MECHANISM: CK_UNAVAILABLE_INFORMATION,
            CKA.ALLOWED_MECHANISMS: tuple(values.get(CKA.ALLOWED_MECHANISMS, EC_SIGN_MECHANISMS)),
            CKA.SUBJECT: bytes(values.get(CKA.SUBJECT, b"")),
            CKA.ENCRYPT: False,
            CKA.VERIFY: bool(values.get(CKA.VERIFY, True)),
            CKA.VERIFY_RECOVER: False,
            CKA.WRAP: False,
            CKA.TRUSTED: False,
            CKA.EC_PARAMS: P256_EC_PARAMS,
            CKA.EC_POINT: der.ec_point(pub),
            CKA.PUBLIC_KEY_INFO: der.spki(pub),
        }
    )
    return attrs


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


def copy_attrs(obj: Pkcs11Object, template: Template) -> dict[int, Any]:
    """Attributes of a copy of ``obj`` with ``template`` applied (spec §5.7.2).

    Only CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE (which may only be
    made stricter where the original is) and the modifiable attributes may be given.
    """
    values = attributes.decode_template(template)
    allowed = set(MODIFIABLE_ATTRS) | {
        CKA.TOKEN,
        CKA.PRIVATE,
        CKA.MODIFIABLE,
        CKA.COPYABLE,
        CKA.DESTROYABLE,
    }
    for attr_type, value in values.items():
        if attr_type not in obj.attrs and attr_type not in (CKA.UNIQUE_ID,):
            raise errors.AttributeTypeInvalid(f"{attributes.names([attr_type])} not in object")
        if attr_type not in allowed:
            if obj.attrs.get(attr_type) == value:
                continue  # restating a value is harmless
            raise errors.AttributeReadOnly(f"{attributes.names([attr_type])} cannot be changed")
    if values.get(CKA.COPYABLE) is True and not obj.flag(CKA.COPYABLE):
        raise errors.TemplateInconsistent("a copy cannot be more copyable than the original")
    if values.get(CKA.MODIFIABLE) is True and not obj.flag(CKA.MODIFIABLE):
        raise errors.TemplateInconsistent("a copy cannot be more modifiable than the original")
    attrs = dict(obj.attrs)
    attrs.update(values)
    return attrs
