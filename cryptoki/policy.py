"""Token policy: the ATECC608's own limits, applied after the generic schema checks.

Owns: the rules that come from the chip rather than from the spec: P-256 is the only curve, a key
is always sensitive and never extractable (the chip cannot export it), and CKA_PRIVATE objects
need a PIN to protect them. Must not: decode templates (templates.py does) or pick chip slots
(the token does).
"""

from __future__ import annotations

from dataclasses import dataclass
from logging import getLogger
from typing import Any

from cryptoki import der, errors
from cryptoki.constants import CKA, CKM

log = getLogger("cryptoki.policy")

#: Mechanisms a chip EC private key can be used with: all CKA_ALLOWED_MECHANISMS may name.
EC_KEY_MECHANISMS = frozenset({CKM.ECDSA, CKM.ECDSA_SHA256, CKM.ECDH1_DERIVE})
#: Mechanisms a chip AES key can be used with.
AES_KEY_MECHANISMS = frozenset({CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_GCM})
AES_KEY_BYTES = 16  #: the AES command is AES-128 only (spec §4.12)
#: ECDH on P-256 yields the 32-byte x-coordinate; a derived key may keep its first bytes.
ECDH_SECRET_BYTES = 32


@dataclass(frozen=True)
class KeyPairRequest:
    """What the caller asked for, after validation and policy; the token fills in the rest."""

    label: str
    key_id: bytes | None  #: None: derive from the public point (SHA-1 of 04||X||Y)
    token: bool
    derive: bool  #: asked for; granted only where the chip slot allows ECDH
    allowed_mechanisms: tuple[int, ...] | None
    subject: bytes


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


def key_pair_request(
    public: dict[int, Any], private: dict[int, Any], *, pin_configured: bool = False
) -> KeyPairRequest:
    """Apply the chip's rules to already-validated templates.

    :raises errors.TemplateIncomplete: CKA_EC_PARAMS missing from the public template.
    :raises errors.CurveNotSupported: a curve other than P-256.
    :raises errors.TemplateInconsistent: a key that is not sensitive or is extractable, or
        templates that disagree (curve, token flag).
    """
    if CKA.EC_PARAMS not in public:
        raise errors.TemplateIncomplete("CKA_EC_PARAMS is required in the public key template")
    check_ec_params(public[CKA.EC_PARAMS])
    if CKA.EC_PARAMS in private:
        check_ec_params(private[CKA.EC_PARAMS])
    if private.get(CKA.SENSITIVE, True) is False:
        raise errors.TemplateInconsistent("chip keys are always sensitive")
    if private.get(CKA.EXTRACTABLE, False) is True:
        raise errors.TemplateInconsistent("chip keys can never be extracted")
    token = bool(private.get(CKA.TOKEN, public.get(CKA.TOKEN, False)))
    if bool(public.get(CKA.TOKEN, token)) != token:
        raise errors.TemplateInconsistent("public and private CKA_TOKEN differ")
    if not pin_configured and (private.get(CKA.PRIVATE) or public.get(CKA.PRIVATE)):
        # Without a PIN there is nothing to protect a private object with, and hiding the key
        # until an arbitrary C_Login would break clients that never log in (libp11 without a
        # PIN). The object is created with CKA_PRIVATE false; read it back to see.
        log.info("CKA_PRIVATE true requested but no PIN is configured; created as false")
    if private.get(CKA.SIGN, True) is False or public.get(CKA.VERIFY, True) is False:
        # A chip P-256 private key can always sign; a key pair that refuses to is not something
        # the objects could state truthfully across processes, so it is refused up front.
        raise errors.TemplateInconsistent("chip key pairs always sign and verify")
    allowed = private.get(CKA.ALLOWED_MECHANISMS, public.get(CKA.ALLOWED_MECHANISMS))
    if allowed is not None:
        unknown = set(allowed) - EC_KEY_MECHANISMS
        if unknown:
            raise errors.TemplateInconsistent(
                "CKA_ALLOWED_MECHANISMS names mechanisms this key cannot use"
            )
    label = str(private.get(CKA.LABEL, public.get(CKA.LABEL, "")))
    key_id = _id(private) or _id(public)
    return KeyPairRequest(
        label=label,
        key_id=key_id,
        token=token,
        derive=bool(private.get(CKA.DERIVE, False)),
        allowed_mechanisms=tuple(allowed) if allowed is not None else None,
        subject=bytes(private.get(CKA.SUBJECT, public.get(CKA.SUBJECT, b""))),
    )


@dataclass(frozen=True)
class SecretKeyRequest:
    """An AES key to put into a chip key block (C_GenerateKey or C_CreateObject)."""

    label: str
    key_id: bytes
    token: bool
    private: bool
    usage: dict[int, bool]  #: CKA_ENCRYPT / CKA_DECRYPT
    allowed_mechanisms: tuple[int, ...] | None


def secret_key_request(
    values: dict[int, Any], *, pin_configured: bool, value_len_required: bool = True
) -> SecretKeyRequest:
    """The chip's rules for AES keys, on an already-validated template.

    :raises errors.TemplateIncomplete: CKA_VALUE_LEN missing from a generate template.
    :raises errors.AttributeValueInvalid: a length other than 16 bytes.
    :raises errors.TemplateInconsistent: a key that is not sensitive or is extractable.
    """
    if CKA.VALUE_LEN not in values:
        if value_len_required:
            raise errors.TemplateIncomplete("CKA_VALUE_LEN is required for CKM_AES_KEY_GEN")
    elif values[CKA.VALUE_LEN] != AES_KEY_BYTES:
        raise errors.AttributeValueInvalid("the chip holds AES-128 keys (CKA_VALUE_LEN 16) only")
    if values.get(CKA.SENSITIVE, True) is False:
        raise errors.TemplateInconsistent("chip keys are always sensitive")
    if values.get(CKA.EXTRACTABLE, False) is True:
        raise errors.TemplateInconsistent("chip keys can never be extracted")
    allowed = values.get(CKA.ALLOWED_MECHANISMS)
    if allowed is not None and set(allowed) - AES_KEY_MECHANISMS:
        raise errors.TemplateInconsistent(
            "CKA_ALLOWED_MECHANISMS names mechanisms this key cannot use"
        )
    private = bool(values.get(CKA.PRIVATE, pin_configured)) and pin_configured
    return SecretKeyRequest(
        label=str(values.get(CKA.LABEL, "")),
        key_id=bytes(values.get(CKA.ID, b"")),
        token=bool(values.get(CKA.TOKEN, False)),
        private=private,
        usage={
            CKA.ENCRYPT: bool(values.get(CKA.ENCRYPT, True)),
            CKA.DECRYPT: bool(values.get(CKA.DECRYPT, True)),
        },
        allowed_mechanisms=tuple(allowed) if allowed is not None else None,
    )
