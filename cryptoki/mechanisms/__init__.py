"""Mechanism registry: CKM → what C_GetMechanismInfo says and which operations it provides.

Owns: the single list of mechanisms the token advertises. C_GetMechanismList, C_GetMechanismInfo
and every *_init check against it, so a mechanism is advertised exactly when it is implemented.
Must not: hold per-session state (operations live in the session) or touch the chip directly
(operations receive a signing callable from the token).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptoki import errors
from cryptoki.constants import CKF, CKM
from cryptoki.types import Mechanism, MechanismInfo

#: P-256 only: the chip's one curve. Key sizes for EC mechanisms are in bits of the order.
P256_BITS = 256

_EC_CAPS = CKF.EC_F_P | CKF.EC_OID | CKF.EC_UNCOMPRESS


@dataclass(frozen=True)
class MechanismEntry:
    """One advertised mechanism.

    :ivar info: min/max key size and flags for C_GetMechanismInfo.
    :ivar multipart: C_SignUpdate/C_VerifyUpdate are allowed (hash-then-sign mechanisms).
    :ivar hashed: the input is hashed with SHA-256 on the host before the chip signs it.
    """

    type: CKM
    info: MechanismInfo
    multipart: bool = False
    hashed: bool = False


REGISTRY: dict[int, MechanismEntry] = {
    e.type: e
    for e in (
        # Raw ECDSA: the caller hashes; single-part only (PKCS#11 3.0 §6.3.10 table).
        MechanismEntry(
            CKM.ECDSA,
            MechanismInfo(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
        ),
        # SHA-256 on the host, then the chip signs the digest; single- and multi-part.
        MechanismEntry(
            CKM.ECDSA_SHA256,
            MechanismInfo(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
            multipart=True,
            hashed=True,
        ),
        # GenKey into a free chip slot.
        MechanismEntry(
            CKM.EC_KEY_PAIR_GEN,
            MechanismInfo(P256_BITS, P256_BITS, CKF.HW | CKF.GENERATE_KEY_PAIR | _EC_CAPS),
        ),
    )
}


def mechanism_list() -> list[int]:
    return list(REGISTRY)


def lookup(mechanism: Mechanism, usage: int) -> MechanismEntry:
    """The registry entry for ``mechanism`` if it supports ``usage`` (a CKF_ flag).

    :raises errors.MechanismInvalid: unknown mechanism, or not usable for this function.
    :raises errors.MechanismParamInvalid: a parameter was given; none of ours takes one.
    """
    entry = REGISTRY.get(mechanism.type)
    if entry is None or not entry.info.flags & usage:
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism.type:X} not supported here")
    if mechanism.param not in (None, b""):
        raise errors.MechanismParamInvalid("this mechanism takes no parameter")
    return entry


def info(mechanism_type: int) -> MechanismInfo:
    entry = REGISTRY.get(mechanism_type)
    if entry is None:
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism_type:X} not supported here")
    return entry.info
