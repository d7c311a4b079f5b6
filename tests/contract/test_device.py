"""One contract suite for :class:`atecc.device.Device`, run on every available backend.

Backends: the emulator always (fresh Trust&GO and blank chips in ``tmp_path``), and real hardware
when ``ATECC_I2C_BUS`` is set (``@pytest.mark.hardware``; tests that lock or regenerate keys are
emulator-only). Results are checked against independent implementations (``cryptography``,
``hashlib``, ``hmac``), never against canned reply bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from atecc import commands as cmd
from atecc.config_zone import ConfigZone
from atecc.constants import Zone
from atecc.crc import check as crc_ok
from atecc.device import Device, data_zone_crc
from atecc.errors import ExecutionError, ParseError, StatusError
from atecc.packet import Command

from ._backends import BLANK, hardware_bus, new_emulated_chip, open_emulated, open_hardware

BACKENDS = [
    "emulator",
    pytest.param(
        "hardware",
        marks=[
            pytest.mark.hardware,
            pytest.mark.skipif(hardware_bus() is None, reason="ATECC_I2C_BUS not set"),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def device(backend: str, tmp_path: Path) -> Iterator[Device]:
    dev = open_hardware() if backend == "hardware" else open_emulated(new_emulated_chip(tmp_path))
    yield dev
    dev.close()


@pytest.fixture
def emulated(backend: str) -> None:
    if backend != "emulator":
        pytest.skip("changes the chip irreversibly: emulator only")


@pytest.fixture
def blank(tmp_path: Path) -> Iterator[Device]:
    dev = open_emulated(new_emulated_chip(tmp_path, BLANK, "blank.json"))
    yield dev
    dev.close()


def public_key(xy: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy)


def xy_of(key: ec.EllipticCurvePublicKey) -> bytes:
    nums = key.public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def verify_host(xy: bytes, digest: bytes, sig: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public_key(xy).verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


# -- identity and configuration --------------------------------------------------------------------
def test_revision(device: Device) -> None:
    rev = device.revision()
    assert len(rev) == 4 and rev[2] == 0x60 and rev[3] >= 0x02


def test_serial_and_config(device: Device) -> None:
    serial = device.serial_number()
    assert len(serial) == 9 and serial[:2] == b"\x01\x23"
    raw = device.read_config_zone()
    assert len(raw) == 128
    zone = device.config_zone()
    assert zone.serial == serial and zone.data == raw
    assert zone.is_config_locked and zone.is_data_locked
    assert zone.revision == device.revision()


def test_key_valid_and_info_state(device: Device) -> None:
    assert device.key_valid(0)
    assert len(device.info_state()) == 4


def test_random(device: Device) -> None:
    a, b = device.random(), device.random()
    assert len(a) == 32 and a != b


# -- ECC -------------------------------------------------------------------------------------------
def test_sign_verify_roundtrip(device: Device) -> None:
    pub = device.get_public_key(0)
    public_key(pub)  # on the curve
    digest = hashlib.sha256(b"hello chip").digest()
    sig = device.sign_digest(0, digest)
    assert len(sig) == 64
    verify_host(pub, digest, sig)
    assert device.verify_external(digest, sig, pub)
    bad = sig[:63] + bytes([sig[63] ^ 1])
    assert not device.verify_external(digest, bad, pub)
    with pytest.raises(InvalidSignature):
        verify_host(pub, digest, bad)


def test_verify_real_device_vector(device: Device) -> None:
    # chip §5.3: a signature made by a real ATECC608A over the bytes 00..1F used as the hash
    xy = bytes.fromhex(
        "40114EBB814E71A6BE6318309D141DD8EB4BFDBE937BD0090559FBD77023DA28"
        "4EBF3819048E5A4C21ACC934055B8EF2CDF4EE7186F07049516D5EEA2AE03407"
    )
    sig = bytes.fromhex(
        "E03396C3B08274FDED0CC7EE55EFF8708471B43A9DFD769D6C227EE45AD20B5C"
        "F78A2F6C229C30E2069E3D6939E53463E81779B3F48F6C075B6ACCE43A6CC465"
    )
    msg = bytes(range(32))
    assert device.verify_external(msg, sig, xy)
    assert not device.verify_external(hashlib.sha256(msg).digest(), sig, xy)


def test_sign_with_internal_only_key_refused(device: Device) -> None:
    with pytest.raises(ExecutionError):
        device.sign_digest(1, bytes(32))


def test_ecdh_matches_cryptography(device: Device) -> None:
    peer = ec.generate_private_key(ec.SECP256R1())
    secret = device.ecdh(0, xy_of(peer.public_key()))
    expected = peer.exchange(ec.ECDH(), public_key(device.get_public_key(0)))
    assert secret == expected


def test_ecdh_refused_on_slot_without_permission(device: Device) -> None:
    peer = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ExecutionError):
        device.ecdh(1, xy_of(peer.public_key()))


def test_genkey_refused_on_slot0_allowed_on_slot2(device: Device, emulated: None) -> None:
    with pytest.raises(ExecutionError):
        device.gen_key(0)
    pub = device.gen_key(2)
    assert device.get_public_key(2) == pub
    digest = hashlib.sha256(b"slot 2").digest()
    verify_host(pub, digest, device.sign_digest(2, digest))
    assert device.gen_key(2) != pub


def test_slot_lock_then_genkey_refused(device: Device, emulated: None) -> None:
    device.gen_key(3)
    device.lock_slot(3)
    assert device.config_zone().slot_locked(3)
    with pytest.raises(ExecutionError):
        device.gen_key(3)
    with pytest.raises(ExecutionError):
        device.lock_slot(3)  # already locked
    with pytest.raises(ExecutionError):
        device.lock_slot(0)  # not lockable


def test_priv_write_refused_after_data_lock(device: Device, emulated: None) -> None:
    with pytest.raises(ExecutionError):
        device.priv_write_clear(2, (1).to_bytes(32, "big"))


# -- memory ----------------------------------------------------------------------------------------
def test_read_permissions(device: Device) -> None:
    with pytest.raises(ExecutionError):
        device.read_bytes(Zone.DATA, 0, 0, 32)  # private key
    with pytest.raises(ExecutionError):
        device.read_bytes(Zone.DATA, 6, 0, 32)  # IsSecret
    with pytest.raises(ExecutionError):
        device.read_bytes(Zone.DATA, 9, 0, 32)
    cert = device.read_bytes(Zone.DATA, 10, 0, 72)
    assert len(cert) == 72
    assert device.read_bytes(Zone.DATA, 10, 30, 10) == cert[30:40]
    assert device.read_bytes(Zone.CONFIG, 0, 84, 4) == device.read_config_zone()[84:88]
    assert len(device.read_bytes(Zone.OTP, 0, 0, 64)) == 64


def test_signer_public_key_slot(device: Device) -> None:
    public_key(device.read_public_key(11))  # the signer key (slot 11) is a valid point


def test_write_permissions(device: Device, emulated: None) -> None:
    with pytest.raises(ExecutionError):
        device.write_bytes(Zone.DATA, 10, 0, bytes(32))  # never writable
    with pytest.raises(ExecutionError):
        device.write_bytes(Zone.DATA, 9, 0, bytes(4))  # 4-byte write to a secret slot
    with pytest.raises(ExecutionError):
        device.write_bytes(Zone.CONFIG, 0, 16, bytes(4))  # config locked


def test_data_slot_write_read(device: Device, emulated: None) -> None:
    blob = os.urandom(416)
    device.write_bytes(Zone.DATA, 8, 0, blob)
    assert device.read_bytes(Zone.DATA, 8, 0, 416) == blob
    device.write_bytes(Zone.DATA, 8, 36, b"ABCDEFGH")  # word writes inside block 1
    assert device.read_bytes(Zone.DATA, 8, 32, 16) == blob[32:36] + b"ABCDEFGH" + blob[44:48]


def test_public_key_slot_roundtrip(device: Device, emulated: None) -> None:
    pub = xy_of(ec.generate_private_key(ec.SECP256R1()).public_key())
    device.write_public_key(13, pub)
    assert device.read_public_key(13) == pub
    assert device.read_bytes(Zone.DATA, 13, 0, 4) == bytes(4)


def test_argument_validation(device: Device) -> None:
    with pytest.raises(ValueError):
        device.read_bytes(Zone.DATA, 9, 60, 20)
    with pytest.raises(ValueError):
        device.write_bytes(Zone.DATA, 8, 2, bytes(4))
    with pytest.raises(ValueError):
        device.sign_digest(0, bytes(31))
    with pytest.raises(ValueError):
        device.read_public_key(3)


# -- SHA / HMAC / AES ------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000])
def test_sha256_matches_hashlib(device: Device, length: int) -> None:
    data = os.urandom(length)
    assert device.sha256(data) == hashlib.sha256(data).digest()


def test_sha256_stream(device: Device) -> None:
    data = os.urandom(1000)
    stream = device.sha256_stream()
    for i in range(0, 1000, 77):
        stream.update(data[i : i + 77])
        device.random()  # other work between updates must not disturb the stream
    assert stream.digest() == hashlib.sha256(data).digest()
    with pytest.raises(ValueError):
        stream.update(b"x")
    short = device.sha256_stream()
    short.update(b"abc")
    assert short.digest() == hashlib.sha256(b"abc").digest()


def test_hmac_matches_hmac_module(device: Device, emulated: None) -> None:
    key = os.urandom(32)
    device.write_bytes(Zone.DATA, 8, 0, key)  # slot 8: SHA/data type, NoMac = 0
    for length in (0, 5, 64, 200):
        data = os.urandom(length)
        assert device.hmac_sha256(8, data) == hmac.new(key, data, hashlib.sha256).digest()


def _aes(key: bytes, block: bytes, decrypt: bool = False) -> bytes:
    c = Cipher(algorithms.AES(key), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(block) + op.finalize()


def test_aes_nist_vector(device: Device, emulated: None) -> None:
    # FIPS-197 appendix C.1 (AES-128)
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    ct = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    key2 = os.urandom(16)
    device.write_bytes(Zone.DATA, 9, 0, key + key2)
    assert device.aes_encrypt(9, pt) == ct == _aes(key, pt)
    assert device.aes_decrypt(9, ct) == pt
    block = os.urandom(16)
    assert device.aes_encrypt(9, block, key_block=1) == _aes(key2, block)
    assert device.aes_decrypt(9, _aes(key2, block), key_block=1) == block
    with pytest.raises(ExecutionError):
        device.aes_encrypt(8, pt)  # not an AES slot


def _gf_mult(x: int, y: int) -> int:
    # GCM multiplication in GF(2^128), NIST SP 800-38D algorithm 1 (bit 0 = MSB).
    r = 0xE1 << 120
    z, v = 0, y
    for i in range(127, -1, -1):
        if x >> i & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def test_aes_gfm(device: Device) -> None:
    h, x = os.urandom(16), os.urandom(16)
    expected = _gf_mult(int.from_bytes(x, "big"), int.from_bytes(h, "big")).to_bytes(16, "big")
    assert device.aes_gfm(h, x) == expected


# -- counters, selftest, raw -----------------------------------------------------------------------
def test_counters(device: Device, emulated: None) -> None:
    start = device.counter_read(1)
    assert device.counter_increment(1) == start + 1
    assert device.counter_read(1) == start + 1
    assert device.counter_read(0) >= 0
    with pytest.raises(ValueError):
        device.counter_read(2)


def test_selftest(device: Device) -> None:
    assert device.selftest() == 0
    assert device.selftest(0x00) == 0


def test_raw(device: Device) -> None:
    reply = device.raw(Command(0x30).encode())
    assert crc_ok(reply) and reply[0] == 7 and reply[3] == 0x60
    status = device.raw(Command(0x30, 0x07).encode())  # Info mode 7 does not exist
    assert status[0] == 4 and status[1] == 0x03 and crc_ok(status)
    with pytest.raises(ValueError):
        device.raw(b"\x07\x30")


def test_parse_error_is_typed(device: Device) -> None:
    with pytest.raises(ParseError):
        device.transport.wake()
        try:
            device.transport.execute(Command(0x30, 0x07), expected_len=4)
        finally:
            device.transport.idle()


# -- provisioning a blank chip (emulator only) -----------------------------------------------------
def test_blank_chip_provisioning(blank: Device) -> None:
    zone = blank.config_zone()
    assert not zone.is_config_locked and not zone.is_data_locked
    assert blank.random() == bytes.fromhex("FFFF0000") * 8  # test pattern before config lock
    with pytest.raises(ExecutionError):
        blank.write_bytes(Zone.DATA, 8, 0, bytes(32))  # no data writes before config lock

    cfg = bytearray(zone.data)
    cfg[84] = 0x77  # not writable by Write: write_config_zone must skip word 0x15
    cfg[52:60] = bytes.fromhex("FFFFFFFF00000000")
    cfg[20 + 2 * 5 : 22 + 2 * 5] = (0x2087).to_bytes(2, "little")
    blank.write_config_zone(bytes(cfg))
    after = blank.read_config_zone()
    assert after[16:84] == bytes(cfg[16:84]) and after[88:] == bytes(cfg[88:])
    assert after[84] == 0

    with pytest.raises(ExecutionError):
        blank.lock_config(crc=0x1234)  # wrong summary CRC: refused, nothing changes
    blank.lock_config()
    assert blank.config_zone().is_config_locked
    with pytest.raises(ExecutionError):
        blank.lock_config()
    blank.update_extra(0, 0x42)  # UpdateExtra needs the config zone locked [508]
    assert blank.read_config_zone()[84] == 0x42
    with pytest.raises(ExecutionError):
        blank.update_extra(0, 0x43)  # byte 84 already set

    # chip §5.3 ECDH vector: device scalar 0x3333, peer 0x4444
    blank.priv_write_clear(1, (0x3333).to_bytes(32, "big"))
    peer = bytes.fromhex(
        "A85B3AAD6F3A346D85523141CB434E1CAF4C642B2B3CC952CB07A635CB6A1DF1"
        "BCBDADB66BAE8EB25ECA92F8B08B67BE02CC736150DD7FFCD3F019C875F9FFDE"
    )
    assert blank.ecdh(1, peer) == bytes.fromhex(
        "2DA9A5D7E796B82AD791535276CEB9ABA04BDF41145DB61D91288C23C398DE4E"
    )
    with pytest.raises(ExecutionError):
        blank.read_bytes(Zone.DATA, 8, 0, 32)  # no reads before the data lock
    with pytest.raises(ExecutionError):
        blank.write_bytes(Zone.DATA, 8, 4, bytes(4))  # 4-byte writes only after the data lock
    blob = os.urandom(416)
    blank.write_bytes(Zone.DATA, 8, 0, blob)
    signer = xy_of(ec.generate_private_key(ec.SECP256R1()).public_key())
    blank.write_public_key(9, signer)
    pub0 = blank.gen_key(0)

    blank.lock_data()
    assert blank.config_zone().is_data_locked
    assert blank.read_bytes(Zone.DATA, 8, 0, 416) == blob
    assert blank.read_public_key(9) == signer
    digest = hashlib.sha256(b"after lock").digest()
    verify_host(pub0, digest, blank.sign_digest(0, digest))
    assert blank.random() != bytes.fromhex("FFFF0000") * 8
    with pytest.raises(ExecutionError):
        blank.priv_write_clear(2, (5).to_bytes(32, "big"))


def test_blank_chip_data_lock_with_summary_crc(blank: Device) -> None:
    blank.lock_config()
    blob = os.urandom(416)
    blank.write_bytes(Zone.DATA, 8, 0, blob)
    slots = [b""] * 16
    slots[8] = blob
    crc = data_zone_crc(blank.read_config_zone(), slots, bytes(64))
    with pytest.raises(ExecutionError):
        blank.lock_data(crc=crc ^ 1)
    blank.lock_data(crc=crc)
    assert ConfigZone(blank.read_config_zone()).is_data_locked


def test_status_error_leaves_device_usable(device: Device) -> None:
    for _ in range(3):
        with pytest.raises(StatusError):
            device.read_bytes(Zone.DATA, 0, 0, 4)
        assert len(device.random()) == 32


def test_builder_validation_before_bus(device: Device) -> None:
    with pytest.raises(ValueError):
        device.aes_encrypt(9, bytes(15))
    with pytest.raises(ValueError):
        device.selftest(0x80)
    assert cmd.SELFTEST_ALL == 0x3B
