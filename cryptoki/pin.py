"""User and SO PINs for tokens whose slot file says ``user_pin = required``.

Owns: the PIN record (salted scrypt, N=2^14 r=8 p=1, and where the chip allows it a second step
on the chip: see below), the wrong-PIN counters and the CK_TOKEN_INFO flags they imply, all kept
in the token's metadata file so every process sees one state. Must not: keep, log or return a
PIN, or know about sessions (the library and ``access.py`` decide who may call what).

Counting: a try is counted *before* its PIN is compared (under the metadata file's lock), and a
right PIN resets the count afterwards, so a process killed between the two has used up its try.
With :data:`MAX_TRIES` wrong PINs in a row the PIN is locked (CKR_PIN_LOCKED, even for the right
PIN) until the SO sets a new user PIN with C_InitPIN; a locked SO PIN stays locked.

Binding to the chip (scheme ``scrypt-ecdh``): when the token has a private key the chip lets run
ECDH (a Trust&GO device key does), the stored hash is ``SHA-256(ECDH(key, P))`` where the point P
is derived from ``scrypt(PIN, salt)`` by hashing to the curve. Nobody knows the discrete
logarithm of P, so without the chip the hash cannot be computed: a copy of the metadata file
alone allows no offline guessing, and every guess needs the chip (about one ECDH per try).
Without such a key the scheme is plain ``scrypt``: an attacker with a copy of the file can try
PINs offline at scrypt's cost (README, SECURITY.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cryptoki import errors
from cryptoki.constants import CKF, CKU
from cryptoki.store import MetadataStore

MAX_TRIES = 10
MIN_PIN_LEN = 4
MAX_PIN_LEN = 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_ROLE = {CKU.USER: "user", CKU.SO: "so"}

#: ECDH of a chip key with a point (X||Y, 64 bytes) -> the shared x-coordinate.
ChipEcdh = Callable[[bytes], bytes]

#: P-256: p (p ≡ 3 mod 4, so square roots are one exponentiation) and b.
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def _scrypt(pin: bytes, salt: bytes, record: dict[str, Any]) -> bytes:
    import hashlib  # lazy (here and below): loads libcrypto, needed only for PIN work

    return hashlib.scrypt(
        bytes(pin),
        salt=salt,
        n=int(record["n"]),
        r=int(record["r"]),
        p=int(record["p"]),
        dklen=32,
        maxmem=64 * 2**20,
    )


def hash_to_curve(seed: bytes) -> bytes:
    """A P-256 point (X||Y) from ``seed``, with a discrete logarithm nobody knows: x candidates
    from SHA-256(seed || counter) until x³ - 3x + b is a square (about two tries)."""
    import hashlib

    for counter in range(256):
        x = int.from_bytes(hashlib.sha256(seed + bytes((counter,))).digest(), "big") % _P
        rhs = (x * x * x - 3 * x + _B) % _P
        y = pow(rhs, (_P + 1) // 4, _P)
        if y * y % _P == rhs:
            return x.to_bytes(32, "big") + y.to_bytes(32, "big")
    raise errors.GeneralError("no curve point found")  # probability 2^-256


def _digest(pin: bytes, record: dict[str, Any], ecdh: ChipEcdh | None) -> bytes:
    import hashlib

    stretched = _scrypt(pin, bytes.fromhex(str(record["salt"])), record)
    if record.get("scheme") == "scrypt-ecdh":
        if ecdh is None:
            raise errors.DeviceError("the PIN is bound to the chip, which cannot be used now")
        return hashlib.sha256(ecdh(hash_to_curve(stretched))).digest()
    return stretched


def hash_pin(pin: bytes, ecdh: ChipEcdh | None = None) -> dict[str, Any]:
    """A new salted record for ``pin`` (what the metadata file stores), bound to the chip when
    ``ecdh`` is given."""
    record: dict[str, Any] = {
        "scheme": "scrypt-ecdh" if ecdh is not None else "scrypt",
        **_SCRYPT,
        "salt": os.urandom(16).hex(),
    }
    record["hash"] = _digest(pin, record, ecdh).hex()
    return record


def pin_matches(record: dict[str, Any], pin: bytes, ecdh: ChipEcdh | None = None) -> bool:
    """Constant-time comparison of ``pin`` with a stored record (unknown schemes never match)."""
    if record.get("scheme") not in ("scrypt", "scrypt-ecdh"):
        return False
    import hmac

    try:
        expected = bytes.fromhex(str(record["hash"]))
        digest = _digest(bytes(pin), record, ecdh)
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(digest, expected)


def check_length(pin: bytes | None) -> bytes:
    if pin is None:
        raise errors.ArgumentsBad("no PIN given (no protected authentication path)")
    if not MIN_PIN_LEN <= len(pin) <= MAX_PIN_LEN:
        raise errors.PinLenRange(f"PINs are {MIN_PIN_LEN}..{MAX_PIN_LEN} bytes")
    return bytes(pin)


def role(user_type: int) -> str:
    return _ROLE[CKU(user_type)]


def token_flags(meta: Any) -> int:
    """CKF_USER_PIN_* / CKF_SO_PIN_* flags from the stored state (login is required)."""
    flags = CKF.LOGIN_REQUIRED
    if "user" in meta.pins:
        flags |= CKF.USER_PIN_INITIALIZED
    for name, low, final, locked in (
        ("user", CKF.USER_PIN_COUNT_LOW, CKF.USER_PIN_FINAL_TRY, CKF.USER_PIN_LOCKED),
        ("so", CKF.SO_PIN_COUNT_LOW, CKF.SO_PIN_FINAL_TRY, CKF.SO_PIN_LOCKED),
    ):
        failures = meta.failures.get(name, 0)
        if failures >= MAX_TRIES:
            flags |= locked
        elif failures == MAX_TRIES - 1:
            flags |= final | low
        elif failures > 0:
            flags |= low
    return int(flags)


def verify(
    store: MetadataStore, user_type: int, pin: bytes | None, ecdh: ChipEcdh | None = None
) -> None:
    """Check ``pin`` for ``user_type``: the try is counted first, the PIN compared after.

    :raises errors.UserPinNotInitialized: no PIN has been set for this role yet.
    :raises errors.PinLocked: too many wrong PINs in a row.
    :raises errors.PinIncorrect: wrong PIN (counted).
    """
    name = role(user_type)
    if pin is None:
        raise errors.ArgumentsBad("no PIN given (no protected authentication path)")
    with store.locked():
        meta = store.load()
        record = meta.pins.get(name)
        if record is None:
            if name == "user":
                raise errors.UserPinNotInitialized("no user PIN is set; the SO sets it")
            raise errors.PinIncorrect("no SO PIN is set; C_InitToken sets it")
        failures = meta.failures.get(name, 0)
        if failures >= MAX_TRIES:
            raise errors.PinLocked(f"the {name} PIN is locked")
        meta.failures[name] = failures + 1  # counted before the comparison, durably
        store.save(meta)
    if not pin_matches(record, bytes(pin), ecdh):
        # The try that uses up the last chance is still answered "incorrect"; the next is
        # "locked".
        raise errors.PinIncorrect("wrong PIN")

    def reset(meta: Any) -> None:
        meta.failures.pop(name, None)
        if ecdh is not None and meta.pins.get(name, {}).get("scheme") == "scrypt":
            meta.pins[name] = hash_pin(bytes(pin), ecdh)  # bind an older record to the chip

    store.modify(reset)


def set_pin(
    store: MetadataStore, user_type: int, new_pin: bytes | None, ecdh: ChipEcdh | None = None
) -> None:
    """Store a new PIN for ``user_type`` (resetting its counter); the caller checked who may."""
    record = hash_pin(check_length(new_pin), ecdh)
    name = role(user_type)

    def change(meta: Any) -> None:
        meta.pins[name] = record
        meta.failures.pop(name, None)

    store.modify(change)


def has_pin(store: MetadataStore, user_type: int) -> bool:
    return role(user_type) in store.load().pins
