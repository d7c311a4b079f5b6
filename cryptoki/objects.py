"""Pkcs11Object: one token or session object, its identity, and builders for each kind the chip
can hold.

Owns: the object as the core sees it (typed attribute values plus where it lives on the chip),
object identity as types (:class:`Origin`, :class:`StoreKey`), per-attribute answers for
C_GetAttributeValue, raw matching for C_FindObjects, and the builders that give each kind of
object its values (the attribute *set*, defaults and flags come from ``schema.py``).
Must not: hold chip key bytes. An on-chip private or secret key is a chip slot number (plus the
*public* point); CKA_VALUE of every chip key is hidden (``schema.hidden``), so it answers
CKR_ATTRIBUTE_SENSITIVE and never matches a search. The one exception is the result of ECDH
(C_DeriveKey): the chip hands the shared secret to the host, so that session object carries it,
revealed only when the template made it extractable and not sensitive.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from atecc.record import field, record
from cryptoki import attributes, der, mechanisms, schema
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

_TYPE_INVALID = AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)
_SENSITIVE = AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)


class Origin(enum.Enum):
    """Where an object comes from; decides how it is destroyed and refreshed."""

    CHIP = "chip"  #: the chip's layout or the slot file defines it (never destroyed here)
    GENERATED = "generated"  #: an EC key pair made by C_GenerateKeyPair in a free chip slot
    SECRET = "secret"  #: an AES key written into a chip key block (C_GenerateKey/CreateObject)
    CREATED = "created"  #: C_CreateObject (data, certificate, public key), or a copy of one
    COPY = "copy"  #: C_CopyObject of a chip key: a session object naming the same chip key
    DERIVED = "derived"  #: the C_DeriveKey (ECDH) result, held by the host


class StoreKind(enum.Enum):
    """The first part of a :class:`StoreKey`, as written in the metadata file."""

    TRUST_AND_GO = "tng"  #: an object of the chip product's fixed layout
    CONFIGURED = "conf"  #: an ``object =`` line of the slot file
    GENERATED = "gen"  #: a key pair record (``keys``)
    SECRET = "aes"  #: an AES key record (``secret_keys``)
    CREATED = "obj"  #: a created object record (``objects``)
    COPY = "copy"  #: a token copy of a chip key (``copies``)

    @property
    def store_backed(self) -> bool:
        """Its existence is decided by a metadata record (so another process may end it)."""
        return self in (StoreKind.GENERATED, StoreKind.SECRET, StoreKind.CREATED, StoreKind.COPY)


class Half(enum.Enum):
    """Which half of a key pair a :class:`StoreKey` names."""

    PRIVATE = "priv"
    PUBLIC = "pub"


@record(frozen=True)
class StoreKey:
    """The stable name of a token object across processes: the key of its metadata overrides
    and what a refresh matches on. ``str()`` is the metadata file's spelling (``gen:2:ab..:priv``,
    ``obj:<uid>``, ``tng:0:pub``), kept unchanged since format version 1."""

    kind: StoreKind
    name: str
    half: Half | None = None

    def __str__(self) -> str:
        text = f"{self.kind.value}:{self.name}"
        return f"{text}:{self.half.value}" if self.half is not None else text

    def other_half(self) -> StoreKey:
        assert self.half is not None
        other = Half.PUBLIC if self.half is Half.PRIVATE else Half.PRIVATE
        return StoreKey(self.kind, self.name, other)

    def unique_id(self) -> str:
        """CKA_UNIQUE_ID of the object this names: stable across processes and restarts."""
        return der.sha1(str(self).encode())[:16].hex()


@record(eq=False)
class Pkcs11Object:
    """An object as the core sees it: typed attribute values, plus where it lives on the chip.

    :ivar handle: object handle, unique in the process and never reused.
    :ivar attrs: ``{CKA: typed value}``; an attribute absent here is CKR_ATTRIBUTE_TYPE_INVALID.
    :ivar origin: where it comes from (:class:`Origin`).
    :ivar chip_slot: data-zone slot holding the key (chip keys only).
    :ivar key_block: which 16-byte AES key of the slot (AES keys only).
    :ivar public_key: 64-byte X||Y of an EC key pair (public information, for verify and IDs).
    :ivar owner_session: session handle for session objects (CKA_TOKEN false), else None.
    :ivar store_key: stable name across processes; None for session-only objects.
    :ivar source: for a copy of a chip key, the object it copies (its validity is the copy's).
    :ivar valid: cleared when the object is destroyed, here or by another process: a handle or
        an active operation holding it then fails instead of using whatever came next.
    """

    handle: int
    attrs: dict[int, Any]
    origin: Origin = Origin.CHIP
    chip_slot: int | None = None
    key_block: int = 0
    public_key: bytes | None = None
    owner_session: int | None = None
    store_key: StoreKey | None = None
    source: Pkcs11Object | None = None
    valid: bool = True
    #: attributes never revealed (``schema.hidden``), fixed at construction
    sensitive: frozenset[int] = frozenset()
    #: attribute values before metadata overrides were applied
    base: dict[int, Any] = field(default_factory=dict, repr=False)
    _raw_cache: dict[int, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.sensitive = schema.hidden(schema.schema_of(self.attrs), self.attrs)

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
        return int(self.attrs[CKA.CLASS])

    @property
    def is_private(self) -> bool:
        return bool(self.attrs.get(CKA.PRIVATE, False))

    @property
    def is_token_object(self) -> bool:
        return bool(self.attrs.get(CKA.TOKEN, True))

    @property
    def alive(self) -> bool:
        """Still the object it was: neither it nor (for a copy) its original is gone."""
        return self.valid and (self.source is None or self.source.alive)

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
        """One answer per requested type, in order; errors are per entry (PKCS#11 §5.7.5)."""
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


def value_bytes(attrs: dict[int, Any]) -> int:
    """How many bytes an object's attribute values take (for the size limit)."""
    return sum(len(attributes.encode(t, v)) for t, v in attrs.items())


def _uid(store_key: StoreKey | None) -> str:
    return store_key.unique_id() if store_key is not None else os.urandom(16).hex()


# ------------------------------------------------------------------------------------------
# Builders: each fills the values the token decides; the schema supplies the rest.


@record(frozen=True)
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
    mechanisms: tuple[int, ...] | None = None  #: CKA_ALLOWED_MECHANISMS if narrowed
    private: bool = False  #: CKA_PRIVATE of the private half (true when a user PIN guards it)
    public_private: bool = False  #: CKA_PRIVATE of the public half


def _ec_key_values(spec: KeySpec, store_key: StoreKey | None) -> dict[int, Any]:
    values: dict[int, Any] = {
        CKA.TOKEN: spec.token,
        CKA.LABEL: spec.label,
        CKA.DESTROYABLE: spec.destroyable,
        CKA.UNIQUE_ID: _uid(store_key),
        CKA.ID: spec.key_id,
        CKA.LOCAL: spec.local,
        CKA.KEY_GEN_MECHANISM: CKM.EC_KEY_PAIR_GEN if spec.local else CK_UNAVAILABLE_INFORMATION,
        CKA.SUBJECT: spec.subject,
        CKA.EC_PARAMS: P256_EC_PARAMS,
        CKA.PUBLIC_KEY_INFO: der.spki(spec.public_key),
    }
    return values


def _origin(spec: KeySpec) -> Origin:
    return Origin.GENERATED if spec.destroyable else Origin.CHIP


def ec_private_key(
    handle: int, spec: KeySpec, owner: int | None = None, store_key: StoreKey | None = None
) -> Pkcs11Object:
    """A private key that lives in chip slot ``spec.chip_slot`` (PKCS#11 §4.9, §6.3.4)."""
    uses = (mechanisms.SIGN, mechanisms.DERIVE) if spec.derive else (mechanisms.SIGN,)
    allowed = spec.mechanisms or mechanisms.usable_with(CKO.PRIVATE_KEY, CKK.EC, *uses)
    values = _ec_key_values(spec, store_key)
    values.update({CKA.PRIVATE: spec.private, CKA.DERIVE: spec.derive})
    values[CKA.ALLOWED_MECHANISMS] = tuple(allowed)
    return Pkcs11Object(
        handle=handle,
        attrs=schema.complete(schema.EC_PRIVATE_KEY, values),
        origin=_origin(spec),
        chip_slot=spec.chip_slot,
        public_key=spec.public_key,
        owner_session=owner,
        store_key=store_key,
    )


def ec_public_key(
    handle: int, spec: KeySpec, owner: int | None = None, store_key: StoreKey | None = None
) -> Pkcs11Object:
    """The public half of a chip key pair (PKCS#11 §4.8, §6.3.3)."""
    values = _ec_key_values(spec, store_key)
    values[CKA.PRIVATE] = spec.public_private
    values[CKA.EC_POINT] = der.ec_point(spec.public_key)
    values[CKA.ALLOWED_MECHANISMS] = tuple(
        m
        for m in spec.mechanisms
        or mechanisms.usable_with(CKO.PUBLIC_KEY, CKK.EC, mechanisms.VERIFY)
    )
    return Pkcs11Object(
        handle=handle,
        attrs=schema.complete(schema.EC_PUBLIC_KEY, values),
        origin=_origin(spec),
        chip_slot=spec.chip_slot,
        public_key=spec.public_key,
        owner_session=owner,
        store_key=store_key,
    )


def x509_certificate(
    handle: int,
    value: bytes,
    *,
    label: str,
    cert_id: bytes,
    store_key: StoreKey,
    category: int = CertificateCategory.UNSPECIFIED,
    trusted: bool = False,
) -> Pkcs11Object:
    """An X.509 certificate the chip holds (PKCS#11 §4.6.3); fields are read out of ``value``."""
    fields = der.parse_certificate(value)
    values: dict[int, Any] = {
        CKA.TOKEN: True,
        CKA.LABEL: label,
        CKA.DESTROYABLE: False,
        CKA.UNIQUE_ID: store_key.unique_id(),
        CKA.CERTIFICATE_TYPE: CKC.X_509,
        CKA.TRUSTED: trusted,
        CKA.CERTIFICATE_CATEGORY: category,
        CKA.CHECK_VALUE: der.check_value(value),
        CKA.PUBLIC_KEY_INFO: fields.spki,
        CKA.SUBJECT: fields.subject,
        CKA.ID: cert_id,
        CKA.ISSUER: fields.issuer,
        CKA.SERIAL_NUMBER: fields.serial_number,
        CKA.VALUE: bytes(value),
    }
    return Pkcs11Object(
        handle=handle, attrs=schema.complete(schema.X509_CERTIFICATE, values), store_key=store_key
    )


def secret_key(
    handle: int,
    *,
    label: str,
    chip_slot: int,
    aes: bool,
    store_key: StoreKey,
    hmac: bool = False,
    unique_id: str | None = None,
    key_block: int = 0,
    key_id: bytes | None = None,
    local: bool = False,
    destroyable: bool = False,
    token: bool = True,
    private: bool = False,
    usage: dict[int, Any] | None = None,
    allowed: tuple[int, ...] | None = None,
    owner: int | None = None,
    origin: Origin = Origin.CHIP,
) -> Pkcs11Object:
    """A symmetric key held in a chip slot: AES (key block ``key_block``) or an HMAC key.

    :param usage: CKA_ENCRYPT/CKA_DECRYPT (AES) asked for at creation; both default to true.
    """
    usage = usage or {}
    values: dict[int, Any] = {
        CKA.TOKEN: token,
        CKA.PRIVATE: private,
        CKA.LABEL: label,
        CKA.DESTROYABLE: destroyable,
        CKA.ID: key_id if key_id is not None else f"slot{chip_slot}".encode(),
        CKA.LOCAL: local,
        CKA.SENSITIVE: True,
        CKA.EXTRACTABLE: False,
        CKA.ALWAYS_SENSITIVE: True,
        CKA.NEVER_EXTRACTABLE: True,
    }
    if aes:
        table = schema.AES_KEY
        values[CKA.KEY_GEN_MECHANISM] = CKM.AES_KEY_GEN if local else CK_UNAVAILABLE_INFORMATION
        values[CKA.ENCRYPT] = bool(usage.get(CKA.ENCRYPT, True))
        values[CKA.DECRYPT] = bool(usage.get(CKA.DECRYPT, True))
        values[CKA.VALUE_LEN] = mechanisms.AES_KEY_BYTES
        default = mechanisms.usable_with(
            CKO.SECRET_KEY, CKK.AES, mechanisms.ENCRYPT, mechanisms.DECRYPT
        )
    else:  # an HMAC key the slot's config allows, or a slot nothing can use
        table = schema.GENERIC_SECRET_KEY
        values[CKA.SIGN] = values[CKA.VERIFY] = hmac
        values[CKA.VALUE_LEN] = mechanisms.HMAC_KEY_BYTES
        default = (
            mechanisms.usable_with(CKO.SECRET_KEY, CKK.GENERIC_SECRET, mechanisms.SIGN)
            if hmac
            else ()
        )
    values[CKA.ALLOWED_MECHANISMS] = tuple(allowed) if allowed is not None else default
    values[CKA.UNIQUE_ID] = unique_id or store_key.unique_id()
    return Pkcs11Object(
        handle=handle,
        attrs=schema.complete(table, values),
        origin=origin,
        chip_slot=chip_slot,
        key_block=key_block,
        owner_session=owner,
        store_key=store_key,
    )


def derived_secret(handle: int, value: bytes, given: dict[int, Any], owner: int) -> Pkcs11Object:
    """The CKK_GENERIC_SECRET session object C_DeriveKey(CKM_ECDH1_DERIVE) makes; CKA_VALUE is
    readable only when the template made it extractable and not sensitive (``schema.hidden``)."""
    computed: dict[int, Any] = {
        CKA.UNIQUE_ID: os.urandom(16).hex(),
        CKA.ALLOWED_MECHANISMS: (),
        CKA.VALUE_LEN: len(value),
        CKA.VALUE: bytes(value),
    }
    attrs = schema.complete(schema.GENERIC_SECRET_KEY, {**given, **computed})
    return Pkcs11Object(handle=handle, attrs=attrs, owner_session=owner, origin=Origin.DERIVED)


def key_copy(
    handle: int,
    source: Pkcs11Object,
    attrs: dict[int, Any],
    *,
    owner: int | None,
    store_key: StoreKey | None = None,
) -> Pkcs11Object:
    """A copy of a chip key (C_CopyObject): attributes of its own, the original's key. It stays
    valid exactly as long as the original does."""
    root = source.source or source
    return Pkcs11Object(
        handle=handle,
        attrs=dict(attrs),
        origin=Origin.COPY,
        chip_slot=root.chip_slot,
        key_block=root.key_block,
        public_key=root.public_key,
        owner_session=owner,
        store_key=store_key,
        source=root,
    )


def created(
    handle: int, attrs: dict[int, Any], *, uid: str, owner: int | None = None
) -> Pkcs11Object:
    """An object made by C_CreateObject (or a copy of one): attributes as ``creation`` completed
    them. Token ones are found again by their :class:`StoreKey` ``obj:<uid>``."""
    token = bool(attrs.get(CKA.TOKEN, False))
    obj = Pkcs11Object(
        handle=handle,
        attrs=dict(attrs),
        owner_session=owner,
        origin=Origin.CREATED,
        store_key=StoreKey(StoreKind.CREATED, uid) if token else None,
    )
    if attrs.get(CKA.CLASS) == CKO.PUBLIC_KEY and attrs.get(CKA.KEY_TYPE) == CKK.EC:
        obj.public_key = der.point_xy(bytes(attrs.get(CKA.EC_POINT, b"")))
    return obj
