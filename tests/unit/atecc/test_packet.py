"""Known-answer packets (chip §1.7 "Complete example packets", §5.3) and reply decoding (§2)."""

from __future__ import annotations

import pytest

from atecc import errors
from atecc.crc import crc16_bytes
from atecc.packet import Command, check_group, decode_command, parse_response

SEQ32 = bytes(range(32))
R = bytes.fromhex("E03396C3B08274FDED0CC7EE55EFF8708471B43A9DFD769D6C227EE45AD20B5C")
S = bytes.fromhex("F78A2F6C229C30E2069E3D6939E53463E81779B3F48F6C075B6ACCE43A6CC465")
X = bytes.fromhex("40114EBB814E71A6BE6318309D141DD8EB4BFDBE937BD0090559FBD77023DA28")
Y = bytes.fromhex("4EBF3819048E5A4C21ACC934055B8EF2CDF4EE7186F07049516D5EEA2AE03407")

# (opcode, param1, param2, data) -> wire bytes (without word address 0x03)
PACKETS = [
    ((0x30, 0x00, 0x0000, b""), "07 30 00 00 00 03 5D"),
    ((0x30, 0x01, 0x0000, b""), "07 30 01 00 00 00 D7"),
    ((0x30, 0x02, 0x0000, b""), "07 30 02 00 00 00 D8"),
    ((0x1B, 0x00, 0x0000, b""), "07 1B 00 00 00 24 CD"),
    ((0x02, 0x80, 0x0000, b""), "07 02 80 00 00 09 AD"),
    ((0x02, 0x00, 0x0015, b""), "07 02 00 15 00 17 5D"),
    ((0x02, 0x82, 0x0050, b""), "07 02 82 50 00 0A 14"),
    ((0x40, 0x00, 0x0000, b""), "07 40 00 00 00 00 05"),
    ((0x40, 0x04, 0x0002, b""), "07 40 04 02 00 85 07"),
    ((0x40, 0x04, 0xFFFF, b""), "07 40 04 FF FF 8E 07"),
    ((0x41, 0xA0, 0x0000, b""), "07 41 A0 00 00 7B 85"),
    ((0x24, 0x00, 0x0000, b""), "07 24 00 00 00 0C FD"),
    ((0x24, 0x01, 0x0001, b""), "07 24 01 01 00 06 F7"),
    ((0x77, 0x3B, 0x0000, b""), "07 77 3B 00 00 9D FB"),
    ((0x17, 0x80, 0x0000, b""), "07 17 80 00 00 39 8D"),
    ((0x17, 0x0A, 0x0000, b""), "07 17 0A 00 00 6E 09"),
    ((0x47, 0x00, 0x0000, b""), "07 47 00 00 00 2E 85"),
    ((0x47, 0x01, 0x0003, b"abc"), "0A 47 01 03 00 61 62 63 BC 53"),
    ((0x47, 0xC2, 0x0000, b""), "07 47 C2 00 00 11 00"),
    ((0x20, 0x00, 0x0000, b""), "07 20 00 00 00 00 7D"),
    ((0x16, 0x03, 0x0000, SEQ32), "27 16 03 00 00" + SEQ32.hex() + "04 EE"),
    ((0x16, 0x43, 0x0000, SEQ32), "27 16 43 00 00" + SEQ32.hex() + "D7 6C"),
    ((0x16, 0x43, 0x0000, bytes(32)), "27 16 43 00 00" + "00" * 32 + "14 3A"),
    # Spec erratum: §1.7 lists the CRC of this packet as "D5 39"; the spec's own bit-serial
    # reference CRC (and the table CRC) give register 0xD541, i.e. "41 D5" on the wire.
    ((0x12, 0x82, 0x0040, bytes(32)), "27 12 82 40 00" + "00" * 32 + "41 D5"),
    ((0x51, 0x00, 0x0009, bytes(16)), "17 51 00 09 00" + "00" * 16 + "AC 62"),
    ((0x45, 0x22, 0x0004, R + S + X + Y), "87 45 22 04 00" + (R + S + X + Y).hex() + "51 78"),
]


@pytest.mark.parametrize(("fields", "wire"), PACKETS)
def test_encode_known_packets(fields: tuple[int, int, int, bytes], wire: str) -> None:
    command = Command(*fields)
    expected = bytes.fromhex(wire.replace(" ", ""))
    assert command.encode() == expected
    assert decode_command(expected) == command


def test_encode_rejects_oversize_and_bad_params() -> None:
    with pytest.raises(ValueError):
        Command(0x47, 1, 0, bytes(149)).encode()
    with pytest.raises(ValueError):
        Command(0x47, 0x100).encode()
    with pytest.raises(ValueError):
        Command(0x47, 0, 0x10000).encode()


def test_decode_command_rejects_bad_crc_and_count() -> None:
    good = Command(0x30).encode()
    with pytest.raises(ValueError):
        decode_command(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError):
        decode_command(good + b"\x00")


def _group(payload: bytes) -> bytes:
    body = bytes([len(payload) + 3]) + payload
    return body + crc16_bytes(body)


def test_response_examples() -> None:
    assert parse_response(bytes.fromhex("04000340"), 0) == b""
    assert parse_response(bytes.fromhex("07000000000 3AD".replace(" ", "")), 4) == bytes(4)
    assert parse_response(bytes.fromhex("07000060028038"), 4) == bytes.fromhex("00006002")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (0x01, errors.VerifyMiscompare),
        (0x03, errors.ParseError),
        (0x05, errors.EccFault),
        (0x07, errors.SelfTestError),
        (0x08, errors.HealthTestError),
        (0x0F, errors.ExecutionError),
        (0xEE, errors.WatchdogAboutToExpire),
        (0xFF, errors.ChipCrcError),
    ],
)
def test_status_groups_map_to_typed_errors(status: int, cls: type[errors.StatusError]) -> None:
    group = _group(bytes([status]))
    with pytest.raises(cls) as info:
        parse_response(group, 32)
    assert info.value.status == status


def test_unknown_status_is_plain_status_error() -> None:
    with pytest.raises(errors.StatusError) as info:
        parse_response(_group(b"\x42"), 0)
    assert type(info.value) is errors.StatusError
    assert info.value.status == 0x42


def test_one_byte_result_is_not_a_status_when_asked() -> None:
    assert parse_response(_group(b"\x05"), 1) == b"\x05"


def test_check_group_errors() -> None:
    with pytest.raises(errors.ResponseCrcError):
        check_group(bytes.fromhex("04000341"))
    with pytest.raises(errors.ResponseFormatError):
        check_group(bytes.fromhex("05000340"))
    with pytest.raises(errors.ResponseFormatError):
        check_group(bytes.fromhex("ff"))
    with pytest.raises(errors.ResponseFormatError):
        parse_response(_group(bytes(32)), 64)
