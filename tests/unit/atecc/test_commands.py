"""The command builders produce the spec's packets (§1.7, §5.3) and reject bad arguments."""

from __future__ import annotations

import pytest

from atecc import commands as cmd
from atecc.constants import Zone

SEQ32 = bytes(range(32))


def wire(built: tuple[object, object]) -> str:
    command, _ = built
    return command.encode().hex(" ").upper()  # type: ignore[attr-defined]


def h(text: str) -> str:
    return bytes.fromhex(text.replace(" ", "")).hex(" ").upper()


@pytest.mark.parametrize(
    ("built", "packet", "expected_len"),
    [
        (cmd.info(), "07 30 00 00 00 03 5D", 4),
        (cmd.info(cmd.InfoMode.KEY_VALID, 0), "07 30 01 00 00 00 D7", 4),
        (cmd.info(cmd.InfoMode.STATE), "07 30 02 00 00 00 D8", 4),
        (cmd.random(), "07 1B 00 00 00 24 CD", 32),
        (cmd.read(Zone.CONFIG, block=0), "07 02 80 00 00 09 AD", 32),
        (cmd.read(Zone.CONFIG, block=2, word=5, size=4), "07 02 00 15 00 17 5D", 4),
        (cmd.read(Zone.DATA, slot=10, block=0), "07 02 82 50 00 0A 14", 32),
        (cmd.gen_key(0, cmd.GENKEY_MODE_PUBLIC), "07 40 00 00 00 00 05", 64),
        (cmd.gen_key(2), "07 40 04 02 00 85 07", 64),
        (cmd.gen_key(0xFFFF), "07 40 04 FF FF 8E 07", 64),
        (cmd.sign(0), "07 41 A0 00 00 7B 85", 64),
        (cmd.counter(0), "07 24 00 00 00 0C FD", 4),
        (cmd.counter(1, increment=True), "07 24 01 01 00 06 F7", 4),
        (cmd.selftest(), "07 77 3B 00 00 9D FB", 1),
        (cmd.lock("config"), "07 17 80 00 00 39 8D", 0),
        (cmd.lock("slot", slot=2), "07 17 0A 00 00 6E 09", 0),
        (cmd.sha_start(), "07 47 00 00 00 2E 85", 0),
        (cmd.sha_update(b"abc"), "0A 47 01 03 00 61 62 63 BC 53", 0),
        (cmd.sha_end(), "07 47 C2 00 00 11 00", 32),
        (cmd.update_extra(0, 0), "07 20 00 00 00 00 7D", 0),
        (cmd.nonce_load(SEQ32), "27 16 03 00 00" + SEQ32.hex() + "04 EE", 0),
        (
            cmd.nonce_load(SEQ32, target=cmd.NonceTarget.MSG_DIGEST_BUFFER),
            "27 16 43 00 00" + SEQ32.hex() + "D7 6C",
            0,
        ),
        (cmd.write(Zone.DATA, bytes(32), slot=8), "27 12 82 40 00" + "00" * 32 + "41 D5", 0),
        (cmd.aes(9, bytes(16)), "17 51 00 09 00" + "00" * 16 + "AC 62", 16),
    ],
)
def test_builders_match_spec_packets(built, packet: str, expected_len: int) -> None:
    assert wire(built) == h(packet)
    assert built[1] == expected_len


def test_verify_external_spec_vector() -> None:
    r = bytes.fromhex("E03396C3B08274FDED0CC7EE55EFF8708471B43A9DFD769D6C227EE45AD20B5C")
    s = bytes.fromhex("F78A2F6C229C30E2069E3D6939E53463E81779B3F48F6C075B6ACCE43A6CC465")
    x = bytes.fromhex("40114EBB814E71A6BE6318309D141DD8EB4BFDBE937BD0090559FBD77023DA28")
    y = bytes.fromhex("4EBF3819048E5A4C21ACC934055B8EF2CDF4EE7186F07049516D5EEA2AE03407")
    built = cmd.verify_external(r + s, x + y)
    assert wire(built) == h("87 45 22 04 00" + (r + s + x + y).hex() + "51 78")
    command = built[0]
    assert (command.param1, command.param2) == (0x22, 0x0004)
    tempkey = cmd.verify_external(r + s, x + y, source=cmd.MessageSource.TEMPKEY)[0]
    assert tempkey.param1 == 0x02


@pytest.mark.parametrize(
    ("zone", "slot", "block", "word", "addr"),
    [
        (Zone.DATA, 0, 0, 0, 0x0000),
        (Zone.DATA, 0, 1, 0, 0x0100),
        (Zone.DATA, 8, 12, 0, 0x0C40),
        (Zone.DATA, 9, 1, 5, 0x014D),
        (Zone.DATA, 10, 2, 0, 0x0250),
        (Zone.DATA, 15, 2, 0, 0x0278),
        (Zone.CONFIG, 0, 2, 5, 0x15),
        (Zone.OTP, 0, 1, 7, 0x0F),
    ],
)
def test_addresses(zone: Zone, slot: int, block: int, word: int, addr: int) -> None:
    assert cmd.address(zone, slot=slot, block=block, word=word) == addr


def test_modes_and_lengths() -> None:
    assert cmd.sign(3, source=cmd.MessageSource.TEMPKEY)[0].param1 == 0x80
    assert cmd.nonce_load(bytes(64))[0].param1 == 0x23
    assert cmd.nonce_load(bytes(64), target=cmd.NonceTarget.MSG_DIGEST_BUFFER)[0].param1 == 0x63
    assert cmd.nonce_load(bytes(32), target=cmd.NonceTarget.ALT_KEY_BUFFER)[0].param1 == 0x83
    assert cmd.nonce_random(bytes(20))[0].encode()[0] == 27
    assert cmd.ecdh(0, bytes(64))[0].param1 == 0x0C and cmd.ecdh(0, bytes(64))[1] == 32
    assert cmd.ecdh(0, bytes(64), cmd.ECDH_MODE_TO_TEMPKEY)[1] == 0
    assert cmd.ecdh(0, bytes(64), cmd.ECDH_MODE_COMPAT)[1] is None
    assert cmd.ecdh(0, bytes(64), 0x0E)[1] == 64
    assert cmd.ecdh(0, bytes(64), 0x0D)[0].param2 == 0
    assert cmd.verify_stored(14, bytes(64))[0].encode()[0] == 71
    assert cmd.lock("data")[0].param1 == 0x81
    assert cmd.lock("data", crc=0x1234)[0].param1 == 0x01
    assert cmd.lock("data", crc=0x1234)[0].param2 == 0x1234
    assert cmd.lock("config", crc=0xBEEF)[0].param1 == 0x00
    assert cmd.sha_hmac_start(5)[0].param1 == 0x04
    assert cmd.sha_end(b"x", target=cmd.ShaTarget.TEMPKEY)[0].param1 == 0x02
    assert cmd.sha_end(b"x", target=cmd.ShaTarget.MSG_DIGEST_BUFFER)[0].param1 == 0x42
    assert cmd.aes(9, bytes(16), decrypt=True, key_block=2)[0].param1 == 0x81
    gfm = cmd.aes_gfm(bytes(16), bytes(16))[0]
    assert (gfm.param1, gfm.encode()[0]) == (0x03, 39)
    pw = cmd.priv_write(2, bytes(32))[0]
    assert pw.encode()[0] == 75 and pw.data[:4] == bytes(4)
    assert cmd.write(Zone.CONFIG, bytes(4), block=0, word=4)[0].param1 == 0x00
    enc = cmd.write(Zone.DATA, bytes(32), slot=8, mac=bytes(32))[0]
    assert enc.param1 == 0xC2 and enc.encode()[0] == 71
    assert cmd.gen_key(11, cmd.GENKEY_MODE_PUBKEY_DIGEST, other_data=b"abc")[1] == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: cmd.info(7),
        lambda: cmd.info(cmd.InfoMode.KEY_VALID, 16),
        lambda: cmd.nonce_random(bytes(19)),
        lambda: cmd.nonce_load(bytes(31)),
        lambda: cmd.nonce_load(bytes(64), target=cmd.NonceTarget.ALT_KEY_BUFFER),
        lambda: cmd.gen_key(16),
        lambda: cmd.gen_key(0xFFFF, cmd.GENKEY_MODE_PUBLIC),
        lambda: cmd.gen_key(0, 0x01),
        lambda: cmd.gen_key(11, cmd.GENKEY_MODE_PUBKEY_DIGEST),
        lambda: cmd.sign(-1),
        lambda: cmd.verify_external(bytes(63), bytes(64)),
        lambda: cmd.verify_external(bytes(64), bytes(65)),
        lambda: cmd.ecdh(0, bytes(63)),
        lambda: cmd.ecdh(0, bytes(64), 0x10),
        lambda: cmd.read(Zone.DATA, slot=0, block=2),
        lambda: cmd.read(Zone.DATA, slot=9, block=2, word=2, size=4),
        lambda: cmd.read(Zone.CONFIG, block=4),
        lambda: cmd.read(Zone.OTP, block=2),
        lambda: cmd.read(Zone.CONFIG, size=8),
        lambda: cmd.read(Zone.CONFIG, word=1),
        lambda: cmd.write(Zone.DATA, bytes(5), slot=8),
        lambda: cmd.write(Zone.CONFIG, bytes(32), mac=bytes(32)),
        lambda: cmd.lock("otp"),
        lambda: cmd.lock("slot"),
        lambda: cmd.lock("slot", slot=2, crc=1),
        lambda: cmd.lock("data", crc=0x10000),
        lambda: cmd.sha_update(b""),
        lambda: cmd.sha_update(bytes(65)),
        lambda: cmd.sha_end(bytes(65)),
        lambda: cmd.sha_context_write(bytes(35)),
        lambda: cmd.sha_context_write(bytes(104)),
        lambda: cmd.aes(9, bytes(15)),
        lambda: cmd.aes(9, bytes(16), key_block=4),
        lambda: cmd.counter(2),
        lambda: cmd.selftest(0x40),
        lambda: cmd.update_extra(3, 0),
        lambda: cmd.update_extra(0, 256),
        lambda: cmd.priv_write(8, bytes(32)),
        lambda: cmd.priv_write(0, bytes(31)),
    ],
)
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()
