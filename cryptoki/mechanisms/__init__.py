"""Mechanism registry: CKM → what C_GetMechanismInfo says and which operations it provides.

Owns: the single list of mechanisms the token advertises. C_GetMechanismList, C_GetMechanismInfo
and every *_init check against it, so a mechanism is advertised exactly when it is implemented.
Must not: hold per-session state (operations live in the session) or touch the chip directly
(operations receive a signing callable from the token).
"""

from __future__ import annotations

from typing import NamedTuple

from cryptoki import errors
from cryptoki.constants import CKF, CKM
from cryptoki.types import Mechanism, MechanismInfo

#: P-256 only: the chip's one curve. Key sizes for EC mechanisms are in bits of the order.
P256_BITS = 256

_EC_CAPS = CKF.EC_F_P | CKF.EC_OID | CKF.EC_UNCOMPRESS

#: ``usage`` arguments of :func:`lookup` as plain ints. Callers on per-call paths (C_SignInit,
#: C_VerifyInit, ...) pass these: ``IntFlag & IntFlag`` costs ~0.6 µs (Flag.__and__), two plain
#: ints ~15 ns, and the registry's flags are plain ints too (see :func:`_info`).
USE_SIGN = int(CKF.SIGN)
USE_VERIFY = int(CKF.VERIFY)
USE_ENCRYPT = int(CKF.ENCRYPT)
USE_DECRYPT = int(CKF.DECRYPT)
USE_DIGEST = int(CKF.DIGEST)
USE_GENERATE = int(CKF.GENERATE)
USE_GENERATE_KEY_PAIR = int(CKF.GENERATE_KEY_PAIR)
USE_DERIVE = int(CKF.DERIVE)


AES_KEY_BYTES = 16  #: AES-128 only: the chip's AES command (spec §4.12); sizes in bytes
HMAC_KEY_BYTES = 32  #: the chip's HMAC key is a slot's first 32 bytes (shorter keys zero-padded)

#: Mechanisms offered only when the chip's config enables the AES command (byte 13 bit 0).
AES_MECHANISMS = frozenset(
    {CKM.AES_KEY_GEN, CKM.AES_ECB, CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_GCM}
)


class MechanismEntry(NamedTuple):
    """One advertised mechanism.

    :ivar info: min/max key size and flags for C_GetMechanismInfo.
    :ivar multipart: C_*Update are allowed.
    :ivar hashed: the input is hashed with SHA-256 on the host before the chip signs it.
    :ivar takes_param: the mechanism has a parameter (checked by its operation); for the
        others any parameter is CKR_MECHANISM_PARAM_INVALID.
    """

    type: CKM
    info: MechanismInfo
    multipart: bool = False
    hashed: bool = False
    takes_param: bool = False


def _info(min_size: int, max_size: int, flags: int) -> MechanismInfo:
    """MechanismInfo with ``flags`` as a plain int (fast ``&`` in :func:`lookup`)."""
    return MechanismInfo(min_size, max_size, int(flags))


_AES_INFO = _info(AES_KEY_BYTES, AES_KEY_BYTES, CKF.HW | CKF.ENCRYPT | CKF.DECRYPT)

REGISTRY: dict[int, MechanismEntry] = {
    e.type: e
    for e in (
        # Raw ECDSA: the caller hashes; single-part only (PKCS#11 3.0 §6.3.10 table).
        MechanismEntry(
            CKM.ECDSA,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
        ),
        # SHA-256 on the host, then the chip signs the digest; single- and multi-part.
        MechanismEntry(
            CKM.ECDSA_SHA256,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
            multipart=True,
            hashed=True,
        ),
        # GenKey into a free chip slot.
        MechanismEntry(
            CKM.EC_KEY_PAIR_GEN,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.GENERATE_KEY_PAIR | _EC_CAPS),
        ),
        # The chip's ECDH command with a slot's private key; CKD_NULL only.
        MechanismEntry(
            CKM.ECDH1_DERIVE,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.DERIVE | _EC_CAPS),
            takes_param=True,
        ),
        # The chip's SHA command (start/update/end); key sizes do not apply.
        MechanismEntry(CKM.SHA256, _info(0, 0, CKF.HW | CKF.DIGEST), multipart=True),
        # SHA command in HMAC mode with a slot key.
        MechanismEntry(
            CKM.SHA256_HMAC,
            _info(HMAC_KEY_BYTES, HMAC_KEY_BYTES, CKF.HW | CKF.SIGN | CKF.VERIFY),
            multipart=True,
        ),
        MechanismEntry(
            CKM.SHA256_HMAC_GENERAL,
            _info(HMAC_KEY_BYTES, HMAC_KEY_BYTES, CKF.HW | CKF.SIGN | CKF.VERIFY),
            multipart=True,
            takes_param=True,
        ),
        # Chip random written into a free AES key block with a clear 32-byte Write.
        MechanismEntry(CKM.AES_KEY_GEN, _info(AES_KEY_BYTES, AES_KEY_BYTES, CKF.HW | CKF.GENERATE)),
        # Block modes on the host around the chip's single-block AES (and GFM for GCM).
        MechanismEntry(CKM.AES_ECB, _AES_INFO, multipart=True),
        MechanismEntry(CKM.AES_CBC, _AES_INFO, multipart=True, takes_param=True),
        MechanismEntry(CKM.AES_CBC_PAD, _AES_INFO, multipart=True, takes_param=True),
        MechanismEntry(CKM.AES_GCM, _AES_INFO, multipart=True, takes_param=True),
    )
}


def mechanism_list(aes: bool = True) -> list[int]:
    """The advertised mechanisms; the AES ones only when the chip has AES enabled."""
    return [m for m in REGISTRY if aes or m not in AES_MECHANISMS]


def lookup(mechanism: Mechanism, usage: int, *, aes: bool = True) -> MechanismEntry:
    """The registry entry for ``mechanism`` if it supports ``usage`` (a CKF_ flag).

    :raises errors.MechanismInvalid: unknown mechanism, or not usable for this function.
    :raises errors.MechanismParamInvalid: a parameter was given to one that takes none.
    """
    entry = REGISTRY.get(mechanism.type)
    if (
        entry is None
        or not entry.info.flags & usage
        or (not aes and mechanism.type in AES_MECHANISMS)
    ):
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism.type:X} not supported here")
    if not entry.takes_param and mechanism.param not in (None, b""):
        raise errors.MechanismParamInvalid("this mechanism takes no parameter")
    return entry


def info(mechanism_type: int, *, aes: bool = True) -> MechanismInfo:
    entry = REGISTRY.get(mechanism_type)
    if entry is None or (not aes and mechanism_type in AES_MECHANISMS):
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism_type:X} not supported here")
    return entry.info
