"""Pure builders for ATECC608 commands: one function per datasheet command (chip §4).

Owns: turning arguments into a :class:`atecc.packet.Command` (opcode, param1, param2, data) plus
the length of the command's output on success (``0`` = status only, ``None`` = depends on chip
configuration), and validating arguments before anything reaches the wire.

Must not: touch a bus, keep state, or interpret replies beyond their expected length. Every
builder raises :class:`ValueError` with a message naming the bad argument.

Mode and parameter bit layouts are cited by spec section next to each builder.
"""

from __future__ import annotations

import enum

from atecc.constants import (
    BLOCK_SIZE,
    DIGEST_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SLOT_COUNT,
    WORD_SIZE,
    ZONE_ENCRYPTED,
    ZONE_READWRITE_32,
    Opcode,
    Zone,
    slot_size,
)
from atecc.packet import Command

Built = tuple[Command, "int | None"]

#: Param2 value meaning "the key is in TempKey" (GenKey ephemeral key, HMAC/AES key source).
TEMPKEY_KEY_ID = 0xFFFF


# --- Info (chip §4.1) -----------------------------------------------------------------------------
class InfoMode(enum.IntEnum):
    REVISION = 0x00
    KEY_VALID = 0x01
    STATE = 0x02
    GPIO = 0x03
    VOLATILE_KEY_PERMIT = 0x04


def info(mode: int = InfoMode.REVISION, param: int = 0) -> Built:
    """Info: revision (mode 0), KeyValid of slot ``param`` (1), State (2); 4-byte output."""
    if mode not in set(InfoMode):
        raise ValueError(f"Info mode 0x{mode:02X} is not one of 0..4")
    if mode == InfoMode.KEY_VALID:
        _check_slot(param)
    elif not 0 <= param <= 0xFFFF:
        raise ValueError("Info param must fit 16 bits")
    return Command(Opcode.INFO, mode, param), 4


# --- Random (chip §4.2) ---------------------------------------------------------------------------
def random(*, update_seed: bool = True) -> Built:
    """Random: 32 bytes; ``update_seed`` (mode 0x00) refreshes the EEPROM seed, as Sign expects."""
    return Command(Opcode.RANDOM, 0x00 if update_seed else 0x01), 32


# --- Nonce (chip §4.3) ----------------------------------------------------------------------------
class NonceTarget(enum.IntEnum):
    """Nonce pass-through destination, param1 bits 7:6."""

    TEMPKEY = 0x00
    MSG_DIGEST_BUFFER = 0x40
    ALT_KEY_BUFFER = 0x80


NONCE_MODE_PASSTHROUGH = 0x03
NONCE_MODE_64 = 0x20


def nonce_random(num_in: bytes, *, update_seed: bool = True, use_tempkey: bool = False) -> Built:
    """Nonce random mode: 20-byte ``num_in``; returns RandOut (32 bytes).

    ``use_tempkey`` sets param2 bit 15 (hash the current TempKey instead of fresh random).
    """
    if len(num_in) != 20:
        raise ValueError(f"Nonce random mode takes 20 bytes of NumIn, got {len(num_in)}")
    mode = 0x00 if update_seed else 0x01
    return Command(Opcode.NONCE, mode, 0x8000 if use_tempkey else 0, bytes(num_in)), 32


def nonce_load(data: bytes, *, target: NonceTarget = NonceTarget.TEMPKEY) -> Built:
    """Nonce pass-through: copy 32 (or 64) bytes verbatim into TempKey, MDB or the alt key buffer.

    Mode = 0x03 | target | 0x20 for 64 bytes (chip §4.3); status-only reply.
    """
    target = NonceTarget(target)
    if len(data) not in (32, 64):
        raise ValueError(f"Nonce pass-through takes 32 or 64 bytes, got {len(data)}")
    if len(data) == 64 and target == NonceTarget.ALT_KEY_BUFFER:
        raise ValueError("the alternate key buffer takes 32 bytes only")
    mode = NONCE_MODE_PASSTHROUGH | target | (NONCE_MODE_64 if len(data) == 64 else 0)
    return Command(Opcode.NONCE, mode, 0, bytes(data)), 0


# --- GenKey (chip §4.4) ---------------------------------------------------------------------------
GENKEY_MODE_PUBLIC = 0x00  #: compute the public key of the stored private key
GENKEY_MODE_CREATE = 0x04  #: create a new random private key, return its public key
GENKEY_MODE_DIGEST = 0x08  #: also put the public-key digest into TempKey
GENKEY_MODE_PUBKEY_DIGEST = 0x10  #: digest of a stored public key (slot = public-key slot)
_GENKEY_MODE_MASK = 0x1C


def gen_key(key_id: int, mode: int = GENKEY_MODE_CREATE, *, other_data: bytes = b"") -> Built:
    """GenKey. ``key_id`` 0..15, or 0xFFFF with a create mode for an ephemeral key in TempKey.

    Output: the 64-byte public key X||Y, except mode 0x10 (status only).
    """
    if mode & ~_GENKEY_MODE_MASK & 0xFF or not 0 <= mode <= 0xFF:
        raise ValueError(f"GenKey mode 0x{mode:02X} has bits outside 0x1C")
    if key_id == TEMPKEY_KEY_ID:
        if not mode & GENKEY_MODE_CREATE:
            raise ValueError("key_id 0xFFFF (TempKey) needs a create mode")
    else:
        _check_slot(key_id)
    if mode & GENKEY_MODE_PUBKEY_DIGEST:
        if len(other_data) != 3:
            raise ValueError("GenKey mode 0x10 needs 3 bytes of OtherData")
        return Command(Opcode.GENKEY, mode, key_id, bytes(other_data)), 0
    if other_data:
        raise ValueError("OtherData is only used with GenKey mode 0x10")
    return Command(Opcode.GENKEY, mode, key_id), PUBLIC_KEY_SIZE


# --- Sign (chip §4.5) -----------------------------------------------------------------------------
class MessageSource(enum.IntEnum):
    """Where Sign/Verify find the 32-byte message (param1 bit 5 on the 608)."""

    TEMPKEY = 0x00
    MSG_DIGEST_BUFFER = 0x20


SIGN_MODE_EXTERNAL = 0x80


def sign(key_id: int, *, source: MessageSource = MessageSource.MSG_DIGEST_BUFFER) -> Built:
    """Sign external: mode 0xA0 (digest in MDB) or 0x80 (digest in TempKey); 64-byte R||S."""
    _check_slot(key_id)
    mode = SIGN_MODE_EXTERNAL | MessageSource(source)
    return Command(Opcode.SIGN, mode, key_id), SIGNATURE_SIZE


# --- Verify (chip §4.6) ---------------------------------------------------------------------------
VERIFY_MODE_STORED = 0x00
VERIFY_MODE_EXTERNAL = 0x02
VERIFY_KEY_P256 = 0x0004


def verify_external(
    signature: bytes,
    public_key: bytes,
    *,
    source: MessageSource = MessageSource.MSG_DIGEST_BUFFER,
) -> Built:
    """Verify external: mode 0x22/0x02, param2 0x0004 (P-256), data R||S||X||Y (COUNT 135).

    Status 0x00 = valid; 0x01 (:class:`~atecc.errors.VerifyMiscompare`) = invalid.
    """
    _check_len("signature", signature, SIGNATURE_SIZE)
    _check_len("public key", public_key, PUBLIC_KEY_SIZE)
    mode = VERIFY_MODE_EXTERNAL | MessageSource(source)
    return Command(Opcode.VERIFY, mode, VERIFY_KEY_P256, bytes(signature) + bytes(public_key)), 0


def verify_stored(
    key_id: int,
    signature: bytes,
    *,
    source: MessageSource = MessageSource.MSG_DIGEST_BUFFER,
) -> Built:
    """Verify stored: against the public key in slot ``key_id``; data R||S (COUNT 71)."""
    _check_slot(key_id)
    _check_len("signature", signature, SIGNATURE_SIZE)
    mode = VERIFY_MODE_STORED | MessageSource(source)
    return Command(Opcode.VERIFY, mode, key_id, bytes(signature)), 0


# --- ECDH (chip §4.7) -----------------------------------------------------------------------------
ECDH_MODE_COMPAT = 0x00  #: 508A behaviour: SlotConfig.ReadKey bit 3 decides the destination
ECDH_MODE_TO_TEMPKEY = 0x08
ECDH_MODE_OUTPUT = 0x0C  #: slot key, clear result in the output buffer
ECDH_SOURCE_TEMPKEY = 0x01
ECDH_OUTPUT_ENCRYPTED = 0x02
_ECDH_DEST_MASK = 0x0C


def ecdh(key_id: int, public_key: bytes, mode: int = ECDH_MODE_OUTPUT) -> Built:
    """ECDH with the peer's X||Y. ``key_id`` = private-key slot (ignored/0 for a TempKey source,
    except destination slot for mode 0x05).

    Output: 32-byte x-coordinate for mode 0x0C/0x0D, 64 bytes when encrypted, status for
    TempKey/slot destinations, and either for compatibility mode (``None``).
    """
    if not 0 <= mode <= 0x0F:
        raise ValueError(f"ECDH mode 0x{mode:02X} has bits outside 0x0F")
    _check_len("peer public key", public_key, PUBLIC_KEY_SIZE)
    dest = mode & _ECDH_DEST_MASK
    if mode & ECDH_SOURCE_TEMPKEY and dest != 0x04:
        key_id = (
            0 if key_id in (0, TEMPKEY_KEY_ID) else _bad(f"key_id {key_id} with TempKey source")
        )
    else:
        _check_slot(key_id)
    expected: int | None
    if dest == _ECDH_DEST_MASK:
        expected = 64 if mode & ECDH_OUTPUT_ENCRYPTED else 32
    elif dest == ECDH_MODE_COMPAT:
        expected = None
    else:
        expected = 0
    return Command(Opcode.ECDH, mode, key_id, bytes(public_key)), expected


# --- Read / Write (chip §3.3, §4.8, §4.9) ---------------------------------------------------------
def address(zone: Zone, *, slot: int = 0, block: int = 0, word: int = 0) -> int:
    """Param2 for Read/Write (chip §3.3): config ``block<<3|word``, OTP likewise,
    data ``block<<8 | slot<<3 | word``."""
    zone = Zone(zone)
    if not 0 <= word < 8:
        raise ValueError(f"word offset {word} outside 0..7")
    if zone == Zone.CONFIG:
        if not 0 <= block < 4:
            raise ValueError(f"config block {block} outside 0..3")
        return block << 3 | word
    if zone == Zone.OTP:
        if not 0 <= block < 2:
            raise ValueError(f"OTP block {block} outside 0..1")
        return block << 3 | word
    _check_slot(slot)
    size = slot_size(slot)
    if not 0 <= block * BLOCK_SIZE < size:
        raise ValueError(f"slot {slot} has no block {block} ({size} bytes)")
    if block * BLOCK_SIZE + word * WORD_SIZE >= size:
        raise ValueError(f"slot {slot} block {block} has no word {word}")
    return block << 8 | slot << 3 | word


def read(zone: Zone, *, slot: int = 0, block: int = 0, word: int = 0, size: int = 32) -> Built:
    """Read 4 or 32 bytes. 32-byte reads must start at word 0 (the chip ignores the bits)."""
    if size not in (WORD_SIZE, BLOCK_SIZE):
        raise ValueError(f"Read size must be 4 or 32, got {size}")
    if size == BLOCK_SIZE and word:
        raise ValueError("a 32-byte read starts at word 0")
    param1 = Zone(zone) | (ZONE_READWRITE_32 if size == BLOCK_SIZE else 0)
    return Command(Opcode.READ, param1, address(zone, slot=slot, block=block, word=word)), size


def write(
    zone: Zone,
    data: bytes,
    *,
    slot: int = 0,
    block: int = 0,
    word: int = 0,
    mac: bytes | None = None,
) -> Built:
    """Write 4 or 32 bytes (the size follows ``len(data)``); with ``mac`` the write is marked
    encrypted (param1 bit 6) and the 32-byte MAC is appended -- the caller encrypts ``data``."""
    if len(data) not in (WORD_SIZE, BLOCK_SIZE):
        raise ValueError(f"Write data must be 4 or 32 bytes, got {len(data)}")
    if len(data) == BLOCK_SIZE and word:
        raise ValueError("a 32-byte write starts at word 0")
    param1 = Zone(zone) | (ZONE_READWRITE_32 if len(data) == BLOCK_SIZE else 0)
    payload = bytes(data)
    if mac is not None:
        _check_len("MAC", mac, 32)
        if zone == Zone.CONFIG:
            raise ValueError("config-zone writes are never encrypted")
        param1 |= ZONE_ENCRYPTED
        payload += bytes(mac)
    return Command(
        Opcode.WRITE, param1, address(zone, slot=slot, block=block, word=word), payload
    ), 0


# --- Lock (chip §3.7) -----------------------------------------------------------------------------
LOCK_ZONE_CONFIG = 0x00
LOCK_ZONE_DATA = 0x01
LOCK_ZONE_SLOT = 0x02
LOCK_NO_CRC = 0x80


def lock(zone: str, *, crc: int | None = None, slot: int | None = None) -> Built:
    """Lock ``"config"``, ``"data"`` (with summary CRC ``crc``, or bit 7 = no check when None)
    or ``"slot"`` (slot ``slot``; the chip ignores the summary)."""
    if zone == "slot":
        if slot is None:
            raise ValueError("slot lock needs a slot")
        _check_slot(slot)
        if crc is not None:
            raise ValueError("a slot lock takes no CRC")
        return Command(Opcode.LOCK, LOCK_ZONE_SLOT | slot << 2), 0
    if slot is not None:
        raise ValueError("slot is only used with zone 'slot'")
    modes = {"config": LOCK_ZONE_CONFIG, "data": LOCK_ZONE_DATA}
    if zone not in modes:
        raise ValueError(f"lock zone must be 'config', 'data' or 'slot', not {zone!r}")
    if crc is None:
        return Command(Opcode.LOCK, modes[zone] | LOCK_NO_CRC), 0
    if not 0 <= crc <= 0xFFFF:
        raise ValueError("summary CRC must fit 16 bits")
    return Command(Opcode.LOCK, modes[zone], crc), 0


# --- SHA (chip §4.11) -----------------------------------------------------------------------------
SHA_MODE_START = 0x00
SHA_MODE_UPDATE = 0x01
SHA_MODE_END = 0x02
SHA_MODE_HMAC_START = 0x04
SHA_MODE_CONTEXT_READ = 0x06
SHA_MODE_CONTEXT_WRITE = 0x07


class ShaTarget(enum.IntEnum):
    """Where SHA End also leaves the digest (param1 bits 7:6)."""

    TEMPKEY = 0x00
    MSG_DIGEST_BUFFER = 0x40
    OUTPUT_ONLY = 0xC0


def sha_start() -> Built:
    return Command(Opcode.SHA, SHA_MODE_START), 0


def sha_hmac_start(key_id: int) -> Built:
    """HMAC start with the key in slot ``key_id`` (or 0xFFFF = TempKey)."""
    if key_id != TEMPKEY_KEY_ID:
        _check_slot(key_id)
    return Command(Opcode.SHA, SHA_MODE_HMAC_START, key_id), 0


def sha_update(data: bytes | memoryview) -> Built:
    """Update with 1..64 bytes (send full 64-byte blocks except the last, chip §8)."""
    if not 1 <= len(data) <= 64:
        raise ValueError(f"SHA update takes 1..64 bytes, got {len(data)}")
    return Command(Opcode.SHA, SHA_MODE_UPDATE, len(data), bytes(data)), 0


def sha_end(data: bytes = b"", *, target: ShaTarget = ShaTarget.OUTPUT_ONLY) -> Built:
    """End (also HMAC end on the 608) with the last 0..64 bytes; mode 0xC2 = output only."""
    if len(data) > 64:
        raise ValueError(f"SHA end takes 0..64 bytes, got {len(data)}")
    target = ShaTarget(target)
    # Whether the 608 also returns the digest for the TempKey/MDB targets is not documented
    # publicly, so only "output only" insists on 32 bytes.
    expected = DIGEST_SIZE if target == ShaTarget.OUTPUT_ONLY else None
    return Command(Opcode.SHA, SHA_MODE_END | target, len(data), bytes(data)), expected


#: Bounds of a SHA context image. cryptoauthlib's sha_context test shows a 608 returning 36 bytes
#: plus the unfinished block (0-63); the spec says 40 plus that. Accept both readings: the image
#: is opaque, the driver only hands back what the chip gave.
SHA_CONTEXT_MIN, SHA_CONTEXT_MAX = 36, 40 + 63


def sha_context_read() -> Built:
    """Read the SHA engine's context (36..103 bytes), to resume with :func:`sha_context_write`."""
    return Command(Opcode.SHA, SHA_MODE_CONTEXT_READ), None


def sha_context_write(context: bytes) -> Built:
    if not SHA_CONTEXT_MIN <= len(context) <= SHA_CONTEXT_MAX:
        raise ValueError(f"SHA context is 36..103 bytes, got {len(context)}")
    return Command(Opcode.SHA, SHA_MODE_CONTEXT_WRITE, len(context), bytes(context)), 0


# --- AES (chip §4.12) -----------------------------------------------------------------------------
AES_MODE_ENCRYPT = 0x00
AES_MODE_DECRYPT = 0x01
AES_MODE_GFM = 0x03


def aes(key_id: int, block: bytes, *, decrypt: bool = False, key_block: int = 0) -> Built:
    """AES-128 single block with key ``key_block`` (0..3) of slot ``key_id`` (0xFFFF = TempKey)."""
    if key_id != TEMPKEY_KEY_ID:
        _check_slot(key_id)
    if not 0 <= key_block <= 3:
        raise ValueError(f"AES key block {key_block} outside 0..3")
    _check_len("AES block", block, 16)
    mode = key_block << 6 | (AES_MODE_DECRYPT if decrypt else AES_MODE_ENCRYPT)
    return Command(Opcode.AES, mode, key_id, bytes(block)), 16


def aes_gfm(h: bytes, x: bytes) -> Built:
    """GCM GF(2^128) multiply of ``x`` by the hash subkey ``h``; param2 is ignored (0)."""
    _check_len("H", h, 16)
    _check_len("GFM input", x, 16)
    return Command(Opcode.AES, AES_MODE_GFM, 0, bytes(h) + bytes(x)), 16


# --- Counter, SelfTest, UpdateExtra, PrivWrite (chip §4.13-§4.16) ---------------------------------
COUNTER_MAX = 2_097_151


def counter(counter_id: int, *, increment: bool = False) -> Built:
    """Read or increment monotonic counter 0/1; output = value, 4 bytes little-endian."""
    if counter_id not in (0, 1):
        raise ValueError(f"counter must be 0 or 1, got {counter_id}")
    return Command(Opcode.COUNTER, 0x01 if increment else 0x00, counter_id), 4


SELFTEST_ALL = 0x3B
# The spec is inconsistent here [U]: its bit list (0 RNG, 2 ECDSA, 3 ECDH, 4 AES, 5 SHA) gives
# 0x3D, yet "all" is 0x3B (bit 1, not bit 2). cryptoauthlib's "all" is 0x3B, so we send that and
# accept either ECDSA bit; only bits 7:6 are certainly reserved.
_SELFTEST_MASK = 0x3F


def selftest(tests: int = SELFTEST_ALL) -> Built:
    """SelfTest bitmap (bit 0 RNG, 1/2 ECDSA, 3 ECDH, 4 AES, 5 SHA); 0 reads the failure register.

    Output is the 1-byte bitmap of failed tests.
    """
    if tests & ~_SELFTEST_MASK or tests < 0:
        raise ValueError(f"SelfTest bitmap 0x{tests:02X} uses reserved bits 7:6")
    return Command(Opcode.SELFTEST, tests), 1


UPDATE_EXTRA_USER_EXTRA = 0x00
UPDATE_EXTRA_USER_EXTRA_ADD = 0x01
UPDATE_EXTRA_DECREMENT = 0x02


def update_extra(mode: int, value: int) -> Built:
    """UpdateExtra: mode 0 sets config byte 84, mode 1 byte 85 (both only while 0x00),
    mode 2 decrements the limited-use counter of key ``value``."""
    if mode not in (0, 1, 2):
        raise ValueError(f"UpdateExtra mode must be 0, 1 or 2, got {mode}")
    if mode == UPDATE_EXTRA_DECREMENT:
        _check_slot(value)
    elif not 0 <= value <= 0xFF:
        raise ValueError(f"UpdateExtra value must be one byte, got {value}")
    return Command(Opcode.UPDATEEXTRA, mode, value), 0


def priv_write(key_id: int, scalar: bytes) -> Built:
    """PrivWrite in plaintext (mode 0x00, only while the data zone is unlocked).

    Data = 4 zero bytes || 32-byte big-endian scalar || 32-byte MAC field (zeros: no MAC is
    checked in plaintext mode) -- COUNT 75 (chip §4.16).
    """
    _check_slot(key_id)
    if key_id >= 8:
        raise ValueError(f"private keys live in slots 0..7, not {key_id}")
    _check_len("private key scalar", scalar, 32)
    return Command(Opcode.PRIVWRITE, 0x00, key_id, bytes(4) + bytes(scalar) + bytes(32)), 0


# --- helpers -------------------------------------------------------------------------------------
def _check_slot(slot: int) -> None:
    if not isinstance(slot, int) or not 0 <= slot < SLOT_COUNT:
        raise ValueError(f"slot {slot!r} outside 0..15")


def _check_len(name: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise ValueError(f"{name} must be {n} bytes, got {len(value)}")


def _bad(message: str) -> int:
    raise ValueError(message)
