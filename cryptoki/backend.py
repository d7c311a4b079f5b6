"""TokenBackend: everything the token core asks of the secure element, as a Protocol.

Owns: the seam between token logic and the chip driver. The core sees the chip only through
these methods, which take and return plain bytes/ints and raise only ``cryptoki.errors``
exceptions (the implementation maps driver errors; see ``backends/atecc.py``). Must not: grow
methods that hand out private key material; there is none to hand out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChipIdentity:
    """What C_GetTokenInfo needs from the chip, read once per C_Initialize."""

    serial: bytes  #: 9-byte serial number (config bytes 0-3 and 8-12)
    revision: bytes  #: 4 bytes from Info(Revision)


@dataclass(frozen=True)
class SlotCaps:
    """What a chip slot's KeyConfig/SlotConfig allow, decoded from the config zone."""

    slot: int
    p256_private: bool  #: KeyType P-256 and Private bit set
    gen_key: bool  #: GenKey may write a new random key here now (config allows, slot unlocked)
    ecdh: bool  #: ECDH allowed (SlotConfig bit 2): CKA_DERIVE
    external_sign: bool  #: Sign of external digests allowed (SlotConfig bit 0)
    aes: bool  #: KeyType AES (for secret-key objects)


class TokenBackend(Protocol):
    """One chip behind one slot file. Implementations serialise nothing; the token holds a lock."""

    def identity(self) -> ChipIdentity:
        """Open the device if needed and read serial and revision.

        :raises errors.TokenNotPresent: nothing answers (no bus, no state file, no chip).
        :raises errors.DeviceError: the chip answered but the exchange failed.
        """
        ...

    def slot_caps(self, slot: int) -> SlotCaps: ...

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

    def read_slot(self, slot: int) -> bytes:
        """The whole contents of a data slot (for certificates stored in full DER)."""
        ...

    def certificate_chain(self) -> tuple[bytes, bytes]:
        """(device DER, signer DER) rebuilt from the Trust&GO compressed certificates."""
        ...

    def close(self) -> None:
        """Release the bus; safe to call twice, and safe at process exit."""
        ...
