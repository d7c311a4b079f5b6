"""CKA → codec: how each attribute's value is laid out in CK_ATTRIBUTE.pValue, both ways.

Owns: the table of attribute kinds (BOOL, ULONG, BYTES, UTF8, DATE, ULONG_ARRAY) and the functions
that encode Python values into the raw bytes the ABI copies out, and decode caller templates once
into typed values. Must not: decide which attributes an object has (objects.py) or which values a
template may carry (templates.py, policy.py).

Widths follow the C ABI of the host: CK_ULONG is the platform ``unsigned long`` (``struct`` format
``@L``, 8 bytes on LP64), CK_BBOOL one byte. A value of the wrong length is
CKR_ATTRIBUTE_VALUE_INVALID; a type this module does not know is CKR_ATTRIBUTE_TYPE_INVALID.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import Any

from cryptoki import errors
from cryptoki.constants import CKA
from cryptoki.types import Template

ULONG_FORMAT = "@L"
ULONG_SIZE = struct.calcsize(ULONG_FORMAT)


class Kind(enum.Enum):
    """The C type behind an attribute's pValue."""

    BOOL = "CK_BBOOL"
    ULONG = "CK_ULONG"
    BYTES = "CK_BYTE array"
    UTF8 = "RFC 2279 string"
    DATE = "CK_DATE"
    ULONG_ARRAY = "CK_ULONG array"  # CKA_ALLOWED_MECHANISMS (CK_MECHANISM_TYPE[])


_B, _U, _BY, _S, _D, _UA = (
    Kind.BOOL,
    Kind.ULONG,
    Kind.BYTES,
    Kind.UTF8,
    Kind.DATE,
    Kind.ULONG_ARRAY,
)

#: Every attribute the core understands. Types absent here are unknown to this token and make
#: CKR_ATTRIBUTE_TYPE_INVALID wherever they appear.
KIND: dict[int, Kind] = {
    CKA.CLASS: _U,
    CKA.TOKEN: _B,
    CKA.PRIVATE: _B,
    CKA.LABEL: _S,
    CKA.UNIQUE_ID: _S,
    CKA.APPLICATION: _S,
    CKA.VALUE: _BY,
    CKA.OBJECT_ID: _BY,
    CKA.CERTIFICATE_TYPE: _U,
    CKA.ISSUER: _BY,
    CKA.SERIAL_NUMBER: _BY,
    CKA.AC_ISSUER: _BY,
    CKA.OWNER: _BY,
    CKA.ATTR_TYPES: _BY,
    CKA.TRUSTED: _B,
    CKA.CERTIFICATE_CATEGORY: _U,
    CKA.JAVA_MIDP_SECURITY_DOMAIN: _U,
    CKA.URL: _S,
    CKA.HASH_OF_SUBJECT_PUBLIC_KEY: _BY,
    CKA.HASH_OF_ISSUER_PUBLIC_KEY: _BY,
    CKA.NAME_HASH_ALGORITHM: _U,
    CKA.CHECK_VALUE: _BY,
    CKA.KEY_TYPE: _U,
    CKA.SUBJECT: _BY,
    CKA.ID: _BY,
    CKA.SENSITIVE: _B,
    CKA.ENCRYPT: _B,
    CKA.DECRYPT: _B,
    CKA.WRAP: _B,
    CKA.UNWRAP: _B,
    CKA.SIGN: _B,
    CKA.SIGN_RECOVER: _B,
    CKA.VERIFY: _B,
    CKA.VERIFY_RECOVER: _B,
    CKA.DERIVE: _B,
    CKA.START_DATE: _D,
    CKA.END_DATE: _D,
    CKA.MODULUS: _BY,
    CKA.MODULUS_BITS: _U,
    CKA.PUBLIC_EXPONENT: _BY,
    CKA.PUBLIC_KEY_INFO: _BY,
    CKA.VALUE_BITS: _U,
    CKA.VALUE_LEN: _U,
    CKA.EXTRACTABLE: _B,
    CKA.LOCAL: _B,
    CKA.NEVER_EXTRACTABLE: _B,
    CKA.ALWAYS_SENSITIVE: _B,
    CKA.KEY_GEN_MECHANISM: _U,
    CKA.MODIFIABLE: _B,
    CKA.COPYABLE: _B,
    CKA.DESTROYABLE: _B,
    CKA.EC_PARAMS: _BY,
    CKA.EC_POINT: _BY,
    CKA.ALWAYS_AUTHENTICATE: _B,
    CKA.WRAP_WITH_TRUSTED: _B,
    CKA.ALLOWED_MECHANISMS: _UA,
}


def encode_ulong(value: int) -> bytes:
    """A CK_ULONG in host byte order and width."""
    return struct.pack(ULONG_FORMAT, value)


def encode(attr_type: int, value: Any) -> bytes:
    """Raw pValue bytes for ``value`` of attribute ``attr_type``.

    :raises errors.AttributeTypeInvalid: the type is not in :data:`KIND`.
    """
    kind = KIND.get(attr_type)
    if kind is None:
        raise errors.AttributeTypeInvalid(f"attribute 0x{attr_type:X} unknown")
    if kind is Kind.BOOL:
        return b"\x01" if value else b"\x00"
    if kind is Kind.ULONG:
        return encode_ulong(int(value))
    if kind is Kind.UTF8:
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if kind is Kind.ULONG_ARRAY:
        return b"".join(encode_ulong(int(v)) for v in value)
    # BYTES and DATE are carried as bytes already (a DATE is b"" or b"YYYYMMDD").
    return bytes(value)


def decode(attr_type: int, raw: bytes) -> Any:
    """The typed value of one template entry.

    :raises errors.AttributeTypeInvalid: unknown type.
    :raises errors.AttributeValueInvalid: wrong length or encoding for the type.
    """
    kind = KIND.get(attr_type)
    if kind is None:
        raise errors.AttributeTypeInvalid(f"attribute 0x{attr_type:X} unknown")
    name = _name(attr_type)
    if kind is Kind.BOOL:
        if len(raw) != 1:
            raise errors.AttributeValueInvalid(f"{name}: CK_BBOOL must be 1 byte, got {len(raw)}")
        return raw != b"\x00"
    if kind is Kind.ULONG:
        if len(raw) != ULONG_SIZE:
            raise errors.AttributeValueInvalid(
                f"{name}: CK_ULONG must be {ULONG_SIZE} bytes, got {len(raw)}"
            )
        return struct.unpack(ULONG_FORMAT, raw)[0]
    if kind is Kind.UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.AttributeValueInvalid(f"{name}: not valid UTF-8") from None
    if kind is Kind.DATE:
        if raw and (len(raw) != 8 or not raw.isdigit()):
            raise errors.AttributeValueInvalid(f"{name}: CK_DATE must be empty or YYYYMMDD")
        return bytes(raw)
    if kind is Kind.ULONG_ARRAY:
        if len(raw) % ULONG_SIZE:
            raise errors.AttributeValueInvalid(f"{name}: not a whole number of CK_ULONGs")
        return tuple(v for (v,) in struct.iter_unpack(ULONG_FORMAT, raw))
    return bytes(raw)


def decode_template(template: Template) -> dict[int, Any]:
    """Decode a caller template once into ``{type: value}``.

    A type given twice with the same value is harmless; with different values the template
    contradicts itself, which the spec calls CKR_TEMPLATE_INCONSISTENT.
    """
    out: dict[int, Any] = {}
    for attr_type, raw in template:
        value = decode(attr_type, raw)
        if attr_type in out and out[attr_type] != value:
            raise errors.TemplateInconsistent(f"{_name(attr_type)} given twice, differently")
        out[attr_type] = value
    return out


def normalise_raw(attr_type: int, raw: bytes) -> bytes:
    """Raw bytes in canonical form for comparison: any non-zero CK_BBOOL compares as 1.

    Used by find matching, which compares a caller's raw value with an object's encoded one
    without failing the search on a value of the wrong length (such a value simply matches
    nothing).
    """
    if KIND.get(attr_type) is Kind.BOOL and len(raw) == 1:
        return b"\x01" if raw != b"\x00" else b"\x00"
    return bytes(raw)


def _name(attr_type: int) -> str:
    try:
        return f"CKA_{CKA(attr_type).name}"
    except ValueError:
        return f"CKA 0x{attr_type:X}"


def names(types: Iterable[int]) -> str:
    """A short human list of attribute names for log lines."""
    return ", ".join(_name(t) for t in types)
