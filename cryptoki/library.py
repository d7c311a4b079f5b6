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
needs (``creation``, ``policy``, ``mechanisms.aes``/``ecdh``/``ecdsa``) are therefore imported
inside the methods (and mechanism factories) that use them; the repeated import statement costs
well under 1 µs per call.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from atecc.lazylog import get_logger
from cryptoki import access, attributes, config, errors, limits, mechanisms, objects, schema
from cryptoki.backend import TokenBackend
from cryptoki.constants import CKA, CKF, CKO, CKU
from cryptoki.log_start import start as start_logging
from cryptoki.mechanisms import digest
from cryptoki.objects import Origin, Pkcs11Object
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

log = get_logger("cryptoki.library")

CRYPTOKI_VERSION = Version(3, 0)
LIBRARY_VERSION = Version(0, 1)
CKF_DONT_BLOCK = 1  #: C_WaitForSlotEvent flag


def atecc_backend(cfg: config.TokenConfig) -> TokenBackend:
    """The production backend factory: the chip named by the slot file's interface line."""
    from cryptoki.backends.atecc import AteccBackend

    return AteccBackend(cfg.interface, cfg.path.name, cfg.device, cfg.slot_file.root_ca)


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

    def _object(
        self, sess: Session, token: Token, handle: int, *, key: bool = False
    ) -> Pkcs11Object:
        """The object ``handle`` names, if this session may see it (``access.can_read``)."""
        obj = token.object(handle)
        if obj is None or not access.can_read(sess.state(token.logged_in), private=obj.is_private):
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
            start_logging()
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

    def token(self, slot_id: int) -> Token:
        """The token behind ``slot_id``, for in-process tools that work through this core
        (``cryptoki.keyuse``, ``cryptoki.provision``); C hosts never get here."""
        with self._lock:
            self._check()
            return self._slot(slot_id).token

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
        """C_InitToken (§5.5.8): with the SO PIN (set by the first call when ``user_pin =
        required``; any PIN without one, as for C_Login), every key and object this module made
        is destroyed (keys erased on the chip), the user PIN is cleared and the token takes the
        new label. The chip's own keys and certificates stay: the chip is provisioned at the
        factory (or with ``atecc provision``), not from here."""
        with self._lock:
            self._check()
            self._slot(slot_id)
            busy = any(s.slot_id == slot_id for s in self._sessions.values())
        if busy:
            raise errors.SessionExists("close every session first")
        try:
            text = label.decode("utf-8").rstrip(" ")
        except UnicodeDecodeError:
            raise errors.ArgumentsBad("the label is not UTF-8") from None
        token = self._present_token(slot_id)
        token.login.init_token(so_pin)
        token.reinitialise(text)

    def init_pin(self, session: int, pin: bytes | None) -> None:
        """C_InitPIN (§5.5.9): the SO sets the user PIN (``user_pin = required`` only)."""
        sess, token = self._session(session)
        if not token.pin_configured:
            raise errors.FunctionNotSupported("no PIN can be configured on this token")
        access.check_so(self._state(sess, token), "C_InitPIN")
        token.login.init_pin(pin)

    def set_pin(self, session: int, old_pin: bytes | None, new_pin: bytes | None) -> None:
        """C_SetPIN (§5.5.10): ``user_pin = required`` only."""
        sess, token = self._session(session)
        if not token.pin_configured:
            raise errors.FunctionNotSupported("no PIN can be configured on this token")
        access.check_rw(self._state(sess, token), "C_SetPIN")
        token.login.set_pin(old_pin, new_pin)

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
            token.login.user = None

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
        """C_Login (§5.6.8). See ``login.py`` for why any PIN is accepted without a PIN."""
        sess, token = self._session(session)
        with self._lock:
            ro_exists = any(not s.rw for s in self._sessions.values() if s.slot_id == sess.slot_id)
            token.login.login(user_type, pin, ro_exists)

    def login_user(
        self, session: int, user_type: int, pin: bytes | None, username: bytes | None
    ) -> None:
        """C_LoginUser (3.0 §5.6.9): there are no named users; same as C_Login."""
        self.login(session, user_type, pin)

    def logout(self, session: int) -> None:
        """C_Logout (§5.6.10)."""
        _, token = self._session(session)
        with self._lock:
            token.login.logout()

    # -- objects (§5.7) -----------------------------------------------------------------------
    def _state(self, sess: Session, token: Token) -> int:
        return sess.state(token.logged_in)

    @staticmethod
    def _template_flag(template: Template, attr_type: int, default: bool = False) -> bool:
        """A CK_BBOOL of a raw template as access decisions need it (before any decoding)."""
        for t, v in template:
            if t == attr_type:
                return v[:1] not in (b"", b"\x00")
        return default

    @staticmethod
    def _template_ulong(template: Template, attr_type: int) -> int | None:
        """A CK_ULONG of a raw template, if well-formed (access decisions, before decoding)."""
        for t, v in template:
            if t == attr_type and len(v) == attributes.ULONG_SIZE:
                return int.from_bytes(v, sys.byteorder)
        return None

    def create_object(self, session: int, template: Template) -> int:
        """C_CreateObject (§5.7.1): data objects, X.509 certificates, P-256 public keys, and
        AES keys (written into a free chip key block)."""
        from cryptoki import creation, policy  # lazy, see the module docstring

        sess, token = self._session(session)
        is_secret = self._template_ulong(template, CKA.CLASS) == CKO.SECRET_KEY
        access.check_write(
            self._state(sess, token),
            token_object=self._template_flag(template, CKA.TOKEN),
            private=self._template_flag(template, CKA.PRIVATE, token.pin_configured and is_secret),
        )
        built = creation.build(template, pin_configured=token.pin_configured)
        if isinstance(built, policy.SecretKeyRequest):
            if not token.aes_enabled():
                raise errors.TemplateInconsistent("the chip's AES command is disabled")
            return token.store_secret_key(built, session).handle
        return token.create(built, session).handle

    def copy_object(self, session: int, obj: int, template: Template) -> int:
        """C_CopyObject (§5.7.2): the copy has the original's attributes unless the template
        changes them (CKA_TOKEN and CKA_PRIVATE included). A copy of a chip key names the same
        chip key and is valid as long as the original is; a token copy is recorded."""
        sess, token = self._session(session)
        found = self._object(sess, token, obj)
        if not found.flag(CKA.COPYABLE):
            raise errors.ActionProhibited("object is not copyable")
        values = attributes.decode_template(template)
        attrs = schema.copy_values(schema.schema_of(found.attrs), found.attrs, values)
        if found.origin is not Origin.CREATED and CKA.DESTROYABLE not in values:
            attrs[CKA.DESTROYABLE] = True  # the original may be chip-defined; a copy can go
        access.check_write(
            self._state(sess, token),
            token_object=bool(attrs.get(CKA.TOKEN)),
            private=bool(attrs.get(CKA.PRIVATE)),
        )
        return token.copy(found, attrs, session).handle

    def destroy_object(self, session: int, obj: int) -> None:
        """C_DestroyObject (§5.7.3): generated keys (a key pair goes whole, freeing its chip
        slot), created objects, copies and derived keys; chip-defined objects stay."""
        sess, token = self._session(session)
        found = self._object(sess, token, obj)
        access.check_write(
            self._state(sess, token),
            token_object=found.is_token_object,
            private=found.is_private,
        )
        if not found.flag(CKA.DESTROYABLE):
            raise errors.ActionProhibited("object is not destroyable")
        token.destroy(found)

    def get_object_size(self, session: int, obj: int) -> int:
        """C_GetObjectSize (§5.7.4)."""
        sess, token = self._session(session)
        return self._object(sess, token, obj).size()

    def get_attribute_value(
        self, session: int, obj: int, types: list[int]
    ) -> list[bytes | AttributeFailure]:
        """C_GetAttributeValue (§5.7.5): per-attribute answers; the ABI sets the return code."""
        sess, token = self._session(session)
        return self._object(sess, token, obj).get_attribute_values(types)

    def set_attribute_value(self, session: int, obj: int, template: Template) -> None:
        """C_SetAttributeValue (§5.7.6): what the object's schema lets change (CKA_LABEL,
        CKA_ID, ...); chip-defined objects keep the change in the metadata file. Everything is
        checked before anything changes."""
        sess, token = self._session(session)
        found = self._object(sess, token, obj)
        access.check_write(
            self._state(sess, token),
            token_object=found.is_token_object,
            private=found.is_private,
        )
        values = attributes.decode_template(template)
        schema.check_set(schema.schema_of(found.attrs), found.attrs, values)
        if values:
            token.set_attributes(found, values)

    def find_objects_init(self, session: int, template: Template) -> None:
        """C_FindObjectsInit (§5.7.7): snapshot the matching handles now."""
        sess, token = self._session(session)
        sess.check_idle(FIND)
        criteria = [(t, bytes(v)) for t, v in template]
        state = self._state(sess, token)
        handles = [
            o.handle
            for o in token.objects()
            if access.can_read(state, private=o.is_private) and o.matches(criteria)
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

    # -- operations with a key: one path for every C_*Init (§5.8-§5.12) ----------------------
    def _operation_init(
        self, session: int, use: mechanisms.Use, mechanism: Mechanism, key: int
    ) -> None:
        """The one C_*Init path: state, mechanism, key (the mechanism table's checks), then
        the mechanism's operation becomes the session's active one."""
        sess, token = self._session(session)
        sess.check_idle(use.kind)
        entry = mechanisms.lookup(mechanism, use, token.aes_enabled)
        obj = self._object(sess, token, key, key=True)
        entry.check_key(use, obj)
        sess.begin(use.kind, entry.operation(mechanism, use, obj, token.chip))

    def encrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_EncryptInit (§5.8.1): AES-ECB/CBC/CBC_PAD/GCM with a chip AES key."""
        self._operation_init(session, mechanisms.ENCRYPT, mechanism, key)

    def encrypt(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Encrypt (§5.8.2)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.single(data, out_len))

    def encrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_EncryptUpdate (§5.8.3)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.update(data, out_len), final=False, fed=len(data))

    def encrypt_final(self, session: int, out_len: int | None) -> Output:
        """C_EncryptFinal (§5.8.4)."""
        sess, _ = self._session(session)
        return sess.run(ENCRYPT, lambda op: op.final(out_len))

    def decrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_DecryptInit (§5.9.1)."""
        self._operation_init(session, mechanisms.DECRYPT, mechanism, key)

    def decrypt(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Decrypt (§5.9.2)."""
        sess, _ = self._session(session)
        return sess.run(DECRYPT, lambda op: op.single(data, out_len))

    def decrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_DecryptUpdate (§5.9.3)."""
        sess, _ = self._session(session)
        return sess.run(
            DECRYPT,
            lambda op: op.update(data, out_len),
            final=False,
            fed=len(data),
            too_long=errors.EncryptedDataLenRange,
        )

    def decrypt_final(self, session: int, out_len: int | None) -> Output:
        """C_DecryptFinal (§5.9.4)."""
        sess, _ = self._session(session)
        return sess.run(DECRYPT, lambda op: op.final(out_len))

    # -- message digesting (§5.10): SHA-256 on the chip ---------------------------------------
    def digest_init(self, session: int, mechanism: Mechanism) -> None:
        """C_DigestInit (§5.10.1): CKM_SHA256."""
        sess, token = self._session(session)
        sess.check_idle(DIGEST)
        mechanisms.lookup(mechanism, mechanisms.DIGEST, token.aes_enabled)
        sess.begin(DIGEST, digest.DigestOperation(token.chip.sha256))

    def digest(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Digest (§5.10.2)."""
        sess, _ = self._session(session)
        return sess.run(DIGEST, lambda op: op.digest(data, out_len))

    def digest_update(self, session: int, data: bytes) -> None:
        """C_DigestUpdate (§5.10.3)."""
        sess, _ = self._session(session)
        sess.run(DIGEST, lambda op: op.update(data), final=False, fed=len(data))

    def digest_key(self, session: int, key: int) -> None:
        """C_DigestKey (§5.10.4): session secret keys whose value the host holds (ECDH
        results); chip keys never leave the chip (CKR_KEY_INDIGESTIBLE)."""
        sess, token = self._session(session)
        sess.active(DIGEST)
        obj = self._object(sess, token, key, key=True)
        if obj.object_class != CKO.SECRET_KEY:
            raise errors.KeyIndigestible("only secret keys can be digested")
        if obj.origin is not Origin.DERIVED:
            raise errors.KeyIndigestible("the key's value never leaves the chip")
        value = bytes(obj.attrs[CKA.VALUE])
        if len(value) < limits.MIN_SECRET_KEY_BYTES:
            # a digest over a short secret would give its value away by trying every value
            raise errors.KeyIndigestible("the key is too short to be digested safely")
        sess.run(DIGEST, lambda op: op.update(value), final=False, fed=len(value))

    def digest_final(self, session: int, out_len: int | None) -> Output:
        """C_DigestFinal (§5.10.5)."""
        sess, _ = self._session(session)
        return sess.run(DIGEST, lambda op: op.final(out_len))

    # -- signing (§5.11) and verifying (§5.12) --------------------------------------------------
    def sign_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_SignInit (§5.11.1): ECDSA/ECDSA_SHA256 with an EC private key, or HMAC-SHA256
        with a chip HMAC key, each with CKA_SIGN."""
        self._operation_init(session, mechanisms.SIGN, mechanism, key)

    def sign(self, session: int, data: bytes, out_len: int | None) -> Output:
        """C_Sign (§5.11.2)."""
        sess, _ = self._session(session)
        return sess.run(SIGN, lambda op: op.sign(data, out_len))

    def sign_update(self, session: int, data: bytes) -> None:
        """C_SignUpdate (§5.11.3)."""
        sess, _ = self._session(session)
        sess.run(SIGN, lambda op: op.update(data), final=False, fed=len(data))

    def sign_final(self, session: int, out_len: int | None) -> Output:
        """C_SignFinal (§5.11.4)."""
        sess, _ = self._session(session)
        return sess.run(SIGN, lambda op: op.final(out_len))

    def verify_init(self, session: int, mechanism: Mechanism, key: int) -> None:
        """C_VerifyInit (§5.12.1): an EC public key with CKA_VERIFY (ECDSA verified on the
        host), or a chip HMAC key (the MAC is computed on the chip and compared)."""
        self._operation_init(session, mechanisms.VERIFY, mechanism, key)

    def verify(self, session: int, data: bytes, signature: bytes) -> None:
        """C_Verify (§5.12.2)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.verify(data, signature))

    def verify_update(self, session: int, data: bytes) -> None:
        """C_VerifyUpdate (§5.12.3)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.update(data), final=False, fed=len(data))

    def verify_final(self, session: int, signature: bytes) -> None:
        """C_VerifyFinal (§5.12.4)."""
        sess, _ = self._session(session)
        sess.run(VERIFY, lambda op: op.final(signature))

    # -- key management (§5.14) -------------------------------------------------------------
    def generate_key(self, session: int, mechanism: Mechanism, template: Template) -> int:
        """C_GenerateKey (§5.14.1): CKM_AES_KEY_GEN, chip random into a free AES key block."""
        from cryptoki import policy  # lazy, see the module docstring

        sess, token = self._session(session)
        access.check_write(
            self._state(sess, token),
            token_object=self._template_flag(template, CKA.TOKEN),
            private=self._template_flag(template, CKA.PRIVATE, token.pin_configured),
            what="key",
        )
        mechanisms.lookup(mechanism, mechanisms.GENERATE, token.aes_enabled)
        request = policy.secret_key_request(
            template, schema.Op.GENERATE, pin_configured=token.pin_configured
        )
        return token.store_secret_key(request, session).handle

    def generate_key_pair(
        self,
        session: int,
        mechanism: Mechanism,
        public_template: Template,
        private_template: Template,
    ) -> tuple[int, int]:
        """C_GenerateKeyPair (§5.14.2): P-256 into a free chip slot; returns (public, private)."""
        from cryptoki import policy  # lazy, see the module docstring

        sess, token = self._session(session)
        # Access first: a token object from a read-only session is refused before the
        # templates are judged (CKR_SESSION_READ_ONLY outranks template errors).
        access.check_write(
            self._state(sess, token),
            token_object=self._template_flag(public_template, CKA.TOKEN)
            or self._template_flag(private_template, CKA.TOKEN),
            private=self._template_flag(private_template, CKA.PRIVATE, token.pin_configured)
            or self._template_flag(public_template, CKA.PRIVATE),
            what="key",
        )
        mechanisms.lookup(mechanism, mechanisms.GENERATE_KEY_PAIR, token.aes_enabled)
        request = policy.key_pair_request(
            public_template, private_template, pin_configured=token.pin_configured
        )
        pub, priv = token.generate_key_pair(request, sess.handle)
        return pub.handle, priv.handle

    def derive_key(
        self, session: int, mechanism: Mechanism, base_key: int, template: Template
    ) -> int:
        """C_DeriveKey (§5.14.5): CKM_ECDH1_DERIVE (CKD_NULL) with the chip's ECDH command on a
        private key slot; the result is a CKK_GENERIC_SECRET session object."""
        from cryptoki.mechanisms import ecdh  # lazy, see the module docstring

        sess, token = self._session(session)
        entry = mechanisms.lookup(mechanism, mechanisms.DERIVE, token.aes_enabled)
        obj = self._object(sess, token, base_key, key=True)
        entry.check_key(mechanisms.DERIVE, obj)
        peer = ecdh.peer_point(mechanism.param)
        values = schema.validate(schema.GENERIC_SECRET_KEY, template, schema.Op.DERIVE)
        length = ecdh.derived_length(values.get(CKA.VALUE_LEN))
        access.check_write(
            self._state(sess, token),
            token_object=False,
            private=bool(values.get(CKA.PRIVATE, False)),
            what="key",
        )
        secret = token.chip.ecdh(obj, peer)[:length]
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
        if length > limits.MAX_RANDOM_BYTES:
            raise errors.DataLenRange(f"at most {limits.MAX_RANDOM_BYTES} random bytes per call")
        if length <= 0:
            return b""
        return token.random(length)

    # -- the ABI's failures (PKCS#11 §5.2) --------------------------------------------------
    def end_operation(self, session: int, kind: str) -> None:
        """End the session's active operation of ``kind`` (``cryptoki.session.SIGN``...), if
        any: the ABI calls this when a C_Sign, C_Digest... fails before reaching the core (a
        NULL pointer, data over its limit), since every error but CKR_BUFFER_TOO_SMALL
        terminates the operation. Silent when not initialised or the handle is invalid: the
        call's own error is what the caller gets."""
        with self._lock:
            if self._pid != os.getpid():
                return
            sess = self._sessions.get(session)
        if sess is not None:
            sess.end(kind)


#: The one instance ``cryptoki._abi`` calls.
LIBRARY = Library()
