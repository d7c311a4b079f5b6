"""Decode the real ATECC608A-TNGTLS config dump of chip §6.3 and check it against the §6.2 table."""

from __future__ import annotations

import pytest

from atecc.config_zone import ConfigZone

DUMP = bytes.fromhex(
    """
    01 23 CF E1 00 00 60 02 EF 17 F0 B0 01 01 29 00
    6A 00 00 01 85 00 82 00 85 20 85 20 85 20 8F 46
    8F 0F 9F 8F 0F 0F 8F 0F 0F 8F 0F 8F 0F 8F 0F 0F
    0D 1F 0F 0F FF FF FF FF 00 00 00 00 FF FF FF FF
    00 00 00 00 00 00 03 F7 00 69 76 00 00 00 00 00
    00 00 00 00 00 00 00 00 FF FF 0E 60 00 00 00 00
    53 00 53 00 73 00 73 00 73 00 38 00 7C 00 1C 00
    3C 00 1A 00 1C 00 10 00 1C 00 30 00 12 00 30 00
    """
)

# chip §6.2: slot -> (SlotConfig, KeyConfig)
TABLE = {
    0: (0x0085, 0x0053),
    1: (0x0082, 0x0053),
    2: (0x2085, 0x0073),
    3: (0x2085, 0x0073),
    4: (0x2085, 0x0073),
    5: (0x468F, 0x0038),
    6: (0x0F8F, 0x007C),
    7: (0x8F9F, 0x001C),
    8: (0x0F0F, 0x003C),
    9: (0x0F8F, 0x001A),
    10: (0x8F0F, 0x001C),
    11: (0x8F0F, 0x0010),
    12: (0x8F0F, 0x001C),
    13: (0x0F0F, 0x0030),
    14: (0x1F0D, 0x0012),
    15: (0x0F0F, 0x0030),
}


@pytest.fixture
def zone() -> ConfigZone:
    return ConfigZone(DUMP)


def test_identity(zone: ConfigZone) -> None:
    assert zone.serial == bytes.fromhex("0123CFE1EF17F0B001")
    assert zone.revision == bytes.fromhex("00006002")
    assert zone.model == "ATECC608A"
    assert zone.i2c_address7 == 0x35
    assert zone.effective_i2c_address7 == 0x35  # ChipMode bit 0 set but byte 85 = 0
    b = bytearray(DUMP)
    b[7] = 0x03
    assert ConfigZone(bytes(b)).model == "ATECC608B"


def test_locks_and_options(zone: ConfigZone) -> None:
    assert zone.is_config_locked and zone.is_data_locked
    assert not any(zone.slot_locked(n) for n in range(16))
    assert zone.aes_enabled
    opts = zone.chip_options
    assert opts.raw == 0x600E
    assert not opts.post_on_wake
    assert opts.io_protection_enabled and opts.kdf_aes_enabled and opts.auto_clear_first_fail
    assert (opts.ecdh_protection, opts.kdf_protection, opts.io_protection_key) == (0, 0, 6)


@pytest.mark.parametrize("slot", range(16))
def test_slot_table(zone: ConfigZone, slot: int) -> None:
    slot_config, key_config = TABLE[slot]
    assert zone.slot_config(slot).raw == slot_config
    assert zone.key_config(slot).raw == key_config


def test_decoded_bits(zone: ConfigZone) -> None:
    s0, k0 = zone.slot_config(0), zone.key_config(0)
    assert s0.is_secret and s0.external_sign and s0.ecdh and not s0.internal_sign
    assert s0.write_config == 0 and not s0.genkey_allowed
    assert k0.private and k0.pub_info and k0.key_type == 4 and k0.req_random and not k0.lockable
    s1 = zone.slot_config(1)
    assert s1.internal_sign and not s1.external_sign and not s1.ecdh
    assert zone.slot_config(2).genkey_allowed and zone.key_config(2).lockable
    assert zone.key_config(9).key_type == 6 and zone.key_config(9).pub_info
    assert zone.slot_config(10).write_mode == "never"
    assert zone.slot_config(8).write_mode == "always"
    assert zone.slot_config(14).write_mode == "pubinvalid" and zone.slot_config(14).read_key == 13
    assert zone.slot_config(5).write_mode == "encrypt" and zone.slot_config(5).write_key == 6
    assert zone.slot_config(7).write_mode == "never" and zone.slot_config(7).is_secret


def test_describe_slots(zone: ConfigZone) -> None:
    rows = {r.slot: r for r in zone.describe_slots()}
    assert rows[0].key_type == "P-256 private"
    assert rows[0].read.startswith("never")
    assert rows[0].write == "never"
    assert "ext-sign" in rows[0].use and "ECDH" in rows[0].use
    assert rows[1].use.startswith("int-sign")
    assert rows[2].write == "GenKey" and rows[2].lock == "lockable"
    assert rows[6].read == "never (secret)"
    assert rows[8].read == "clear" and rows[8].write == "clear"
    assert rows[9].key_type == "AES"
    assert rows[10].write == "never"
    assert rows[11].key_type == "P-256 public"
    assert rows[14].key_type == "P-256 public (validated)"
    assert rows[14].write == "while not validated"
    text = zone.format_table()
    assert "ATECC608A" in text and "0123CFE1EF17F0B001" in text
    assert len(text.splitlines()) == 7 + 2 + 16


def test_slot_locked_bits() -> None:
    b = bytearray(DUMP)
    b[88] = 0xFB  # slot 2 locked
    zone = ConfigZone(bytes(b))
    assert zone.slot_locked(2) and not zone.slot_locked(3)
    assert {r.slot: r for r in zone.describe_slots()}[2].lock == "locked"


def test_unlocked_and_alternate_address() -> None:
    b = bytearray(DUMP)
    b[86] = b[87] = 0x55
    b[85] = 0xC4
    zone = ConfigZone(bytes(b))
    assert not zone.is_config_locked and not zone.is_data_locked
    assert zone.effective_i2c_address7 == 0x62


def test_wrong_size_and_slot() -> None:
    with pytest.raises(ValueError):
        ConfigZone(bytes(127))
    with pytest.raises(ValueError):
        ConfigZone(DUMP).slot_config(16)
