"""Token policy: the ATECC608's own limits, laid over the attribute schemas.

Owns: the rules that come from the chip rather than from the spec, as data where they are data
(:data:`CHIP_EC_PRIVATE`, :data:`CHIP_EC_PUBLIC`, :data:`CHIP_AES`: the values a chip key can
honestly have, applied with :func:`cryptoki.schema.overlay`) and as checks where they are not:
P-256 is the only curve, AES keys are 128 bits, CKA_ALLOWED_MECHANISMS may name only what the chip
can do with the key, and the requests the token turns into chip keys
(:class:`KeyPairRequest`, :class:`SecretKeyRequest`).
Must not: decode templates or know attribute flags (``schema.py`` does) or pick chip slots (the
token does).
"""

from __future__ import annotations

from typing import Any

from atecc.record import record
from cryptoki import der, errors, mechanisms, schema
from cryptoki.constants import CKA, CKK, CKO
from cryptoki.types import Template

_TRUE, _FALSE = frozenset({True}), frozenset({False})

#: A chip private key: the chip cannot export it (always sensitive, never extractable), it can
#: always sign (a pair that refused to could not say so truthfully across processes), and its
#: label and ID live in the metadata file, so it is always modifiable and copyable (a copy is a
#: session object naming the same chip slot).
CHIP_EC_PRIVATE: dict[int, frozenset[Any]] = {
    CKA.SENSITIVE: _TRUE,
    CKA.EXTRACTABLE: _FALSE,
    CKA.SIGN: _TRUE,
    CKA.MODIFIABLE: _TRUE,
    CKA.COPYABLE: _TRUE,
}
#: The public half of a chip key pair.
CHIP_EC_PUBLIC: dict[int, frozenset[Any]] = {
    CKA.VERIFY: _TRUE,
    CKA.MODIFIABLE: _TRUE,
    CKA.COPYABLE: _TRUE,
}
#: An AES key in a chip key block.
CHIP_AES: dict[int, frozenset[Any]] = {
    CKA.SENSITIVE: _TRUE,
    CKA.EXTRACTABLE: _FALSE,
    CKA.MODIFIABLE: _TRUE,
    CKA.COPYABLE: _TRUE,
}

EC_PUBLIC_GENERATE = schema.overlay(schema.EC_PUBLIC_KEY, CHIP_EC_PUBLIC)
EC_PRIVATE_GENERATE = schema.overlay(schema.EC_PRIVATE_KEY, CHIP_EC_PRIVATE)
AES_IN_CHIP = schema.overlay(schema.AES_KEY, CHIP_AES)

#: Everything CKA_ALLOWED_MECHANISMS of a chip EC private key / AES key may name.
EC_KEY_MECHANISMS = frozenset(
    mechanisms.usable_with(CKO.PRIVATE_KEY, CKK.EC, mechanisms.SIGN, mechanisms.DERIVE)
)
AES_KEY_MECHANISMS = frozenset(
    mechanisms.usable_with(CKO.SECRET_KEY, CKK.AES, mechanisms.ENCRYPT, mechanisms.DECRYPT)
)


@record(frozen=True)
class KeyPairRequest:
    """What the caller asked for, after validation and policy; the token fills in the rest."""

    label: str
    key_id: bytes | None  #: None: derive from the public point (SHA-1 of 04||X||Y)
    token: bool
    derive: bool  #: asked for; granted only where the chip slot allows ECDH
    allowed_mechanisms: tuple[int, ...] | None
    subject: bytes
    private: bool  #: CKA_PRIVATE of the private key (default: a PIN is configured)
    public_private: bool  #: CKA_PRIVATE of the public key (default false)


def check_ec_params(value: Any) -> None:
    """CKA_EC_PARAMS must name P-256 (OID, or the curve name as a string some tools send)."""
    if bytes(value) in der.P256_EC_PARAMS_ACCEPTED:
        return
    try:
        der.read_tlv(bytes(value))
    except ValueError:
        raise errors.AttributeValueInvalid("CKA_EC_PARAMS is not DER") from None
    raise errors.CurveNotSupported("only P-256 (prime256v1/secp256r1) is supported")


def _id(values: dict[int, Any]) -> bytes | None:
    # An empty CKA_ID is what python-pkcs11 sends when the caller gave none; treating it as "no
    # preference" keeps the shared-ID rule (key pair and certificate match) working for it.
    raw = values.get(CKA.ID)
    return bytes(raw) if raw else None


def _allowed(values: dict[int, Any], bound: frozenset[int]) -> tuple[int, ...] | None:
    allowed = values.get(CKA.ALLOWED_MECHANISMS)
    if allowed is None:
        return None
    if set(allowed) - bound:
        raise errors.TemplateInconsistent(
            "CKA_ALLOWED_MECHANISMS names mechanisms this key cannot use"
        )
    return tuple(allowed)


def key_pair_request(
    public_template: Template, private_template: Template, *, pin_configured: bool
) -> KeyPairRequest:
    """C_GenerateKeyPair templates, checked against the schemas with the chip's overlay.

    :raises errors.TemplateIncomplete: CKA_EC_PARAMS missing from the public key template.
    :raises errors.CurveNotSupported: a curve other than P-256.
    :raises errors.TemplateInconsistent: a value a chip key cannot have (not sensitive,
        extractable, no signing...), or templates that disagree (curve, token flag).
    """
    public = schema.validate(EC_PUBLIC_GENERATE, public_template, schema.Op.GENERATE)
    private = schema.validate(EC_PRIVATE_GENERATE, private_template, schema.Op.GENERATE)
    check_ec_params(public[CKA.EC_PARAMS])
    if CKA.EC_PARAMS in private:
        check_ec_params(private[CKA.EC_PARAMS])
    token = bool(private.get(CKA.TOKEN, public.get(CKA.TOKEN, False)))
    if bool(public.get(CKA.TOKEN, token)) != token:
        raise errors.TemplateInconsistent("public and private CKA_TOKEN differ")
    allowed = _allowed(private, EC_KEY_MECHANISMS)
    if allowed is None:
        allowed = _allowed(public, EC_KEY_MECHANISMS)
    return KeyPairRequest(
        label=str(private.get(CKA.LABEL, public.get(CKA.LABEL, ""))),
        key_id=_id(private) or _id(public),
        token=token,
        derive=bool(private.get(CKA.DERIVE, False)),
        allowed_mechanisms=allowed,
        subject=bytes(private.get(CKA.SUBJECT, public.get(CKA.SUBJECT, b""))),
        private=bool(private.get(CKA.PRIVATE, pin_configured)),
        public_private=bool(public.get(CKA.PRIVATE, False)),
    )


@record(frozen=True)
class SecretKeyRequest:
    """An AES key to put into a chip key block (C_GenerateKey or C_CreateObject)."""

    label: str
    key_id: bytes
    token: bool
    private: bool
    usage: dict[int, bool]  #: CKA_ENCRYPT / CKA_DECRYPT
    allowed_mechanisms: tuple[int, ...] | None
    value: bytes | None = None  #: the key to import (C_CreateObject); None: chip random


def secret_key_request(
    template: Template, op: schema.Op, *, pin_configured: bool
) -> SecretKeyRequest:
    """An AES key template (generate, or create with the value), checked with the chip's overlay.

    :raises errors.TemplateIncomplete: CKA_VALUE_LEN missing (generate), CKA_VALUE (create).
    :raises errors.AttributeValueInvalid: a length other than 16 bytes.
    :raises errors.TemplateInconsistent: a key that is not sensitive or is extractable.
    """
    values = schema.validate(AES_IN_CHIP, template, op)
    value: bytes | None = None
    if op is schema.Op.CREATE:
        value = bytes(values[CKA.VALUE])
        if len(value) != mechanisms.AES_KEY_BYTES:
            raise errors.AttributeValueInvalid("the chip holds AES-128 keys (16 bytes) only")
    if CKA.VALUE_LEN in values and values[CKA.VALUE_LEN] != mechanisms.AES_KEY_BYTES:
        raise errors.AttributeValueInvalid("the chip holds AES-128 keys (CKA_VALUE_LEN 16) only")
    return SecretKeyRequest(
        label=str(values.get(CKA.LABEL, "")),
        key_id=bytes(values.get(CKA.ID, b"")),
        token=bool(values.get(CKA.TOKEN, False)),
        private=bool(values.get(CKA.PRIVATE, pin_configured)),
        usage={
            CKA.ENCRYPT: bool(values.get(CKA.ENCRYPT, True)),
            CKA.DECRYPT: bool(values.get(CKA.DECRYPT, True)),
        },
        allowed_mechanisms=_allowed(values, AES_KEY_MECHANISMS),
        value=value,
    )
