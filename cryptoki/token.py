"""Token: one chip as PKCS#11 sees it — identity, login state, object table, key generation.

Owns: lazily probing the chip (first use, never C_Initialize), CK_TOKEN_INFO, login and PINs (via
``pin.py``), building the object table from the slot file (Trust&GO device key and certificates,
``object =`` lines) and from the metadata store (generated key pairs and AES keys, created
objects, attribute overrides), refreshing it when another process changes the store, choosing a
free chip slot (or AES key block) for C_GenerateKeyPair / C_GenerateKey, and serialising every
chip call with one RLock per token.
Must not: know about session handles beyond "which session owns this session object", or map
chip errors (the backend does).

Caching: identity, public keys, certificates and IDs are read from the chip once per
C_Initialize; afterwards listing objects costs no chip round trip (a ``stat`` of the metadata
file per C_FindObjectsInit is the only I/O).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from logging import getLogger
from typing import TYPE_CHECKING, Any

from cryptoki import der, errors, objects, pin
from cryptoki.backend import ChipIdentity, TokenBackend
from cryptoki.config import ObjectSpec, TokenConfig
from cryptoki.constants import (
    CK_UNAVAILABLE_INFORMATION,
    CKA,
    CKF,
    CKK,
    CKO,
    CKU,
    CertificateCategory,
)
from cryptoki.objects import KeySpec, Pkcs11Object
from cryptoki.store import KeyRecord, Metadata, MetadataStore, ObjectRecord, SecretRecord
from cryptoki.types import TokenInfo, Version

if TYPE_CHECKING:  # annotations only: policy is imported by the key-creating paths, not at start
    from cryptoki.policy import KeyPairRequest, SecretKeyRequest

log = getLogger("cryptoki.token")

MANUFACTURER = "Microchip Technology Inc"
MAX_SESSIONS = 1024  #: enforced per token; a real, finite limit reported in CK_TOKEN_INFO
MAX_RW_SESSIONS = 1024
MIN_PIN_LEN = 0  #: no PIN is configured: any PIN (even empty) logs in, see Token.login
MAX_PIN_LEN = 255

#: Trust&GO (ATECC608-TNGTLS) factory layout, from Microchip's TNGTLS datasheet.
TNG_DEVICE_KEY_SLOT = 0
TNG_RESERVED_SLOTS = frozenset({0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})


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
        self.lock = threading.RLock()
        self._new_handle = new_handle
        self._identity: ChipIdentity | None = None
        self._objects: dict[int, Pkcs11Object] | None = None  # token objects, by handle
        self._session_objects: dict[int, Pkcs11Object] = {}
        self._store: MetadataStore | None = None
        self._store_fp: tuple[int, int, int] | None = None
        #: Which user type is logged in (CKU_USER/CKU_SO), shared by all sessions (spec §5.6).
        self.logged_in: int | None = None
        #: ``user_pin = required`` in the slot file: CKF_LOGIN_REQUIRED, PINs in the metadata file
        self.pin_configured = config.user_pin_required

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
                self._identity = self.backend.identity()
            except errors.TokenNotPresent:
                return False
            except errors.Pkcs11Error as exc:
                log.error("slot %d: chip answered but failed: %s", self.config.slot_id, exc)
                return False
            self._store = MetadataStore(
                self.config.metadata_path, self._identity.serial.hex().upper()
            )
            log.info(
                "slot %d: %s serial %s",
                self.config.slot_id,
                model_name(self._identity.revision),
                self._identity.serial.hex().upper(),
            )
            return True

    @property
    def identity(self) -> ChipIdentity:
        """The chip's identity; raises TokenNotPresent when it does not answer."""
        if not self.probe():
            raise errors.TokenNotPresent(f"slot {self.config.slot_id}: chip does not answer")
        assert self._identity is not None
        return self._identity

    def info(self, session_count: int, rw_session_count: int) -> TokenInfo:
        ident = self.identity
        hw = revision_version(ident.revision)
        flags = CKF.RNG | CKF.TOKEN_INITIALIZED
        if self.pin_configured:
            assert self._store is not None
            flags |= pin.token_flags(self._store.load())
        else:
            flags |= CKF.USER_PIN_INITIALIZED
        return TokenInfo(
            label=self.config.label,
            manufacturer_id=MANUFACTURER,
            model=model_name(ident.revision),
            serial_number=serial_field(ident.serial),
            flags=int(flags),
            max_session_count=MAX_SESSIONS,
            session_count=session_count,
            max_rw_session_count=MAX_RW_SESSIONS,
            rw_session_count=rw_session_count,
            max_pin_len=pin.MAX_PIN_LEN if self.pin_configured else MAX_PIN_LEN,
            min_pin_len=pin.MIN_PIN_LEN if self.pin_configured else MIN_PIN_LEN,
            total_public_memory=CK_UNAVAILABLE_INFORMATION,
            free_public_memory=CK_UNAVAILABLE_INFORMATION,
            total_private_memory=CK_UNAVAILABLE_INFORMATION,
            free_private_memory=CK_UNAVAILABLE_INFORMATION,
            hardware_version=hw,
            firmware_version=Version(0, 0),
            utc_time="",
        )

    # -- login (spec §5.6.9) ----------------------------------------------------------------
    def login(self, user_type: int, pin_value: bytes | None, ro_session_exists: bool) -> None:
        """Log a user in.

        Without ``user_pin = required`` no PIN is configured, so any PIN is accepted and never
        looked at. Why accept at all: CKF_LOGIN_REQUIRED is clear, yet libp11, pkcs11-tool and
        GnuTLS call C_Login whenever the user supplied a PIN; refusing would break them for
        nothing. The state is still tracked so USER_ALREADY_LOGGED_IN / USER_NOT_LOGGED_IN are
        exact. With it, the PIN is checked against the stored hash and counted (``pin.py``).
        """
        if user_type == CKU.CONTEXT_SPECIFIC:
            # No key has CKA_ALWAYS_AUTHENTICATE, so there is never an operation to authorise.
            raise errors.OperationNotInitialized("no operation needs context-specific login")
        if user_type not in (CKU.USER, CKU.SO):
            raise errors.UserTypeInvalid(f"user type {user_type}")
        if self.logged_in == user_type:
            raise errors.UserAlreadyLoggedIn("already logged in")
        if self.logged_in is not None:
            raise errors.UserAnotherAlreadyLoggedIn("another user type is logged in")
        if user_type == CKU.SO and ro_session_exists:
            raise errors.SessionReadOnlyExists("the SO needs every session to be read/write")
        if self.pin_configured:
            self.identity  # noqa: B018 - the store exists once the chip answered
            assert self._store is not None
            pin.verify(self._store, user_type, pin_value)
        del pin_value  # never stored or logged
        self.logged_in = user_type
        log.info(
            "slot %d: %s logged in", self.config.slot_id, "user" if user_type == CKU.USER else "SO"
        )

    def logout(self) -> None:
        if self.logged_in is None:
            raise errors.UserNotLoggedIn("nobody is logged in")
        self.logged_in = None

    def _pin_store(self) -> MetadataStore:
        if not self.pin_configured:
            raise errors.FunctionNotSupported("no PIN is configured (slot file: user_pin)")
        self.identity  # noqa: B018
        assert self._store is not None
        return self._store

    def init_token(self, so_pin: bytes | None) -> None:
        """C_InitToken: the first call sets the SO PIN; later ones need it and clear the user
        PIN (the chip's keys and the objects stay: the chip cannot be wiped from here)."""
        store = self._pin_store()
        try:
            if pin.has_pin(store, CKU.SO):
                pin.verify(store, CKU.SO, so_pin)

                def clear_user(meta: Metadata) -> None:
                    meta.pins.pop("user", None)
                    meta.failures.pop("user", None)

                store.modify(clear_user)
            else:
                pin.set_pin(store, CKU.SO, so_pin)
        except OSError as exc:
            raise errors.FunctionFailed(f"metadata store: {exc.strerror}") from exc

    def init_pin(self, new_pin: bytes | None) -> None:
        """C_InitPIN by the SO: set (or reset) the user PIN."""
        store = self._pin_store()
        if self.logged_in != CKU.SO:
            raise errors.UserNotLoggedIn("C_InitPIN needs the SO logged in")
        pin.set_pin(store, CKU.USER, new_pin)

    def set_pin(self, old_pin: bytes | None, new_pin: bytes | None) -> None:
        """C_SetPIN: the logged-in user's PIN (the user's when nobody is logged in)."""
        store = self._pin_store()
        who = CKU.SO if self.logged_in == CKU.SO else CKU.USER
        pin.check_length(new_pin)
        pin.verify(store, who, old_pin)
        pin.set_pin(store, who, new_pin)

    # -- objects ------------------------------------------------------------------------------
    def objects(self) -> list[Pkcs11Object]:
        """Every object on the token plus this process's session objects (loads on first use)."""
        with self.lock:
            table = self._load()
            self._refresh(table)
            return list(table.values()) + list(self._session_objects.values())

    def object(self, handle: int) -> Pkcs11Object | None:
        with self.lock:
            if handle in self._session_objects:
                return self._session_objects[handle]
            return self._load().get(handle)

    def _add(
        self,
        table: dict[int, Pkcs11Object],
        build: Callable[[int], Pkcs11Object],
        store_key: str | None = None,
    ) -> Pkcs11Object:
        handle = self._new_handle()
        obj = build(handle)
        if store_key is not None:
            obj.store_key = store_key
        table[handle] = obj
        return obj

    def _load(self) -> dict[int, Pkcs11Object]:
        if self._objects is not None:
            return self._objects
        self.identity  # noqa: B018 - raises TokenNotPresent before any chip read
        table: dict[int, Pkcs11Object] = {}
        if self.config.is_tngtls:
            self._load_trust_and_go(table)
        for spec in self.config.objects:
            try:
                self._load_configured(table, spec)
            except errors.Pkcs11Error as exc:
                log.error(
                    "slot %d: object %s,%s,%d skipped: %s",
                    self.config.slot_id,
                    spec.kind,
                    spec.label,
                    spec.slot,
                    exc,
                )
        self._objects = table
        self._store_fp = None  # force reading the metadata store
        return table

    def _key_pair(self, table: dict[int, Pkcs11Object], spec: KeySpec, prefix: str) -> None:
        self._add(table, lambda h: objects.ec_private_key(h, spec), f"{prefix}:priv")
        self._add(table, lambda h: objects.ec_public_key(h, spec), f"{prefix}:pub")

    def _load_trust_and_go(self, table: dict[int, Pkcs11Object]) -> None:
        """Objects named as Microchip's Trust&GO tutorial: key, public key and cert ``device``,
        and the CA certificate ``signer``."""
        pub = self.backend.public_key(TNG_DEVICE_KEY_SLOT)
        dev_id = der.key_id(pub)
        subject = b""
        chain: tuple[bytes, bytes] | None = None
        try:
            chain = self.backend.certificate_chain()
        except Exception as exc:  # keep the keys usable even if a certificate cannot be rebuilt
            log.error("slot %d: certificates not rebuilt: %s", self.config.slot_id, exc)
        if chain is not None:
            device_der, signer_der = chain
            subject = der.parse_certificate(device_der).subject
            signer_id = der.spki_id(der.parse_certificate(signer_der).spki)
            self._add(
                table,
                lambda h: objects.x509_certificate(
                    h,
                    device_der,
                    label="device",
                    cert_id=dev_id,
                    category=CertificateCategory.TOKEN_USER,
                ),
                "tng:cert:device",
            )
            self._add(
                table,
                lambda h: objects.x509_certificate(
                    h,
                    signer_der,
                    label="signer",
                    cert_id=signer_id,
                    category=CertificateCategory.AUTHORITY,
                    trusted=True,
                ),
                "tng:cert:signer",
            )
        caps = self.backend.slot_caps(TNG_DEVICE_KEY_SLOT)
        self._key_pair(
            table,
            KeySpec(
                chip_slot=TNG_DEVICE_KEY_SLOT,
                label="device",
                public_key=pub,
                key_id=dev_id,
                local=True,
                derive=caps.ecdh,
                subject=subject,
                private=self.pin_configured,
            ),
            f"tng:{TNG_DEVICE_KEY_SLOT}",
        )

    def _load_configured(self, table: dict[int, Pkcs11Object], spec: ObjectSpec) -> None:
        """Objects for one ``object = kind,label,slot`` line.

        ``private`` gives a key pair (the public half is computed by the chip from the private
        key), so that clients that fetch the point through the public key with the same CKA_ID
        (libp11) work; ``public`` reads a stored public key; ``certificate`` reads full DER
        from a data slot and trims the slot's padding; ``secret`` is an AES key (key block 0)
        in an AES slot, or an HMAC-SHA256 key in a SHA/data slot that allows HMAC.
        """
        kind, label, slot = spec.kind, spec.label, spec.slot
        key = f"conf:{kind}:{slot}:{label}"
        if kind == "private":
            pub = self.backend.public_key(slot)
            caps = self.backend.slot_caps(slot)
            self._key_pair(
                table,
                KeySpec(
                    chip_slot=slot,
                    label=label,
                    public_key=pub,
                    key_id=der.key_id(pub),
                    local=False,
                    derive=caps.ecdh,
                    private=self.pin_configured,
                ),
                key,
            )
        elif kind == "public":
            pub = self.backend.stored_public_key(slot)
            ks = KeySpec(
                chip_slot=slot, label=label, public_key=pub, key_id=der.key_id(pub), local=False
            )
            self._add(table, lambda h: objects.ec_public_key(h, ks), key)
        elif kind == "certificate":
            data = self.backend.read_slot(slot)
            try:
                value = data[: der.der_length(data)]
                spki = der.parse_certificate(value).spki
            except ValueError as exc:
                raise errors.FunctionFailed(f"slot {slot} holds no DER certificate") from exc
            cert_id = der.spki_id(spki)
            self._add(
                table,
                lambda h: objects.x509_certificate(h, value, label=label, cert_id=cert_id),
                key,
            )
        elif kind == "secret":
            caps = self.backend.slot_caps(slot)
            aes = caps.aes and self.backend.aes_enabled()
            self._add(
                table,
                lambda h: objects.secret_key(
                    h,
                    label=label,
                    chip_slot=slot,
                    aes=aes,
                    hmac=caps.hmac,
                    private=self.pin_configured,
                ),
                key,
            )
        else:
            raise errors.GeneralError(f"unknown object kind {kind!r}")

    # -- store-backed objects (metadata file) ----------------------------------------------------
    def _refresh(self, table: dict[int, Pkcs11Object]) -> None:
        """Bring store-backed token objects and overrides in line with the metadata file, if it
        changed on disk. Objects that still exist keep their handles."""
        if self._store is None:
            return
        fp = self._store.fingerprint()
        if fp == self._store_fp:
            return
        self._store_fp = fp
        meta = self._store.load()
        wanted: dict[str, Callable[[int], Pkcs11Object]] = {}
        configured = self._configured_slots()
        for rec in meta.keys:
            if rec.session_pid is None and rec.slot not in configured:
                spec = self._spec_from_record(rec, token=True)
                prefix = self._gen_prefix(rec)
                wanted[f"{prefix}:priv"] = lambda h, sp=spec: objects.ec_private_key(h, sp)
                wanted[f"{prefix}:pub"] = lambda h, sp=spec: objects.ec_public_key(h, sp)
        taken = {spec.slot for spec in self.config.objects}
        for srec in meta.secrets:
            if srec.session_pid is None and srec.slot not in taken:
                wanted[f"aes:{srec.uid}"] = lambda h, r=srec: self._secret_object(h, r, None)
        records = {f"obj:{o.uid}": o for o in meta.objects}
        for key, orec in records.items():
            wanted[key] = lambda h, r=orec: self._created_object(h, r.attrs, r.uid, None)
        present: set[str] = set()
        for handle, obj in list(table.items()):
            key = obj.store_key
            if key is None or not key.startswith(("gen:", "aes:", "obj:")):
                continue
            if key not in wanted:
                del table[handle]  # destroyed by another process (or by us)
                continue
            present.add(key)
            if key in records and records[key].attrs != obj.attrs:
                obj.set_attrs(records[key].attrs)  # changed by another process
        for key, build in wanted.items():
            if key not in present:
                self._add(table, build, key)
        for obj in table.values():
            if obj.store_key is not None and not obj.store_key.startswith("obj:"):
                obj.apply_overrides(meta.overrides.get(obj.store_key, {}))

    @staticmethod
    def _gen_prefix(rec: KeyRecord) -> str:
        return f"gen:{rec.slot}:{rec.public_key[:8].hex()}"

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
            mechanisms=rec.mechanisms or objects.EC_SIGN_MECHANISMS,
            private=self.pin_configured,
        )

    def _secret_object(self, handle: int, rec: SecretRecord, owner: int | None) -> Pkcs11Object:
        obj = objects.secret_key(
            handle,
            label=rec.label,
            chip_slot=rec.slot,
            aes=True,
            key_block=rec.key_block,
            key_id=rec.id,
            local=rec.local,
            destroyable=True,
            token=rec.session_pid is None,
            private=bool(rec.attrs.get(CKA.PRIVATE, False)),
            usage=rec.attrs,
            owner=owner,
            origin="generated-secret",
        )
        obj.attrs[CKA.UNIQUE_ID] = rec.uid
        allowed = rec.attrs.get(CKA.ALLOWED_MECHANISMS)
        if allowed is not None:
            obj.attrs[CKA.ALLOWED_MECHANISMS] = tuple(allowed)
        return obj

    @staticmethod
    def _created_object(
        handle: int, attrs: dict[int, Any], uid: str, owner: int | None
    ) -> Pkcs11Object:
        obj = objects.created(handle, attrs, uid=uid, owner=owner)
        if attrs.get(CKA.CLASS) == CKO.PUBLIC_KEY and attrs.get(CKA.KEY_TYPE) == CKK.EC:
            point = bytes(attrs.get(CKA.EC_POINT, b""))
            obj.public_key = point[-64:] if len(point) == 67 else None
        return obj

    def _configured_slots(self) -> set[int]:
        """Chip slots the slot file or the Trust&GO layout already gives a meaning to."""
        used = {spec.slot for spec in self.config.objects}
        if self.config.is_tngtls:
            used |= TNG_RESERVED_SLOTS
        return used

    def free_slots(self, records: list[KeyRecord]) -> list[int]:
        """``freeslots`` candidates GenKey may use now: allowed by the chip's config and not
        holding a configured object or a live generated key."""
        taken = {spec.slot for spec in self.config.objects}
        if self.config.is_tngtls:
            taken.add(TNG_DEVICE_KEY_SLOT)  # even if a slot file lists it: never overwrite it
        taken |= {r.slot for r in records if r.alive}
        out = []
        for slot in self.config.freeslots:
            if slot in taken or not 0 <= slot < 16:
                continue
            if self.backend.slot_caps(slot).gen_key:
                out.append(slot)
        return out

    def free_key_blocks(self, meta: Metadata) -> list[tuple[int, int]]:
        """(slot, key block) pairs C_GenerateKey may fill: ``freeslots`` entries whose config
        allows clear writes of an AES key, not used by the slot file or a live key.

        A clear write to a secret slot must be a whole 32-byte block, and such a slot cannot be
        read back to merge, so each key gets a block of its own: key block 0 (bytes 0-15) and,
        in a 72- or 416-byte slot, key block 2 (bytes 32-47). The other half of each block is
        filled with chip random.
        """
        taken = {spec.slot for spec in self.config.objects}
        if self.config.is_tngtls:
            taken.add(TNG_DEVICE_KEY_SLOT)
        taken |= {r.slot for r in meta.keys if r.alive}
        used = {(r.slot, r.key_block) for r in meta.secrets if r.alive}
        out = []
        for slot in self.config.freeslots:
            if slot in taken or not 0 <= slot < 16:
                continue
            caps = self.backend.slot_caps(slot)
            if not caps.aes_writable:
                continue
            for block in (0, 2) if caps.size >= 48 else (0,):
                if (slot, block) not in used:
                    out.append((slot, block))
        return out

    def aes_enabled(self) -> bool:
        """The chip's AES command is enabled (config byte 13): AES mechanisms are offered."""
        with self.lock:
            self.identity  # noqa: B018
            return self.backend.aes_enabled()

    def generate_key_pair(
        self, req: KeyPairRequest, owner_session: int | None
    ) -> tuple[Pkcs11Object, Pkcs11Object]:
        """GenKey into the first free slot; record it; return (public, private) objects.

        The store's inter-process lock is held from choosing the slot until the record is
        written, so two processes never generate into the same slot.
        """
        with self.lock:
            table = self._load()
            assert self._store is not None
            try:
                rec = self._generate_locked(req)
            except OSError as exc:
                # A read-only or missing filestore fails here, before GenKey touches the chip.
                log.error(
                    "slot %d: metadata store %s: %s", self.config.slot_id, self._store.path, exc
                )
                raise errors.FunctionFailed(f"cannot record the key: {exc.strerror}") from exc
            spec = self._spec_from_record(rec, token=req.token)
            target = table if req.token else self._session_objects
            owner = None if req.token else owner_session
            priv = objects.ec_private_key(self._new_handle(), spec, owner)
            pub_obj = objects.ec_public_key(self._new_handle(), spec, owner)
            if req.token:
                prefix = self._gen_prefix(rec)
                priv.store_key, pub_obj.store_key = f"{prefix}:priv", f"{prefix}:pub"
            target[priv.handle] = priv
            target[pub_obj.handle] = pub_obj
            return pub_obj, priv

    def _generate_locked(self, req: KeyPairRequest) -> KeyRecord:
        """Pick a slot, GenKey, and record the key, all under the store's inter-process lock."""
        assert self._store is not None
        with self._store.locked():
            records = self._store.read()
            free = self.free_slots(records)
            if not free:
                raise errors.DeviceMemory("no free chip slot for a new key")
            slot = free[0]
            pub = self.backend.generate_key(slot)
            caps = self.backend.slot_caps(slot)
            rec = KeyRecord(
                slot=slot,
                label=req.label,
                id=req.key_id or der.key_id(pub),
                public_key=pub,
                session_pid=None if req.token else os.getpid(),
                derive=req.derive and caps.ecdh,
                mechanisms=req.allowed_mechanisms,
                subject=req.subject,
            )
            self._store.write([r for r in records if r.slot != slot] + [rec])
        log.info(
            "slot %d: generated %s key pair in chip slot %d",
            self.config.slot_id,
            "token" if req.token else "session",
            slot,
        )
        return rec

    def store_secret_key(
        self, req: SecretKeyRequest, owner_session: int, value: bytes | None = None
    ) -> Pkcs11Object:
        """Put an AES key into a free key block: chip random (C_GenerateKey) or ``value``
        (C_CreateObject). One clear 32-byte Write; the record is written under the store lock.
        """
        with self.lock:
            table = self._load()
            assert self._store is not None
            try:
                with self._store.locked():
                    meta = self._store.load()
                    free = self.free_key_blocks(meta)
                    if not free:
                        raise errors.DeviceMemory("no free AES key block on the chip")
                    slot, block = free[0]
                    key = value if value is not None else self.backend.random(16)
                    self.backend.write_secret_block(
                        slot, 16 * block, bytes(key) + self.backend.random(16)
                    )
                    del key
                    uid = os.urandom(16).hex()  # = secrets.token_hex(16)
                    attrs: dict[int, Any] = dict(req.usage)
                    attrs[CKA.PRIVATE] = req.private
                    if req.allowed_mechanisms is not None:
                        attrs[CKA.ALLOWED_MECHANISMS] = req.allowed_mechanisms
                    rec = SecretRecord(
                        slot=slot,
                        key_block=block,
                        uid=uid,
                        label=req.label,
                        id=req.key_id or bytes.fromhex(uid[:16]),
                        local=value is None,
                        session_pid=None if req.token else os.getpid(),
                        attrs=attrs,
                    )
                    meta.secrets.append(rec)
                    self._store.save(meta)
            except OSError as exc:
                raise errors.FunctionFailed(f"cannot record the key: {exc.strerror}") from exc
            obj = self._secret_object(self._new_handle(), rec, None if req.token else owner_session)
            if req.token:
                obj.store_key = f"aes:{uid}"
                table[obj.handle] = obj
            else:
                self._session_objects[obj.handle] = obj
            log.info(
                "slot %d: %s AES key in chip slot %d key block %d",
                self.config.slot_id,
                "generated" if value is None else "imported",
                slot,
                block,
            )
            return obj

    def create(self, attrs: dict[int, Any], owner_session: int) -> Pkcs11Object:
        """Add an object made by C_CreateObject (or a copy of one); token ones are recorded."""
        with self.lock:
            table = self._load()
            uid = str(attrs[CKA.UNIQUE_ID])
            token = bool(attrs.get(CKA.TOKEN, False))
            obj = self._created_object(
                self._new_handle(), attrs, uid, None if token else owner_session
            )
            if not token:
                self._session_objects[obj.handle] = obj
                return obj
            assert self._store is not None
            try:
                self._store.modify(lambda meta: meta.objects.append(ObjectRecord(uid, attrs)))
            except OSError as exc:
                raise errors.FunctionFailed(f"cannot record the object: {exc.strerror}") from exc
            table[obj.handle] = obj
            return obj

    def add_session_object(self, obj: Pkcs11Object) -> Pkcs11Object:
        """A session object made elsewhere (ECDH result, copy of a chip key)."""
        with self.lock:
            self._session_objects[obj.handle] = obj
            return obj

    def new_handle(self) -> int:
        return self._new_handle()

    def set_attributes(self, obj: Pkcs11Object, changes: dict[int, Any]) -> None:
        """C_SetAttributeValue after the library's checks: record where the object lives."""
        with self.lock:
            key = obj.store_key
            if key is None or self._store is None or not obj.is_token_object:
                obj.set_attrs(changes)
                return
            try:
                if key.startswith("obj:"):
                    uid = key[4:]

                    def change(meta: Metadata) -> None:
                        for i, rec in enumerate(meta.objects):
                            if rec.uid == uid:
                                meta.objects[i] = ObjectRecord(uid, {**rec.attrs, **changes})

                    self._store.modify(change)
                    obj.set_attrs(changes)
                else:
                    merged: dict[int, Any] = {}

                    def override(meta: Metadata) -> None:
                        merged.update(meta.overrides.get(key, {}))
                        merged.update(changes)
                        meta.overrides[key] = dict(merged)

                    self._store.modify(override)
                    obj.apply_overrides(merged)
            except OSError as exc:
                raise errors.FunctionFailed(f"cannot record the change: {exc.strerror}") from exc

    def destroy(self, obj: Pkcs11Object) -> None:
        """Forget an object. A generated key pair goes as a whole and its chip slot is free
        again; a generated AES key's block is overwritten with chip random and freed; copies
        of a freed chip key go with it (they would name someone else's key later)."""
        with self.lock:
            tables = (self._objects or {}, self._session_objects)
            if obj.origin in ("copy", "derived") or (
                obj.origin == "created" and not obj.is_token_object
            ):
                for table in tables:
                    table.pop(obj.handle, None)
                return
            if obj.origin == "created":
                uid = (obj.store_key or "obj:")[4:]
                if self._store is not None:
                    self._store.modify(
                        lambda meta: meta.objects.__setitem__(
                            slice(None), [r for r in meta.objects if r.uid != uid]
                        )
                    )
                for table in tables:
                    table.pop(obj.handle, None)
                return
            slot = obj.chip_slot
            if obj.origin == "generated-secret":
                block = obj.key_block
                assert slot is not None
                self.backend.write_secret_block(slot, 16 * block, self.backend.random(32))
                for table in tables:
                    for handle, other in list(table.items()):
                        if (
                            other.chip_slot == slot
                            and other.key_block == block
                            and (other.origin in ("generated-secret", "copy"))
                        ):
                            del table[handle]
                if self._store is not None:

                    def drop_secret(meta: Metadata) -> None:
                        meta.secrets[:] = [
                            r for r in meta.secrets if (r.slot, r.key_block) != (slot, block)
                        ]
                        meta.overrides.pop(obj.store_key or "", None)

                    self._store.modify(drop_secret)
                    self._store_fp = self._store.fingerprint()
                return
            for table in tables:
                for handle, other in list(table.items()):
                    if (
                        other.origin in ("generated", "copy")
                        and other.chip_slot == slot
                        and (other.key_block == 0)
                    ):
                        del table[handle]
            if self._store is not None and slot is not None:
                prefix = (obj.store_key or "").rsplit(":", 1)[0]

                def drop_pair(meta: Metadata) -> None:
                    meta.keys[:] = [r for r in meta.keys if r.slot != slot]
                    for half in ("priv", "pub"):
                        meta.overrides.pop(f"{prefix}:{half}", None)

                self._store.modify(drop_pair)
                self._store_fp = self._store.fingerprint()

    def drop_session_objects(self, session: int | None = None) -> None:
        """Destroy the session objects of ``session`` (all of them when None)."""
        with self.lock:
            doomed = [
                o
                for o in self._session_objects.values()
                if session is None or o.owner_session == session
            ]
            for obj in doomed:
                if obj.handle in self._session_objects:
                    try:
                        self.destroy(obj)
                    except (OSError, errors.Pkcs11Error) as exc:
                        # never fail a close because the store or the chip is gone
                        log.warning(
                            "slot %d: session object not fully removed: %s",
                            self.config.slot_id,
                            exc,
                        )
                        self._session_objects.pop(obj.handle, None)

    # -- chip operations ------------------------------------------------------------------------
    def signer(self, slot: int) -> Callable[[bytes], bytes]:
        """A callable that signs a 32-byte digest with chip slot ``slot`` under the token lock."""

        def sign(digest: bytes) -> bytes:
            with self.lock:
                return self.backend.sign_digest(slot, digest)

        return sign

    def ecdh(self, slot: int, peer: bytes) -> bytes:
        """The shared x-coordinate of ECDH between chip slot ``slot`` and peer X||Y."""
        with self.lock:
            return self.backend.ecdh(slot, peer)

    def sha256(self, data: bytes) -> bytes:
        """SHA-256 of a whole message on the chip, in one transaction."""
        with self.lock:
            return self.backend.sha256(data)

    def sha256_stream(self) -> _LockedStream:
        """A multi-part SHA-256 (the driver's Sha256Stream), each call under the token lock."""
        with self.lock:
            return _LockedStream(self.lock, self.backend.sha256_stream())

    def hmac(self, slot: int) -> Callable[[bytes], bytes]:
        """A callable computing HMAC-SHA256 on the chip with the key in ``slot``."""
        with self.lock:
            req_random = self.backend.slot_caps(slot).req_random

        def mac(data: bytes) -> bytes:
            with self.lock:
                return self.backend.hmac_sha256(slot, data, random_nonce=req_random)

        return mac

    def aes_cipher(self, slot: int, key_block: int) -> _ChipAes:
        """The chip's AES bound to one key (slot and key block), for ``mechanisms.aes``."""
        return _ChipAes(self, slot, key_block)

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
    """``mechanisms.aes.BlockCipher`` over the token's backend, one key, token lock held."""

    def __init__(self, token: Token, slot: int, key_block: int) -> None:
        self._token = token
        self._slot = slot
        self._block = key_block

    def ecb(self, data: bytes, *, decrypt: bool) -> bytes:
        if not data:
            return b""
        with self._token.lock:
            return self._token.backend.aes_ecb(self._slot, self._block, data, decrypt=decrypt)

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        if not data:
            return b""
        with self._token.lock:
            return self._token.backend.aes_cbc_encrypt(self._slot, self._block, iv, data)

    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        if not data:
            return y
        with self._token.lock:
            return self._token.backend.ghash(h, y, data)
