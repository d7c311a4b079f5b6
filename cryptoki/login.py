"""Login: which user is logged in to one token, and the PIN functions around it.

Owns: the token-wide login state shared by all sessions of the process (PKCS#11 §5.6: one user type
at a time), C_Login/C_Logout's state errors, and C_InitToken/C_InitPIN/C_SetPIN on top of
``pin.py`` (hashes and wrong-PIN counters in the metadata file), plus the CK_TOKEN_INFO flags
those imply. Must not: check session handles or access rules (``access.py``), or keep, log or
return a PIN.

Without ``user_pin = required`` no PIN is configured: any PIN is accepted and never looked at.
Why accept at all: CKF_LOGIN_REQUIRED is clear, yet libp11, pkcs11-tool and GnuTLS call C_Login
whenever the user supplied a PIN; refusing would break them for nothing. The state is still
tracked so CKR_USER_ALREADY_LOGGED_IN / CKR_USER_NOT_LOGGED_IN are exact.

Such a token also sets CKF_PROTECTED_AUTHENTICATION_PATH, which says exactly that (PKCS#11 §5.6.8:
the user is authenticated without the application passing a PIN; C_Login takes NULL_PTR). Clients
read it to decide whether to ask for a PIN: the OpenSSL pkcs11-provider logs in before it copies a
key into its session cache (``pkcs11-module-cache-keys``, on by default), whatever
CKF_LOGIN_REQUIRED says, and without the flag it prompts for a PIN that does not exist (a failed
prompt leaves an error that breaks the TLS handshake, or blocks on stdin); pkcs11-tool and GnuTLS
log in with NULL instead of prompting. With a PIN configured the flag is clear: a PIN is needed.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc.lazylog import get_logger
from cryptoki import errors, pin
from cryptoki.constants import CKF, CKU
from cryptoki.store import Metadata, MetadataStore

log = get_logger("cryptoki.login")

MIN_ANY_PIN_LEN = 0  #: without a configured PIN any PIN (even empty) logs in
MAX_ANY_PIN_LEN = 255


class Login:
    """The login state of one token.

    :param pin_configured: the slot file says ``user_pin = required``.
    :param store: returns the token's metadata store (probing the chip first if needed).
    :param name: for log lines ("slot 0").
    """

    def __init__(
        self,
        pin_configured: bool,
        store: Callable[[], MetadataStore],
        name: str,
        chip_ecdh: Callable[[], pin.ChipEcdh | None] = lambda: None,
    ) -> None:
        self.pin_configured = pin_configured
        self._store = store
        self._name = name
        #: the chip's ECDH with a key that binds PIN records to this chip, if it has one
        self._ecdh = chip_ecdh
        #: CKU_USER, CKU_SO or None; shared by all sessions of the token (PKCS#11 §5.6).
        self.user: int | None = None

    def token_flags(self) -> int:
        """CKF_LOGIN_REQUIRED and the PIN state flags of CK_TOKEN_INFO (without a PIN: logging
        in needs none, a protected authentication path; see the module docstring)."""
        if not self.pin_configured:
            return int(CKF.USER_PIN_INITIALIZED | CKF.PROTECTED_AUTHENTICATION_PATH)
        return pin.token_flags(self._store().load())

    def pin_lengths(self) -> tuple[int, int]:
        """(min, max) PIN length for CK_TOKEN_INFO."""
        if self.pin_configured:
            return pin.MIN_PIN_LEN, pin.MAX_PIN_LEN
        return MIN_ANY_PIN_LEN, MAX_ANY_PIN_LEN

    def login(self, user_type: int, pin_value: bytes | None, ro_session_exists: bool) -> None:
        """C_Login: state checks in the spec's order, then the PIN (when one is configured)."""
        if user_type == CKU.CONTEXT_SPECIFIC:
            # No key has CKA_ALWAYS_AUTHENTICATE, so there is never an operation to authorise.
            raise errors.OperationNotInitialized("no operation needs context-specific login")
        if user_type not in (CKU.USER, CKU.SO):
            raise errors.UserTypeInvalid(f"user type {user_type}")
        if self.user == user_type:
            raise errors.UserAlreadyLoggedIn("already logged in")
        if self.user is not None:
            raise errors.UserAnotherAlreadyLoggedIn("another user type is logged in")
        if user_type == CKU.SO and ro_session_exists:
            raise errors.SessionReadOnlyExists("the SO needs every session to be read/write")
        if self.pin_configured:
            pin.verify(self._store(), user_type, pin_value, self._ecdh())
        del pin_value  # never stored or logged
        self.user = user_type
        log.info("%s: %s logged in", self._name, "user" if user_type == CKU.USER else "SO")

    def logout(self) -> None:
        if self.user is None:
            raise errors.UserNotLoggedIn("nobody is logged in")
        self.user = None

    def _pin_store(self) -> MetadataStore:
        if not self.pin_configured:
            raise errors.FunctionNotSupported("no PIN is configured (slot file: user_pin)")
        return self._store()

    def init_token(self, so_pin: bytes | None) -> None:
        """C_InitToken: the first call sets the SO PIN; later ones need it and clear the user
        PIN (the chip's keys and the objects stay: the chip cannot be wiped from here)."""
        if not self.pin_configured:
            return  # any SO PIN, as any PIN logs in (see the module docstring)
        store = self._store()
        if pin.has_pin(store, CKU.SO):
            pin.verify(store, CKU.SO, so_pin, self._ecdh())

            def clear_user(meta: Metadata) -> None:
                meta.pins.pop("user", None)
                meta.failures.pop("user", None)

            store.modify(clear_user)
        else:
            pin.set_pin(store, CKU.SO, so_pin, self._ecdh())

    def init_pin(self, new_pin: bytes | None) -> None:
        """C_InitPIN by the SO (the caller checked the SO is logged in): set the user PIN."""
        pin.set_pin(self._pin_store(), CKU.USER, new_pin, self._ecdh())

    def set_pin(self, old_pin: bytes | None, new_pin: bytes | None) -> None:
        """C_SetPIN: the logged-in user's PIN (the user's when nobody is logged in)."""
        store = self._pin_store()
        who = CKU.SO if self.user == CKU.SO else CKU.USER
        pin.check_length(new_pin)
        ecdh = self._ecdh()
        pin.verify(store, who, old_pin, ecdh)
        pin.set_pin(store, who, new_pin, ecdh)
