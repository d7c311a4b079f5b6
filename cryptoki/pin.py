"""User and SO PINs for tokens whose slot file says ``user_pin = required``.

Owns: the PIN hash (scrypt, random 16-byte salt, N=2^14 r=8 p=1, 32-byte output, compared in
constant time), the wrong-PIN counters and the CK_TOKEN_INFO flags they imply, all kept in the
token's metadata file so every process sees one state. Must not: keep, log or return a PIN, or
know about sessions (the token decides who may call what).

Counters: each wrong PIN adds one under the metadata file's lock; a right one resets it. With
:data:`MAX_TRIES` wrong PINs in a row the PIN is locked (CKR_PIN_LOCKED, even for the right PIN)
until the SO sets a new user PIN with C_InitPIN; a locked SO PIN stays locked (the chip and its
keys stay usable through the user PIN, but the SO role is gone; delete the ``pins.so`` entry of
the metadata file as root to start over).
"""

from __future__ import annotations

import os
from typing import Any

from cryptoki import errors
from cryptoki.constants import CKF, CKU
from cryptoki.store import Metadata, MetadataStore

MAX_TRIES = 10
MIN_PIN_LEN = 4
MAX_PIN_LEN = 64
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_ROLE = {CKU.USER: "user", CKU.SO: "so"}


def hash_pin(pin: bytes) -> dict[str, Any]:
    """A new salted scrypt record for ``pin`` (what the metadata file stores)."""
    import hashlib  # lazy (here and below): loads libcrypto, needed only for PIN work

    salt = os.urandom(16)  # = secrets.token_bytes(16)
    digest = hashlib.scrypt(bytes(pin), salt=salt, dklen=32, maxmem=64 * 2**20, **_SCRYPT)
    return {"scheme": "scrypt", **_SCRYPT, "salt": salt.hex(), "hash": digest.hex()}


def pin_matches(record: dict[str, Any], pin: bytes) -> bool:
    """Constant-time comparison of ``pin`` with a stored record (unknown schemes never match)."""
    if record.get("scheme") != "scrypt":
        return False
    import hashlib
    import hmac

    try:
        salt = bytes.fromhex(str(record["salt"]))
        expected = bytes.fromhex(str(record["hash"]))
        digest = hashlib.scrypt(
            bytes(pin),
            salt=salt,
            n=int(record["n"]),
            r=int(record["r"]),
            p=int(record["p"]),
            dklen=len(expected),
            maxmem=64 * 2**20,
        )
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


def token_flags(meta: Metadata) -> int:
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


def verify(store: MetadataStore, user_type: int, pin: bytes | None) -> None:
    """Check ``pin`` for ``user_type`` and count the result in the metadata file.

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
        if pin_matches(record, bytes(pin)):
            if failures:
                meta.failures.pop(name, None)
                store.save(meta)
            return
        meta.failures[name] = failures + 1
        store.save(meta)
    # The try that uses up the last chance is still answered "incorrect"; the next is "locked".
    raise errors.PinIncorrect("wrong PIN")


def set_pin(store: MetadataStore, user_type: int, new_pin: bytes | None) -> None:
    """Store a new PIN for ``user_type`` (resetting its counter); the caller checked who may."""
    record = hash_pin(check_length(new_pin))
    name = role(user_type)

    def change(meta: Metadata) -> None:
        meta.pins[name] = record
        meta.failures.pop(name, None)

    store.modify(change)


def has_pin(store: MetadataStore, user_type: int) -> bool:
    return role(user_type) in store.load().pins
