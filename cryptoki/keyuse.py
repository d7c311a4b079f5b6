"""Chip keys used by ``atecc`` commands, through this core: the PIN gate of the CLI.

Owns: opening one token in this process exactly as a PKCS#11 application would (a private
:class:`~cryptoki.library.Library`, C_Initialize, C_OpenSession, C_Login, C_FindObjects, C_Sign),
so every ``atecc`` command that uses a private or secret key -- ``csr``, ``sign``, ``cert-store``,
``provision``'s certificate step, a ``raw`` packet that uses a key -- goes through the same login,
wrong-PIN counter and lockout as the module (``login.py``, ``pin.py``), and sees only the keys the
token shows. With ``user_pin = required`` the user PIN is asked for (the caller's
:data:`~atecc.pinentry.PinSource`: ``--pin-file``, ``ATECC_PIN`` or a prompt); without it the
session logs in with an empty PIN, which the module accepts and which makes ``CKA_PRIVATE`` keys
visible, as any PKCS#11 client would do.

Failures become :class:`atecc.cliutil.CliError` lines a user can act on (wrong PIN and how many
tries are left, a locked PIN and who unlocks it, no PIN set yet). Must not: check a PIN itself,
keep or log it, or touch the chip other than through the token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atecc.cliutil import CliError, UsageError
from atecc.record import record
from cryptoki import errors, pin
from cryptoki.attributes import encode_ulong
from cryptoki.constants import CKA, CKF, CKM, CKO, CKU
from cryptoki.types import Mechanism

PinSource = Callable[[], bytes]

_UNLOCK_HINT = (
    'the SO sets a new one: pkcs11-tool --module "$(atecc module-path)" --login '
    "--login-type so --so-pin <SO PIN> --init-pin --new-pin <PIN>"
)


@record(frozen=True)
class ChipKey:
    """A private key of the token, found through a logged-in session."""

    handle: int
    label: str
    chip_slot: int
    public_key: bytes  #: X||Y
    key_id: bytes  #: CKA_ID


class TokenSession:
    """A logged-in R/W session on one token (see :func:`token_session`)."""

    def __init__(self, lib: Any, session: int, slot_id: int) -> None:
        self.lib = lib
        self.session = session
        self.slot_id = slot_id

    @property
    def token(self) -> Any:
        return self.lib.token(self.slot_id)

    def serial(self) -> bytes:
        """The chip's 9-byte serial number, as the token read it."""
        return bytes(self.token.identity.serial)

    def private_keys(self) -> list[ChipKey]:
        """Every private key the session sees (after login: CKA_PRIVATE ones too)."""
        lib, session = self.lib, self.session
        lib.find_objects_init(session, [(CKA.CLASS, encode_ulong(CKO.PRIVATE_KEY))])
        handles = lib.find_objects(session, 256)
        lib.find_objects_final(session)
        found = []
        for handle in handles:
            obj = self.token.object(handle)
            if obj is None or obj.chip_slot is None or obj.public_key is None:
                continue
            label, key_id = lib.get_attribute_value(session, handle, [CKA.LABEL, CKA.ID])
            found.append(
                ChipKey(
                    handle=handle,
                    label=bytes(label).decode(errors="replace") if isinstance(label, bytes) else "",
                    chip_slot=obj.chip_slot,
                    public_key=bytes(obj.public_key),
                    key_id=bytes(key_id) if isinstance(key_id, bytes) else b"",
                )
            )
        return found

    def private_key(self, *, label: str | None = None, chip_slot: int | None = None) -> ChipKey:
        """The one private key with this label, or in this chip slot.

        :raises UsageError: no such key on the token (the message lists the ones there are).
        """
        keys = self.private_keys()
        if label is not None:
            matches = [k for k in keys if k.label == label]
            what = f"labelled {label!r}"
        else:
            matches = [k for k in keys if k.chip_slot == chip_slot]
            what = f"in chip slot {chip_slot}"
        if not matches:
            there = ", ".join(f"{k.label!r} (chip slot {k.chip_slot})" for k in keys) or "none"
            raise UsageError(
                f"no private key {what} on the token in slot {self.slot_id} (its keys: {there})"
            )
        return matches[0]

    def sign_digest(self, key: ChipKey, digest: bytes) -> bytes:
        """R||S over a 32-byte digest with C_SignInit(CKM_ECDSA) / C_Sign."""
        try:
            self.lib.sign_init(self.session, Mechanism(CKM.ECDSA), key.handle)
            signature = self.lib.sign(self.session, bytes(digest), 64)
        except errors.Pkcs11Error as exc:
            raise CliError(f"the token could not sign with {key.label!r}: {_reason(exc)}") from None
        assert isinstance(signature, bytes)
        return signature


def _reason(exc: errors.Pkcs11Error) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__doc__ or "refused"


def _tries_left(lib: Any, slot_id: int) -> int:
    try:
        failures = int(lib.token(slot_id).store.load().failures.get("user", 0))
    except Exception:  # the count is a courtesy in the message; never a second failure
        return -1
    return max(pin.MAX_TRIES - failures, 0)


def login(lib: Any, session: int, slot_id: int, pin_source: PinSource) -> None:
    """C_Login as the user: with the PIN when the token requires one, else with any PIN."""
    flags = lib.get_token_info(slot_id).flags
    if not flags & CKF.LOGIN_REQUIRED:
        lib.login(session, CKU.USER, b"")  # no PIN configured: any PIN; private keys show
        return
    if not flags & CKF.USER_PIN_INITIALIZED:
        raise UsageError(
            f"the token in slot {slot_id} requires a user PIN and none is set yet: set one with "
            "pkcs11-tool --init-token and --init-pin (README: 'Slot-file key user_pin')"
        )
    if flags & CKF.USER_PIN_LOCKED:
        raise CliError(f"the user PIN of the token in slot {slot_id} is locked; {_UNLOCK_HINT}")
    value = pin_source()
    try:
        lib.login(session, CKU.USER, value)
    except errors.PinIncorrect:
        left = _tries_left(lib, slot_id)
        if left == 0:
            raise CliError(f"wrong PIN; the user PIN is now locked: {_UNLOCK_HINT}") from None
        more = (
            f" ({left} {'try' if left == 1 else 'tries'} left before it locks)" if left > 0 else ""
        )
        raise CliError(f"wrong PIN{more}") from None
    except errors.PinLocked:
        raise CliError(f"the user PIN is locked; {_UNLOCK_HINT}") from None
    except errors.PinLenRange:
        raise CliError(f"wrong PIN (PINs are {pin.MIN_PIN_LEN}..{pin.MAX_PIN_LEN} bytes)") from None
    finally:
        del value


def _absent(lib: Any, slot_id: int) -> str:
    try:
        return str(lib.get_slot_info(slot_id).slot_description).strip()
    except errors.Pkcs11Error:
        return "the chip does not answer"


@contextmanager
def token_session(
    filestore: str | os.PathLike[str], slot_id: int, pin_source: PinSource
) -> Iterator[TokenSession]:
    """A logged-in R/W session on the token of ``<filestore>/<slot_id>.conf``; finalised after.

    :raises UsageError: no such slot, the token is absent (the slot description says why: a
        missing chip, a refused metadata file, a misconfigured slot file), no PIN set.
    :raises CliError: wrong or locked PIN.
    """
    from cryptoki.library import Library
    from cryptoki.log import quiet

    lib = Library(filestore=filestore)
    with quiet():  # a problem the module would log is in the error this raises
        lib.initialize(None)
    try:
        if slot_id not in lib.get_slot_list(False):
            raise UsageError(f"no token in slot {slot_id}: {Path(filestore) / f'{slot_id}.conf'}")
        try:
            session = lib.open_session(slot_id, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        except errors.TokenNotPresent:
            raise UsageError(
                f"the token in slot {slot_id} is not available: {_absent(lib, slot_id)}"
            ) from None
        login(lib, session, slot_id, pin_source)
        yield TokenSession(lib, session, slot_id)
    except errors.Pkcs11Error as exc:
        raise CliError(f"the token refused: {_reason(exc)}") from None
    finally:
        lib.finalize()


def authorize_chip_key_use(
    slot_file: str | os.PathLike[str], pin_source: PinSource, what: str
) -> None:
    """The ``atecc.key_use`` hook: before ``what`` (a raw packet) uses a chip key, a token with
    ``user_pin = required`` wants its user PIN, counted like any C_Login."""
    from cryptoki import config

    path = Path(slot_file)
    if not path.stem.isdigit():
        raise UsageError(f"{path} is not a slot file <N>.conf")
    slot_id = int(path.stem)
    from cryptoki.log import quiet

    with quiet():
        wanted = [c for c in config.load(path.parent) if c.slot_id == slot_id]
    if wanted and not wanted[0].user_pin_required:
        return
    if not wanted:  # a slot file the module skips: refuse rather than let the packet through
        raise UsageError(f"{path} is not usable as a token (see 'atecc doctor'); {what} refused")
    with token_session(path.parent, slot_id, pin_source):
        pass  # logged in: the PIN was right, and the try was counted like any other
