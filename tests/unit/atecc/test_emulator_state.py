"""Factory profiles and persistence of the emulated chip (chip §6, §7.1 items 4 and 9)."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509

from atecc.emulator._cmd_ecc import public_key_of
from atecc.emulator.bus import EmulatedBus
from atecc.emulator.harness import Host
from atecc.emulator.profiles import TNGTLS_CONFIG, create_chip, root_ca_path
from atecc.emulator.state import StateFile, StateFileError


def test_tngtls_profile(tmp_path):
    path = tmp_path / "chip0.json"
    state = create_chip(path, "ATECC608-TNGTLS")
    cfg = bytes(state.config)
    # §6.3 byte for byte except the serial number (bytes 0-3, 8-12)
    for i in range(128):
        if i not in (2, 3, 8, 9, 10, 11):
            assert cfg[i] == TNGTLS_CONFIG[i], i
    assert cfg[0:2] == b"\x01\x23" and cfg[12] == 0x01
    assert cfg[86] == cfg[87] == 0x00
    assert state.key_valid[:5] == [True, True, False, False, False]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = root_ca_path(path)
    assert pem == tmp_path / "chip0.root-ca.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o644
    x509.load_pem_x509_certificate(pem.read_bytes())
    # slot 11: signer key in padded form; slots 10/12 compressed certs; OTP template code
    s11 = bytes(state.slots[11])
    assert s11[0:4] == bytes(4) and s11[36:40] == bytes(4)
    assert bytes(state.slots[10])[69] >> 4 in (2, 3)
    assert bytes(state.slots[12])[69:71] == b"\x10\xa0"
    assert bytes(state.otp[:8]).isascii()


def test_tngtls_revision_b_and_fresh_serials(tmp_path):
    a = create_chip(tmp_path / "a.json")
    b = create_chip(tmp_path / "b.json", revision="B")
    assert bytes(b.config[4:8]) == bytes.fromhex("00006003")
    assert bytes(a.config[4:8]) == bytes.fromhex("00006002")

    def serial(s):
        return bytes(s.config[0:4]) + bytes(s.config[8:13])

    assert serial(a) != serial(b)
    assert bytes(a.slots[0]) != bytes(b.slots[0])


def test_explicit_serial_and_blank_profile(tmp_path):
    serial = bytes.fromhex("0123AABBCCDDEEFF01")
    s = create_chip(tmp_path / "s.json", serial=serial)
    assert bytes(s.config[0:4]) + bytes(s.config[8:13]) == serial
    blank = create_chip(tmp_path / "blank.json", "ATECC608")
    assert blank.config[16] == 0xC0 and blank.config[86] == blank.config[87] == 0x55
    assert blank.config[12] == 0xEE and bytes(blank.config[4:8]) == bytes.fromhex("00006003")
    assert not any(blank.key_valid)
    assert not root_ca_path(tmp_path / "blank.json").exists()
    with pytest.raises(ValueError):
        create_chip(tmp_path / "x.json", "ATECC508")
    with pytest.raises(StateFileError):
        create_chip(tmp_path / "s.json")


def test_device_key_matches_genkey_output(tmp_path):
    path = tmp_path / "c.json"
    state = create_chip(path)
    with EmulatedBus(path) as bus:
        h = Host(bus)
        h.wake()
        assert h.run(0x40, 0x00, 0) == public_key_of(bytes(state.slots[0][4:36]))


def test_persistence_across_two_buses(tmp_path):
    path = tmp_path / "c.json"
    create_chip(path)
    bus_a, bus_b = EmulatedBus(path), EmulatedBus(path)
    a, b = Host(bus_a), Host(bus_b)
    a.wake()
    b.wake()
    pub = a.run(0x40, 0x04, 3)
    assert b.run(0x40, 0x00, 3) == pub
    assert a.run(0x24, 0x01, 0) == (1).to_bytes(4, "little")
    assert b.run(0x24, 0x01, 0) == (2).to_bytes(4, "little")
    assert a.run(0x17, 0x0E, 0) == 0  # lock slot 3 via A
    assert b.run(0x40, 0x04, 3) == 0x0F  # B sees the lock
    # volatile state is per bus: TempKey loaded on A is not valid on B
    a.run(0x16, 0x03, 0, bytes(32))
    assert not bus_b.chip.vol.tk_valid
    bus_a.close()
    bus_b.close()
    with EmulatedBus(path) as bus_c:
        c = Host(bus_c)
        c.wake()
        assert c.run(0x40, 0x00, 3) == pub
        assert c.run(0x24, 0x00, 0) == (2).to_bytes(4, "little")


def test_failed_and_read_only_commands_do_not_rewrite_the_file(tmp_path):
    path = tmp_path / "c.json"
    create_chip(path)
    before = path.stat()
    with EmulatedBus(path) as bus:
        h = Host(bus)
        h.wake()
        h.run(0x02, 0x80, 0)
        assert h.run(0x40, 0x04, 0) == 0x0F
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        h.run(0x24, 0x01, 1)
        assert path.stat().st_ino != before.st_ino
    assert StateFile(path).load().counters == [0, 1]


def test_counters_round_trip_through_the_config_encoding():
    from atecc.emulator.counters import COUNTER_MAX, decode, encode

    for value in [*range(0, 600), 1000, 65_535, 1_000_001, COUNTER_MAX - 1, COUNTER_MAX]:
        assert decode(encode(value)) == value


def test_state_files_with_counters_outside_the_config_zone_keep_their_values(tmp_path):
    """Before the counters moved into config bytes 52-67 the file held them separately."""
    import json

    path = tmp_path / "old.json"
    create_chip(path)
    doc = json.loads(path.read_text())
    doc["counters"] = [5, 70_000]
    path.write_text(json.dumps(doc))
    state = StateFile(path).load()
    assert state.counters == [5, 70_000]
    assert bytes(state.config[52:60]) == bytes.fromhex("07FFFFFF00000000")
