"""Pkcs11Object: one token or session object, and builders for each kind the chip can hold.

Owns: which attributes each kind of object has and their values (Table 4-ish of the spec, cut to
what an ATECC608 can honour), per-attribute answers for C_GetAttributeValue, raw matching for
C_FindObjects, and which attributes C_SetAttributeValue may change (:func:`modifiable`).
Must not: hold chip key bytes. An on-chip private or secret key is a chip slot number (plus the
*public* point); CKA_VALUE of every chip key is in :attr:`Pkcs11Object.sensitive`, so it answers
CKR_ATTRIBUTE_SENSITIVE and never matches a search. The one exception is the result of ECDH
(C_DeriveKey): the chip hands the shared secret to the host, so that session object carries it,
revealed only when the template made it extractable and not sensitive.
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
from cryptoki.types import AttributeFailure

#: What a chip ECC private key can do through this token, in CKA_ALLOWED_MECHANISMS order.
EC_SIGN_MECHANISMS = (CKM.ECDSA, CKM.ECDSA_SHA256)

_TYPE_INVALID = AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)
_SENSITIVE = AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)

# The accessors below run on every C_SignInit/C_FindObjectsInit: a module global costs ~20 ns,
# ``CKA.CLASS`` (a lookup through the enum metaclass) ~70-120 ns on the benchmark machine.
_CKA_CLASS = CKA.CLASS
_CKA_PRIVATE = CKA.PRIVATE
_CKA_TOKEN = CKA.TOKEN


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
    #: stable name across processes ("tng:priv:0", "gen:2:<pub>:3", "obj:<uid>", ...) used for
    #: metadata overrides and refreshes; None for session-only objects
    store_key: str | None = None
    key_block: int = 0  #: which 16-byte AES key of the slot (AES keys only)
    #: attribute values before metadata overrides were applied
    base: dict[int, Any] = field(default_factory=dict, repr=False)
    _raw_cache: dict[int, bytes] = field(default_factory=dict, repr=False)

    def set_attrs(self, changes: dict[int, Any]) -> None:
        """Change attribute values in place (C_SetAttributeValue, overrides)."""
        self.attrs.update(changes)
        for attr_type in changes:
            self._raw_cache.pop(attr_type, None)

    def apply_overrides(self, overrides: dict[int, Any]) -> None:
        """Show the metadata file's overrides on top of the object's own values."""
        for attr_type in set(self.base) | set(overrides):
            if attr_type not in self.base:
                self.base[attr_type] = self.attrs.get(attr_type)
            value = overrides.get(attr_type, self.base[attr_type])
            if self.attrs.get(attr_type) != value:
                self.set_attrs({attr_type: value})

    # -- convenience accessors ------------------------------------------------------------
    @property
    def object_class(self) -> int:
        return int(self.attrs[_CKA_CLASS])

    @property
    def label(self) -> str:
        return str(self.attrs.get(CKA.LABEL, ""))

    @property
    def id(self) -> bytes:
        return bytes(self.attrs.get(CKA.ID, b""))

    @property
    def is_private(self) -> bool:
        return bool(self.attrs.get(_CKA_PRIVATE, False))

    @property
    def is_token_object(self) -> bool:
        return bool(self.attrs.get(_CKA_TOKEN, True))

    def flag(self, attr_type: int) -> bool:
        """A boolean attribute, false when the object does not have it."""
        return bool(self.attrs.get(attr_type, False))

    # -- C_GetAttributeValue / C_FindObjects ----------------------------------------------
    def raw(self, attr_type: int) -> bytes | AttributeFailure:
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

    def get_attribute_values(self, types: list[int]) -> list[bytes | AttributeFailure]:
        """One answer per requested type, in order; errors are per entry (spec §5.7.5)."""
        return [self.raw(t) for t in types]

    def matches(self, criteria: list[tuple[int, bytes]]) -> bool:
        """True when every (type, raw value) of a find template equals this object's value.

        Comparison is on encoded bytes, so a caller's value of the wrong width simply matches
        nothing, as does any sensitive or absent attribute.
        """
        for attr_type, raw in criteria:
            mine = self.raw(attr_type)
            if isinstance(mine, AttributeFailure):
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


#: Attributes C_SetAttributeValue may change (spec §4.4-§4.9 footnote 8), where the object has
#: them; certificates keep the subject their DER names, and only data objects change CKA_VALUE.
MODIFIABLE_ATTRS = frozenset(
    {
        CKA.LABEL,
        CKA.ID,
        CKA.SUBJECT,
        CKA.START_DATE,
        CKA.END_DATE,
        CKA.APPLICATION,
        CKA.OBJECT_ID,
    }
)


def modifiable(obj: Pkcs11Object) -> frozenset[int]:
    """The attribute types of ``obj`` that C_SetAttributeValue may change."""
    if not obj.flag(CKA.MODIFIABLE):
        return frozenset()
    allowed = {t for t in MODIFIABLE_ATTRS if t in obj.attrs}
    if obj.object_class == CKO.CERTIFICATE:
        allowed.discard(CKA.SUBJECT)
    if obj.object_class == CKO.DATA and obj.origin == "created":
        allowed.add(CKA.VALUE)
    return frozenset(allowed)


def _storage(
    label: str, *, private: bool, destroyable: bool, token: bool, copyable: bool = True
) -> dict[int, Any]:
    """Common storage-object attributes (spec §4.4).

    Label and ID (and the other :data:`MODIFIABLE_ATTRS`) can be changed: the change lives in the
    metadata file, not on the chip. A copy (C_CopyObject) of a chip key is a session object naming
    the same chip slot, so keys are copyable too.
    """
    return {
        CKA.TOKEN: token,
        CKA.PRIVATE: private,
        CKA.LABEL: label,
        CKA.MODIFIABLE: True,
        CKA.COPYABLE: copyable,
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
    private: bool = False  #: CKA_PRIVATE of the private half (true when a user PIN guards it)


def ec_private_key(handle: int, spec: KeySpec, owner: int | None = None) -> Pkcs11Object:
    """A private key that lives in chip slot ``spec.chip_slot`` (spec §4.9, §6.3.4)."""
    attrs = _storage(
        spec.label, private=spec.private, destroyable=spec.destroyable, token=spec.token
    )
    attrs[CKA.CLASS] = CKO.PRIVATE_KEY
    mechanisms = tuple(spec.mechanisms)
    if spec.derive and mechanisms == EC_SIGN_MECHANISMS:  # not narrowed by the caller
        mechanisms += (CKM.ECDH1_DERIVE,)
    attrs.update(
        _key(
            key_id=spec.key_id,
            local=spec.local,
            derive=spec.derive,
            subject=spec.subject,
            mechanisms=mechanisms,
        )
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
        _key(
            key_id=spec.key_id,
            local=spec.local,
            derive=False,
            subject=spec.subject,
            mechanisms=spec.mechanisms,
        )
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


def secret_key(
    handle: int,
    *,
    label: str,
    chip_slot: int,
    aes: bool,
    hmac: bool = False,
    key_block: int = 0,
    key_id: bytes | None = None,
    local: bool = False,
    destroyable: bool = False,
    token: bool = True,
    private: bool = False,
    usage: dict[int, Any] | None = None,
    owner: int | None = None,
    origin: str = "device",
) -> Pkcs11Object:
    """A symmetric key held in a chip slot: AES (key block ``key_block``) or an HMAC key.

    :param usage: CKA_ENCRYPT/CKA_DECRYPT (AES) asked for at creation; both default to true.
    """
    usage = usage or {}
    attrs = _storage(label, private=private, destroyable=destroyable, token=token)
    if aes:
        mechs: tuple[int, ...] = (CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_GCM)
    elif hmac:
        mechs = (CKM.SHA256_HMAC, CKM.SHA256_HMAC_GENERAL)
    else:
        mechs = ()
    attrs.update(
        {
            CKA.CLASS: CKO.SECRET_KEY,
            CKA.KEY_TYPE: CKK.AES if aes else CKK.GENERIC_SECRET,
            CKA.ID: key_id if key_id is not None else f"slot{chip_slot}".encode(),
            CKA.START_DATE: b"",
            CKA.END_DATE: b"",
            CKA.DERIVE: False,
            CKA.LOCAL: local,
            CKA.KEY_GEN_MECHANISM: CKM.AES_KEY_GEN if local else CK_UNAVAILABLE_INFORMATION,
            CKA.ALLOWED_MECHANISMS: mechs,
            CKA.SENSITIVE: True,
            CKA.ALWAYS_SENSITIVE: True,
            CKA.EXTRACTABLE: False,
            CKA.NEVER_EXTRACTABLE: True,
            CKA.ENCRYPT: aes and bool(usage.get(CKA.ENCRYPT, True)),
            CKA.DECRYPT: aes and bool(usage.get(CKA.DECRYPT, True)),
            CKA.SIGN: hmac,
            CKA.VERIFY: hmac,
            CKA.WRAP: False,
            CKA.UNWRAP: False,
            CKA.VALUE_LEN: 16 if aes else 32,
            CKA.VALUE: b"",
        }
    )
    return Pkcs11Object(
        handle=handle,
        attrs=attrs,
        sensitive=frozenset({CKA.VALUE}),
        chip_slot=chip_slot,
        key_block=key_block,
        owner_session=owner,
        origin=origin,
    )


def derived_secret(handle: int, value: bytes, attrs_in: dict[int, Any], owner: int) -> Pkcs11Object:
    """The CKK_GENERIC_SECRET session object C_DeriveKey(CKM_ECDH1_DERIVE) makes.

    CKA_VALUE is readable only when the template asked for CKA_EXTRACTABLE true and
    CKA_SENSITIVE false; otherwise it answers CKR_ATTRIBUTE_SENSITIVE.
    """
    sensitive = bool(attrs_in.get(CKA.SENSITIVE, True))
    extractable = bool(attrs_in.get(CKA.EXTRACTABLE, False))
    attrs = _storage(
        str(attrs_in.get(CKA.LABEL, "")),
        private=bool(attrs_in.get(CKA.PRIVATE, False)),
        destroyable=True,
        token=False,
    )
    attrs[CKA.COPYABLE] = bool(attrs_in.get(CKA.COPYABLE, True))
    attrs[CKA.MODIFIABLE] = bool(attrs_in.get(CKA.MODIFIABLE, True))
    attrs.update(
        {
            CKA.CLASS: CKO.SECRET_KEY,
            CKA.KEY_TYPE: CKK.GENERIC_SECRET,
            CKA.ID: bytes(attrs_in.get(CKA.ID, b"")),
            CKA.START_DATE: bytes(attrs_in.get(CKA.START_DATE, b"")),
            CKA.END_DATE: bytes(attrs_in.get(CKA.END_DATE, b"")),
            CKA.DERIVE: bool(attrs_in.get(CKA.DERIVE, False)),
            CKA.LOCAL: False,
            CKA.KEY_GEN_MECHANISM: CK_UNAVAILABLE_INFORMATION,
            CKA.ALLOWED_MECHANISMS: (),
            CKA.SENSITIVE: sensitive,
            CKA.ALWAYS_SENSITIVE: False,
            CKA.EXTRACTABLE: extractable,
            CKA.NEVER_EXTRACTABLE: False,
            CKA.ENCRYPT: bool(attrs_in.get(CKA.ENCRYPT, False)),
            CKA.DECRYPT: bool(attrs_in.get(CKA.DECRYPT, False)),
            CKA.SIGN: bool(attrs_in.get(CKA.SIGN, False)),
            CKA.VERIFY: bool(attrs_in.get(CKA.VERIFY, False)),
            CKA.WRAP: bool(attrs_in.get(CKA.WRAP, False)),
            CKA.UNWRAP: bool(attrs_in.get(CKA.UNWRAP, False)),
            CKA.VALUE_LEN: len(value),
            CKA.VALUE: bytes(value),
        }
    )
    hidden = frozenset() if extractable and not sensitive else frozenset({CKA.VALUE})
    return Pkcs11Object(
        handle=handle, attrs=attrs, sensitive=hidden, owner_session=owner, origin="derived"
    )


def created(
    handle: int, attrs: dict[int, Any], *, uid: str, owner: int | None = None
) -> Pkcs11Object:
    """An object made by C_CreateObject (or a copy of one): attributes as given and completed
    by ``cryptoki.creation``. Token ones are found again by ``store_key`` ``obj:<uid>``."""
    token = bool(attrs.get(CKA.TOKEN, False))
    return Pkcs11Object(
        handle=handle,
        attrs=dict(attrs),
        owner_session=owner,
        origin="created",
        store_key=f"obj:{uid}" if token else None,
    )
