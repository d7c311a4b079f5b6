"""KeySlots: which chip slots (and AES key blocks) new keys may take, and putting keys there.

Owns: choosing a free slot for C_GenerateKeyPair and a free AES key block for C_GenerateKey /
C_CreateObject (allowed by the chip's config, listed in ``freeslots``, not holding a configured
object, a product-reserved key or a live key), running GenKey or the clear Write there, and
writing the record that says the slot is taken, all under the metadata file's inter-process
lock so two processes never pick the same slot. Must not: build objects, keep key bytes (an
imported AES key passes through to the chip once), or decide access.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from atecc.lazylog import get_logger
from cryptoki import der, errors
from cryptoki.backend import ProductLayout, TokenBackend
from cryptoki.config import TokenConfig
from cryptoki.constants import CKA
from cryptoki.store import KeyRecord, Metadata, MetadataStore, SecretRecord

if TYPE_CHECKING:
    from cryptoki.policy import KeyPairRequest, SecretKeyRequest

log = get_logger("cryptoki.key_slots")

SLOT_COUNT = 16


class KeySlots:
    """Key-slot allocation for one token (the caller holds the token lock)."""

    def __init__(
        self,
        config: TokenConfig,
        layout: ProductLayout,
        backend: TokenBackend,
        store: MetadataStore,
    ) -> None:
        self._config = config
        self._layout = layout
        self._backend = backend
        self._store = store
        #: the slot file's ``freeslots``, else the product's default
        self.freeslots = config.freeslots or layout.default_freeslots
        #: slots the slot file or the product layout gives a meaning to
        self.configured = {o.slot for o in config.objects} | set(layout.reserved_slots)

    def _taken_by_config(self) -> set[int]:
        taken = {o.slot for o in self._config.objects}
        if self._layout.device_key_slot is not None:
            taken.add(self._layout.device_key_slot)  # even if a slot file lists it
        return taken

    def free_slots(self, records: list[KeyRecord]) -> list[int]:
        """``freeslots`` entries GenKey may use now: allowed by the chip's config and not holding
        a configured object or a live generated key."""
        taken = self._taken_by_config() | {r.slot for r in records if r.alive}
        return [
            slot
            for slot in self.freeslots
            if slot not in taken
            and 0 <= slot < SLOT_COUNT
            and self._backend.slot_caps(slot).gen_key
        ]

    def free_key_blocks(self, meta: Metadata) -> list[tuple[int, int]]:
        """(slot, key block) pairs an AES key may fill: ``freeslots`` entries whose config
        allows clear writes of an AES key, not used by the slot file or a live key.

        A clear write to a secret slot must be a whole 32-byte block, and such a slot cannot be
        read back to merge, so each key gets a block of its own: key block 0 (bytes 0-15) and,
        in a 72- or 416-byte slot, key block 2 (bytes 32-47). The other half of each block is
        filled with chip random.
        """
        taken = self._taken_by_config() | {r.slot for r in meta.keys if r.alive}
        used = {(r.slot, r.key_block) for r in meta.secrets if r.alive}
        out = []
        for slot in self.freeslots:
            if slot in taken or not 0 <= slot < SLOT_COUNT:
                continue
            caps = self._backend.slot_caps(slot)
            if not caps.aes_writable:
                continue
            for block in (0, 2) if caps.size >= 48 else (0,):
                if (slot, block) not in used:
                    out.append((slot, block))
        return out

    def generate_pair(self, req: KeyPairRequest) -> KeyRecord:
        """Pick a slot, GenKey, and record the key, all under the store's inter-process lock."""
        with self._store.locked():
            records = self._store.read()
            free = self.free_slots(records)
            if not free:
                raise errors.DeviceMemory("no free chip slot for a new key")
            slot = free[0]
            pub = self._backend.generate_key(slot)
            caps = self._backend.slot_caps(slot)
            rec = KeyRecord(
                slot=slot,
                label=req.label,
                id=req.key_id or der.key_id(pub),
                public_key=pub,
                session_pid=None if req.token else os.getpid(),
                derive=req.derive and caps.ecdh,
                mechanisms=req.allowed_mechanisms,
                subject=req.subject,
                private=req.private,
                public_private=req.public_private,
            )
            # Records of this slot that no longer hold its key go, except a token public key
            # whose private half was destroyed: that object lives on as public data.
            kept = [
                r
                for r in records
                if r.slot != slot or (r.session_pid is None and not r.public_destroyed)
            ]
            self._store.write([*kept, rec])
        log.info(
            "%s: generated %s key pair in chip slot %d",
            self._config.path.name,
            "token" if req.token else "session",
            slot,
        )
        return rec

    def store_secret(self, req: SecretKeyRequest) -> SecretRecord:
        """Put an AES key into a free key block: chip random (C_GenerateKey) or the request's
        value (C_CreateObject). One clear 32-byte Write; the record is written under the lock."""
        with self._store.locked():
            meta = self._store.load()
            free = self.free_key_blocks(meta)
            if not free:
                raise errors.DeviceMemory("no free AES key block on the chip")
            slot, block = free[0]
            key = req.value if req.value is not None else self._backend.random(16)
            self._backend.write_secret_block(
                slot, 16 * block, bytes(key) + self._backend.random(16)
            )
            del key
            uid = os.urandom(16).hex()
            attrs: dict[int, object] = {**req.usage, CKA.PRIVATE: req.private}
            if req.allowed_mechanisms is not None:
                attrs[CKA.ALLOWED_MECHANISMS] = req.allowed_mechanisms
            rec = SecretRecord(
                slot=slot,
                key_block=block,
                uid=uid,
                label=req.label,
                id=req.key_id or bytes.fromhex(uid[:16]),
                local=req.value is None,
                session_pid=None if req.token else os.getpid(),
                attrs=attrs,
            )
            meta.secrets.append(rec)
            self._store.save(meta)
        log.info(
            "%s: %s AES key in chip slot %d key block %d",
            self._config.path.name,
            "generated" if req.value is None else "imported",
            slot,
            block,
        )
        return rec

    def erase_key(self, slot: int) -> None:
        """Replace the private key in ``slot`` with a new random one nobody records: the old key
        is gone from the chip (GenKey is allowed there: the key was generated there)."""
        self._backend.generate_key(slot)
        log.info("%s: private key in chip slot %d erased", self._config.path.name, slot)

    def erase_secret(self, slot: int, key_block: int) -> None:
        """Overwrite an AES key block with chip random (the key is gone for good)."""
        self._backend.write_secret_block(slot, 16 * key_block, self._backend.random(32))
