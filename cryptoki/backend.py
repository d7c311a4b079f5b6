"""TokenBackend: everything the token core asks of the secure element, as a Protocol.

Owns: the seam between token logic and the chip driver. The core sees the chip only through
these methods, which take and return plain bytes/ints and raise only ``cryptoki.errors``
exceptions (the implementation maps driver errors; see ``backends/atecc.py``). Must not: grow
methods that hand out private key material; there is none to hand out.
"""

from __future__ import annotations

from typing import Protocol

from atecc.record import record


@record(frozen=True)
class ChipIdentity:
    """What C_GetTokenInfo needs from the chip, read once per C_Initialize."""

    serial: bytes  #: 9-byte serial number (config bytes 0-3 and 8-12)
    revision: bytes  #: 4 bytes from Info(Revision)


@record(frozen=True)
class SlotCaps:
    """What a chip slot's KeyConfig/SlotConfig allow, decoded from the config zone."""

    slot: int
    p256_private: bool  #: KeyType P-256 and Private bit set
    gen_key: bool  #: GenKey may write a new random key here now (config allows, slot unlocked)
    ecdh: bool  #: ECDH allowed (SlotConfig bit 2): CKA_DERIVE
    external_sign: bool  #: Sign of external digests allowed (SlotConfig bit 0)
    aes: bool  #: KeyType AES (for secret-key objects)
    aes_writable: bool = False  #: AES slot a clear 32-byte Write may fill now (C_GenerateKey)
    hmac: bool = False  #: KeyType SHA/data, not private, NoMac clear: SHA HMAC may use it
    req_random: bool = False  #: KeyConfig ReqRandom: a random Nonce must precede HMAC start
    size: int = 36  #: slot size in bytes (36, 416 or 72)


@record(frozen=True)
class CertificateSpec:
    """A certificate the chip product defines, as the token shows it."""

    label: str
    category: int  #: CKA_CERTIFICATE_CATEGORY
    trusted: bool  #: CKA_TRUSTED (the signer CA of a Trust&GO part)
    #: the chip key slot this certificate certifies (its CKA_ID is that key's), or None: the
    #: certificate's own key gives its CKA_ID
    key_slot: int | None = None


@record(frozen=True)
class ProductLayout:
    """What a chip product (e.g. Trust&GO) fixes at the factory, as the token needs it.

    :ivar device_key_slot: the factory device key, shown as key pair ``device_label``.
    :ivar reserved_slots: slots with a fixed meaning: never chosen for new keys, and not shown
        as generated keys even if the metadata file names them.
    :ivar default_freeslots: slots new keys may go to when the slot file has no ``freeslots``.
    :ivar certificates: the certificate chain :meth:`TokenBackend.certificate_chain` rebuilds,
        in its order (device first, then signer).
    """

    name: str
    device_key_slot: int | None = None
    device_label: str = "device"
    reserved_slots: frozenset[int] = frozenset()
    default_freeslots: tuple[int, ...] = ()
    certificates: tuple[CertificateSpec, ...] = ()


#: A customer-provisioned part: nothing is fixed; the slot file says everything.
GENERIC_LAYOUT = ProductLayout("generic")


class TokenBackend(Protocol):
    """One chip behind one slot file. Implementations serialise nothing; the token holds a lock."""

    def identity(self) -> ChipIdentity:
        """Open the device if needed and read serial and revision.

        :raises errors.TokenNotPresent: nothing answers (no bus, no state file, no chip).
        :raises errors.DeviceError: the chip answered but the exchange failed.
        """
        ...

    def layout(self) -> ProductLayout:
        """The chip product's fixed layout (Trust&GO slots and certificates), known without
        talking to the chip."""
        ...

    def slot_caps(self, slot: int) -> SlotCaps: ...

    def aes_enabled(self) -> bool:
        """Config byte 13 bit 0 (AES_Enable): the AES command works at all."""
        ...

    def random(self, length: int) -> bytes:
        """``length`` bytes from the chip's RNG (several Random commands when > 32)."""
        ...

    def public_key(self, slot: int) -> bytes:
        """X||Y of the private key in ``slot`` (GenKey public-key mode)."""
        ...

    def stored_public_key(self, slot: int) -> bytes:
        """X||Y stored as data in a public-key slot (8-15)."""
        ...

    def generate_key(self, slot: int) -> bytes:
        """Create a new random private key in ``slot``; returns its X||Y."""
        ...

    def sign_digest(self, slot: int, digest: bytes) -> bytes:
        """ECDSA over a 32-byte digest with the key in ``slot``; returns r||s (64 bytes)."""
        ...

    def ecdh(self, slot: int, peer: bytes) -> bytes:
        """ECDH with the private key in ``slot`` and peer X||Y; returns the shared x (32 bytes).

        :raises errors.KeyFunctionNotPermitted: the chip refuses (slot config, bad point).
        """
        ...

    def sha256(self, data: bytes) -> bytes:
        """SHA-256 of ``data`` on the chip in one transaction."""
        ...

    def hmac_sha256(self, slot: int, data: bytes, *, random_nonce: bool) -> bytes:
        """HMAC-SHA256 of ``data`` with the key in ``slot``, on the chip."""
        ...

    def aes_ecb(self, slot: int, key_block: int, data: bytes, *, decrypt: bool) -> bytes:
        """AES-128-ECB over whole 16-byte blocks with key ``key_block`` of ``slot``."""
        ...

    def aes_cbc_encrypt(self, slot: int, key_block: int, iv: bytes, data: bytes) -> bytes:
        """AES-128-CBC encryption of whole blocks (the chip encrypts, the host XORs)."""
        ...

    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        """GHASH state after absorbing whole 16-byte blocks, multiplied by the chip's GFM."""
        ...

    def write_secret_block(self, slot: int, offset: int, block: bytes) -> None:
        """One clear 32-byte Write of ``block`` at ``offset`` (0 or 32) of ``slot``."""
        ...

    def read_slot(self, slot: int) -> bytes:
        """The whole contents of a data slot (for certificates stored in full DER)."""
        ...

    def certificate_chain(self, device_public_key: bytes | None = None) -> tuple[bytes, ...]:
        """The DER certificates of :attr:`ProductLayout.certificates`, rebuilt from the chip's
        compressed certificates (Trust&GO: device, signer). ``device_public_key``: the device
        key's X||Y when the caller has just read it (the chip then need not compute it again)."""
        ...

    def close(self) -> None:
        """Release the bus; safe to call twice, and safe at process exit."""
        ...
