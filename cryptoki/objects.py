"""Pkcs11Object: one token or session object, and builders for each kind the chip can hold.

Owns: which attributes each kind of object has and their values (Table 4-ish of the spec, cut to
what an ATECC608 can honour), per-attribute answers for C_GetAttributeValue, and raw matching for
C_FindObjects. Must not: hold key bytes. An on-chip private key is a chip slot number plus the
*public* point; CKA_VALUE of every key is in :attr:`Pkcs11Object.sensitive`, so it answers
CKR_ATTRIBUTE_SENSITIVE and never matches a search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptoki import attributes, der
from cryptoki.constants import (
    CK_UNAVAILABLE_INFORMATION,
    CKA,
    CKC,
    CKK,
    CKM,
    CKO,
    CKR,
    P256_EC_PARAMS,
    CertificateCategory,
)
from cryptoki.types import AttributeError_

#: What a chip ECC private key can do through this token, in CKA_ALLOWED_MECHANISMS order.
EC_SIGN_MECHANISMS = (CKM.ECDSA, CKM.ECDSA_SHA256)

_TYPE_INVALID = AttributeError_(CKR.ATTRIBUTE_TYPE_INVALID)
_SENSITIVE = AttributeError_(CKR.ATTRIBUTE_SENSITIVE)


@dataclass(eq=False)
class Pkcs11Object:
    """An object as the core sees it: typed attribute values, plus where it lives on the chip.

    :ivar handle: object handle, unique in the process and never reused.
    :ivar attrs: ``{CKA: typed value}``; an attribute absent here is CKR_ATTRIBUTE_TYPE_INVALID.
    :ivar sensitive: attributes the object has but never reveals (CKA_VALUE of keys).
    :ivar chip_slot: data-zone slot holding the key (keys only).
    :ivar public_key: 64-byte X||Y of an EC key pair (public information, for verify and IDs).
    :ivar owner_session: session handle for session objects (CKA_TOKEN false), else None.
    :ivar origin: "device" (provisioned/configured) or "generated" (by C_GenerateKeyPair).
    """

    handle: int
    attrs: dict[int, Any]
    sensitive: frozenset[int] = frozenset()
    chip_slot: int | None = None
    public_key: bytes | None = None
    owner_session: int | None = None
    origin: str = "device"
    _raw_cache: dict[int, bytes] = field(default_factory=dict, repr=False)

    # -- convenience accessors ------------------------------------------------------------
    @property
    def object_class(self) -> int:
        return int(self.attrs[CKA.CLASS])

    @property
    def label(self) -> str:
        return str(self.attrs.get(CKA.LABEL, ""))

    @property
    def id(self) -> bytes:
        return bytes(self.attrs.get(CKA.ID, b""))

    @property
    def is_private(self) -> bool:
        return bool(self.attrs.get(CKA.PRIVATE, False))

    @property
    def is_token_object(self) -> bool:
        return bool(self.attrs.get(CKA.TOKEN, True))

    def flag(self, attr_type: int) -> bool:
        """A boolean attribute, false when the object does not have it."""
        return bool(self.attrs.get(attr_type, False))

    # -- C_GetAttributeValue / C_FindObjects ----------------------------------------------
    def raw(self, attr_type: int) -> bytes | AttributeError_:
        """The pValue bytes of one attribute, or the per-entry error the spec names."""
        if attr_type in self.sensitive:
            return _SENSITIVE
        if attr_type not in self.attrs:
            return _TYPE_INVALID
        cached = self._raw_cache.get(attr_type)
        if cached is None:
            cached = attributes.encode(attr_type, self.attrs[attr_type])
            self._raw_cache[attr_type] = cached
        return cached

    def get_attribute_values(self, types: list[int]) -> list[bytes | AttributeError_]:
        """One answer per requested type, in order; errors are per entry (spec §5.7.5)."""
        return [self.raw(t) for t in types]

    def matches(self, criteria: list[tuple[int, bytes]]) -> bool:
        """True when every (type, raw value) of a find template equals this object's value.

        Comparison is on encoded bytes, so a caller's value of the wrong width simply matches
        nothing, as does any sensitive or absent attribute.
        """
        for attr_type, raw in criteria:
            mine = self.raw(attr_type)
            if isinstance(mine, AttributeError_):
                return False
            if attributes.normalise_raw(attr_type, mine) != attributes.normalise_raw(
                attr_type, raw
            ):
                return False
        return True

    def size(self) -> int:
        """C_GetObjectSize: the bytes our attribute values take, a fair "approximate size"."""
        return sum(len(v) for v in (self.raw(t) for t in self.attrs) if isinstance(v, bytes))


# ------------------------------------------------------------------------------------------
# Builders. Each returns the attribute dictionary; the token assigns handles.


def _storage(label: str, *, private: bool, destroyable: bool, token: bool) -> dict[int, Any]:
    """Common storage-object attributes (spec §4.4): all chip objects are read-only."""
    return {
        CKA.TOKEN: token,
        CKA.PRIVATE: private,
        CKA.LABEL: label,
        CKA.MODIFIABLE: False,
        # Copying a chip key would need a second chip slot; we answer truthfully that it cannot.
        CKA.COPYABLE: False,
        CKA.DESTROYABLE: destroyable,
    }


def _key(
    *,
    key_id: bytes,
    local: bool,
    derive: bool,
    subject: bytes = b"",
    mechanisms: tuple[int, ...] = EC_SIGN_MECHANISMS,
) -> dict[int, Any]:
    """Common key attributes (spec §4.7)."""
    return {
        CKA.KEY_TYPE: CKK.EC,
        CKA.ID: key_id,
        CKA.START_DATE: b"",
        CKA.END_DATE: b"",
        CKA.DERIVE: derive,
        CKA.LOCAL: local,
        CKA.KEY_GEN_MECHANISM: CKM.EC_KEY_PAIR_GEN if local else CK_UNAVAILABLE_INFORMATION,
        CKA.ALLOWED_MECHANISMS: tuple(mechanisms),
        CKA.SUBJECT: subject,
    }


@dataclass(frozen=True)
class KeySpec:
    """What the token knows about one chip-resident EC key pair before it becomes objects."""

    chip_slot: int
    label: str
    public_key: bytes  #: 64-byte X||Y
    key_id: bytes
    local: bool = True  #: generated on the chip (GenKey), as far as we know
    derive: bool = False  #: the slot's config allows ECDH
    destroyable: bool = False
    token: bool = True
    subject: bytes = b""  #: the matching certificate's subject, when known
    mechanisms: tuple[int, ...] = EC_SIGN_MECHANISMS  #: CKA_ALLOWED_MECHANISMS


def ec_private_key(handle: int, spec: KeySpec, owner: int | None = None) -> Pkcs11Object:
    """A private key that lives in chip slot ``spec.chip_slot`` (spec §4.9, §6.3.4)."""
    attrs = _storage(spec.label, private=False, destroyable=spec.destroyable, token=spec.token)
    attrs[CKA.CLASS] = CKO.PRIVATE_KEY
    attrs.update(
        _key(key_id=spec.key_id, local=spec.local, derive=spec.derive, subject=spec.subject,
             mechanisms=spec.mechanisms)
    )
    attrs.update(
        {
            CKA.SENSITIVE: True,
            CKA.ALWAYS_SENSITIVE: True,
            CKA.EXTRACTABLE: False,
            CKA.NEVER_EXTRACTABLE: True,
            CKA.DECRYPT: False,
            CKA.SIGN: True,
            CKA.SIGN_RECOVER: False,
            CKA.UNWRAP: False,
            CKA.WRAP_WITH_TRUSTED: False,
            CKA.ALWAYS_AUTHENTICATE: False,
            CKA.EC_PARAMS: P256_EC_PARAMS,
            CKA.PUBLIC_KEY_INFO: der.spki(spec.public_key),
            CKA.VALUE: b"",  # present but sensitive: answers ATTRIBUTE_SENSITIVE
        }
    )
    return Pkcs11Object(
        handle=handle,
        attrs=attrs,
        sensitive=frozenset({CKA.VALUE}),
        chip_slot=spec.chip_slot,
        public_key=spec.public_key,
        owner_session=owner,
        origin="generated" if spec.destroyable else "device",
    )


def ec_public_key(handle: int, spec: KeySpec, owner: int | None = None) -> Pkcs11Object:
    """The public half of a chip key pair (spec §4.8, §6.3.3)."""
    attrs = _storage(spec.label, private=False, destroyable=spec.destroyable, token=spec.token)
    attrs[CKA.CLASS] = CKO.PUBLIC_KEY
    attrs.update(
        _key(key_id=spec.key_id, local=spec.local, derive=False, subject=spec.subject,
             mechanisms=spec.mechanisms)
    )
    attrs.update(
        {
            CKA.ENCRYPT: False,
            CKA.VERIFY: True,
            CKA.VERIFY_RECOVER: False,
            CKA.WRAP: False,
            CKA.TRUSTED: False,
            CKA.EC_PARAMS: P256_EC_PARAMS,
            CKA.EC_POINT: der.ec_point(spec.public_key),
            CKA.PUBLIC_KEY_INFO: der.spki(spec.public_key),
        }
    )
    return Pkcs11Object(
        handle=handle,
        attrs=attrs,
        chip_slot=spec.chip_slot,
        public_key=spec.public_key,
        owner_session=owner,
        origin="generated" if spec.destroyable else "device",
    )


def x509_certificate(
    handle: int,
    value: bytes,
    *,
    label: str,
    cert_id: bytes,
    category: int = CertificateCategory.UNSPECIFIED,
    trusted: bool = False,
) -> Pkcs11Object:
    """An X.509 public-key certificate (spec §4.6.3); fields are read out of ``value``."""
    fields = der.parse_certificate(value)
    attrs = _storage(label, private=False, destroyable=False, token=True)
    attrs.update(
        {
            CKA.CLASS: CKO.CERTIFICATE,
            CKA.CERTIFICATE_TYPE: CKC.X_509,
            CKA.TRUSTED: trusted,
            CKA.CERTIFICATE_CATEGORY: category,
            CKA.CHECK_VALUE: der.check_value(value),
            CKA.START_DATE: b"",
            CKA.END_DATE: b"",
            CKA.PUBLIC_KEY_INFO: fields.spki,
            CKA.SUBJECT: fields.subject,
            CKA.ID: cert_id,
            CKA.ISSUER: fields.issuer,
            CKA.SERIAL_NUMBER: fields.serial_number,
            CKA.VALUE: bytes(value),
            CKA.URL: "",
            CKA.HASH_OF_SUBJECT_PUBLIC_KEY: b"",
            CKA.HASH_OF_ISSUER_PUBLIC_KEY: b"",
            CKA.JAVA_MIDP_SECURITY_DOMAIN: 0,
        }
    )
    return Pkcs11Object(handle=handle, attrs=attrs)


def secret_key(handle: int, *, label: str, chip_slot: int, aes: bool) -> Pkcs11Object:
    """A symmetric key held in a chip slot (listed only: no secret-key mechanism is offered)."""
    attrs = _storage(label, private=False, destroyable=False, token=True)
    attrs.update(
        {
            CKA.CLASS: CKO.SECRET_KEY,
            CKA.KEY_TYPE: CKK.AES if aes else CKK.GENERIC_SECRET,
            CKA.ID: f"slot{chip_slot}".encode(),
            CKA.START_DATE: b"",
            CKA.END_DATE: b"",
            CKA.DERIVE: False,
            CKA.LOCAL: False,
            CKA.KEY_GEN_MECHANISM: CK_UNAVAILABLE_INFORMATION,
            CKA.ALLOWED_MECHANISMS: (),
            CKA.SENSITIVE: True,
            CKA.ALWAYS_SENSITIVE: True,
            CKA.EXTRACTABLE: False,
            CKA.NEVER_EXTRACTABLE: True,
            CKA.ENCRYPT: False,
            CKA.DECRYPT: False,
            CKA.SIGN: False,
            CKA.VERIFY: False,
            CKA.WRAP: False,
            CKA.UNWRAP: False,
            CKA.VALUE_LEN: 16 if aes else 32,
            CKA.VALUE: b"",
        }
    )
    return Pkcs11Object(
        handle=handle, attrs=attrs, sensitive=frozenset({CKA.VALUE}), chip_slot=chip_slot
    )
