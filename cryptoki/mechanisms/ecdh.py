"""CKM_ECDH1_DERIVE on P-256 with the chip's ECDH command (CKD_NULL only).

Owns: checking CK_ECDH1_DERIVE_PARAMS (KDF, shared data, the peer's public point given raw as
04||X||Y or DER-wrapped in an OCTET STRING, and that it lies on the curve) and the length rule for
the derived key. Must not: touch the chip (the token runs ECDH with the slot's key) or build the
resulting object (``objects.derived_secret``).
"""

from __future__ import annotations

from cryptoki import errors, limits
from cryptoki.constants import CKD
from cryptoki.der import point_xy
from cryptoki.types import Ecdh1DeriveParams, MechanismParam

SECRET_BYTES = 32  #: the x-coordinate of d·Q on P-256


def peer_point(param: MechanismParam) -> bytes:
    """X||Y of the peer's public key from the mechanism parameter.

    :raises errors.MechanismParamInvalid: not CK_ECDH1_DERIVE_PARAMS, a KDF other than
        CKD_NULL, shared data with CKD_NULL, or a point that is not on P-256.
    """
    if not isinstance(param, Ecdh1DeriveParams):
        raise errors.MechanismParamInvalid("CKM_ECDH1_DERIVE needs CK_ECDH1_DERIVE_PARAMS")
    if param.kdf != CKD.NULL:
        raise errors.MechanismParamInvalid("only CKD_NULL is supported (the raw shared secret)")
    if param.shared_data:
        raise errors.MechanismParamInvalid("CKD_NULL takes no shared data")
    xy = point_xy(bytes(param.public_data))
    if xy is None:
        raise errors.MechanismParamInvalid("the peer's public key is not a P-256 point")
    return xy


def derived_length(value_len: object) -> int:
    """Bytes the derived key keeps: CKA_VALUE_LEN if given (16..32), else all 32.

    A key shorter than ``limits.MIN_SECRET_KEY_BYTES`` could be guessed a byte at a time from
    anything computed with it (C_DigestKey, a MAC), so it is refused.

    :raises errors.TemplateInconsistent: longer than the shared secret.
    :raises errors.AttributeValueInvalid: shorter than the minimum.
    """
    if value_len is None:
        return SECRET_BYTES
    if not isinstance(value_len, int) or value_len > SECRET_BYTES:
        raise errors.TemplateInconsistent("CKA_VALUE_LEN must be at most 32 for P-256 ECDH")
    if value_len < limits.MIN_SECRET_KEY_BYTES:
        raise errors.AttributeValueInvalid(
            f"derived keys keep at least {limits.MIN_SECRET_KEY_BYTES} bytes (CKA_VALUE_LEN)"
        )
    return value_len
