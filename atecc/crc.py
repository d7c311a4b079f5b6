"""CRC-16 of the ATECC command protocol (spec §1.7).

Polynomial 0x8005, initial value 0, input bits taken least-significant first, result not reflected,
no final XOR, sent low byte first. The bit-serial definition is kept as :func:`crc16_reference`
(it is the spec's own formulation and the tests pin the fast table against it); :func:`crc16` is
the table-driven version every packet goes through.
"""

from __future__ import annotations

POLYNOMIAL = 0x8005


def crc16_reference(data: bytes) -> int:
    """Bit-serial CRC exactly as the spec states it; slow, used to check :func:`crc16`."""
    reg = 0
    for byte in data:
        for i in range(8):
            bit = (byte >> i) & 1
            top = reg >> 15
            reg = (reg << 1) & 0xFFFF
            if bit != top:
                reg ^= POLYNOMIAL
    return reg


def _reflect8(value: int) -> int:
    return int(f"{value:08b}"[::-1], 2)


def _make_table() -> tuple[int, ...]:
    # Feeding a byte LSB-first equals feeding its bit-reversal MSB-first into an ordinary
    # MSB-first CRC, so the table is indexed by (reg >> 8) ^ reflect(byte).
    table = []
    for index in range(256):
        reg = index << 8
        for _ in range(8):
            reg = ((reg << 1) ^ POLYNOMIAL if reg & 0x8000 else reg << 1) & 0xFFFF
        table.append(reg)
    return tuple(table)


_TABLE = _make_table()
_REFLECT = bytes(_reflect8(i) for i in range(256))


def crc16(data: bytes) -> int:
    """CRC register value over ``data`` (table-driven)."""
    reg = 0
    table = _TABLE
    for byte in bytes(data).translate(_REFLECT):
        reg = ((reg << 8) & 0xFFFF) ^ table[(reg >> 8) ^ byte]
    return reg


def crc16_bytes(data: bytes) -> bytes:
    """The two CRC bytes as they go on the wire (low byte first)."""
    reg = crc16(data)
    return bytes((reg & 0xFF, reg >> 8))


def check(group: bytes) -> bool:
    """True when the last two bytes of ``group`` are the CRC of the rest."""
    return len(group) >= 2 and crc16_bytes(group[:-2]) == bytes(group[-2:])
