"""Mechanism registry: each CKM with what C_GetMechanismInfo says, the keys it takes and the
operation it builds.

Owns: the single list of mechanisms the token advertises, and for each one, per function
(:class:`Use`: sign, verify, encrypt, ...), the key it needs (:class:`KeyRule`: class, key types,
where the key must live) and the factory of its operation. C_GetMechanismList,
C_GetMechanismInfo, every C_*Init and C_DeriveKey ask this table, so a mechanism is advertised
exactly when it is implemented, and the key checks (:meth:`MechanismEntry.check_key`, one
CKA_ALLOWED_MECHANISMS check among them) are written once. The default CKA_ALLOWED_MECHANISMS of
a key is derived from the same table (:func:`usable_with`).
Must not: hold per-session state (operations live in the session) or touch the chip directly
(operations receive callables ``chip_use.ChipUse`` binds to one key).

Key-check order, the same for every function (matching what SoftHSM2 returns for each case):
a key of the wrong type or in the wrong place (CKR_KEY_TYPE_INCONSISTENT), a key of the wrong
class (the function's own code: KEY_TYPE_INCONSISTENT for sign/encrypt/decrypt/derive,
KEY_FUNCTION_NOT_PERMITTED for verify), the key's usage attribute false
(CKR_KEY_FUNCTION_NOT_PERMITTED), the mechanism outside CKA_ALLOWED_MECHANISMS
(CKR_MECHANISM_INVALID).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from atecc.record import field, record
from cryptoki import errors, session
from cryptoki.constants import CKA, CKF, CKK, CKM, CKO
from cryptoki.types import Mechanism, MechanismInfo

if TYPE_CHECKING:
    from cryptoki.objects import Pkcs11Object

#: P-256 only: the chip's one curve. Key sizes for EC mechanisms are in bits of the order.
P256_BITS = 256
AES_KEY_BYTES = 16  #: AES-128 only: the chip's AES command (chip §4.12); sizes in bytes
HMAC_KEY_BYTES = 32  #: the chip's HMAC key is a slot's first 32 bytes (shorter keys zero-padded)


class Use(NamedTuple):
    """One function a mechanism can serve, and what that function asks of a key.

    :ivar kind: the session's operation kind (one active operation per kind).
    :ivar flag: the CKF_ bit of CK_MECHANISM_INFO (plain int: ``&`` on the per-call path).
    :ivar usage: the key's usage attribute (CKA_SIGN, ...), None for key-less functions.
    :ivar wrong_class: the error for a key of the wrong object class.
    """

    kind: str
    flag: int
    usage: int | None
    wrong_class: type[errors.Pkcs11Error] = errors.KeyTypeInconsistent


SIGN = Use(session.SIGN, int(CKF.SIGN), CKA.SIGN)
VERIFY = Use(session.VERIFY, int(CKF.VERIFY), CKA.VERIFY, errors.KeyFunctionNotPermitted)
ENCRYPT = Use(session.ENCRYPT, int(CKF.ENCRYPT), CKA.ENCRYPT)
DECRYPT = Use(session.DECRYPT, int(CKF.DECRYPT), CKA.DECRYPT)
DIGEST = Use(session.DIGEST, int(CKF.DIGEST), None)
DERIVE = Use("derive", int(CKF.DERIVE), CKA.DERIVE)
GENERATE = Use("generate", int(CKF.GENERATE), None)
GENERATE_KEY_PAIR = Use("generate_key_pair", int(CKF.GENERATE_KEY_PAIR), None)


class Where(enum.Enum):
    """Where a key must live for a mechanism to use it."""

    CHIP = "a chip slot"  #: the chip runs the mechanism with the slot's key
    POINT = "a public point"  #: the host uses the public point (ECDSA verify)


@record(frozen=True)
class KeyRule:
    """The key a mechanism takes for one function."""

    key_class: int
    key_types: frozenset[int]
    where: Where

    def accepts(self, obj: Pkcs11Object) -> bool:
        """Class, type and location all fit (used to derive default allowed mechanisms)."""
        return obj.object_class == self.key_class and self.fits(obj)

    def fits(self, obj: Pkcs11Object) -> bool:
        """Type and location fit, whatever the class."""
        if obj.attrs.get(CKA.KEY_TYPE) not in self.key_types:
            return False
        if self.where is Where.CHIP:
            return obj.chip_slot is not None
        return obj.public_key is not None


#: Builds an operation: (mechanism, entry, use, key object, the token's ``ChipUse``) -> operation.
Factory = Callable[[Mechanism, "MechanismEntry", Use, "Pkcs11Object", Any], Any]


@record(frozen=True)
class MechanismEntry:
    """One advertised mechanism.

    :ivar info: min/max key size and flags for C_GetMechanismInfo.
    :ivar multipart: C_*Update are allowed.
    :ivar hashed: the input is hashed with SHA-256 on the host before the chip signs it.
    :ivar takes_param: the mechanism has a parameter (checked by its operation); for the
        others any parameter is CKR_MECHANISM_PARAM_INVALID.
    :ivar needs_aes: offered only when the chip's config enables the AES command.
    :ivar keys: the key each function takes.
    :ivar factory: builds the operation of a C_*Init (absent for C_DeriveKey and generation).
    """

    type: int
    info: MechanismInfo
    multipart: bool = False
    hashed: bool = False
    takes_param: bool = False
    needs_aes: bool = False
    keys: dict[Use, KeyRule] = field(default_factory=dict)
    factory: Factory | None = None

    def check_key(self, use: Use, obj: Pkcs11Object) -> None:
        """The key checks of module docstring order, for ``use`` with key ``obj``."""
        rule = self.keys[use]
        if not rule.fits(obj):
            raise errors.KeyTypeInconsistent(
                f"mechanism 0x{self.type:X} needs a key of type(s) "
                f"{sorted(int(t) for t in rule.key_types)} in {rule.where.value}"
            )
        if obj.object_class != rule.key_class:
            raise use.wrong_class(f"mechanism 0x{self.type:X} cannot {use.kind} with this key")
        if use.usage is not None and not obj.attrs.get(use.usage, False):
            raise errors.KeyFunctionNotPermitted(f"the key does not allow {use.kind}")
        if self.type not in obj.attrs.get(CKA.ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")

    def operation(self, mechanism: Mechanism, use: Use, obj: Pkcs11Object, chip: Any) -> Any:
        assert self.factory is not None
        return self.factory(mechanism, self, use, obj, chip)


def _info(min_size: int, max_size: int, flags: int) -> MechanismInfo:
    """MechanismInfo with ``flags`` as a plain int (fast ``&`` in :func:`lookup`)."""
    return MechanismInfo(min_size, max_size, int(flags))


# -- operation factories (the modules are imported when first used) ----------------------------
def _ecdsa(mechanism: Mechanism, entry: MechanismEntry, use: Use, obj: Any, chip: Any) -> Any:
    from cryptoki.mechanisms import ecdsa

    if use is SIGN:
        return ecdsa.SignOperation(entry, chip.signer(obj))
    return ecdsa.VerifyOperation(entry, obj.public_key)


def _hmac(mechanism: Mechanism, entry: MechanismEntry, use: Use, obj: Any, chip: Any) -> Any:
    from cryptoki.mechanisms import digest

    length = digest.hmac_length(mechanism)
    if use is SIGN:
        return digest.HmacSignOperation(chip.hmac(obj), length)
    return digest.HmacVerifyOperation(chip.hmac(obj), length)


def _aes(mechanism: Mechanism, entry: MechanismEntry, use: Use, obj: Any, chip: Any) -> Any:
    from cryptoki.mechanisms import aes

    return aes.AesOperation(mechanism, encrypt=use is ENCRYPT, cipher=chip.aes_cipher(obj))


_EC = frozenset({CKK.EC})
_EC_CAPS = CKF.EC_F_P | CKF.EC_OID | CKF.EC_UNCOMPRESS
_EC_SIGN_KEYS = {
    SIGN: KeyRule(CKO.PRIVATE_KEY, _EC, Where.CHIP),
    VERIFY: KeyRule(CKO.PUBLIC_KEY, _EC, Where.POINT),
}
_HMAC_KEYS = {
    use: KeyRule(CKO.SECRET_KEY, frozenset({CKK.GENERIC_SECRET}), Where.CHIP)
    for use in (SIGN, VERIFY)
}
_AES_KEYS = {
    use: KeyRule(CKO.SECRET_KEY, frozenset({CKK.AES}), Where.CHIP) for use in (ENCRYPT, DECRYPT)
}
_HMAC_INFO = _info(HMAC_KEY_BYTES, HMAC_KEY_BYTES, CKF.HW | CKF.SIGN | CKF.VERIFY)
_AES_INFO = _info(AES_KEY_BYTES, AES_KEY_BYTES, CKF.HW | CKF.ENCRYPT | CKF.DECRYPT)

REGISTRY: dict[int, MechanismEntry] = {
    e.type: e
    for e in (
        # Raw ECDSA: the caller hashes; single-part only (PKCS#11 3.0 §6.3.10 table).
        MechanismEntry(
            CKM.ECDSA,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
            keys=_EC_SIGN_KEYS,
            factory=_ecdsa,
        ),
        # SHA-256 on the host, then the chip signs the digest; single- and multi-part.
        MechanismEntry(
            CKM.ECDSA_SHA256,
            _info(P256_BITS, P256_BITS, CKF.HW | CKF.SIGN | CKF.VERIFY | _EC_CAPS),
            multipart=True,
            hashed=True,
            keys=_EC_SIGN_KEYS,
            factory=_ecdsa,
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
            keys={DERIVE: KeyRule(CKO.PRIVATE_KEY, _EC, Where.CHIP)},
        ),
        # The chip's SHA command (start/update/end); key sizes do not apply.
        MechanismEntry(CKM.SHA256, _info(0, 0, CKF.HW | CKF.DIGEST), multipart=True),
        # SHA command in HMAC mode with a slot key.
        MechanismEntry(CKM.SHA256_HMAC, _HMAC_INFO, multipart=True, keys=_HMAC_KEYS, factory=_hmac),
        MechanismEntry(
            CKM.SHA256_HMAC_GENERAL,
            _HMAC_INFO,
            multipart=True,
            takes_param=True,
            keys=_HMAC_KEYS,
            factory=_hmac,
        ),
        # Chip random written into a free AES key block with a clear 32-byte Write.
        MechanismEntry(
            CKM.AES_KEY_GEN,
            _info(AES_KEY_BYTES, AES_KEY_BYTES, CKF.HW | CKF.GENERATE),
            needs_aes=True,
        ),
        # Block modes on the host around the chip's single-block AES (and GFM for GCM).
        MechanismEntry(
            CKM.AES_ECB, _AES_INFO, multipart=True, needs_aes=True, keys=_AES_KEYS, factory=_aes
        ),
        *(
            MechanismEntry(
                m,
                _AES_INFO,
                multipart=True,
                takes_param=True,
                needs_aes=True,
                keys=_AES_KEYS,
                factory=_aes,
            )
            for m in (CKM.AES_CBC, CKM.AES_CBC_PAD, CKM.AES_GCM)
        ),
    )
}


def usable_with(key_class: int, key_type: int, *uses: Use) -> tuple[int, ...]:
    """Mechanisms that take a key of this class and type for any of ``uses``, in registry
    order: the default CKA_ALLOWED_MECHANISMS of such a key, and the bound for a narrower one."""
    return tuple(
        m
        for m, entry in REGISTRY.items()
        if any(
            use in entry.keys
            and entry.keys[use].key_class == key_class
            and key_type in entry.keys[use].key_types
            for use in uses
        )
    )


def mechanism_list(aes: bool = True) -> list[int]:
    """The advertised mechanisms; the AES ones only when the chip has AES enabled."""
    return [m for m, e in REGISTRY.items() if aes or not e.needs_aes]


def lookup(mechanism: Mechanism, use: Use, aes_enabled: Callable[[], bool]) -> MechanismEntry:
    """The registry entry for ``mechanism`` if it serves ``use`` on this token.

    :param aes_enabled: asked only for AES mechanisms (the chip's config byte 13).
    :raises errors.MechanismInvalid: unknown mechanism, or not usable for this function.
    :raises errors.MechanismParamInvalid: a parameter was given to one that takes none.
    """
    entry = REGISTRY.get(mechanism.type)
    if entry is None or not entry.info.flags & use.flag or (entry.needs_aes and not aes_enabled()):
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism.type:X} not supported here")
    if not entry.takes_param and mechanism.param not in (None, b""):
        raise errors.MechanismParamInvalid("this mechanism takes no parameter")
    return entry


def info(mechanism_type: int, *, aes: bool = True) -> MechanismInfo:
    entry = REGISTRY.get(mechanism_type)
    if entry is None or (not aes and entry.needs_aes):
        raise errors.MechanismInvalid(f"mechanism 0x{mechanism_type:X} not supported here")
    return entry.info
