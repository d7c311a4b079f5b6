"""C_CreateObject templates → the complete attribute sets of new objects.

Owns: which classes an application may create on this token (CKO_DATA, X.509 certificates, P-256
public keys, and AES secret keys, whose value goes into a chip slot) and the consistency checks
between the DER the caller gives and the attributes it claims (CKA_CHECK_VALUE, CKA_EC_POINT,
CKA_PUBLIC_KEY_INFO must match). Which attributes each class has, their defaults and flags come
from ``schema.py``; the chip's limits on AES keys from ``policy.py``.
Must not: allocate chip slots, write files (the token does) or decide access (``access.py``).
"""

from __future__ import annotations

import os
from typing import Any

from atecc.der import element_length
from cryptoki import attributes, der, errors, mechanisms, policy, schema
from cryptoki.constants import CKA, CKK, CKO, P256_EC_PARAMS
from cryptoki.types import Template


def new_uid() -> str:
    """CKA_UNIQUE_ID of a created object: 128 random bits, hex."""
    return os.urandom(16).hex()


def _first(template: Template, attr_type: int) -> Any:
    values = {attributes.decode(t, v) for t, v in template if t == attr_type}
    if len(values) > 1:
        raise errors.TemplateInconsistent(f"{attributes.names([attr_type])} given twice")
    return values.pop() if values else None


def build(template: Template, *, pin_configured: bool) -> dict[int, Any] | policy.SecretKeyRequest:
    """Validate a C_CreateObject template; the attributes of the new object, or an AES import.

    :raises errors.TemplateIncomplete: a required attribute is missing.
    :raises errors.TemplateInconsistent: a class or value this token cannot create.
    :raises errors.AttributeValueInvalid: a value that cannot be right (bad DER, bad point).
    """
    cls = _first(template, CKA.CLASS)
    if cls is None:
        raise errors.TemplateIncomplete("CKA_CLASS is required")
    if cls == CKO.PRIVATE_KEY:
        raise errors.TemplateInconsistent("private keys are made on the chip, not imported")
    if cls in (CKO.PUBLIC_KEY, CKO.SECRET_KEY):
        key_type = _first(template, CKA.KEY_TYPE)
        if key_type is None:
            raise errors.TemplateIncomplete("CKA_KEY_TYPE is required")
        if cls == CKO.SECRET_KEY:
            if key_type != CKK.AES:
                raise errors.TemplateInconsistent(
                    "only AES keys can be imported (into a chip slot)"
                )
            return policy.secret_key_request(
                template, schema.Op.CREATE, pin_configured=pin_configured
            )
        if key_type != CKK.EC:
            raise errors.TemplateInconsistent("only EC (P-256) public keys can be created")
        return _ec_public(schema.validate(schema.EC_PUBLIC_KEY, template, schema.Op.CREATE))
    if cls == CKO.DATA:
        return _complete(schema.DATA, schema.validate(schema.DATA, template, schema.Op.CREATE), {})
    if cls == CKO.CERTIFICATE:
        schema_ = schema.X509_CERTIFICATE
        return _certificate(schema.validate(schema_, template, schema.Op.CREATE))
    raise errors.TemplateInconsistent(f"objects of class 0x{int(cls):X} cannot be created here")


def _complete(
    table: schema.Schema, values: dict[int, Any], computed: dict[int, Any]
) -> dict[int, Any]:
    """Given values, then token-computed ones, then the schema's defaults; a fresh unique ID."""
    return schema.complete(table, values, {**computed, CKA.UNIQUE_ID: new_uid()})


def _certificate(values: dict[int, Any]) -> dict[int, Any]:
    value = bytes(values[CKA.VALUE])
    try:
        if element_length(value) != len(value):
            raise ValueError("trailing bytes after the certificate")
        fields = der.parse_certificate(value)
    except ValueError as exc:
        raise errors.AttributeValueInvalid(f"CKA_VALUE is not a DER certificate: {exc}") from None
    check = der.check_value(value)
    if CKA.CHECK_VALUE in values and bytes(values[CKA.CHECK_VALUE]) != check:
        raise errors.AttributeValueInvalid("CKA_CHECK_VALUE does not match the certificate")
    if values.get(CKA.PUBLIC_KEY_INFO, b"") not in (b"", fields.spki):
        raise errors.AttributeValueInvalid("CKA_PUBLIC_KEY_INFO does not match the certificate")
    # The caller's SUBJECT/ISSUER/SERIAL are what it wants to search by (pkcs11-tool and p11tool
    # send the DER's own); without them, the DER's are used.
    computed: dict[int, Any] = {
        CKA.CHECK_VALUE: check,
        CKA.PUBLIC_KEY_INFO: fields.spki,
        CKA.SUBJECT: fields.subject,
        CKA.ID: der.spki_id(fields.spki),
        CKA.ISSUER: fields.issuer,
        CKA.SERIAL_NUMBER: fields.serial_number,
    }
    values.pop(CKA.CHECK_VALUE, None)
    values.pop(CKA.PUBLIC_KEY_INFO, None)
    return _complete(schema.X509_CERTIFICATE, values, computed)


def _ec_public(values: dict[int, Any]) -> dict[int, Any]:
    policy.check_ec_params(values[CKA.EC_PARAMS])
    pub = der.point_xy(bytes(values[CKA.EC_POINT]))
    if pub is None:
        raise errors.AttributeValueInvalid("CKA_EC_POINT is not a P-256 point")
    if values.get(CKA.PUBLIC_KEY_INFO, b"") not in (b"", der.spki(pub)):
        raise errors.AttributeValueInvalid("CKA_PUBLIC_KEY_INFO does not match CKA_EC_POINT")
    computed: dict[int, Any] = {
        CKA.ID: der.key_id(pub),
        CKA.ALLOWED_MECHANISMS: mechanisms.usable_with(CKO.PUBLIC_KEY, CKK.EC, mechanisms.VERIFY),
    }
    # The token's canonical encodings, whatever spelling the caller used.
    values[CKA.EC_PARAMS] = P256_EC_PARAMS
    values[CKA.EC_POINT] = der.ec_point(pub)
    values[CKA.PUBLIC_KEY_INFO] = der.spki(pub)
    return _complete(schema.EC_PUBLIC_KEY, values, computed)
