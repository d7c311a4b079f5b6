"""The monotonic counters' EEPROM encoding in config bytes 52-59 (counter 0) and 60-67 (counter 1).

Owns: turning a counter value into its 8 config bytes and back. The encoding is the one
cryptoauthlib's ``calib_write_config_counter`` writes before the config lock (and which the chip
then counts from): two 16-bit "linear" words, big-endian, then two 16-bit "binary" words,
big-endian. Counter A = value, counter B = value - 16 (from 16 on); each is stored as
``32 × bin + lin`` where ``lin`` is the number of cleared bits of a word that starts at FFFF, so
at any value one of the two halves is exact:

* lin_a = FFFF >> (value % 32), bin_a = value // 32
* lin_b = FFFF >> ((value - 16) % 32), bin_b = (value - 16) // 32 (both FFFF / 0 below 16)

The factory image ``FF FF FF FF 00 00 00 00`` is value 0. Decoding counts cleared bits, so a
non-canonical image written by hand decodes to something plausible; what the silicon does with
one is not public [U].

Must not: know about commands or state files (``_cmd_general.py`` and ``state.py`` call it).
"""

from __future__ import annotations

#: Largest counter value (chip §4.13): 65535 × 32 + 31.
COUNTER_MAX = 2_097_151
#: Config offset of counter ``n``'s 8 bytes.
COUNTER_OFFSETS = (52, 60)


def encode(value: int) -> bytes:
    """The 8 config bytes that hold ``value``."""
    if not 0 <= value <= COUNTER_MAX:
        raise ValueError(f"counter value {value} outside 0..{COUNTER_MAX}")
    lin_a = 0xFFFF >> (value % 32) if value % 32 < 16 else 0
    b = value - 16
    lin_b = (0xFFFF >> (b % 32) if b % 32 < 16 else 0) if b >= 0 else 0xFFFF
    bin_a = value // 32
    bin_b = b // 32 if b >= 0 else 0
    return b"".join(v.to_bytes(2, "big") for v in (lin_a, lin_b, bin_a, bin_b))


def _cleared(word: int) -> int:
    return 16 - bin(word & 0xFFFF).count("1")


def decode(raw: bytes | bytearray) -> int:
    """The counter value held by 8 config bytes."""
    if len(raw) != 8:
        raise ValueError("a counter takes 8 config bytes")
    lin_a, lin_b, bin_a, bin_b = (int.from_bytes(raw[i : i + 2], "big") for i in (0, 2, 4, 6))
    if _cleared(lin_a) < 16:
        return min(32 * bin_a + _cleared(lin_a), COUNTER_MAX)
    return min(16 + 32 * bin_b + _cleared(lin_b), COUNTER_MAX)


def read(config: bytes | bytearray, counter_id: int) -> int:
    offset = COUNTER_OFFSETS[counter_id]
    return decode(config[offset : offset + 8])


def write(config: bytearray, counter_id: int, value: int) -> None:
    offset = COUNTER_OFFSETS[counter_id]
    config[offset : offset + 8] = encode(value)
