"""Attribute schemas: everything the token knows about each attribute of each object class.

Owns: one table per object class (:data:`DATA`, :data:`X509_CERTIFICATE`, :data:`EC_PUBLIC_KEY`,
:data:`EC_PRIVATE_KEY`, :data:`AES_KEY`, :data:`GENERIC_SECRET_KEY`) mapping each attribute the
class has on this token to an :class:`Attr`: its default and its :class:`F` flags (named after
the footnotes of the spec's common attribute table, PKCS#11 3.0 §4.2 Table 10), plus the values
this token honours. Everything that used to be written per operation is derived from these
tables: template checks for C_CreateObject, C_GenerateKey[Pair] and C_DeriveKey
(:func:`validate`), defaults (:func:`complete`), what C_SetAttributeValue may change
(:func:`check_set`), what C_CopyObject may change (:func:`copy_values`) and which attributes are
never revealed (:func:`hidden`).
Must not: know about the chip. The ATECC608's own limits (P-256 only, keys always sensitive,
AES-128 only, which mechanisms a key may name) are an overlay applied afterwards by
``policy.py``; which values a token-built object gets is the builders' business (``objects.py``).

Precedence inside one template, as SoftHSM2 and kryoptic order it: an attribute the class does
not have (CKR_ATTRIBUTE_TYPE_INVALID), then a malformed value (CKR_ATTRIBUTE_VALUE_INVALID), then
an attribute the operation may not set (CKR_ATTRIBUTE_READ_ONLY), then a value the token cannot
honour (CKR_TEMPLATE_INCONSISTENT), then a missing required attribute (CKR_TEMPLATE_INCOMPLETE).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from atecc.record import record
from cryptoki import attributes, errors
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKA, CKC, CKK, CKO
from cryptoki.types import Template


class F(enum.Flag):
    """What the spec (and this token) lets happen to one attribute. Footnotes: Table 10."""

    NONE = 0
    REQUIRED_ON_CREATE = enum.auto()  #: fn 1: C_CreateObject must give it
    NOT_ON_CREATE = enum.auto()  #: fn 2: C_CreateObject must not give it (the token sets it)
    REQUIRED_ON_GENERATE = enum.auto()  #: fn 3: C_GenerateKey[Pair] must give it
    NOT_ON_GENERATE = enum.auto()  #: fn 4: generate (and derive) must not give it
    SENSITIVE = enum.auto()  #: fn 7: never revealed while CKA_SENSITIVE or not CKA_EXTRACTABLE
    MODIFIABLE = enum.auto()  #: fn 8: C_SetAttributeValue and C_CopyObject may change it
    COPY = enum.auto()  #: C_CopyObject may change it (CKA_TOKEN, CKA_PRIVATE, §5.7.2; Table 4)
    ONLY_TO_FALSE = enum.auto()  #: fn 12 (and Table 4's CKA_COPYABLE): once false, stays false
    ONLY_TO_TRUE = enum.auto()  #: fn 11: once true, stays true (CKA_SENSITIVE)
    OPTIONAL = enum.auto()  #: accepted in templates; objects carry it only when it was given

    # Shorthands: set by the token only.
    TOKEN_SET = NOT_ON_CREATE | NOT_ON_GENERATE


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: An attribute without a default: required, token-computed, or OPTIONAL.
NO_DEFAULT: Any = _NoDefault()


@record(frozen=True)
class Attr:
    """One attribute of one class on this token.

    :ivar default: the value an object gets when no template gave one (:data:`NO_DEFAULT`: the
        attribute is required, computed by the token, or OPTIONAL).
    :ivar flags: :class:`F` members.
    :ivar values: the only values this token honours, or None for any well-formed value.
    """

    default: Any = NO_DEFAULT
    flags: F = F.NONE
    values: frozenset[Any] | None = None


Schema = Mapping[int, Attr]


def _only(*values: Any) -> frozenset[Any]:
    return frozenset(values)


_FALSE_ONLY = _only(False)

#: Common storage-object attributes (§4.4). CKA_PRIVATE's default is token-specific (fn 9): the
#: token passes it to :func:`complete`.
STORAGE: Schema = {
    CKA.TOKEN: Attr(False, F.COPY),
    CKA.PRIVATE: Attr(False, F.COPY),
    CKA.MODIFIABLE: Attr(True, F.COPY | F.ONLY_TO_FALSE),
    CKA.COPYABLE: Attr(True, F.COPY | F.ONLY_TO_FALSE),
    CKA.DESTROYABLE: Attr(True, F.COPY),
    CKA.LABEL: Attr("", F.MODIFIABLE),
    CKA.UNIQUE_ID: Attr(NO_DEFAULT, F.TOKEN_SET),
}

#: CKO_DATA (§4.5).
DATA: Schema = {
    **STORAGE,
    CKA.CLASS: Attr(CKO.DATA, values=_only(CKO.DATA)),
    CKA.APPLICATION: Attr("", F.MODIFIABLE),
    CKA.OBJECT_ID: Attr(b"", F.MODIFIABLE),
    CKA.VALUE: Attr(b"", F.MODIFIABLE),
}

#: X.509 public-key certificate (§4.6.3). CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER and
#: CKA_CHECK_VALUE default to what the DER says (``objects.py`` computes them); a certificate
#: keeps the subject its DER names, so CKA_SUBJECT is not modifiable here.
X509_CERTIFICATE: Schema = {
    **STORAGE,
    CKA.CLASS: Attr(CKO.CERTIFICATE, values=_only(CKO.CERTIFICATE)),
    CKA.CERTIFICATE_TYPE: Attr(CKC.X_509, F.REQUIRED_ON_CREATE, _only(CKC.X_509)),
    CKA.TRUSTED: Attr(False, values=_FALSE_ONLY),  # fn 10: only the SO sets it; no SO objects
    CKA.CERTIFICATE_CATEGORY: Attr(0, values=_only(0, 1, 2, 3)),
    CKA.CHECK_VALUE: Attr(),  # must match the DER if given
    CKA.START_DATE: Attr(b"", F.MODIFIABLE),
    CKA.END_DATE: Attr(b"", F.MODIFIABLE),
    CKA.PUBLIC_KEY_INFO: Attr(),  # must match the DER if given
    CKA.SUBJECT: Attr(),
    CKA.ID: Attr(b"", F.MODIFIABLE),
    CKA.ISSUER: Attr(),
    CKA.SERIAL_NUMBER: Attr(),
    CKA.VALUE: Attr(NO_DEFAULT, F.REQUIRED_ON_CREATE),
    CKA.URL: Attr(""),
    CKA.HASH_OF_SUBJECT_PUBLIC_KEY: Attr(b""),
    CKA.HASH_OF_ISSUER_PUBLIC_KEY: Attr(b""),
    CKA.JAVA_MIDP_SECURITY_DOMAIN: Attr(0, values=_only(0, 1, 2, 3)),
    CKA.NAME_HASH_ALGORITHM: Attr(NO_DEFAULT, F.OPTIONAL),
}

#: Common key attributes (§4.7). CKA_LOCAL and CKA_KEY_GEN_MECHANISM are the token's to say.
KEY: Schema = {
    **STORAGE,
    CKA.KEY_TYPE: Attr(NO_DEFAULT, F.REQUIRED_ON_CREATE),
    CKA.ID: Attr(b"", F.MODIFIABLE),
    CKA.START_DATE: Attr(b"", F.MODIFIABLE),
    CKA.END_DATE: Attr(b"", F.MODIFIABLE),
    CKA.DERIVE: Attr(False),
    CKA.LOCAL: Attr(False, F.TOKEN_SET),
    CKA.KEY_GEN_MECHANISM: Attr(CK_UNAVAILABLE_INFORMATION, F.TOKEN_SET),
    CKA.ALLOWED_MECHANISMS: Attr(),
}

#: EC (P-256) public key (§4.8, §6.3.3).
EC_PUBLIC_KEY: Schema = {
    **KEY,
    CKA.CLASS: Attr(CKO.PUBLIC_KEY, values=_only(CKO.PUBLIC_KEY)),
    CKA.KEY_TYPE: Attr(CKK.EC, F.REQUIRED_ON_CREATE, _only(CKK.EC)),
    CKA.SUBJECT: Attr(b"", F.MODIFIABLE),
    CKA.ENCRYPT: Attr(False, values=_FALSE_ONLY),
    CKA.VERIFY: Attr(True),
    CKA.VERIFY_RECOVER: Attr(False, values=_FALSE_ONLY),
    CKA.WRAP: Attr(False, values=_FALSE_ONLY),
    CKA.TRUSTED: Attr(False, values=_FALSE_ONLY),  # fn 10
    CKA.EC_PARAMS: Attr(NO_DEFAULT, F.REQUIRED_ON_CREATE | F.REQUIRED_ON_GENERATE),
    CKA.EC_POINT: Attr(NO_DEFAULT, F.REQUIRED_ON_CREATE | F.NOT_ON_GENERATE),
    CKA.PUBLIC_KEY_INFO: Attr(NO_DEFAULT, F.NOT_ON_GENERATE),  # must match if given on create
}

#: EC (P-256) private key (§4.9, §6.3.4). Never created from outside: it is made on the chip.
EC_PRIVATE_KEY: Schema = {
    **KEY,
    CKA.CLASS: Attr(CKO.PRIVATE_KEY, values=_only(CKO.PRIVATE_KEY)),
    CKA.KEY_TYPE: Attr(CKK.EC, values=_only(CKK.EC)),
    CKA.SUBJECT: Attr(b"", F.MODIFIABLE),
    CKA.SENSITIVE: Attr(True, F.ONLY_TO_TRUE),
    CKA.DECRYPT: Attr(False, values=_FALSE_ONLY),
    CKA.SIGN: Attr(True),
    CKA.SIGN_RECOVER: Attr(False, values=_FALSE_ONLY),
    CKA.UNWRAP: Attr(False, values=_FALSE_ONLY),
    CKA.EXTRACTABLE: Attr(False, F.ONLY_TO_FALSE),
    CKA.ALWAYS_SENSITIVE: Attr(True, F.TOKEN_SET),
    CKA.NEVER_EXTRACTABLE: Attr(True, F.TOKEN_SET),
    CKA.WRAP_WITH_TRUSTED: Attr(False, values=_FALSE_ONLY),
    CKA.ALWAYS_AUTHENTICATE: Attr(False, values=_FALSE_ONLY),
    CKA.EC_PARAMS: Attr(NO_DEFAULT),  # optional in the private template; must agree
    CKA.PUBLIC_KEY_INFO: Attr(NO_DEFAULT, F.TOKEN_SET),
    CKA.VALUE: Attr(b"", F.TOKEN_SET | F.SENSITIVE),
}

#: Secret keys (§4.10) common part.
_SECRET: Schema = {
    **KEY,
    CKA.CLASS: Attr(CKO.SECRET_KEY, values=_only(CKO.SECRET_KEY)),
    CKA.SENSITIVE: Attr(True, F.ONLY_TO_TRUE),
    CKA.EXTRACTABLE: Attr(False, F.ONLY_TO_FALSE),
    CKA.ALWAYS_SENSITIVE: Attr(True, F.TOKEN_SET),
    CKA.NEVER_EXTRACTABLE: Attr(True, F.TOKEN_SET),
    CKA.WRAP_WITH_TRUSTED: Attr(NO_DEFAULT, F.OPTIONAL, _FALSE_ONLY),
    CKA.TRUSTED: Attr(NO_DEFAULT, F.OPTIONAL, _FALSE_ONLY),
    CKA.CHECK_VALUE: Attr(NO_DEFAULT, F.TOKEN_SET | F.OPTIONAL),
    CKA.VALUE_LEN: Attr(NO_DEFAULT),
}

#: AES key (§6.8) held in a chip slot's key block: generated there or imported.
AES_KEY: Schema = {
    **_SECRET,
    CKA.KEY_TYPE: Attr(CKK.AES, F.REQUIRED_ON_CREATE, _only(CKK.AES)),
    CKA.DERIVE: Attr(False, values=_FALSE_ONLY),
    CKA.ENCRYPT: Attr(True),
    CKA.DECRYPT: Attr(True),
    CKA.SIGN: Attr(False, values=_FALSE_ONLY),
    CKA.VERIFY: Attr(False, values=_FALSE_ONLY),
    CKA.WRAP: Attr(False, values=_FALSE_ONLY),
    CKA.UNWRAP: Attr(False, values=_FALSE_ONLY),
    CKA.VALUE_LEN: Attr(NO_DEFAULT, F.REQUIRED_ON_GENERATE),
    CKA.VALUE: Attr(b"", F.REQUIRED_ON_CREATE | F.NOT_ON_GENERATE | F.SENSITIVE),
}

#: Generic secret (§6.7.3): the host-held result of ECDH (C_DeriveKey; session objects only), and
#: the HMAC keys a slot file names (in a chip slot). The usage flags are what the template says.
GENERIC_SECRET_KEY: Schema = {
    **_SECRET,
    CKA.TOKEN: Attr(False, F.COPY, _FALSE_ONLY),  # the secret exists on the host only
    CKA.KEY_TYPE: Attr(CKK.GENERIC_SECRET, values=_only(CKK.GENERIC_SECRET)),
    CKA.ALWAYS_SENSITIVE: Attr(False, F.TOKEN_SET),
    CKA.NEVER_EXTRACTABLE: Attr(False, F.TOKEN_SET),
    CKA.ENCRYPT: Attr(False),
    CKA.DECRYPT: Attr(False),
    CKA.SIGN: Attr(False),
    CKA.VERIFY: Attr(False),
    CKA.WRAP: Attr(False),
    CKA.UNWRAP: Attr(False),
    CKA.VALUE: Attr(b"", F.NOT_ON_CREATE | F.NOT_ON_GENERATE | F.SENSITIVE),
}

#: (CKA_CLASS, CKA_KEY_TYPE or None) → schema.
_BY_CLASS: dict[tuple[int, int | None], Schema] = {
    (CKO.DATA, None): DATA,
    (CKO.CERTIFICATE, None): X509_CERTIFICATE,
    (CKO.PUBLIC_KEY, CKK.EC): EC_PUBLIC_KEY,
    (CKO.PRIVATE_KEY, CKK.EC): EC_PRIVATE_KEY,
    (CKO.SECRET_KEY, CKK.AES): AES_KEY,
    (CKO.SECRET_KEY, CKK.GENERIC_SECRET): GENERIC_SECRET_KEY,
}


_KEY_CLASSES = (CKO.PUBLIC_KEY, CKO.PRIVATE_KEY, CKO.SECRET_KEY)


def overlay(schema: Schema, limits: Mapping[int, frozenset[Any]]) -> Schema:
    """``schema`` with narrower honoured values (the chip's limits, from ``policy.py``)."""
    return {
        t: Attr(spec.default, spec.flags, limits[t]) if t in limits else spec
        for t, spec in schema.items()
    }


def schema_of(attrs: Mapping[int, Any]) -> Schema:
    """The schema of an object (or a complete attribute set) from its class and key type."""
    cls = attrs[CKA.CLASS]
    key_type = attrs.get(CKA.KEY_TYPE) if cls in _KEY_CLASSES else None
    return _BY_CLASS[(cls, key_type)]


class Op(enum.Enum):
    """The operation a template is checked for."""

    CREATE = "C_CreateObject"
    GENERATE = "C_GenerateKey/C_GenerateKeyPair"
    DERIVE = "C_DeriveKey"  # the spec's generate footnotes (3, 4) apply to derived keys too


_READ_ONLY_FLAG = {
    Op.CREATE: F.NOT_ON_CREATE,
    Op.GENERATE: F.NOT_ON_GENERATE,
    Op.DERIVE: F.NOT_ON_GENERATE,
}
_REQUIRED_FLAG = {
    Op.CREATE: F.REQUIRED_ON_CREATE,
    Op.GENERATE: F.REQUIRED_ON_GENERATE,
    Op.DERIVE: F.NONE,
}


def _name(attr_type: int) -> str:
    return attributes.names([attr_type])


def validate(schema: Schema, template: Template, op: Op) -> dict[int, Any]:
    """Decode ``template`` and check it against ``schema`` for ``op``; returns ``{CKA: value}``.

    :raises errors.AttributeTypeInvalid: a type the class does not have.
    :raises errors.AttributeValueInvalid: a value of the wrong length/encoding.
    :raises errors.AttributeReadOnly: a type only the token sets for this operation.
    :raises errors.TemplateInconsistent: a value the token cannot honour.
    :raises errors.TemplateIncomplete: a required attribute is missing.
    """
    for attr_type, _ in template:
        if attr_type not in schema:
            raise errors.AttributeTypeInvalid(
                f"{_name(attr_type)} is not an attribute of this object class"
            )
    values = attributes.decode_template(template)
    read_only = _READ_ONLY_FLAG[op]
    for attr_type in values:
        if schema[attr_type].flags & read_only:
            raise errors.AttributeReadOnly(f"{_name(attr_type)} is set by the token")
    for attr_type, value in values.items():
        allowed = schema[attr_type].values
        if allowed is not None and value not in allowed:
            raise errors.TemplateInconsistent(f"{_name(attr_type)} = {value!r} cannot be honoured")
    required = _REQUIRED_FLAG[op]
    if required:
        for attr_type, spec in schema.items():
            if spec.flags & required and attr_type not in values:
                raise errors.TemplateIncomplete(f"{_name(attr_type)} is required")
    return values


def complete(
    schema: Schema, given: Mapping[int, Any], defaults: Mapping[int, Any] | None = None
) -> dict[int, Any]:
    """A full attribute set: ``given``, then ``defaults`` (token-specific), then the schema's.

    Attributes without any value (OPTIONAL ones not given, or ones the caller computes later)
    are left out; :func:`check_complete` tells the builders when they forgot one.
    """
    out: dict[int, Any] = {}
    for attr_type, spec in schema.items():
        if attr_type in given:
            out[attr_type] = given[attr_type]
        elif defaults is not None and attr_type in defaults:
            out[attr_type] = defaults[attr_type]
        elif spec.default is not NO_DEFAULT and not spec.flags & F.OPTIONAL:
            out[attr_type] = spec.default
    return out


def missing(schema: Schema, attrs: Mapping[int, Any]) -> list[int]:
    """Attributes a complete object of this schema must have but ``attrs`` lacks."""
    return [t for t, spec in schema.items() if not spec.flags & F.OPTIONAL and t not in attrs]


def hidden(schema: Schema, attrs: Mapping[int, Any]) -> frozenset[int]:
    """Attributes never revealed for this object (fn 7): the SENSITIVE ones, while the object
    is sensitive or not extractable."""
    if attrs.get(CKA.SENSITIVE, False) or not attrs.get(CKA.EXTRACTABLE, True):
        return frozenset(t for t, spec in schema.items() if spec.flags & F.SENSITIVE)
    return frozenset()


def settable(schema: Schema, attrs: Mapping[int, Any]) -> frozenset[int]:
    """What C_SetAttributeValue may change on this object (fn 8), given its CKA_MODIFIABLE."""
    if not attrs.get(CKA.MODIFIABLE, False):
        return frozenset()
    return frozenset(t for t, spec in schema.items() if spec.flags & F.MODIFIABLE)


def _check_direction(schema: Schema, attrs: Mapping[int, Any], attr_type: int, value: Any) -> None:
    flags = schema[attr_type].flags
    old = attrs.get(attr_type)
    if flags & F.ONLY_TO_FALSE and value is True and old is False:
        raise errors.TemplateInconsistent(f"{_name(attr_type)} cannot become true again")
    if flags & F.ONLY_TO_TRUE and value is False and old is True:
        raise errors.TemplateInconsistent(f"{_name(attr_type)} cannot become false again")


def check_set(schema: Schema, attrs: Mapping[int, Any], values: Mapping[int, Any]) -> None:
    """C_SetAttributeValue (§5.7.6): everything is checked before anything changes.

    :raises errors.ActionProhibited: the object has CKA_MODIFIABLE false (3.0 §4.4.1).
    :raises errors.AttributeTypeInvalid: an attribute the object's class does not have.
    :raises errors.AttributeReadOnly: an attribute this token never lets change.
    """
    if values and not attrs.get(CKA.MODIFIABLE, False):
        raise errors.ActionProhibited("the object has CKA_MODIFIABLE false")
    allowed = settable(schema, attrs)
    for attr_type in values:
        if attr_type not in schema and attr_type not in attrs:
            raise errors.AttributeTypeInvalid(
                f"{_name(attr_type)} is not an attribute of this object"
            )
    for attr_type, value in values.items():
        if attr_type not in allowed:
            raise errors.AttributeReadOnly(f"{_name(attr_type)} is read-only")
        _check_direction(schema, attrs, attr_type, value)
        spec_values = schema[attr_type].values
        if spec_values is not None and value not in spec_values:
            raise errors.AttributeValueInvalid(f"{_name(attr_type)} = {value!r} cannot be honoured")


def copy_values(
    schema: Schema, attrs: Mapping[int, Any], values: Mapping[int, Any]
) -> dict[int, Any]:
    """The attributes of a C_CopyObject copy (§5.7.2): the original's, with ``values`` applied.

    The template may change what C_SetAttributeValue could change, and the COPY attributes
    (CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE, CKA_DESTROYABLE), the last ones only
    in the stricter direction; restating any other attribute's current value is harmless.
    """
    copyable = {t for t, spec in schema.items() if spec.flags & (F.COPY | F.MODIFIABLE)}
    for attr_type, value in values.items():
        if attr_type not in attrs and attr_type != CKA.UNIQUE_ID:
            raise errors.AttributeTypeInvalid(f"{_name(attr_type)} not in object")
        if attr_type not in copyable:
            if attrs.get(attr_type) == value:
                continue
            raise errors.AttributeReadOnly(f"{_name(attr_type)} cannot be changed")
        _check_direction(schema, attrs, attr_type, value)
        spec_values = schema[attr_type].values
        if spec_values is not None and value not in spec_values:
            raise errors.TemplateInconsistent(f"{_name(attr_type)} = {value!r} cannot be honoured")
    out = dict(attrs)
    out.update(values)
    return out
