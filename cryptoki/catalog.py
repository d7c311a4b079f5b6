"""Catalog: which objects a token has, built from its three sources and kept current.

Owns: the objects the chip product defines (the Trust&GO device key pair and certificates; a
chip error while reading the certificates leaves them pending and the next listing tries
again), the objects of the slot file's ``object =`` lines, and the objects the metadata file
records (generated key pairs, AES keys, created objects, token copies) with their attribute
overrides, re-read whenever the file changes (one ``stat`` when it did not); the token label
C_InitToken may set; and how a record becomes an object (:meth:`Catalog.spec_from_record`,
:meth:`Catalog.secret_object`, the store keys of records).
Must not: write the metadata file, or use keys (``chip_use.py``); the chip is only read, for
public keys and certificates.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from atecc.der import element_length
from atecc.lazylog import get_logger
from cryptoki import der, errors, objects
from cryptoki.backend import ProductLayout, TokenBackend
from cryptoki.config import TokenConfig
from cryptoki.constants import CKA
from cryptoki.object_table import ObjectTable
from cryptoki.objects import Half, KeySpec, Origin, Pkcs11Object, StoreKey, StoreKind
from cryptoki.store import CopyRecord, KeyRecord, MetadataStore, ObjectRecord, SecretRecord

if TYPE_CHECKING:
    from atecc.slotfile import SlotObject

log = get_logger("cryptoki.catalog")


class Catalog:
    """The objects of one token (held in its :class:`ObjectTable`).

    :param config: the slot file's settings.
    :param layout: the chip product's layout.
    :param backend: the chip (read for public keys and certificates).
    :param table: where the objects go.
    :param name: for log lines ("slot 0").
    """

    def __init__(
        self,
        config: TokenConfig,
        layout: ProductLayout,
        backend: TokenBackend,
        table: ObjectTable,
        name: str,
    ) -> None:
        self.config = config
        self.layout = layout
        self.backend = backend
        self.table = table
        self.name = name
        self.pin_configured = config.user_pin_required
        #: CK_TOKEN_INFO.label: the slot file's, or the one C_InitToken set
        self.label = config.label
        self._store: MetadataStore | None = None
        #: slots the slot file or the product layout gives a meaning to (records there are not
        #: shown as generated keys)
        self._configured: set[int] = set()
        self._loaded = False
        self._store_fp: tuple[int, int, int] | None = None
        #: the device-key slot whose certificates a chip error kept from loading (retried)
        self._certificates_pending: int | None = None

    def attach(self, store: MetadataStore, configured_slots: set[int]) -> None:
        """The chip answered: its metadata store is known."""
        self._store = store
        self._configured = configured_slots

    def invalidate(self) -> None:
        """Re-read the metadata file on the next look (after our own write, or C_InitToken)."""
        self._store_fp = None

    def reset(self) -> None:
        """Forget every object (C_InitToken): the next look builds them again."""
        self.table.clear()
        self._loaded = False
        self._store_fp = None

    def current_label(self) -> str:
        """CK_TOKEN_INFO.label, after a cheap check of the metadata file (no chip reads: token
        info must not cost the first listing's chip round trips)."""
        self._refresh()
        return self.label

    def current(self, *, certificates: bool = False) -> None:
        """Objects loaded and in line with the metadata file (and, for listings, a retry of
        certificates a chip error kept back)."""
        self._load()
        if certificates:
            self._load_certificates()
        self._refresh()

    def _load(self) -> None:
        """Build the objects the chip product and the slot file define (once per C_Initialize)."""
        if self._loaded:
            return
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
        caps = self.backend.slot_caps(key_slot)
        spec = KeySpec(
            chip_slot=key_slot,
            label=self.layout.device_label,
            public_key=pub,
            key_id=der.key_id(pub),
            local=True,
            derive=caps.ecdh,
            private=self.pin_configured,
        )
        self._add_pair(spec, StoreKey(StoreKind.TRUST_AND_GO, str(key_slot), Half.PRIVATE))
        self._certificates_pending = key_slot
        self._load_certificates()

    def _load_certificates(self) -> None:
        """The product's certificates, next to the device key (same CKA_ID, whose CKA_SUBJECT
        they give). A chip error leaves them pending: the next listing tries again, so a
        transient fault does not hide them until C_Finalize; a certificate that cannot be
        rebuilt at all is logged once and the keys stay usable."""
        key_slot = self._certificates_pending
        if key_slot is None:
            return
        device_key = StoreKey(StoreKind.TRUST_AND_GO, str(key_slot), Half.PRIVATE)
        halves = [self.table.by_name(str(k)) for k in (device_key, device_key.other_half())]
        device = halves[0]
        public = device.public_key if device else None
        try:
            # The device key just read: the chip need not compute it again for the rebuild.
            chain = self.backend.certificate_chain(public)
        except errors.DeviceError as exc:
            log.warning("%s: certificates not read yet (will retry): %s", self.name, exc)
            return
        except Exception as exc:
            log.error("%s: certificates not rebuilt: %s", self.name, exc)
            self._certificates_pending = None
            return
        self._certificates_pending = None
        key_id = der.key_id(public) if public else None
        for cert_spec, value in zip(self.layout.certificates, chain, strict=False):
            fields = der.parse_certificate(value)
            if cert_spec.key_slot == key_slot and key_id is not None:
                cert_id = key_id
                for half in halves:
                    if half is not None:
                        half.set_attrs({CKA.SUBJECT: fields.subject})
            else:
                cert_id = der.spki_id(fields.spki)
            self.table.add(
                objects.x509_certificate(
                    self.table.new_handle(),
                    value,
                    label=cert_spec.label,
                    cert_id=cert_id,
                    store_key=StoreKey(StoreKind.TRUST_AND_GO, f"cert:{cert_spec.label}"),
                    category=cert_spec.category,
                    trusted=cert_spec.trusted,
                )
            )

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
        configured = self._configured
        for rec in meta.keys:
            if rec.session_pid is None and rec.slot not in configured:
                spec = self.spec_from_record(rec, token=True)
                key = self.pair_key(rec)
                if not rec.private_destroyed:
                    wanted[str(key)] = partial(_private_from, spec, key)
                if not rec.public_destroyed:
                    wanted[str(key.other_half())] = partial(_public_from, spec, key.other_half())
        taken = {o.slot for o in self.config.objects}
        for srec in meta.secrets:
            if srec.session_pid is None and srec.slot not in taken:
                wanted[str(self.secret_key(srec))] = partial(self._secret_from, srec)
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
    def pair_key(rec: KeyRecord) -> StoreKey:
        return StoreKey(StoreKind.GENERATED, f"{rec.slot}:{rec.public_key[:8].hex()}", Half.PRIVATE)

    @staticmethod
    def secret_key(rec: SecretRecord) -> StoreKey:
        return StoreKey(StoreKind.SECRET, rec.uid)

    def spec_from_record(self, rec: KeyRecord, *, token: bool) -> KeySpec:
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
        return self.secret_object(handle, rec, None)

    def secret_object(self, handle: int, rec: SecretRecord, owner: int | None) -> Pkcs11Object:
        allowed = rec.attrs.get(CKA.ALLOWED_MECHANISMS)
        return objects.secret_key(
            handle,
            label=rec.label,
            chip_slot=rec.slot,
            aes=True,
            store_key=self.secret_key(rec),
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
