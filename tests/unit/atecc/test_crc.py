"""Known answers for the ATECC CRC-16 (chip §1.7); the table version against the bit-serial."""

from __future__ import annotations

import random

import pytest

from atecc import crc

VECTORS = [
    ("0411", 0x4333),
    ("0730000000", 0x5D03),
    ("0700006002", 0x3880),
    ("0700006003", 0xBB83),
    ("313233343536373839", 0xBCDD),
    ("", 0x0000),
    ("0400", 0x4003),
    ("0401", 0xC300),
    ("0403", 0x4283),
    ("0405", 0x43C3),
    ("0407", 0xC240),
    ("0408", 0xC060),
    ("040f", 0x4223),
    ("04ee", 0x4131),
    ("04ff", 0x4201),
]


@pytest.mark.parametrize(("data", "register"), VECTORS)
def test_spec_vectors(data: str, register: int) -> None:
    raw = bytes.fromhex(data)
    assert crc.crc16(raw) == register
    assert crc.crc16_reference(raw) == register
    assert crc.crc16_bytes(raw) == bytes((register & 0xFF, register >> 8))


def test_wake_reply_is_self_consistent() -> None:
    assert crc.check(bytes.fromhex("04113343"))
    assert crc.check(bytes.fromhex("040740C2"))
    # cryptoauthlib's literal self-test wake reply fails its own CRC (chip §1.3 step 6)
    assert not crc.check(bytes.fromhex("0407C440"))


def test_table_matches_reference_on_random_data() -> None:
    rng = random.Random(608)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 160))
        assert crc.crc16(data) == crc.crc16_reference(data)


def test_check_rejects_short_and_flipped() -> None:
    assert not crc.check(b"\x04")
    assert not crc.check(bytes.fromhex("04113344"))
