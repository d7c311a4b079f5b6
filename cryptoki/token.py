"""Token: one chip as PKCS#11 sees it — presence, identity, and the jobs around its objects.

Owns: lazily probing the chip (first use, never C_Initialize; a metadata file that cannot be
trusted makes the token absent), CK_TOKEN_INFO, creating objects (key pairs and AES keys through
``key_slots.py``, created objects, copies), attribute changes, and destroying objects by their
:class:`~cryptoki.objects.Origin` (records change before the chip does), and C_InitToken's wipe.
The other jobs live in their own modules, which the token wires together: which objects exist
(``catalog.py``, into the ``object_table.py``), using chip keys safely (``chip_use.py``), free
chip slots (``key_slots.py``), login and PINs (``login.py``).
Must not: know about session handles beyond "which session owns this session object", decide
access (``access.py``), or map chip errors (the backend does).

Caching: identity, public keys, certificates and IDs are read from the chip once per
C_Initialize; afterwards listing objects costs no chip round trip (a ``stat`` of the metadata
file per lookup is the only I/O).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atecc.lazylog import get_logger
from atecc.record import replace
from cryptoki import errors, limits, objects
from cryptoki.backend import ChipIdentity, TokenBackend
from cryptoki.catalog import Catalog
from cryptoki.chip_use import ChipUse
from cryptoki.config import TokenConfig
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKA, CKF, CKO
from cryptoki.key_slots import KeySlots
from cryptoki.login import Login
from cryptoki.object_table import ObjectTable
from cryptoki.objects import Origin, Pkcs11Object, StoreKey, StoreKind
from cryptoki.store import (
    CopyRecord,
    Metadata,
    MetadataError,
    MetadataStore,
    ObjectRecord,
)
from cryptoki.types import TokenInfo, Version

if TYPE_CHECKING:  # annotations only: policy is imported by the key-creating paths, not at start
    from cryptoki.policy import KeyPairRequest, SecretKeyRequest

log = get_logger("cryptoki.token")

MANUFACTURER = "Microchip Technology Inc"
MAX_SESSIONS = 1024  #: enforced per token; a real, finite limit reported in CK_TOKEN_INFO
MAX_RW_SESSIONS = 1024


def serial_field(serial: bytes) -> str:
    """CK_TOKEN_INFO.serialNumber from the chip's 9-byte serial: bytes 1-8 as 16 hex digits.

    The field holds 16 characters, the serial is 18 hex digits. Microchip's own PKCS#11 module
    (``libcryptoauth.so``) reports serial bytes 1 to 8 (chip ``012326DAE9080CE801`` → token
    ``2326DAE9080CE801``): it drops the fixed first byte 0x01. Reporting the same digits keeps
    PKCS#11 URIs with ``serial=`` written for that module working after switching to this one.
    """
    return serial[1:9].hex().upper()


def model_name(revision: bytes) -> str:
    """ATECC608A for silicon revision byte 0x02, ATECC608B for later ones (0x03 and up)."""
    return "ATECC608A" if len(revision) >= 4 and revision[3] == 0x02 else "ATECC608B"


def revision_version(revision: bytes) -> Version:
    """Hardware version from Info(Revision) ``00 00 60 0r``: 6.r (device family 6 = 608)."""
    if len(revision) < 4:
        return Version(0, 0)
    return Version(revision[2] >> 4, revision[3])


class Token:
    """The token behind one slot.

    :param config: the slot file's settings.
    :param backend: chip access; every call to it happens with :attr:`lock` held.
    :param new_handle: the library's process-wide object handle counter.
    """

    def __init__(
        self, config: TokenConfig, backend: TokenBackend, new_handle: Callable[[], int]
    ) -> None:
        self.config = config
        self.backend = backend
        self.layout = backend.layout()
        self.lock = threading.RLock()
        self.name = f"slot {config.slot_id}"
        self.table = ObjectTable(new_handle)
        self.catalog = Catalog(config, self.layout, backend, self.table, self.name)
        #: the chip operations key objects are used through (what mechanisms receive)
        self.chip = ChipUse(self.lock, backend, lambda: self.store, self.table, self.layout)
        self.login = Login(
            config.user_pin_required, lambda: self.store, self.name, self.chip.pin_binding
        )
        self._identity: ChipIdentity | None = None
        self._store: MetadataStore | None = None
        self._slots: KeySlots | None = None
        #: why the token is absent although the chip answers (metadata refused), for the
        #: slot description and ``atecc doctor``
        self.absent_reason: str | None = None

    @property
    def pin_configured(self) -> bool:
        """``user_pin = required`` in the slot file: CKF_LOGIN_REQUIRED, PINs in the store."""
        return self.login.pin_configured

    @property
    def logged_in(self) -> int | None:
        """Which user type is logged in (CKU_USER/CKU_SO), shared by all sessions."""
        return self.login.user

    # -- presence and identity ---------------------------------------------------------------
    def probe(self) -> bool:
        """True when the chip answers; the first successful probe caches its identity.

        An absent chip is probed again on the next call, so plugging a board in (or creating
        the emulator's state file) is noticed without C_Finalize.
        """
        with self.lock:
            if self._identity is not None:
                return True
            if self.config.problem is not None:  # misconfigured: logged once by config.load
                self.absent_reason = self.config.problem
                return False
            try:
                identity = self.backend.identity()
            except errors.TokenNotPresent as exc:
                reason = str(exc.args[0]) if exc.args else "the chip does not answer"
                self.absent_reason = reason.split(": ", 1)[-1] if ": " in reason else reason
                return False
            except errors.Pkcs11Error as exc:
                log.error("%s: chip answered but failed: %s", self.name, exc)
                return False
            serial = identity.serial.hex().upper()
            store = MetadataStore(self.config.metadata_path, serial)
            try:
                store.load()  # fail closed: a file that cannot be trusted makes the token absent
            except MetadataError as exc:
                if str(exc) != self.absent_reason:
                    log.error("%s: token unavailable: %s", self.name, exc)
                self.absent_reason = str(exc)
                return False
            self.absent_reason = None
            self._store = store
            self._slots = KeySlots(self.config, self.layout, self.backend, store)
            self.catalog.attach(store, self._slots.configured)
            self._identity = identity
            log.info("%s: %s serial %s", self.name, model_name(identity.revision), serial)
            return True

    @property
    def identity(self) -> ChipIdentity:
        """The chip's identity; raises TokenNotPresent when it does not answer."""
        if not self.probe():
            raise errors.TokenNotPresent(f"{self.name}: chip does not answer")
        assert self._identity is not None
        return self._identity

    @property
    def store(self) -> MetadataStore:
        """The token's metadata store (the chip must answer: the file is tied to its serial)."""
        self.identity  # noqa: B018 - raises TokenNotPresent before anything else
        assert self._store is not None
        return self._store

    @property
    def slots(self) -> KeySlots:
        self.identity  # noqa: B018
        assert self._slots is not None
        return self._slots

    def info(self, session_count: int, rw_session_count: int) -> TokenInfo:
        ident = self.identity
        with self.lock:
            label = self.catalog.current_label()  # C_InitToken may have set one
        min_pin, max_pin = self.login.pin_lengths()
        return TokenInfo(
            label=label,
            manufacturer_id=MANUFACTURER,
            model=model_name(ident.revision),
            serial_number=serial_field(ident.serial),
            flags=int(CKF.RNG | CKF.TOKEN_INITIALIZED) | self.login.token_flags(),
            max_session_count=MAX_SESSIONS,
            session_count=session_count,
            max_rw_session_count=MAX_RW_SESSIONS,
            rw_session_count=rw_session_count,
            max_pin_len=max_pin,
            min_pin_len=min_pin,
            total_public_memory=CK_UNAVAILABLE_INFORMATION,
            free_public_memory=CK_UNAVAILABLE_INFORMATION,
            total_private_memory=CK_UNAVAILABLE_INFORMATION,
            free_private_memory=CK_UNAVAILABLE_INFORMATION,
            hardware_version=revision_version(ident.revision),
            firmware_version=Version(0, 0),
            utc_time="",
        )

    # -- objects ------------------------------------------------------------------------------
    def objects(self) -> list[Pkcs11Object]:
        """Every object on the token plus this process's session objects (loads on first use)."""
        with self.lock:
            self.identity  # noqa: B018 - raises TokenNotPresent before any chip read
            self.catalog.current(certificates=True)
            return list(self.table)

    def object(self, handle: int) -> Pkcs11Object | None:
        """The object ``handle`` names, after a cheap check that no other process changed the
        metadata file (a key it destroyed must not be found here any more)."""
        with self.lock:
            self.identity  # noqa: B018
            self.catalog.current()
            return self.table.get(handle)

    # -- creating objects ---------------------------------------------------------------------
    def generate_key_pair(
        self, req: KeyPairRequest, owner_session: int
    ) -> tuple[Pkcs11Object, Pkcs11Object]:
        """GenKey into the first free slot; record it; return (public, private) objects."""
        with self.lock:
            self.catalog.current()
            rec = self.slots.generate_pair(req)
            spec = self.catalog.spec_from_record(rec, token=req.token)
            owner = None if req.token else owner_session
            key = self.catalog.pair_key(rec)
            priv = self.table.add(objects.ec_private_key(self.table.new_handle(), spec, owner, key))
            pub = self.table.add(
                objects.ec_public_key(self.table.new_handle(), spec, owner, key.other_half())
            )
            return pub, priv

    def store_secret_key(self, req: SecretKeyRequest, owner_session: int) -> Pkcs11Object:
        """An AES key in a free key block (C_GenerateKey, or C_CreateObject with a value)."""
        with self.lock:
            self.catalog.current()
            rec = self.slots.store_secret(req)
            owner = None if req.token else owner_session
            return self.table.add(self.catalog.secret_object(self.table.new_handle(), rec, owner))

    def create(self, attrs: dict[int, Any], owner_session: int) -> Pkcs11Object:
        """Add an object made by C_CreateObject (or a copy of one); token ones are recorded."""
        size = objects.value_bytes(attrs)
        if size > limits.MAX_OBJECT_BYTES:
            raise errors.DeviceMemory(
                f"objects hold at most {limits.MAX_OBJECT_BYTES} bytes of values ({size} given)"
            )
        with self.lock:
            self.catalog.current()
            uid = str(attrs[CKA.UNIQUE_ID])
            token = bool(attrs.get(CKA.TOKEN, False))
            obj = objects.created(
                self.table.new_handle(), attrs, uid=uid, owner=None if token else owner_session
            )
            if token:
                self._record(lambda meta: meta.objects.append(ObjectRecord(uid, attrs)))
            return self.add_session_object(obj) if not token else self.table.add(obj)

    def _record(self, change: Callable[[Metadata], None]) -> None:
        """A new token object's record, within the token's object limit."""

        def bounded(meta: Metadata) -> None:
            if len(meta.objects) + len(meta.copies) >= limits.MAX_TOKEN_OBJECTS:
                raise errors.DeviceMemory(
                    f"a token holds at most {limits.MAX_TOKEN_OBJECTS} objects"
                )
            change(meta)

        self.store.modify(bounded)

    def copy(self, found: Pkcs11Object, attrs: dict[int, Any], owner_session: int) -> Pkcs11Object:
        """C_CopyObject after the library's checks: a created object copies whole; a copy of a
        chip key names the same key (a token copy is recorded against the original's stable
        name); a derived secret copies its value (a session object, as derived keys are)."""
        from cryptoki.creation import new_uid  # lazy: object creation only

        uid = new_uid()
        attrs[CKA.UNIQUE_ID] = uid
        if found.origin is Origin.CREATED:
            return self.create(attrs, owner_session)
        if found.origin is Origin.DERIVED:
            obj = Pkcs11Object(
                self.table.new_handle(), attrs, origin=Origin.DERIVED, owner_session=owner_session
            )
            return self.add_session_object(obj)
        root = found.source or found
        if not attrs.get(CKA.TOKEN):
            obj = objects.key_copy(self.table.new_handle(), found, attrs, owner=owner_session)
            return self.add_session_object(obj)
        if root.store_key is None or root.owner_session is not None:
            raise errors.TemplateInconsistent("a session key cannot have a token copy")
        source = str(root.store_key)
        with self.lock:
            self._record(lambda meta: meta.copies.append(CopyRecord(uid, source, attrs)))
            key = StoreKey(StoreKind.COPY, uid)
            return self.table.add(
                objects.key_copy(self.table.new_handle(), found, attrs, owner=None, store_key=key)
            )

    def add_session_object(self, obj: Pkcs11Object) -> Pkcs11Object:
        """A session object (ECDH result, copy of a chip key, created session object), within
        the process's limit per token."""
        with self.lock:
            if len(self.table.session_objects()) >= limits.MAX_SESSION_OBJECTS:
                raise errors.DeviceMemory(
                    f"at most {limits.MAX_SESSION_OBJECTS} session objects per token"
                )
            return self.table.add(obj)

    def new_handle(self) -> int:
        return self.table.new_handle()

    def set_attributes(self, obj: Pkcs11Object, changes: dict[int, Any]) -> None:
        """C_SetAttributeValue after the library's checks: record where the object lives."""
        with self.lock:
            key = obj.store_key
            if key is None or self._store is None or not obj.is_token_object:
                obj.set_attrs(changes)
                return
            if key.kind is StoreKind.CREATED:

                def change(meta: Metadata) -> None:
                    for i, rec in enumerate(meta.objects):
                        if rec.uid == key.name:
                            meta.objects[i] = ObjectRecord(rec.uid, {**rec.attrs, **changes})

                self._store.modify(change)
                obj.set_attrs(changes)
                return
            merged: dict[int, Any] = {}

            def override(meta: Metadata) -> None:
                merged.update(meta.overrides.get(str(key), {}))
                merged.update(changes)
                meta.overrides[str(key)] = dict(merged)

            self._store.modify(override)
            obj.apply_overrides(merged)

    # -- destroying objects -------------------------------------------------------------------
    def destroy(self, obj: Pkcs11Object) -> None:
        """Destroy an object, by its origin (the library checked CKA_DESTROYABLE):

        * session-only objects (session copies, derived keys, created session objects) just go;
        * created objects and token copies lose their record;
        * an AES key loses its record first, then its block is overwritten with chip random;
        * a generated key pair loses one half: the private key's record is marked first, then
          the chip slot gets a new random key (GenKey), so the key is gone from the chip and the
          slot is free; the public key is public data and goes on its own.

        Records change before the chip does: a crash in between leaves at worst an unused key in
        a slot that is free again, never a record naming a key that is no longer there.
        """
        with self.lock:
            destroy = _DESTROY.get(obj.origin)
            if destroy is None or (obj.store_key is None and obj.origin is not Origin.GENERATED):
                self.table.remove(obj)
                return
            destroy(self, obj)
            self.catalog.invalidate()  # our own write: re-read rather than trust the old view

    def _destroy_recorded(self, obj: Pkcs11Object) -> None:
        """A created object or a token copy: drop its record."""
        assert obj.store_key is not None
        uid = obj.store_key.name

        def drop(meta: Metadata) -> None:
            meta.objects[:] = [r for r in meta.objects if r.uid != uid]
            meta.copies[:] = [r for r in meta.copies if r.uid != uid]

        self.store.modify(drop)
        self.table.remove(obj)

    def _drop_copies_of(self, meta: Metadata, obj: Pkcs11Object) -> None:
        if obj.store_key is not None:
            name = str(obj.store_key)
            meta.copies[:] = [r for r in meta.copies if r.source != name]

    def _destroy_secret(self, obj: Pkcs11Object) -> None:
        slot, block = obj.chip_slot, obj.key_block
        assert slot is not None
        uid = obj.attrs.get(CKA.UNIQUE_ID)
        with self.store.locked():
            meta = self.store.load()
            if not any(r.uid == uid for r in meta.secrets):
                self.table.remove(obj)
                raise errors.ObjectHandleInvalid("the key was destroyed by another process")
            meta.secrets[:] = [r for r in meta.secrets if r.uid != uid]
            meta.overrides.pop(str(obj.store_key), None)
            self._drop_copies_of(meta, obj)
            self.store.save(meta)
            self.table.remove_where(lambda o: o is obj or o.source is obj)
            self.slots.erase_secret(slot, block)

    def _destroy_pair(self, obj: Pkcs11Object) -> None:
        slot, pub = obj.chip_slot, obj.public_key
        private = obj.object_class == CKO.PRIVATE_KEY
        assert slot is not None
        with self.store.locked():
            meta = self.store.load()
            rec = next(
                (
                    r
                    for r in meta.keys
                    if r.slot == slot
                    and r.public_key == pub
                    and not (r.private_destroyed if private else r.public_destroyed)
                ),
                None,
            )
            if rec is None:
                self.table.remove(obj)
                raise errors.ObjectHandleInvalid("the key was destroyed by another process")
            if private:
                rest = replace(rec, private_destroyed=True)
                # a session pair's public object needs no record once the slot is free
                gone = rec.public_destroyed or rec.session_pid is not None
            else:
                rest = replace(rec, public_destroyed=True)
                gone = rec.private_destroyed
            meta.keys[:] = [r for r in meta.keys if r is not rec]
            if not gone:
                meta.keys.append(rest)
            if obj.store_key is not None:
                meta.overrides.pop(str(obj.store_key), None)
            self._drop_copies_of(meta, obj)
            self.store.save(meta)
            self.table.remove_where(lambda o: o is obj or o.source is obj)
            if private:
                self.slots.erase_key(slot)

    def reinitialise(self, label: str) -> None:
        """C_InitToken's wipe: every key this token generated or imported is erased on the chip,
        every created object, copy and attribute change is dropped, the user PIN is cleared and
        the token takes ``label``. What the chip product defines (Trust&GO keys and
        certificates, slot-file objects) stays: the chip cannot be wiped from here."""
        with self.lock, self.store.locked():
            meta = self.store.load()
            for rec in meta.keys:
                if not rec.private_destroyed:
                    self.slots.erase_key(rec.slot)
            for srec in meta.secrets:
                self.slots.erase_secret(srec.slot, srec.key_block)
            meta.keys, meta.secrets, meta.objects, meta.copies = [], [], [], []
            meta.overrides = {}
            meta.label = label
            meta.pins.pop("user", None)
            meta.failures = {}
            self.store.save(meta)
            self.catalog.reset()
            log.info("%s: token initialised (label %r)", self.name, label)

    def drop_session_objects(self, session: int | None = None) -> None:
        """Destroy the session objects of ``session`` (all of them when None)."""
        with self.lock:
            for obj in self.table.session_objects(session):
                if self.table.get(obj.handle) is None:
                    continue  # went with an earlier one (a key pair's other half, a copy)
                try:
                    self.destroy(obj)
                except (OSError, errors.Pkcs11Error) as exc:
                    # never fail a close because the store or the chip is gone
                    log.warning("%s: session object not fully removed: %s", self.name, exc)
                    self.table.remove(obj)

    def aes_enabled(self) -> bool:
        """The chip's AES command is enabled (config byte 13): AES mechanisms are offered."""
        with self.lock:
            self.identity  # noqa: B018
            return self.backend.aes_enabled()

    def random(self, length: int) -> bytes:
        """``length`` bytes from the chip's RNG, asked for in pieces (one transaction each, of
        ``limits.RANDOM_CHUNK_BYTES``), so a long request does not keep others from the chip."""
        self.identity  # noqa: B018
        out = []
        for start in range(0, length, limits.RANDOM_CHUNK_BYTES):
            with self.lock:
                out.append(self.backend.random(min(limits.RANDOM_CHUNK_BYTES, length - start)))
        return b"".join(out)

    def close(self) -> None:
        """C_Finalize: drop session keys' records and release the device."""
        try:
            self.drop_session_objects()
        finally:
            with self.lock:
                self.backend.close()


#: How each origin's objects are destroyed (absent, or without a record: they leave the table).
_DESTROY: dict[Origin, Callable[[Token, Pkcs11Object], None]] = {
    Origin.CREATED: Token._destroy_recorded,
    Origin.COPY: Token._destroy_recorded,
    Origin.SECRET: Token._destroy_secret,
    Origin.GENERATED: Token._destroy_pair,
}
