"""Token: one chip as PKCS#11 sees it — identity, login state, object table, key generation.

Owns: lazily probing the chip (first use, never C_Initialize), CK_TOKEN_INFO, building the object
table from the slot file (Trust&GO device key and certificates, ``object =`` lines, keys recorded
in the metadata store), refreshing it when another process changes the store, choosing a free
chip slot for C_GenerateKeyPair, and serialising every chip call with one RLock per token.
Must not: know about session handles beyond "which session owns this session object", or map
chip errors (the backend does).

Caching: identity, public keys, certificates and IDs are read from the chip once per
C_Initialize; afterwards listing objects costs no chip round trip (a ``stat`` of the metadata
file per C_FindObjectsInit is the only I/O).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from cryptoki import der, errors, objects
from cryptoki.backend import ChipIdentity, TokenBackend
from cryptoki.config import ObjectSpec, TokenConfig
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKF, CKU, CertificateCategory
from cryptoki.objects import KeySpec, Pkcs11Object
from cryptoki.policy import KeyPairRequest
from cryptoki.store import KeyRecord, MetadataStore
from cryptoki.types import TokenInfo, Version

log = logging.getLogger("cryptoki.token")

MANUFACTURER = "Microchip Technology Inc"
MAX_SESSIONS = 1024  #: enforced per token; a real, finite limit reported in CK_TOKEN_INFO
MAX_RW_SESSIONS = 1024
MIN_PIN_LEN = 0  #: no PIN is configured: any PIN (even empty) logs in, see Token.login
MAX_PIN_LEN = 255

#: Trust&GO (ATECC608-TNGTLS) factory layout, from Microchip's TNGTLS datasheet.
TNG_DEVICE_KEY_SLOT = 0
TNG_RESERVED_SLOTS = frozenset({0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})


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
        self.lock = threading.RLock()
        self._new_handle = new_handle
        self._identity: ChipIdentity | None = None
        self._objects: dict[int, Pkcs11Object] | None = None  # token objects, by handle
        self._session_objects: dict[int, Pkcs11Object] = {}
        self._store: MetadataStore | None = None
        self._store_fp: tuple[int, int, int] | None = None
        #: Which user type is logged in (CKU_USER/CKU_SO), shared by all sessions (spec §5.6).
        self.logged_in: int | None = None
        self.pin_configured = False  #: no PIN support in the slot file format yet

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
                "slot %d: %s serial %s", self.config.slot_id,
                model_name(self._identity.revision), self._identity.serial.hex().upper(),
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
        return TokenInfo(
            label=self.config.label,
            manufacturer_id=MANUFACTURER,
            model=model_name(ident.revision),
            serial_number=serial_field(ident.serial),
            flags=int(CKF.RNG | CKF.TOKEN_INITIALIZED | CKF.USER_PIN_INITIALIZED),
            max_session_count=MAX_SESSIONS,
            session_count=session_count,
            max_rw_session_count=MAX_RW_SESSIONS,
            rw_session_count=rw_session_count,
            max_pin_len=MAX_PIN_LEN,
            min_pin_len=MIN_PIN_LEN,
            total_public_memory=CK_UNAVAILABLE_INFORMATION,
            free_public_memory=CK_UNAVAILABLE_INFORMATION,
            total_private_memory=CK_UNAVAILABLE_INFORMATION,
            free_private_memory=CK_UNAVAILABLE_INFORMATION,
            hardware_version=hw,
            firmware_version=Version(0, 0),
            utc_time="",
        )

    # -- login (spec §5.6.9) ----------------------------------------------------------------
    def login(self, user_type: int, pin: bytes | None, ro_session_exists: bool) -> None:
        """Log a user in. No PIN is configured, so any PIN is accepted and never looked at.

        Why accept at all: CKF_LOGIN_REQUIRED is clear, yet libp11, pkcs11-tool and GnuTLS call
        C_Login whenever the user supplied a PIN; refusing would break them for nothing. The
        state is still tracked so USER_ALREADY_LOGGED_IN / USER_NOT_LOGGED_IN are exact.
        """
        del pin  # never stored, compared or logged
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
        self.logged_in = user_type
        log.info("slot %d: %s logged in", self.config.slot_id,
                 "user" if user_type == CKU.USER else "SO")

    def logout(self) -> None:
        if self.logged_in is None:
            raise errors.UserNotLoggedIn("nobody is logged in")
        self.logged_in = None

    # -- objects ------------------------------------------------------------------------------
    def objects(self) -> list[Pkcs11Object]:
        """Every object on the token plus this process's session objects (loads on first use)."""
        with self.lock:
            table = self._load()
            self._refresh_generated(table)
            return list(table.values()) + list(self._session_objects.values())

    def object(self, handle: int) -> Pkcs11Object | None:
        with self.lock:
            if handle in self._session_objects:
                return self._session_objects[handle]
            return self._load().get(handle)

    def _add(self, table: dict[int, Pkcs11Object], build: Callable[[int], Pkcs11Object]) -> None:
        handle = self._new_handle()
        table[handle] = build(handle)

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
                log.error("slot %d: object %s,%s,%d skipped: %s", self.config.slot_id,
                          spec.kind, spec.label, spec.slot, exc)
        self._objects = table
        self._store_fp = None  # force reading the metadata store
        return table

    def _key_pair(self, table: dict[int, Pkcs11Object], spec: KeySpec) -> None:
        self._add(table, lambda h: objects.ec_private_key(h, spec))
        self._add(table, lambda h: objects.ec_public_key(h, spec))

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
            self._add(table, lambda h: objects.x509_certificate(
                h, device_der, label="device", cert_id=dev_id,
                category=CertificateCategory.TOKEN_USER))
            self._add(table, lambda h: objects.x509_certificate(
                h, signer_der, label="signer", cert_id=signer_id,
                category=CertificateCategory.AUTHORITY, trusted=True))
        caps = self.backend.slot_caps(TNG_DEVICE_KEY_SLOT)
        self._key_pair(table, KeySpec(
            chip_slot=TNG_DEVICE_KEY_SLOT, label="device", public_key=pub, key_id=dev_id,
            local=True, derive=caps.ecdh, subject=subject))

    def _load_configured(self, table: dict[int, Pkcs11Object], spec: ObjectSpec) -> None:
        """Objects for one ``object = kind,label,slot`` line.

        ``private`` gives a key pair (the public half is computed by the chip from the private
        key), so that clients that fetch the point through the public key with the same CKA_ID
        (libp11) work; ``public`` reads a stored public key; ``certificate`` reads full DER
        from a data slot and trims the slot's padding; ``secret`` only lists the key.
        """
        kind, label, slot = spec.kind, spec.label, spec.slot
        if kind == "private":
            pub = self.backend.public_key(slot)
            caps = self.backend.slot_caps(slot)
            self._key_pair(table, KeySpec(
                chip_slot=slot, label=label, public_key=pub, key_id=der.key_id(pub),
                local=False, derive=caps.ecdh))
        elif kind == "public":
            pub = self.backend.stored_public_key(slot)
            ks = KeySpec(chip_slot=slot, label=label, public_key=pub, key_id=der.key_id(pub),
                         local=False)
            self._add(table, lambda h: objects.ec_public_key(h, ks))
        elif kind == "certificate":
            data = self.backend.read_slot(slot)
            try:
                value = data[: der.der_length(data)]
                spki = der.parse_certificate(value).spki
            except ValueError as exc:
                raise errors.FunctionFailed(f"slot {slot} holds no DER certificate") from exc
            cert_id = der.spki_id(spki)
            self._add(table, lambda h: objects.x509_certificate(
                h, value, label=label, cert_id=cert_id))
        elif kind == "secret":
            aes = self.backend.slot_caps(slot).aes
            self._add(table, lambda h: objects.secret_key(h, label=label, chip_slot=slot,
                                                          aes=aes))
        else:
            raise errors.GeneralError(f"unknown object kind {kind!r}")

    # -- generated keys (metadata store) -------------------------------------------------------
    def _refresh_generated(self, table: dict[int, Pkcs11Object]) -> None:
        """Bring generated token keys in line with the metadata file, if it changed on disk."""
        if self._store is None:
            return
        fp = self._store.fingerprint()
        if fp == self._store_fp:
            return
        self._store_fp = fp
        records = {
            (r.slot, r.public_key): r
            for r in self._store.read()
            if r.session_pid is None and r.slot not in self._configured_slots()
        }
        present: set[tuple[int, bytes]] = set()
        for handle, obj in list(table.items()):
            if obj.origin != "generated":
                continue
            key = (obj.chip_slot or 0, obj.public_key or b"")
            rec = records.get(key)
            if rec is None or obj.label != rec.label or obj.id != rec.id:
                del table[handle]  # destroyed, or replaced, by another process
            else:
                present.add(key)
        for key, rec in records.items():
            if key not in present:
                self._key_pair(table, self._spec_from_record(rec, token=True))

    @staticmethod
    def _spec_from_record(rec: KeyRecord, *, token: bool) -> KeySpec:
        return KeySpec(
            chip_slot=rec.slot, label=rec.label, public_key=rec.public_key, key_id=rec.id,
            local=True, derive=rec.derive, destroyable=True, token=token, subject=rec.subject,
            mechanisms=rec.mechanisms or objects.EC_SIGN_MECHANISMS,
        )

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
                log.error("slot %d: metadata store %s: %s", self.config.slot_id,
                          self._store.path, exc)
                raise errors.FunctionFailed(f"cannot record the key: {exc.strerror}") from exc
            spec = self._spec_from_record(rec, token=req.token)
            target = table if req.token else self._session_objects
            owner = None if req.token else owner_session
            priv = objects.ec_private_key(self._new_handle(), spec, owner)
            pub_obj = objects.ec_public_key(self._new_handle(), spec, owner)
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
                slot=slot, label=req.label, id=req.key_id or der.key_id(pub),
                public_key=pub, session_pid=None if req.token else os.getpid(),
                derive=req.derive and caps.ecdh, mechanisms=req.allowed_mechanisms,
                subject=req.subject,
            )
            self._store.write([r for r in records if r.slot != slot] + [rec])
            self._store_fp = self._store.fingerprint()
        log.info("slot %d: generated %s key pair in chip slot %d", self.config.slot_id,
                 "token" if req.token else "session", slot)
        return rec

    def destroy(self, obj: Pkcs11Object) -> None:
        """Forget a generated key pair (both halves): its chip slot becomes free again."""
        with self.lock:
            slot = obj.chip_slot
            for table in (self._objects or {}, self._session_objects):
                for handle, other in list(table.items()):
                    if other.origin == "generated" and other.chip_slot == slot:
                        del table[handle]
            if self._store is not None and slot is not None:
                with self._store.locked():
                    records = self._store.read()
                    self._store.write([r for r in records if r.slot != slot])
                    self._store_fp = self._store.fingerprint()

    def drop_session_objects(self, session: int | None = None) -> None:
        """Destroy the session objects of ``session`` (all of them when None)."""
        with self.lock:
            doomed = [
                o for o in self._session_objects.values()
                if session is None or o.owner_session == session
            ]
            for obj in doomed:
                if obj.handle in self._session_objects:
                    try:
                        self.destroy(obj)
                    except OSError as exc:  # never fail a close because the store is gone
                        log.warning("slot %d: session key record not removed: %s",
                                    self.config.slot_id, exc)
                        self._session_objects.pop(obj.handle, None)

    # -- chip operations ------------------------------------------------------------------------
    def signer(self, slot: int) -> Callable[[bytes], bytes]:
        """A callable that signs a 32-byte digest with chip slot ``slot`` under the token lock."""

        def sign(digest: bytes) -> bytes:
            with self.lock:
                return self.backend.sign_digest(slot, digest)

        return sign

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
