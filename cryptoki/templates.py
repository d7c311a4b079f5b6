"""Template schemas: which attributes a caller may put in a template for an operation, and values.

Owns: the generic, spec-level validation of C_GenerateKeyPair, C_GenerateKey, C_CreateObject and
C_DeriveKey templates (class by class), as data.
Each schema maps an attribute to a :class:`Rule`: ANY value, a fixed set of values, or READ_ONLY
(the spec's "must not be specified when the object is generated", Table 10 footnote 4, e.g.
CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_EC_POINT). An attribute outside the schema is not an
attribute of the class: CKR_ATTRIBUTE_TYPE_INVALID. Must not: know about the chip; the chip's
narrower rules (P-256 only, keys always sensitive) are layered on afterwards by ``policy.py``.

Precedence inside one template, as SoftHSM/kryoptic do: unknown type (TYPE_INVALID) is reported
first, then read-only attributes (ATTRIBUTE_READ_ONLY), then values outside the allowed set
(TEMPLATE_INCONSISTENT, the spec's code when a value cannot be honoured for this token).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from cryptoki import attributes, errors
from cryptoki.constants import CKA, CKK, CKO
from cryptoki.types import Template


class Kind(enum.Enum):
    ANY = "any value"
    ONE_OF = "one of a fixed set"
    READ_ONLY = "set by the token only"


@dataclass(frozen=True)
class Rule:
    kind: Kind
    allowed: frozenset[Any] = frozenset()

    def check(self, attr_type: int, value: Any) -> None:
        name = attributes.names([attr_type])
        if self.kind is Kind.READ_ONLY:
            raise errors.AttributeReadOnly(f"{name} is set by the token")
        if self.kind is Kind.ONE_OF and value not in self.allowed:
            raise errors.TemplateInconsistent(f"{name} = {value!r} cannot be honoured")


ANY = Rule(Kind.ANY)
READ_ONLY = Rule(Kind.READ_ONLY)


def one_of(*values: Any) -> Rule:
    return Rule(Kind.ONE_OF, frozenset(values))


FALSE_ONLY = one_of(False)
TRUE_ONLY = one_of(True)

#: Attributes of every storage object (spec §4.4) as they may appear in a generate template.
#: Chip keys are always modifiable (label, ID... live in the metadata file) and copyable (a copy
#: is a session object naming the same chip slot); a template cannot turn that off.
_STORAGE: dict[int, Rule] = {
    CKA.TOKEN: ANY,
    CKA.PRIVATE: ANY,
    CKA.LABEL: ANY,
    CKA.MODIFIABLE: TRUE_ONLY,
    CKA.COPYABLE: TRUE_ONLY,
    CKA.DESTROYABLE: ANY,
    CKA.UNIQUE_ID: READ_ONLY,
}

#: Storage attributes of objects the application creates (held by the token, not the chip).
_CREATED_STORAGE: dict[int, Rule] = {
    **_STORAGE,
    CKA.MODIFIABLE: ANY,
    CKA.COPYABLE: ANY,
}

#: Common key attributes (spec §4.7).
_KEY: dict[int, Rule] = {
    **_STORAGE,
    CKA.KEY_TYPE: one_of(CKK.EC),
    CKA.ID: ANY,
    CKA.START_DATE: ANY,
    CKA.END_DATE: ANY,
    CKA.DERIVE: ANY,
    CKA.LOCAL: READ_ONLY,
    CKA.KEY_GEN_MECHANISM: READ_ONLY,
    CKA.ALLOWED_MECHANISMS: ANY,
    CKA.SUBJECT: ANY,
}

#: EC public key, generate (spec §4.8, §6.3.3).
EC_PUBLIC_GENERATE: dict[int, Rule] = {
    **_KEY,
    CKA.CLASS: one_of(CKO.PUBLIC_KEY),
    CKA.ENCRYPT: FALSE_ONLY,
    CKA.VERIFY: ANY,
    CKA.VERIFY_RECOVER: FALSE_ONLY,
    CKA.WRAP: FALSE_ONLY,
    CKA.TRUSTED: FALSE_ONLY,  # only the SO may set it, and there is no SO here
    CKA.EC_PARAMS: ANY,  # required; checked by policy.py
    CKA.EC_POINT: READ_ONLY,
    CKA.PUBLIC_KEY_INFO: READ_ONLY,
}

#: EC private key, generate (spec §4.9, §6.3.4).
EC_PRIVATE_GENERATE: dict[int, Rule] = {
    **_KEY,
    CKA.CLASS: one_of(CKO.PRIVATE_KEY),
    CKA.SENSITIVE: ANY,  # policy.py: must be true
    CKA.DECRYPT: FALSE_ONLY,
    CKA.SIGN: ANY,
    CKA.SIGN_RECOVER: FALSE_ONLY,
    CKA.UNWRAP: FALSE_ONLY,
    CKA.EXTRACTABLE: ANY,  # policy.py: must be false
    CKA.ALWAYS_SENSITIVE: READ_ONLY,
    CKA.NEVER_EXTRACTABLE: READ_ONLY,
    CKA.WRAP_WITH_TRUSTED: FALSE_ONLY,
    CKA.ALWAYS_AUTHENTICATE: FALSE_ONLY,
    CKA.EC_PARAMS: ANY,  # optional on the private side; must agree if given
    CKA.VALUE: READ_ONLY,
    CKA.PUBLIC_KEY_INFO: READ_ONLY,
}


#: AES secret key, C_GenerateKey(CKM_AES_KEY_GEN) (spec §4.10, §6.8): written into a chip slot.
AES_GENERATE: dict[int, Rule] = {
    **_KEY,
    CKA.CLASS: one_of(CKO.SECRET_KEY),
    CKA.KEY_TYPE: one_of(CKK.AES),
    CKA.DERIVE: FALSE_ONLY,
    CKA.ALLOWED_MECHANISMS: ANY,  # policy.py: AES mechanisms only
    CKA.VALUE_LEN: ANY,  # policy.py: 16 only (AES-128 is the chip's one key size)
    CKA.SENSITIVE: ANY,  # policy.py: must be true
    CKA.EXTRACTABLE: ANY,  # policy.py: must be false
    CKA.ENCRYPT: ANY,
    CKA.DECRYPT: ANY,
    CKA.SIGN: FALSE_ONLY,
    CKA.VERIFY: FALSE_ONLY,
    CKA.WRAP: FALSE_ONLY,
    CKA.UNWRAP: FALSE_ONLY,
    CKA.WRAP_WITH_TRUSTED: FALSE_ONLY,
    CKA.TRUSTED: FALSE_ONLY,
    CKA.ALWAYS_SENSITIVE: READ_ONLY,
    CKA.NEVER_EXTRACTABLE: READ_ONLY,
    CKA.VALUE: READ_ONLY,
    CKA.CHECK_VALUE: READ_ONLY,
}

#: AES secret key imported with C_CreateObject: as generated, plus the value itself.
AES_CREATE: dict[int, Rule] = {**AES_GENERATE, CKA.VALUE: ANY}

#: The secret key C_DeriveKey(CKM_ECDH1_DERIVE) makes: a host-held session object.
ECDH_DERIVED: dict[int, Rule] = {
    **_KEY,
    CKA.TOKEN: FALSE_ONLY,  # the secret exists on the host only; it is never written to disk
    CKA.MODIFIABLE: ANY,
    CKA.COPYABLE: ANY,
    CKA.CLASS: one_of(CKO.SECRET_KEY),
    CKA.KEY_TYPE: one_of(CKK.GENERIC_SECRET),
    CKA.VALUE_LEN: ANY,  # policy: at most 32 (the chip's shared x-coordinate)
    CKA.SENSITIVE: ANY,
    CKA.EXTRACTABLE: ANY,
    CKA.ENCRYPT: ANY,
    CKA.DECRYPT: ANY,
    CKA.SIGN: ANY,
    CKA.VERIFY: ANY,
    CKA.WRAP: ANY,
    CKA.UNWRAP: ANY,
    CKA.WRAP_WITH_TRUSTED: FALSE_ONLY,
    CKA.TRUSTED: FALSE_ONLY,
    CKA.ALWAYS_SENSITIVE: READ_ONLY,
    CKA.NEVER_EXTRACTABLE: READ_ONLY,
    CKA.VALUE: READ_ONLY,
    CKA.CHECK_VALUE: READ_ONLY,
}

#: CKO_DATA, C_CreateObject (spec §4.5).
DATA_CREATE: dict[int, Rule] = {
    **_CREATED_STORAGE,
    CKA.CLASS: one_of(CKO.DATA),
    CKA.APPLICATION: ANY,
    CKA.OBJECT_ID: ANY,
    CKA.VALUE: ANY,
}

#: X.509 certificate, C_CreateObject (spec §4.6.3).
CERTIFICATE_CREATE: dict[int, Rule] = {
    **_CREATED_STORAGE,
    CKA.CLASS: one_of(CKO.CERTIFICATE),
    CKA.CERTIFICATE_TYPE: ANY,  # creation.py: X.509 only
    CKA.TRUSTED: FALSE_ONLY,  # only the SO may set it
    CKA.CERTIFICATE_CATEGORY: one_of(0, 1, 2, 3),
    CKA.CHECK_VALUE: ANY,  # must match if given
    CKA.START_DATE: ANY,
    CKA.END_DATE: ANY,
    CKA.PUBLIC_KEY_INFO: ANY,
    CKA.SUBJECT: ANY,
    CKA.ID: ANY,
    CKA.ISSUER: ANY,
    CKA.SERIAL_NUMBER: ANY,
    CKA.VALUE: ANY,
    CKA.URL: ANY,
    CKA.HASH_OF_SUBJECT_PUBLIC_KEY: ANY,
    CKA.HASH_OF_ISSUER_PUBLIC_KEY: ANY,
    CKA.JAVA_MIDP_SECURITY_DOMAIN: one_of(0, 1, 2, 3),
    CKA.NAME_HASH_ALGORITHM: ANY,
}

#: EC (P-256) public key, C_CreateObject (spec §4.8, §6.3.3).
EC_PUBLIC_CREATE: dict[int, Rule] = {
    **_KEY,
    **_CREATED_STORAGE,
    CKA.CLASS: one_of(CKO.PUBLIC_KEY),
    CKA.DERIVE: FALSE_ONLY,
    CKA.ENCRYPT: FALSE_ONLY,
    CKA.VERIFY: ANY,
    CKA.VERIFY_RECOVER: FALSE_ONLY,
    CKA.WRAP: FALSE_ONLY,
    CKA.TRUSTED: FALSE_ONLY,
    CKA.EC_PARAMS: ANY,  # required: creation.py
    CKA.EC_POINT: ANY,  # required: creation.py
    CKA.PUBLIC_KEY_INFO: ANY,  # must match if given
}


def validate(schema: dict[int, Rule], template: Template) -> dict[int, Any]:
    """Decode ``template`` and check it against ``schema``; returns ``{CKA: value}``.

    :raises errors.AttributeTypeInvalid: a type the class does not have.
    :raises errors.AttributeValueInvalid: a value of the wrong length/encoding.
    :raises errors.AttributeReadOnly: a type only the token sets.
    :raises errors.TemplateInconsistent: a value the token cannot honour.
    """
    for attr_type, _ in template:
        if attr_type not in schema:
            raise errors.AttributeTypeInvalid(
                f"{attributes.names([attr_type])} is not an attribute of this object class"
            )
    values = attributes.decode_template(template)
    for attr_type in sorted(values, key=lambda t: schema[t].kind is not Kind.READ_ONLY):
        schema[attr_type].check(attr_type, values[attr_type])
    return values
