"""Token: one chip as PKCS#11 sees it — presence, identity, and the parts that do the work.

Owns: lazily probing the chip (first use, never C_Initialize), CK_TOKEN_INFO, building the
token's objects from the product layout (Trust&GO device key and certificates), the slot file
(``object =`` lines) and the metadata store (generated key pairs and AES keys, created objects,
attribute overrides), the destroy rule of each object :class:`~cryptoki.objects.Origin`, and
serialising every chip call with one RLock per token. The jobs themselves live in their own
modules: the object table (``object_table.py``), key-slot allocation (``key_slots.py``), login
and PINs (``login.py``).
Must not: know about session handles beyond "which session owns this session object", decide
access (``access.py``), or map chip errors (the backend does).

Caching: identity, public keys, certificates and IDs are read from the chip once per
C_Initialize; afterwards listing objects costs no chip round trip (a ``stat`` of the metadata
file per C_FindObjectsInit is the only I/O).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from logging import getLogger
from typing import TYPE_CHECKING, Any

from atecc.der import element_length
from cryptoki import der, errors, limits, objects
from cryptoki.backend import ChipIdentity, TokenBackend
from cryptoki.config import TokenConfig
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKA, CKF, CKO
from cryptoki.key_slots import KeySlots
from cryptoki.login import Login
from cryptoki.object_table import ObjectTable
from cryptoki.objects import Half, KeySpec, Origin, Pkcs11Object, StoreKey, StoreKind
from cryptoki.store import (
    CopyRecord,
    KeyRecord,
    Metadata,
    MetadataError,
    MetadataStore,
    ObjectRecord,
    SecretRecord,
)
from cryptoki.types import TokenInfo, Version

if TYPE_CHECKING:  # annotations only: policy is imported by the key-creating paths, not at start
    from atecc.slotfile import SlotObject
    from cryptoki.policy import KeyPairRequest, SecretKeyRequest

log = getLogger("cryptoki.token")

MANUFACTURER = "Microchip Technology Inc"
MAX_SESSIONS = 1024  #: enforced per token; a real, finite limit reported in CK_TOKEN_INFO
MAX_RW_SESSIONS = 1024


def serial_field(serial: bytes) -> str:
    """CK_TOKEN_INFO.serialNumber from the chip's 9-byte serial.

    The field holds 16 characters, the serial is 18 hex digits. We keep the *first* 16: bytes
    SN[0:2] are Microchip's fixed 0x01 0x23 prefix and SN[2:8] the unique part, while SN[8] is
    a fixed manufacturing byte (0xEE on standard parts, 0x01 on Trust&GO parts), not part of
    what makes a chip unique. The first 16 digits are therefore unique per chip and read as a
    prefix of the serial Microchip tools print (``0123...``), so a p11tool URL's ``serial=``
    is recognisably the chip's serial. Keeping the last 16 would drop the ``01`` and keep the
    constant trailing byte instead, which helps nobody.
    """
    return serial.hex().upper()[:16]


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
        self.login = Login(config.user_pin_required, lambda: self.store, self.name)
        self._identity: ChipIdentity | None = None
        self._store: MetadataStore | None = None
        self._slots: KeySlots | None = None
        self._loaded = False
        self._store_fp: tuple[int, int, int] | None = None
        #: key object → metadata fingerprint when :meth:`using` last found its record (no
        #: change of the file since: no re-read)
        self._checked: weakref.WeakKeyDictionary[Pkcs11Object, Any] = weakref.WeakKeyDictionary()
        #: CK_TOKEN_INFO.label: the slot file's, or the one C_InitToken set
        self.label = config.label
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
            try:
                identity = self.backend.identity()
            except errors.TokenNotPresent:
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
            self._refresh()  # the label C_InitToken may have set
        min_pin, max_pin = self.login.pin_lengths()
        return TokenInfo(
            label=self.label,
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
            self._load()
            self._refresh()
            return list(self.table)

    def object(self, handle: int) -> Pkcs11Object | None:
        """The object ``handle`` names, after a cheap check that no other process changed the
        metadata file (a key it destroyed must not be found here any more)."""
        with self.lock:
            self._load()
            self._refresh()
            return self.table.get(handle)

    def _load(self) -> None:
        """Build the objects the chip product and the slot file define (once per C_Initialize)."""
        if self._loaded:
            return
        self.identity  # noqa: B018 - raises TokenNotPresent before any chip read
        if self.layout.device_key_slot is not None:
            self._load_layout(self.layout.device_key_slot)
        for entry in self.config.objects:
            try:
                self._load_configured(entry)
            except errors.Pkcs11Error as exc:
                log.error(
                    "%s: object %s,%s,%d skipped: %s",
                    self.name,
                    entry.kind,
                    entry.label,
                    entry.slot,
                    exc,
                )
        self._loaded = True
        self._store_fp = None  # force reading the metadata store

    def _add_pair(self, spec: KeySpec, key: StoreKey, owner: int | None = None) -> None:
        new = self.table.new_handle
        self.table.add(objects.ec_private_key(new(), spec, owner, key))
        self.table.add(objects.ec_public_key(new(), spec, owner, key.other_half()))

    def _load_layout(self, key_slot: int) -> None:
        """The product's objects, named as Microchip's Trust&GO tutorial: key, public key and
        certificate ``device``, and the CA certificate ``signer``."""
        pub = self.backend.public_key(key_slot)
        dev_id = der.key_id(pub)
        subject = b""
        chain: tuple[bytes, ...] = ()
        try:
            chain = self.backend.certificate_chain()
        except Exception as exc:  # keep the keys usable even if a certificate cannot be rebuilt
            log.error("%s: certificates not rebuilt: %s", self.name, exc)
        for cert_spec, value in zip(self.layout.certificates, chain, strict=False):
            fields = der.parse_certificate(value)
            if cert_spec.key_slot == key_slot:
                subject = fields.subject
            key = StoreKey(StoreKind.TRUST_AND_GO, f"cert:{cert_spec.label}")
            self.table.add(
                objects.x509_certificate(
                    self.table.new_handle(),
                    value,
                    label=cert_spec.label,
                    cert_id=dev_id if cert_spec.key_slot == key_slot else der.spki_id(fields.spki),
                    store_key=key,
                    category=cert_spec.category,
                    trusted=cert_spec.trusted,
                )
            )
        caps = self.backend.slot_caps(key_slot)
        spec = KeySpec(
            chip_slot=key_slot,
            label=self.layout.device_label,
            public_key=pub,
            key_id=dev_id,
            local=True,
            derive=caps.ecdh,
            subject=subject,
            private=self.pin_configured,
        )
        self._add_pair(spec, StoreKey(StoreKind.TRUST_AND_GO, str(key_slot), Half.PRIVATE))

    def _load_configured(self, entry: SlotObject) -> None:
        """Objects for one ``object = kind,label,slot`` line.

        ``private`` gives a key pair (the public half is computed by the chip from the private
        key), so that clients that fetch the point through the public key with the same CKA_ID
        (libp11) work; ``public`` reads a stored public key; ``certificate`` reads full DER
        from a data slot and trims the slot's padding; ``secret`` is an AES key (key block 0)
        in an AES slot, or an HMAC-SHA256 key in a SHA/data slot that allows HMAC.
        """
        kind, label, slot = entry.kind, entry.label, entry.slot
        key = StoreKey(StoreKind.CONFIGURED, f"{kind}:{slot}:{label}")
        new = self.table.new_handle
        if kind == "private":
            pub = self.backend.public_key(slot)
            spec = KeySpec(
                chip_slot=slot,
                label=label,
                public_key=pub,
                key_id=der.key_id(pub),
                local=False,
                derive=self.backend.slot_caps(slot).ecdh,
                private=self.pin_configured,
            )
            self._add_pair(spec, StoreKey(key.kind, key.name, Half.PRIVATE))
        elif kind == "public":
            pub = self.backend.stored_public_key(slot)
            spec = KeySpec(
                chip_slot=slot, label=label, public_key=pub, key_id=der.key_id(pub), local=False
            )
            self.table.add(objects.ec_public_key(new(), spec, store_key=key))
        elif kind == "certificate":
            data = self.backend.read_slot(slot)
            try:
                value = data[: element_length(data)]
                spki = der.parse_certificate(value).spki
            except ValueError as exc:
                raise errors.FunctionFailed(f"slot {slot} holds no DER certificate") from exc
            self.table.add(
                objects.x509_certificate(
                    new(), value, label=label, cert_id=der.spki_id(spki), store_key=key
                )
            )
        else:  # "secret"; the slot-file parser admits no other kind
            caps = self.backend.slot_caps(slot)
            self.table.add(
                objects.secret_key(
                    new(),
                    label=label,
                    chip_slot=slot,
                    aes=caps.aes and self.backend.aes_enabled(),
                    hmac=caps.hmac,
                    private=self.pin_configured,
                    store_key=key,
                )
            )

    # -- store-backed objects (metadata file) ----------------------------------------------------
    def _refresh(self) -> None:
        """Bring store-backed token objects and overrides in line with the metadata file, if it
        changed on disk (one ``stat`` when it did not)."""
        if self._store is None:
            return
        fp = self._store.fingerprint()
        if fp == self._store_fp:
            return
        meta = self._store.load()
        self._store_fp = fp
        self.label = meta.label if meta.label is not None else self.config.label
        wanted: dict[str, Callable[[int], Pkcs11Object]] = {}
        configured = self.slots.configured
        for rec in meta.keys:
            if rec.session_pid is None and rec.slot not in configured:
                spec = self._spec_from_record(rec, token=True)
                key = self._pair_key(rec)
                if not rec.private_destroyed:
                    wanted[str(key)] = partial(_private_from, spec, key)
                if not rec.public_destroyed:
                    wanted[str(key.other_half())] = partial(_public_from, spec, key.other_half())
        taken = {o.slot for o in self.config.objects}
        for srec in meta.secrets:
            if srec.session_pid is None and srec.slot not in taken:
                wanted[str(self._secret_key(srec))] = partial(self._secret_from, srec)
        recorded: dict[str, dict[int, Any]] = {}
        for orec in meta.objects:
            name = str(StoreKey(StoreKind.CREATED, orec.uid))
            recorded[name] = orec.attrs
            wanted[name] = partial(_created_from, orec)
        self.table.sync(_KEY_KINDS, wanted, recorded)
        copies: dict[str, Callable[[int], Pkcs11Object]] = {}
        for crec in meta.copies:
            source = self.table.by_name(crec.source)
            if source is not None:  # a copy of a key that is gone goes with it
                name = str(StoreKey(StoreKind.COPY, crec.uid))
                recorded[name] = crec.attrs
                copies[name] = partial(_copy_from, source, crec)
        self.table.sync(_COPY_KINDS, copies, recorded)
        self.table.apply_overrides(meta.overrides)

    @staticmethod
    def _pair_key(rec: KeyRecord) -> StoreKey:
        return StoreKey(StoreKind.GENERATED, f"{rec.slot}:{rec.public_key[:8].hex()}", Half.PRIVATE)

    @staticmethod
    def _secret_key(rec: SecretRecord) -> StoreKey:
        return StoreKey(StoreKind.SECRET, rec.uid)

    def _spec_from_record(self, rec: KeyRecord, *, token: bool) -> KeySpec:
        return KeySpec(
            chip_slot=rec.slot,
            label=rec.label,
            public_key=rec.public_key,
            key_id=rec.id,
            local=True,
            derive=rec.derive,
            destroyable=True,
            token=token,
            subject=rec.subject,
            mechanisms=rec.mechanisms,
            private=rec.private if rec.private is not None else self.pin_configured,
            public_private=rec.public_private,
        )

    def _secret_from(self, rec: SecretRecord, handle: int) -> Pkcs11Object:
        return self._secret_object(handle, rec, None)

    def _secret_object(self, handle: int, rec: SecretRecord, owner: int | None) -> Pkcs11Object:
        allowed = rec.attrs.get(CKA.ALLOWED_MECHANISMS)
        return objects.secret_key(
            handle,
            label=rec.label,
            chip_slot=rec.slot,
            aes=True,
            store_key=self._secret_key(rec),
            unique_id=rec.uid,
            key_block=rec.key_block,
            key_id=rec.id,
            local=rec.local,
            destroyable=True,
            token=rec.session_pid is None,
            private=bool(rec.attrs.get(CKA.PRIVATE, False)),
            usage=rec.attrs,
            allowed=tuple(allowed) if allowed is not None else None,
            owner=owner,
            origin=Origin.SECRET,
        )

    # -- creating objects ---------------------------------------------------------------------
    def generate_key_pair(
        self, req: KeyPairRequest, owner_session: int
    ) -> tuple[Pkcs11Object, Pkcs11Object]:
        """GenKey into the first free slot; record it; return (public, private) objects."""
        with self.lock:
            self._load()
            rec = self.slots.generate_pair(req)
            spec = self._spec_from_record(rec, token=req.token)
            owner = None if req.token else owner_session
            key = self._pair_key(rec)
            priv = self.table.add(objects.ec_private_key(self.table.new_handle(), spec, owner, key))
            pub = self.table.add(
                objects.ec_public_key(self.table.new_handle(), spec, owner, key.other_half())
            )
            return pub, priv

    def store_secret_key(self, req: SecretKeyRequest, owner_session: int) -> Pkcs11Object:
        """An AES key in a free key block (C_GenerateKey, or C_CreateObject with a value)."""
        with self.lock:
            self._load()
            rec = self.slots.store_secret(req)
            owner = None if req.token else owner_session
            return self.table.add(self._secret_object(self.table.new_handle(), rec, owner))

    def create(self, attrs: dict[int, Any], owner_session: int) -> Pkcs11Object:
        """Add an object made by C_CreateObject (or a copy of one); token ones are recorded."""
        size = objects.value_bytes(attrs)
        if size > limits.MAX_OBJECT_BYTES:
            raise errors.DeviceMemory(
                f"objects hold at most {limits.MAX_OBJECT_BYTES} bytes of values ({size} given)"
            )
        with self.lock:
            self._load()
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
            self._store_fp = None  # our own write: re-read rather than trust the old view

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
            self.table.clear()
            self._loaded = False
            self._store_fp = None
            self.label = label
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

    # -- chip operations ------------------------------------------------------------------------
    @contextmanager
    def using(self, obj: Pkcs11Object) -> Iterator[None]:
        """Hold the token lock while ``obj``'s chip key is used, after checking it is still the
        key the object names.

        A generated or AES key can be destroyed by another process, and its slot can then take
        a new key: the record is checked (with the metadata file's lock held across the chip
        operation, so nobody destroys it meanwhile) and a handle whose key changed answers
        CKR_KEY_HANDLE_INVALID instead of using someone else's key. Keys the chip product or
        the slot file define cannot change from here; they need no check.
        """
        with self.lock:
            if not obj.alive:
                raise errors.KeyHandleInvalid("the key was destroyed")
            root = obj.source or obj
            if root.origin not in (Origin.GENERATED, Origin.SECRET):
                yield
                return
            with self.store.locked():
                fp = self.store.fingerprint()
                if self._checked.get(root, False) != fp:
                    if not self._key_recorded(self.store.load(), root):
                        self.table.remove_where(lambda o: o is root or o.source is root)
                        raise errors.KeyHandleInvalid("the key was destroyed by another process")
                    self._checked[root] = fp
                yield

    @staticmethod
    def _key_recorded(meta: Metadata, obj: Pkcs11Object) -> bool:
        if obj.origin is Origin.SECRET:
            return any(r.uid == obj.attrs.get(CKA.UNIQUE_ID) for r in meta.secrets)
        return any(
            r.slot == obj.chip_slot and r.public_key == obj.public_key and not r.private_destroyed
            for r in meta.keys
        )

    def signer(self, obj: Pkcs11Object) -> Callable[[bytes], bytes]:
        """A callable that signs a 32-byte digest with ``obj``'s chip key."""
        slot = obj.chip_slot
        assert slot is not None

        def sign(digest: bytes) -> bytes:
            with self.using(obj):
                return self.backend.sign_digest(slot, digest)

        return sign

    def ecdh(self, obj: Pkcs11Object, peer: bytes) -> bytes:
        """The shared x-coordinate of ECDH between ``obj``'s chip key and peer X||Y."""
        assert obj.chip_slot is not None
        with self.using(obj):
            return self.backend.ecdh(obj.chip_slot, peer)

    def sha256(self, data: bytes) -> bytes:
        """SHA-256 of a whole message on the chip, in one transaction."""
        with self.lock:
            return self.backend.sha256(data)

    def sha256_stream(self) -> _LockedStream:
        """A multi-part SHA-256 (the driver's Sha256Stream), each call under the token lock."""
        with self.lock:
            return _LockedStream(self.lock, self.backend.sha256_stream())

    def hmac(self, obj: Pkcs11Object) -> Callable[[bytes], bytes]:
        """A callable computing HMAC-SHA256 on the chip with ``obj``'s slot key."""
        slot = obj.chip_slot
        assert slot is not None
        with self.lock:
            req_random = self.backend.slot_caps(slot).req_random

        def mac(data: bytes) -> bytes:
            with self.using(obj):
                return self.backend.hmac_sha256(slot, data, random_nonce=req_random)

        return mac

    def aes_cipher(self, obj: Pkcs11Object) -> _ChipAes:
        """The chip's AES bound to ``obj``'s key (slot and key block), for ``mechanisms.aes``."""
        return _ChipAes(self, obj)

    def aes_enabled(self) -> bool:
        """The chip's AES command is enabled (config byte 13): AES mechanisms are offered."""
        with self.lock:
            self.identity  # noqa: B018
            return self.backend.aes_enabled()

    def random(self, length: int) -> bytes:
        with self.lock:
            self.identity  # noqa: B018
            return self.backend.random(length)

    def close(self) -> None:
        """C_Finalize: drop session keys' records and release the device."""
        try:
            self.drop_session_objects()
        finally:
            with self.lock:
                self.backend.close()


def _private_from(spec: KeySpec, key: StoreKey, handle: int) -> Pkcs11Object:
    return objects.ec_private_key(handle, spec, store_key=key)


def _public_from(spec: KeySpec, key: StoreKey, handle: int) -> Pkcs11Object:
    return objects.ec_public_key(handle, spec, store_key=key)


def _created_from(rec: ObjectRecord, handle: int) -> Pkcs11Object:
    return objects.created(handle, rec.attrs, uid=rec.uid)


def _copy_from(source: Pkcs11Object, rec: CopyRecord, handle: int) -> Pkcs11Object:
    return objects.key_copy(
        handle, source, rec.attrs, owner=None, store_key=StoreKey(StoreKind.COPY, rec.uid)
    )


#: The store kinds synchronised first (records), then the copies that may name them.
_KEY_KINDS = frozenset({StoreKind.GENERATED, StoreKind.SECRET, StoreKind.CREATED})
_COPY_KINDS = frozenset({StoreKind.COPY})


#: How each origin's objects are destroyed (absent, or without a record: they leave the table).
_DESTROY: dict[Origin, Callable[[Token, Pkcs11Object], None]] = {
    Origin.CREATED: Token._destroy_recorded,
    Origin.COPY: Token._destroy_recorded,
    Origin.SECRET: Token._destroy_secret,
    Origin.GENERATED: Token._destroy_pair,
}


class _LockedStream:
    """A chip SHA-256 stream whose every call holds the token lock."""

    def __init__(self, lock: Any, stream: Any) -> None:
        self._lock = lock
        self._stream = stream

    def update(self, data: bytes) -> None:
        with self._lock:
            self._stream.update(data)

    def digest(self) -> bytes:
        with self._lock:
            return bytes(self._stream.digest())


class _ChipAes:
    """``mechanisms.aes.BlockCipher`` over the token's backend, bound to one key object; every
    block operation runs under :meth:`Token.using`, so a key destroyed meanwhile is refused."""

    def __init__(self, token: Token, obj: Pkcs11Object) -> None:
        assert obj.chip_slot is not None
        self._token = token
        self._obj = obj
        self._slot = obj.chip_slot
        self._block = obj.key_block

    def ecb(self, data: bytes, *, decrypt: bool) -> bytes:
        if not data:
            return b""
        with self._token.using(self._obj):
            return self._token.backend.aes_ecb(self._slot, self._block, data, decrypt=decrypt)

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        if not data:
            return b""
        with self._token.using(self._obj):
            return self._token.backend.aes_cbc_encrypt(self._slot, self._block, iv, data)

    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        if not data:
            return y
        with self._token.lock:
            return self._token.backend.ghash(h, y, data)
