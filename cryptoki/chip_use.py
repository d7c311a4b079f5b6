"""ChipUse: using a token's chip keys, safely, from the operations that hold them.

Owns: the check that a key object still names the key it named when its handle was given out
(:meth:`ChipUse.using`: a generated or AES key another process destroyed or replaced answers
CKR_KEY_HANDLE_INVALID, checked against its metadata record under the metadata file's lock, held
across the chip operation), the callables operations hold (sign, HMAC, AES with the chip lock
released between chunks, ECDH, SHA-256), each under the token lock, and the ECDH that binds PIN
records to the chip. Must not: decide which key may do what (``mechanisms``), build objects, or
write the metadata file.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cryptoki import errors, limits
from cryptoki.backend import ProductLayout, TokenBackend
from cryptoki.constants import CKA
from cryptoki.object_table import ObjectTable
from cryptoki.objects import Origin, Pkcs11Object
from cryptoki.store import Metadata, MetadataStore


class ChipUse:
    """The chip operations of one token.

    :param lock: the token's lock (serialises every chip call of the process).
    :param backend: the chip.
    :param store: the token's metadata store (the chip must have answered).
    :param table: the token's objects (a key found destroyed leaves it).
    :param layout: the chip product's layout (which key binds PINs).
    """

    def __init__(
        self,
        lock: threading.RLock,
        backend: TokenBackend,
        store: Callable[[], MetadataStore],
        table: ObjectTable,
        layout: ProductLayout,
    ) -> None:
        self.lock = lock
        self.backend = backend
        self._store = store
        self._table = table
        self._layout = layout
        #: key object → metadata fingerprint when :meth:`using` last found its record (no
        #: change of the file since: no re-read)
        self._checked: weakref.WeakKeyDictionary[Pkcs11Object, Any] = weakref.WeakKeyDictionary()

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
            store = self._store()
            with store.locked():
                fp = store.fingerprint()
                if self._checked.get(root, False) != fp:
                    if not self._key_recorded(store.load(), root):
                        self._table.remove_where(lambda o: o is root or o.source is root)
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
        """SHA-256 of a whole (short: ``limits.CHIP_DIGEST_BYTES``) message on the chip, in one
        transaction."""
        with self.lock:
            return self.backend.sha256(data)

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

    def pin_binding(self) -> Callable[[bytes], bytes] | None:
        """ECDH with the product's device key, if the chip lets it run ECDH: what binds PIN
        records to this chip (``pin.py``); None leaves them host-only."""
        slot = self._layout.device_key_slot
        if slot is None or not self.backend.slot_caps(slot).ecdh:
            return None

        def ecdh(point: bytes) -> bytes:
            with self.lock:
                return self.backend.ecdh(slot, point)

        return ecdh


class _ChipAes:
    """``mechanisms.aes.BlockCipher`` over the token's backend, bound to one key object; every
    block operation runs under :meth:`ChipUse.using`, so a key destroyed meanwhile is refused."""

    def __init__(self, chip: ChipUse, obj: Pkcs11Object) -> None:
        assert obj.chip_slot is not None
        self._chip = chip
        self._obj = obj
        self._slot = obj.chip_slot
        self._block = obj.key_block

    # Long inputs go to the chip in chunks of limits.CHIP_CHUNK_BYTES (whole blocks), each its
    # own transaction, so other processes are served between them.
    def ecb(self, data: bytes, *, decrypt: bool) -> bytes:
        out = []
        for chunk in _chunks(data):
            with self._chip.using(self._obj):
                out.append(
                    self._chip.backend.aes_ecb(self._slot, self._block, chunk, decrypt=decrypt)
                )
        return b"".join(out)

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        out = []
        for chunk in _chunks(data):
            with self._chip.using(self._obj):
                ct = self._chip.backend.aes_cbc_encrypt(self._slot, self._block, iv, chunk)
            out.append(ct)
            iv = ct[-16:]  # CBC chains across chunks through the last ciphertext block
        return b"".join(out)

    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        for chunk in _chunks(data):
            with self._chip.lock:
                y = self._chip.backend.ghash(h, y, chunk)
        return y


def _chunks(data: bytes) -> list[bytes]:
    """``data`` in pieces of at most ``limits.CHIP_CHUNK_BYTES`` (a multiple of 16)."""
    size = limits.CHIP_CHUNK_BYTES
    return [bytes(data[i : i + size]) for i in range(0, len(data), size)]
