"""LIBRARY: the process-wide Cryptoki state and every method ``cryptoki._abi`` calls.

Owns: the initialised flag and the pid it belongs to, the slot table (one per slot file), the
session table, the handle counters, and the order of checks in each function: initialised →
arguments → session handle → access (read-only session, login) → template/mechanism → data, as
the spec's error precedence asks. Must not: touch cffi objects (``_abi`` decodes them), talk to
the chip except through a Token, or let a non-Pkcs11Error escape on purpose.

Concurrency: one RLock guards the tables; chip calls run under the token's own lock, outside the
library lock, so one slow chip does not stall the others (CKF_OS_LOCKING_OK is all we need:
application mutex callbacks without that flag get CKR_CANT_LOCK).

Processes: state is stamped with ``os.getpid()`` at C_Initialize. In a forked child every call
answers CKR_CRYPTOKI_NOT_INITIALIZED until the child calls C_Initialize, which starts afresh
without closing the parent's devices (their descriptors and locks are shared with the parent).
Handles count up from 1 and are never reused in a process, across C_Finalize/C_Initialize too.

Start-up: every short-lived host (``pkcs11-tool -L``, ``p11tool``, an OpenSSL engine per TLS
handshake) imports this module in its first C_Initialize. The modules only object creation
needs (``creation``, ``policy``, ``templates``, ``mechanisms.aes``/``ecdh``) are therefore
imported inside the methods that use them (C_CreateObject/CopyObject, C_GenerateKey[Pair],
C_DeriveKey, C_Encrypt/DecryptInit): about 4 ms less per process start (measured with
``python -X importtime``); the repeated import statement costs well under 1 µs per call.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable
from logging import getLogger
from pathlib import Path
from typing import Any

from cryptoki import attributes, config, errors, mechanisms, objects
from cryptoki.backend import TokenBackend
from cryptoki.constants import CKA, CKF, CKK, CKM, CKO, CKU
from cryptoki.log import configure as configure_logging
from cryptoki.mechanisms import digest
from cryptoki.mechanisms.ecdsa import SignOperation, VerifyOperation
from cryptoki.objects import Pkcs11Object
from cryptoki.session import (
    DECRYPT,
    DIGEST,
    ENCRYPT,
    FIND,
    SIGN,
    VERIFY,
    FindCursor,
    Session,
)
from cryptoki.slot import Slot
from cryptoki.token import MANUFACTURER, MAX_RW_SESSIONS, MAX_SESSIONS, Token
from cryptoki.types import (
    AttributeFailure,
    InitArgs,
    LibraryInfo,
    Mechanism,
    MechanismInfo,
    Output,
    SessionInfo,
    SlotInfo,
    Template,
    TokenInfo,
    Version,
)

log = getLogger("cryptoki.library")

CRYPTOKI_VERSION = Version(3, 0)
LIBRARY_VERSION = Version(0, 1)
CKF_DONT_BLOCK = 1  #: C_WaitForSlotEvent flag


def atecc_backend(cfg: config.TokenConfig) -> TokenBackend:
    """The production backend factory: the chip named by the slot file's interface line."""
    from cryptoki.backends.atecc import AteccBackend

    return AteccBackend(cfg.interface, cfg.path.name)


class Library:
    """The ``Core`` of :mod:`cryptoki.types`; the process has one, :data:`LIBRARY`.

    :param backend_factory: builds a TokenBackend per slot file (tests may substitute).
    :param filestore: directory of slot files; default from the environment at C_Initialize.
    """

    def __init__(
        self,
        backend_factory: Callable[[config.TokenConfig], TokenBackend] = atecc_backend,
        filestore: str | os.PathLike[str] | None = None,
    ) -> None:
        self._backend_factory = backend_factory
        self._filestore = filestore
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._slots: dict[int, Slot] = {}
        self._sessions: dict[int, Session] = {}
        self._session_handles = itertools.count(1)
        self._object_handles = itertools.count(1)
        # A weak reference: fork hooks cannot be unregistered, and must not keep every
        # Library ever made (tests make many) alive.
        ref = weakref.ref(self)

        def after_fork_in_child() -> None:
            lib = ref()
            if lib is not None:
                lib._after_fork_in_child()

        os.register_at_fork(after_in_child=after_fork_in_child)

    # -- process state ------------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        # A lock held by another parent thread at fork time would stay held forever in the
        # child; the child gets fresh ones. Tables are left for initialize() to discard.
        self._lock = threading.RLock()

    def _check(self) -> None:
        if self._pid != os.getpid():  # also when None (not initialised)
            raise errors.CryptokiNotInitialized("C_Initialize has not been called")

    def _new_object_handle(self) -> int:
        with self._lock:
            return next(self._object_handles)

    def _slot(self, slot_id: int) -> Slot:
        slot = self._slots.get(slot_id)
        if slot is None:
            raise errors.SlotIdInvalid(f"no slot {slot_id}")
        return slot

    def _session(self, handle: int) -> tuple[Session, Token]:
        """Initialised check, then the session and its token."""
        with self._lock:
            self._check()
            session = self._sessions.get(handle)
            if session is None:
                raise errors.SessionHandleInvalid(f"no session {handle}")
            return session, self._slots[session.slot_id].token

    def _visible(self, token: Token, obj: Pkcs11Object) -> bool:
        # Private objects are seen only by a logged-in user (spec §4.4, Table 7).
        return not obj.is_private or token.logged_in == _CKU_USER

    def _object(self, token: Token, handle: int, *, key: bool = False) -> Pkcs11Object:
        obj = token.object(handle)
        if obj is None or not self._visible(token, obj):
            if key:
                raise errors.KeyHandleInvalid(f"no key {handle}")
            raise errors.ObjectHandleInvalid(f"no object {handle}")
        return obj

    # -- general purpose (§5.4) ----------------------------------------------------------------
    def initialize(self, args: InitArgs | None) -> None:
        """C_Initialize (§5.4.1): read slot files; no chip is contacted here."""
        if args is not None:
            if not args.reserved_is_null:
                raise errors.ArgumentsBad("pReserved must be NULL")
            if args.has_mutex_functions and not args.flags & CKF.OS_LOCKING_OK:
                raise errors.CantLock("only OS locking is supported; set CKF_OS_LOCKING_OK")
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                raise errors.CryptokiAlreadyInitialized("C_Initialize was already called")
            if self._pid is not None:
                # Inherited from the parent across fork(): forget without closing anything.
                log.debug("fresh C_Initialize in forked child %d", pid)
            self._sessions = {}
            self._slots = {}
            configure_logging()
            # Configuration is read here, once; tokens only touch their chip on first use.
            directory = None if self._filestore is None else Path(self._filestore)
            configs = config.load(directory)
            for cfg in configs:
                token = Token(cfg, self._backend_factory(cfg), self._new_object_handle)
                self._slots[cfg.slot_id] = Slot(cfg, token)
            self._pid = pid
            log.info(
                "initialised with %d slot(s): %s",
                len(self._slots),
                ", ".join(str(s) for s in self._slots) or "none",
            )

    def finalize(self) -> None:
        """C_Finalize (§5.4.2): close every session and device. Survives interpreter exit."""
        with self._lock:
            self._check()
            slots = list(self._slots.values())
            self._sessions = {}
            self._slots = {}
            self._pid = None
        for slot in slots:
            try:
                slot.token.close()
            except Exception as exc:  # at exit modules and files may be half gone
                try:
                    log.warning("slot %d: close failed: %s", slot.slot_id, exc)
                except Exception:
                    pass

    def get_info(self) -> LibraryInfo:
        """C_GetInfo (§5.4.3)."""
        self._check()
        return LibraryInfo(
            cryptoki_version=CRYPTOKI_VERSION,
            manufacturer_id=MANUFACTURER,
            flags=0,
            library_description="ATECC608 PKCS#11 module",
            library_version=LIBRARY_VERSION,
        )

    # -- slots and tokens (§5.5) --------------------------------------------------------------
    def get_slot_list(self, token_present: bool) -> list[int]:
        """C_GetSlotList (§5.5.2): every slot file; with tokenPresent, only answering chips."""
        with self._lock:
            self._check()
            slots = sorted(self._slots.values(), key=lambda s: s.slot_id)
        return [s.slot_id for s in slots if not token_present or s.token.probe()]

    def get_slot_info(self, slot_id: int) -> SlotInfo:
        """C_GetSlotInfo (§5.5.3)."""
        with self._lock:
            self._check()
            slot = self._slot(slot_id)
        return slot.info()

    def _session_counts(self, slot_id: int) -> tuple[int, int]:
        with self._lock:
            mine = [s for s in self._sessions.values() if s.slot_id == slot_id]
        return len(mine), sum(1 for s in mine if s.rw)

    def get_token_info(self, slot_id: int) -> TokenInfo:
        """C_GetTokenInfo (§5.5.4); CKR_TOKEN_NOT_PRESENT when the chip does not answer."""
        with self._lock:
            self._check()
            slot = self._slot(slot_id)
        return slot.token.info(*self._session_counts(slot_id))

    def wait_for_slot_event(self, flags: int) -> int:
        """C_WaitForSlotEvent (§5.5.5): slots never change while initialised."""
        self._check()
        if flags & CKF_DONT_BLOCK:
            raise errors.NoEvent("no slot event")
        raise errors.FunctionNotSupported("blocking slot events are not supported")

    def _present_token(self, slot_id: int) -> Token:
        with self._lock:
            self._check()
            slot = self._slot(slot_id)
        if not slot.token.probe():
            raise errors.TokenNotPresent(f"slot {slot_id}: chip does not answer")
        return slot.token

    def get_mechanism_list(self, slot_id: int) -> list[int]:
        """C_GetMechanismList (§5.5.6)."""
        token = self._present_token(slot_id)
        return mechanisms.mechanism_list(aes=token.aes_enabled())

    def get_mechanism_info(self, slot_id: int, mechanism_type: int) -> MechanismInfo:
        """C_GetMechanismInfo (§5.5.7)."""
        token = self._present_token(slot_id)
        return mechanisms.info(mechanism_type, aes=token.aes_enabled())

    def init_token(self, slot_id: int, so_pin: bytes | None, label: bytes) -> None:
        """C_InitToken (§5.5.8): the chip is provisioned at the factory, not from here. With
        ``user_pin = required`` the first call sets the SO PIN, later ones (with it) clear the
        user PIN; the label stays the slot file's."""
        with self._lock:
            self._check()
            slot = self._slot(slot_id)
            busy = any(s.slot_id == slot_id for s in self._sessions.values())
        if not slot.token.pin_configured:
            raise errors.FunctionNotSupported("tokens are initialised at provisioning time")
        if busy:
            raise errors.SessionExists("close every session first")
        slot.token.init_token(so_pin)

    def _rw_session(self, session: int) -> tuple[Session, Token]:
        sess, token = self._session(session)
        if not sess.rw:
            raise errors.SessionReadOnly("this needs a read/write session")
        return sess, token

    def init_pin(self, session: int, pin: bytes | None) -> None:
        """C_InitPIN (§5.5.9): the SO sets the user PIN (``user_pin = required`` only)."""
        sess, token = self._session(session)
        if not token.pin_configured:
            raise errors.FunctionNotSupported("no PIN can be configured on this token")
        if token.logged_in != CKU.SO:
            raise errors.UserNotLoggedIn("C_InitPIN needs the SO logged in")
        if not sess.rw:
            raise errors.SessionReadOnly("C_InitPIN needs a read/write session")
        token.init_pin(pin)

    def set_pin(self, session: int, old_pin: bytes | None, new_pin: bytes | None) -> None:
        """C_SetPIN (§5.5.10): ``user_pin = required`` only."""
        sess, token = self._session(session)
        if not token.pin_configured:
            raise errors.FunctionNotSupported("no PIN can be configured on this token")
        if not sess.rw:
            raise errors.SessionReadOnly("C_SetPIN needs a read/write session")
        token.set_pin(old_pin, new_pin)

    # -- sessions (§5.6) ---------------------------------------------------------------------
    def open_session(self, slot_id: int, flags: int) -> int:
        """C_OpenSession (§5.6.1)."""
        with self._lock:
            self._check()
            slot = self._slot(slot_id)
        if not flags & CKF.SERIAL_SESSION:
            raise errors.SessionParallelNotSupported("CKF_SERIAL_SESSION must be set")
        token = slot.token
        if not token.probe():
            raise errors.TokenNotPresent(f"slot {slot_id}: chip does not answer")
        with self._lock:
            self._check()
            count, rw_count = self._session_counts(slot_id)
            rw = bool(flags & CKF.RW_SESSION)
            if count >= MAX_SESSIONS or (rw and rw_count >= MAX_RW_SESSIONS):
                raise errors.SessionCount("too many sessions")
            if not rw and token.logged_in == CKU.SO:
                raise errors.SessionReadWriteSoExists("the SO is logged in")
            handle = next(self._session_handles)
            self._sessions[handle] = Session(
                handle, slot_id, CKF.SERIAL_SESSION | (CKF.RW_SESSION if rw else 0)
            )
        return handle

    def close_session(self, session: int) -> None:
        """C_CloseSession (§5.6.2): its session objects go; the last one logs the user out."""
        sess, token = self._session(session)
        with self._lock:
            self._sessions.pop(session, None)
            sess.end_all()
            last = not any(s.slot_id == sess.slot_id for s in self._sessions.values())
        token.drop_session_objects(session)
        if last:
            token.logged_in = None

    def close_all_sessions(self, slot_id: int) -> None:
        """C_CloseAllSessions (§5.6.3)."""
        with self._lock:
            self._check()
            self._slot(slot_id)
            handles = [h for h, s in self._sessions.items() if s.slot_id == slot_id]
        for handle in handles:
            self.close_session(handle)

    def get_session_info(self, session: int) -> SessionInfo:
        """C_GetSessionInfo (§5.6.4)."""
        sess, token = self._session(session)
        # Positional (slot_id, state, flags, device_error): keywords cost ~0.3 µs more here.
        return SessionInfo(sess.slot_id, sess.state(token.logged_in), sess.flags, 0)

    def session_cancel(self, session: int, flags: int) -> None:
        """C_SessionCancel (3.0 §5.6.5): not supported."""
        self._session(session)
        raise errors.FunctionNotSupported("C_SessionCancel is not supported")

    def get_operation_state(self, session: int, out_len: int | None) -> Output:
        """C_GetOperationState (§5.6.6): chip-backed operations cannot be saved."""
        self._session(session)
        raise errors.FunctionNotSupported("operation state cannot be saved")

    def set_operation_state(
        self, session: int, state: bytes, encryption_key: int, authentication_key: int
    ) -> None:
        """C_SetOperationState (§5.6.7)."""
        self._session(session)
        raise errors.FunctionNotSupported("operation state cannot be restored")

    def login(self, session: int, user_type: int, pin: bytes | None) -> None:
        """C_Login (§5.6.8). See Token.login for why any PIN is accepted."""
        sess, token = self._session(session)
        with self._lock:
            ro_exists = any(not s.rw for s in self._sessions.values() if s.slot_id == sess.slot_id)
            token.login(user_type, pin, ro_exists)

    def login_user(
        self, session: int, user_type: int, pin: bytes | None, username: bytes | None
    ) -> None:
        """C_LoginUser (3.0 §5.6.9): there are no named users; same as C_Login."""
        self.login(session, user_type, pin)

    def logout(self, session: int) -> None:
        """C_Logout (§5.6.10)."""
        _, token = self._session(session)
        with self._lock:
            token.logout()

    # -- objects (§5.7) -----------------------------------------------------------------------
    @staticmethod
    def _template_flag(template: Template, attr_type: int) -> bool:
        return any(t == attr_type and v[:1] not in (b"", b"\x00") for t, v in template)

    def _check_new_object(
        self, sess: Session, token: Token, template: Template, *, default_private: bool = False
    ) -> None:
        """Access rules for a new object: token objects need a read/write session, private
        ones (with a PIN configured) a logged-in user."""
        if self._template_flag(template, CKA.TOKEN) and not sess.rw:
            raise errors.SessionReadOnly("token objects need a read/write session")
        private = any(t == CKA.PRIVATE for t, _ in template)
        wants_private = self._template_flag(template, CKA.PRIVATE) if private else default_private
        if token.pin_configured and wants_private and token.logged_in != CKU.USER:
            raise errors.UserNotLoggedIn("private objects need the user logged in")

    def create_object(self, session: int, template: Template) -> int:
        """C_CreateObject (§5.7.1): data objects, X.509 certificates, P-256 public keys, and
        AES keys (written into a free chip key block)."""
        from cryptoki import creation  # lazy, see the module docstring

        sess, token = self._session(session)
        self._check_new_object(sess, token, template)
        built = creation.build(template, pin_configured=token.pin_configured)
        if not isinstance(built, creation.AesImport) and not token.pin_configured:
            # Without a PIN nothing can keep a private object private; as for key pairs, the
            # object is made with CKA_PRIVATE false (read it back to see) and stays visible.
            built[CKA.PRIVATE] = False
        if isinstance(built, creation.AesImport):
            if not token.aes_enabled():
                raise errors.TemplateInconsistent("the chip's AES command is disabled")
            if built.request.private and token.logged_in != CKU.USER:
                raise errors.UserNotLoggedIn("private objects need the user logged in")
            return token.store_secret_key(built.request, session, built.value).handle
        return token.create(built, session).handle

    def copy_object(self, session: int, obj: int, template: Template) -> int:
        """C_CopyObject (§5.7.2). A copy of a chip key is a session object naming the same
        chip slot (so it works from any session of this process); other objects copy whole."""
        from cryptoki import creation  # lazy, see the module docstring

        sess, token = self._session(session)
        found = self._object(token, obj)
        if not found.flag(CKA.COPYABLE):
            raise errors.ActionProhibited("object is not copyable")
        attrs = creation.copy_attrs(found, template)
        chip_key = found.origin not in ("created",)
        if chip_key:
            if attrs.get(CKA.TOKEN) is True and self._template_flag(template, CKA.TOKEN):
                raise errors.TemplateInconsistent("a copy of a chip key is a session object")
            attrs[CKA.TOKEN] = False
            if not any(t == CKA.DESTROYABLE for t, _ in template):
                attrs[CKA.DESTROYABLE] = True
        if attrs.get(CKA.TOKEN) and not sess.rw:
            raise errors.SessionReadOnly("token objects need a read/write session")
        if token.pin_configured and attrs.get(CKA.PRIVATE) and token.logged_in != CKU.USER:
            raise errors.UserNotLoggedIn("private objects need the user logged in")
        if not token.pin_configured:
            attrs[CKA.PRIVATE] = False
        if not chip_key:
            attrs[CKA.UNIQUE_ID] = creation.new_uid()
            return token.create(attrs, session).handle
        attrs.pop(CKA.UNIQUE_ID, None)
        copy = Pkcs11Object(
            handle=token.new_handle(),
            attrs=attrs,
            sensitive=found.sensitive,
            chip_slot=found.chip_slot,
            public_key=found.public_key,
            owner_session=session,
            origin="copy",
            key_block=found.key_block,
        )
        return token.add_session_object(copy).handle

    def destroy_object(self, session: int, obj: int) -> None:
        """C_DestroyObject (§5.7.3): generated keys (a key pair goes whole, freeing its chip
        slot), created objects, copies and derived keys; chip-defined objects stay."""
        sess, token = self._session(session)
        found = self._object(token, obj)
        if found.is_token_object and not sess.rw:
            raise errors.SessionReadOnly("token objects need a read/write session")
        if not found.flag(CKA.DESTROYABLE):
            raise errors.ActionProhibited("object is not destroyable")
        try:
            token.destroy(found)
        except OSError as exc:
            raise errors.FunctionFailed(f"metadata store: {exc.strerror}") from exc

    def get_object_size(self, session: int, obj: int) -> int:
        """C_GetObjectSize (§5.7.4)."""
        _, token = self._session(session)
        return self._object(token, obj).size()

    def get_attribute_value(
        self, session: int, obj: int, types: list[int]
    ) -> list[bytes | AttributeFailure]:
        """C_GetAttributeValue (§5.7.5): per-attribute answers; the ABI sets the return code."""
        _, token = self._session(session)
        return self._object(token, obj).get_attribute_values(types)

    def set_attribute_value(self, session: int, obj: int, template: Template) -> None:
        """C_SetAttributeValue (§5.7.6): CKA_LABEL, CKA_ID and the other attributes the spec
        lets change (``objects.modifiable``); chip-defined objects keep the change in the
        metadata file. Everything is checked before anything changes."""
        sess, token = self._session(session)
        found = self._object(token, obj)
        if found.is_token_object and not sess.rw:
            raise errors.SessionReadOnly("token objects need a read/write session")
        values = attributes.decode_template(template)
        if values and not found.flag(CKA.MODIFIABLE):
            # PKCS#11 3.0 §4.4.1: an object with CKA_MODIFIABLE false refuses C_SetAttributeValue
            # as a whole with CKR_ACTION_PROHIBITED (not ATTRIBUTE_READ_ONLY, which names one
            # attribute the object never lets change).
            raise errors.ActionProhibited("the object has CKA_MODIFIABLE false")
        allowed = objects.modifiable(found)
        for attr_type in values:
            if attr_type not in found.attrs and attr_type not in allowed:
                raise errors.AttributeTypeInvalid(
                    f"{attributes.names([attr_type])} is not an attribute of this object"
                )
        for attr_type in values:
            if attr_type not in allowed:
                raise errors.AttributeReadOnly(f"{attributes.names([attr_type])} is read-only")
        if values:
            token.set_attributes(found, values)

    def find_objects_init(self, session: int, template: Template) -> None:
        """C_FindObjectsInit (§5.7.7): snapshot the matching handles now."""
        sess, token = self._session(session)
        sess.check_idle(FIND)
        criteria = [(t, bytes(v)) for t, v in template]
        handles = [
            o.handle for o in token.objects() if self._visible(token, o) and o.matches(criteria)
        ]
        sess.begin(FIND, FindCursor(handles))

    def find_objects(self, session: int, max_count: int) -> list[int]:
        """C_FindObjects (§5.7.8)."""
        sess, _ = self._session(session)
        cursor: FindCursor = sess.active(FIND)
        return cursor.next(max_count)

    def find_objects_final(self, session: int) -> None:
        """C_FindObjectsFinal (§5.7.9)."""
        sess, _ = self._session(session)
        sess.active(FIND)
        sess.end(FIND)

    # -- encryption and decryption (§5.8, §5.9): AES on the chip --------------------------------
    def _aes_key(self, token: Token, key: int, mechanism: Mechanism, usage: int) -> Pkcs11Object:
        obj = self._object(token, key, key=True)
        if (
            obj.object_class != CKO.SECRET_KEY
            or obj.attrs.get(CKA.KEY_TYPE) != CKK.AES
            or obj.chip_slot is None
        ):
            raise errors.KeyTypeInconsistent("AES mechanisms need an AES key in a chip slot")
        if not obj.flag(usage):
            raise errors.KeyFunctionNotPermitted(f"key has {attributes.names([usage])} false")
        if mechanism.type not in obj.attrs.get(CKA.ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")
        return obj

    def _cipher_init(self, session: int, mechanism: Mechanism, key: int, encrypt: bool) -> None:
        sess, token = self._session(session)
        kind = ENCRYPT if encrypt else DECRYPT
        sess.check_idle(kind)
        usage = mechanisms.USE_ENCRYPT if encrypt else mechanisms.USE_DECRYPT
        mechanisms.lookup(mechanism, usage, aes=token.aes_enabled())
        obj = self._aes_key(token, key, mechanism, CKA.ENCRYPT if encrypt else CKA.DECRYPT)
        assert obj.chip_slot is not None
        from cryptoki.mechanisms import aes  # lazy, see the module docstring

        cipher = token.aes_cipher(obj.chip_slot, obj.key_block)
        sess.begin(kind, aes.AesOperation(mechanism, encrypt=encrypt, cipher=cipher))

    def encrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_EncryptInit (§5.8.1): AES-ECB/CBC/CBC_PAD/GCM with a chip AES key."""
        self._cipher_init(session, mechanism, key, True)

    def encrypt(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Encrypt (§5.8.2)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.single(data, out_len))

    def encrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_EncryptUpdate (§5.8.3)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.update(data, out_len), final=False)

    def encrypt_final(self, session: int, out_len: int | None) -> Output:
        """C_EncryptFinal (§5.8.4)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.final(out_len))

    def decrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_DecryptInit (§5.9.1)."""
        self._cipher_init(session, mechanism, key, False)

    def decrypt(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Decrypt (§5.9.2)."""
        sess, _ = self._session(session)
        return sess.run(DECRYPT, lambda op: op.single(data, out_len))

    def decrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_DecryptUpdate (§5.9.3)."""
        sess, _ = self._session(session)
        return sess.run(DECRYPT, lambda op: op.update(data, out_len), final=False)

    def decrypt_final(self, session: int, out_len: int | None) -> Output:
        """C_DecryptFinal (§5.9.4)."""
        sess, _ = self._session(session)
        return sess.run(DECRYPT, lambda op: op.final(out_len))

    # -- message digesting (§5.10): SHA-256 on the chip ---------------------------------------
    def digest_init(self, session: int, mechanism: Mechanism) -> None:
        """C_DigestInit (§5.10.1): CKM_SHA256."""
        sess, token = self._session(session)
        sess.check_idle(DIGEST)
        mechanisms.lookup(mechanism, mechanisms.USE_DIGEST)
        sess.begin(DIGEST, digest.DigestOperation(token.sha256, token.sha256_stream))

    def digest(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Digest (§5.10.2)."""
        sess, _ = self._session(session)
        return sess.run(DIGEST, lambda op: op.digest(data, out_len))

    def digest_update(self, session: int, data: bytes) -> None:
        """C_DigestUpdate (§5.10.3)."""
        sess, _ = self._session(session)
        sess.run(DIGEST, lambda op: op.update(data), final=False)

    def digest_key(self, session: int, key: int) -> None:
        """C_DigestKey (§5.10.4): session secret keys whose value the host holds (ECDH
        results); chip keys never leave the chip (CKR_KEY_INDIGESTIBLE)."""
        sess, token = self._session(session)
        sess.active(DIGEST)
        obj = self._object(token, key, key=True)
        if obj.object_class != CKO.SECRET_KEY:
            raise errors.KeyIndigestible("only secret keys can be digested")
        if obj.origin != "derived":
            raise errors.KeyIndigestible("the key's value never leaves the chip")
        value = bytes(obj.attrs[CKA.VALUE])
        sess.run(DIGEST, lambda op: op.update(value), final=False)

    def digest_final(self, session: int, out_len: int | None) -> Output:
        """C_DigestFinal (§5.10.5)."""
        sess, _ = self._session(session)
        return sess.run(DIGEST, lambda op: op.final(out_len))

    # -- signing (§5.11) and verifying (§5.12) --------------------------------------------------
    def sign_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_SignInit (§5.11.1): ECDSA/ECDSA_SHA256 with an EC private key, or HMAC-SHA256
        with a chip HMAC key, each with CKA_SIGN."""
        sess, token = self._session(session)
        sess.check_idle(SIGN)
        entry = mechanisms.lookup(mechanism, mechanisms.USE_SIGN)
        if mechanism.type in _HMAC:
            mac, length = self._hmac_key(token, key, mechanism, CKA.SIGN)
            sess.begin(SIGN, digest.HmacSignOperation(mac, length))
            return
        obj = self._object(token, key, key=True)
        attrs = obj.attrs
        if obj.object_class != _CKO_PRIVATE_KEY or attrs.get(_CKA_KEY_TYPE) != _CKK_EC:
            raise errors.KeyTypeInconsistent("ECDSA needs an EC private key")
        if not attrs.get(_CKA_SIGN, False):  # = obj.flag(CKA.SIGN), inlined (hot path)
            raise errors.KeyFunctionNotPermitted("key has CKA_SIGN false")
        if mechanism.type not in attrs.get(_CKA_ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")
        assert obj.chip_slot is not None
        sess.begin(SIGN, SignOperation(entry, token.signer(obj.chip_slot)))

    def _hmac_key(
        self, token: Token, key: int, mechanism: Mechanism, usage: int
    ) -> tuple[Any, int]:
        obj = self._object(token, key, key=True)
        if (
            obj.object_class != CKO.SECRET_KEY
            or obj.attrs.get(CKA.KEY_TYPE) != CKK.GENERIC_SECRET
            or obj.chip_slot is None
        ):
            raise errors.KeyTypeInconsistent("HMAC needs a generic secret key in a chip slot")
        if not obj.flag(usage):
            raise errors.KeyFunctionNotPermitted("the slot's config does not allow HMAC")
        if mechanism.type not in obj.attrs.get(CKA.ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")
        length = digest.hmac_length(mechanism)
        return token.hmac(obj.chip_slot), length

    def sign(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Sign (§5.11.2)."""
        sess, _ = self._session(session)
        return sess.run(SIGN, lambda op: op.sign(data, out_len))

    def sign_update(self, session: int, data: bytes) -> None:
        """C_SignUpdate (§5.11.3)."""
        sess, _ = self._session(session)
        sess.run(SIGN, lambda op: op.update(data), final=False)

    def sign_final(self, session: int, out_len: int | None) -> Output:
        """C_SignFinal (§5.11.4)."""
        sess, _ = self._session(session)
        return sess.run(SIGN, lambda op: op.final(out_len))

    def verify_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_VerifyInit (§5.12.1): an EC public key with CKA_VERIFY (ECDSA verified on the
        host), or a chip HMAC key (the MAC is computed on the chip and compared)."""
        sess, token = self._session(session)
        sess.check_idle(VERIFY)
        entry = mechanisms.lookup(mechanism, mechanisms.USE_VERIFY)
        if mechanism.type in _HMAC:
            mac, length = self._hmac_key(token, key, mechanism, CKA.VERIFY)
            sess.begin(VERIFY, digest.HmacVerifyOperation(mac, length))
            return
        obj = self._object(token, key, key=True)
        attrs = obj.attrs
        if attrs.get(_CKA_KEY_TYPE) != _CKK_EC or obj.public_key is None:
            raise errors.KeyTypeInconsistent("ECDSA needs an EC key")
        if obj.object_class != _CKO_PUBLIC_KEY or not attrs.get(_CKA_VERIFY, False):
            raise errors.KeyFunctionNotPermitted("key cannot verify (use the public key)")
        if mechanism.type not in attrs.get(_CKA_ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")
        sess.begin(VERIFY, VerifyOperation(entry, obj.public_key))

    def verify(self, session: int, data: bytes, signature: bytes) -> None:
        """C_Verify (§5.12.2)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.verify(data, signature))

    def verify_update(self, session: int, data: bytes) -> None:
        """C_VerifyUpdate (§5.12.3)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.update(data), final=False)

    def verify_final(self, session: int, signature: bytes) -> None:
        """C_VerifyFinal (§5.12.4)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.final(signature))

    # -- key management (§5.14) -------------------------------------------------------------
    def generate_key(self, session: int, mechanism: Mechanism, template: Template) -> int:
        """C_GenerateKey (§5.14.1): CKM_AES_KEY_GEN, chip random into a free AES key block."""
        from cryptoki import policy, templates  # lazy, see the module docstring

        sess, token = self._session(session)
        self._check_new_object(sess, token, template, default_private=token.pin_configured)
        mechanisms.lookup(mechanism, mechanisms.USE_GENERATE, aes=token.aes_enabled())
        values = templates.validate(templates.AES_GENERATE, template)
        request = policy.secret_key_request(values, pin_configured=token.pin_configured)
        return token.store_secret_key(request, session).handle

    def generate_key_pair(
        self,
        session: int,
        mechanism: Mechanism,
        public_template: Template,
        private_template: Template,
    ) -> tuple[int, int]:
        """C_GenerateKeyPair (§5.14.2): P-256 into a free chip slot; returns (public, private)."""
        from cryptoki import policy, templates  # lazy, see the module docstring

        sess, token = self._session(session)
        # Access first: a token object from a read-only session is refused before the
        # templates are judged (CKR_SESSION_READ_ONLY outranks template errors).
        wants_token = any(
            t == CKA.TOKEN and v[:1] not in (b"", b"\x00")
            for t, v in list(public_template) + list(private_template)
        )
        if wants_token and not sess.rw:
            raise errors.SessionReadOnly("token keys need a read/write session")
        mechanisms.lookup(mechanism, mechanisms.USE_GENERATE_KEY_PAIR)
        public = templates.validate(templates.EC_PUBLIC_GENERATE, public_template)
        private = templates.validate(templates.EC_PRIVATE_GENERATE, private_template)
        request = policy.key_pair_request(public, private, pin_configured=token.pin_configured)
        pub, priv = token.generate_key_pair(request, sess.handle)
        return pub.handle, priv.handle

    def derive_key(
        self, session: int, mechanism: Mechanism, base_key: int, template: Template
    ) -> int:
        """C_DeriveKey (§5.14.5): CKM_ECDH1_DERIVE (CKD_NULL) with the chip's ECDH command on a
        private key slot; the result is a CKK_GENERIC_SECRET session object."""
        from cryptoki import templates  # lazy, see the module docstring
        from cryptoki.mechanisms import ecdh

        sess, token = self._session(session)
        mechanisms.lookup(mechanism, mechanisms.USE_DERIVE)
        obj = self._object(token, base_key, key=True)
        if (
            obj.object_class != CKO.PRIVATE_KEY
            or obj.attrs.get(CKA.KEY_TYPE) != CKK.EC
            or obj.chip_slot is None
        ):
            raise errors.KeyTypeInconsistent("ECDH needs an EC private key in a chip slot")
        if not obj.flag(CKA.DERIVE):
            raise errors.KeyFunctionNotPermitted("key has CKA_DERIVE false (slot forbids ECDH)")
        if mechanism.type not in obj.attrs.get(CKA.ALLOWED_MECHANISMS, ()):
            raise errors.MechanismInvalid("mechanism not in the key's CKA_ALLOWED_MECHANISMS")
        peer = ecdh.peer_point(mechanism.param)
        values = templates.validate(templates.ECDH_DERIVED, template)
        length = ecdh.derived_length(values.get(CKA.VALUE_LEN))
        if token.pin_configured and values.get(CKA.PRIVATE) and token.logged_in != CKU.USER:
            raise errors.UserNotLoggedIn("private objects need the user logged in")
        if not token.pin_configured:
            values[CKA.PRIVATE] = False  # nothing could protect it; see create_object
        secret = token.ecdh(obj.chip_slot, peer)[:length]
        derived = objects.derived_secret(token.new_handle(), secret, values, sess.handle)
        del secret
        return token.add_session_object(derived).handle

    # -- random numbers (§5.15) ---------------------------------------------------------------
    def seed_random(self, session: int, seed: bytes) -> None:
        """C_SeedRandom (§5.15.1): the chip's DRBG takes no outside seed."""
        self._session(session)
        raise errors.RandomSeedNotSupported("the chip's RNG cannot be seeded")

    def generate_random(self, session: int, length: int) -> bytes:
        """C_GenerateRandom (§5.15.2): from the chip, 32 bytes per Random command."""
        _, token = self._session(session)
        if length <= 0:
            return b""
        return token.random(length)


_HMAC = frozenset({CKM.SHA256_HMAC, CKM.SHA256_HMAC_GENERAL})

# Enum members as module globals for the per-call paths (C_SignInit, C_VerifyInit, the
# visibility check of every object lookup): ``CKA.SIGN`` goes through the enum metaclass
# (~70-120 ns on the benchmark machine), a module global ~20 ns, and C_SignInit read about a
# dozen of them. With the plain-int mechanism flags (mechanisms.USE_*) this took the Python side
# of C_SignInit from ~5.1 to ~2.5 µs (timeit on Library.sign_init).
_CKA_KEY_TYPE = CKA.KEY_TYPE
_CKA_SIGN = CKA.SIGN
_CKA_VERIFY = CKA.VERIFY
_CKA_ALLOWED_MECHANISMS = CKA.ALLOWED_MECHANISMS
_CKO_PRIVATE_KEY = CKO.PRIVATE_KEY
_CKO_PUBLIC_KEY = CKO.PUBLIC_KEY
_CKK_EC = CKK.EC
_CKU_USER = CKU.USER

#: The one instance ``cryptoki._abi`` calls.
LIBRARY = Library()
