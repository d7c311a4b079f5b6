"""Command semantics of the emulated ATECC608 at the byte level: crypto known answers (chip §5.3),
permission and lock rules (§3.4-§3.7, §4), TempKey rules (§4.0), parse errors."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from atecc import crc
from atecc.emulator.bus import EmulatedBus
from atecc.emulator.harness import Host
from atecc.emulator.profiles import create_chip
from atecc.emulator.state import StateFile

OK, VERIFY_FAIL, PARSE, ECC, EXEC = 0x00, 0x01, 0x03, 0x05, 0x0F

# Opcodes
READ, WRITE, NONCE, LOCK, RANDOM, UPDATEEXTRA = 0x02, 0x12, 0x16, 0x17, 0x1B, 0x20
COUNTER, INFO, GENKEY, SIGN, ECDH, VERIFY = 0x24, 0x30, 0x40, 0x41, 0x43, 0x45
PRIVWRITE, SHA, AES, SELFTEST = 0x46, 0x47, 0x51, 0x77

# §5.3 real-device vector
VEC_PUB = bytes.fromhex(
    "40114EBB814E71A6BE6318309D141DD8EB4BFDBE937BD0090559FBD77023DA28"
    "4EBF3819048E5A4C21ACC934055B8EF2CDF4EE7186F07049516D5EEA2AE03407"
)
VEC_MSG = bytes(range(32))
VEC_SIG = bytes.fromhex(
    "E03396C3B08274FDED0CC7EE55EFF8708471B43A9DFD769D6C227EE45AD20B5C"
    "F78A2F6C229C30E2069E3D6939E53463E81779B3F48F6C075B6ACCE43A6CC465"
)
PEER_PUB = bytes.fromhex(
    "A85B3AAD6F3A346D85523141CB434E1CAF4C642B2B3CC952CB07A635CB6A1DF1"
    "BCBDADB66BAE8EB25ECA92F8B08B67BE02CC736150DD7FFCD3F019C875F9FFDE"
)
DEV_PUB_3333 = bytes.fromhex(
    "8570E95D85825286DB92C78317679BDD8FFE3C90D0AF84291BF64132B66FCC99"
    "C926F087212D75B1F4DBC5D4999B4C5605ADF66DB801A4DE371CDAD39EBC55E5"
)
SECRET = bytes.fromhex("2DA9A5D7E796B82AD791535276CEB9ABA04BDF41145DB61D91288C23C398DE4E")


def _host(path, **kw):
    bus = EmulatedBus(path, **kw)
    h = Host(bus)
    assert h.wake() == bytes.fromhex("04113343")
    return h


@pytest.fixture
def tng(tmp_path):
    path = tmp_path / "chip0.json"
    create_chip(path, "ATECC608-TNGTLS")
    h = _host(path)
    yield h
    h.bus.close()


@pytest.fixture
def blank(tmp_path):
    path = tmp_path / "blank.json"
    create_chip(path, "ATECC608")
    h = _host(path)
    yield h
    h.bus.close()


def set_slot(h, slot, slot_config, key_config):
    """Write one SlotConfig/KeyConfig pair with 4-byte config writes (config unlocked)."""
    for base, value in ((20, slot_config), (96, key_config)):
        offset = base + 2 * slot
        word = offset // 4
        current = h.run(READ, 0x00, word)
        new = bytearray(current)
        new[offset % 4 : offset % 4 + 2] = value.to_bytes(2, "little")
        assert h.run(WRITE, 0x00, word, bytes(new)) == OK


def lock_config(h):
    cfg = b"".join(h.run(READ, 0x80, block << 3) for block in range(4))
    assert h.run(LOCK, 0x00, crc.crc16(cfg)) == OK


def sign_flow(h, slot, digest):
    h.run(RANDOM)
    assert h.run(NONCE, 0x43, 0, digest) == OK
    return h.run(SIGN, 0xA0, slot)


def verify_p256(pub, digest, sig):
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(pub[:32], "big"), int.from_bytes(pub[32:], "big"), ec.SECP256R1()
    ).public_key()
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    der = utils.encode_dss_signature(r, s)
    key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


# ---------------------------------------------------------------------------------- Info ----
def test_info_modes(tng):
    assert tng.run(INFO, 0, 0) == bytes.fromhex("00006002")
    assert tng.run(INFO, 1, 0) == bytes.fromhex("01000000")
    assert tng.run(INFO, 1, 2) == bytes.fromhex("00000000")
    tng.run(RANDOM)
    state = tng.run(INFO, 2, 0)
    assert state[1] & 0x01  # EEPROM seed updated
    assert tng.run(INFO, 4, 0) == bytes(4)
    assert tng.run(INFO, 4, 3) == EXEC  # VolatileKeyPermission not enabled on TNGTLS
    assert tng.run(INFO, 5, 0) == PARSE
    assert tng.run(INFO, 1, 16) == PARSE


def test_info_revision_b(tmp_path):
    create_chip(tmp_path / "b.json", revision="B")
    h = _host(tmp_path / "b.json")
    assert h.command(INFO) == bytes.fromhex("0700006003 83BB".replace(" ", ""))


# ------------------------------------------------------------------------ Random / Nonce ----
def test_random_test_pattern_before_config_lock(blank):
    assert blank.run(RANDOM) == b"\xff\xff\x00\x00" * 8
    lock_config(blank)
    out = blank.run(RANDOM)
    assert len(out) == 32 and out != b"\xff\xff\x00\x00" * 8


def test_nonce_random_mode_tempkey_hash(tng):
    num_in = bytes(range(20))
    rand_out = tng.run(NONCE, 0x00, 0, num_in)
    vol = tng.bus.chip.vol
    assert vol.tk_valid and not vol.tk_source_input
    assert vol.tempkey[:32] == hashlib.sha256(rand_out + num_in + b"\x16\x00\x00").digest()
    # Param2 bit 15: current TempKey replaces RandOut
    old = vol.tempkey[:32]
    assert tng.run(NONCE, 0x01, 0x8000, num_in) == old
    assert vol.tempkey[:32] == hashlib.sha256(old + num_in + b"\x16\x01\x00").digest()


def test_nonce_passthrough_targets_and_parse_errors(tng):
    data = bytes(range(32))
    # chip §1.7 literal packet for pass-through to TempKey
    tng.send(bytes.fromhex("2716030000") + data + bytes.fromhex("04EE"))
    assert tng.receive() == bytes.fromhex("04000340")
    assert tng.bus.chip.vol.tempkey[:32] == data
    assert tng.run(NONCE, 0x63, 0, data * 2) == OK
    assert tng.bus.chip.vol.mdb == data * 2
    assert tng.run(NONCE, 0x83, 0, data) == OK
    assert tng.bus.chip.vol.altkey == data
    assert tng.run(NONCE, 0xA3, 0, data * 2) == PARSE  # 64 bytes into alt key buffer
    assert tng.run(NONCE, 0x02, 0, bytes(20)) == PARSE
    assert tng.run(NONCE, 0x03, 0, bytes(20)) == PARSE
    assert tng.run(NONCE, 0x00, 0, bytes(32)) == PARSE


# ---------------------------------------------------------------------------- Sign / Verify --
def test_sign_flow_verifies_with_genkey_public_key(tng):
    pub = tng.run(GENKEY, 0x00, 0)
    digest = hashlib.sha256(b"hello").digest()
    sig = sign_flow(tng, 0, digest)
    verify_p256(pub, digest, sig)
    # TempKey-sourced external sign
    tng.run(RANDOM)
    tng.run(NONCE, 0x03, 0, digest)
    verify_p256(pub, digest, tng.run(SIGN, 0x80, 0))


def test_sign_rules(tng):
    digest = bytes(32)
    assert sign_flow(tng, 1, digest) == EXEC  # slot 1: internal sign only
    assert sign_flow(tng, 2, digest) == EXEC  # no key yet
    assert sign_flow(tng, 10, digest) == EXEC  # not a private key slot
    assert tng.run(SIGN, 0xA2, 0) == PARSE
    assert tng.run(SIGN, 0xA0, 16) == PARSE
    # MDB consumed by the first Sign (strict)
    assert len(sign_flow(tng, 0, digest)) == 64
    assert tng.run(SIGN, 0xA0, 0) == EXEC


def test_sign_requires_seed_update_in_strict_mode(tmp_path):
    path = tmp_path / "c.json"
    create_chip(path)
    h = _host(path)
    h.run(NONCE, 0x43, 0, bytes(32))
    assert h.run(SIGN, 0xA0, 0) == EXEC
    h2 = _host(path, strict=False)
    h2.run(NONCE, 0x43, 0, bytes(32))
    assert len(h2.run(SIGN, 0xA0, 0)) == 64


def test_608_tempkey_survives_repeated_aes_with_the_tempkey_key(tng):
    """cryptoauthlib's aes_encrypt_key_tempkey: one 64-byte Nonce load, then 16 AES commands
    with key 0xFFFF (key blocks 0-3) on a 608. The 508A rule would kill TempKey after one."""
    keys = bytes(range(64))
    assert tng.run(NONCE, 0x23, 0, keys) == OK
    for block in range(4):
        key = keys[16 * block : 16 * block + 16]
        for n in range(4):
            plain = bytes([block * 16 + n]) * 16
            enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
            assert tng.run(AES, block << 6, 0xFFFF, plain) == enc.update(plain) + enc.finalize()


def test_608_tempkey_survives_random_nonce_to_mdb_and_sign(tng):
    """cryptoauthlib's verify_stored_with_tempkey: Nonce (random) sets TempKey, then Random,
    Nonce to the message digest buffer and Sign from it; TempKey is still the Nonce's value."""
    num_in = bytes(range(20))
    rand_out = tng.run(NONCE, 0x00, 0, num_in)
    tempkey = hashlib.sha256(rand_out + num_in + bytes((NONCE, 0x00, 0x00))).digest()
    pub = tng.run(GENKEY, 0x00, 0)
    assert len(sign_flow(tng, 0, hashlib.sha256(b"other").digest())) == 64
    assert tng.run(INFO, 2, 0)[1] & 0x80  # TempKey.Valid
    tng.run(RANDOM)
    verify_p256(pub, tempkey, tng.run(SIGN, 0x80, 0))  # Sign from TempKey: the Nonce's value


def test_608_tempkey_untouched_by_read_write_counter_and_info(tng):
    assert tng.run(NONCE, 0x03, 0, bytes(32)) == OK
    tng.run(READ, 0x00, 0)
    tng.run(COUNTER, 0x00, 0)
    tng.run(INFO)
    assert tng.run(WRITE, 0x02, (13 << 3), bytes(4)) == OK
    assert tng.run(INFO, 2, 0)[1] & 0x80


def test_tempkey_lost_on_sleep_kept_on_idle(tng):
    assert tng.run(NONCE, 0x03, 0, bytes(32)) == OK
    tng.idle()
    tng.wake()
    assert tng.run(INFO, 2, 0)[1] & 0x80
    tng.sleep()
    tng.wake()
    assert not tng.run(INFO, 2, 0)[1] & 0x80


def test_verify_real_device_vector(tng):
    # §5.3: Nonce `27 16 43 00 00 …` then Verify `87 45 22 04 00 <R S X Y> 51 78`
    tng.send(bytes.fromhex("2716430000") + VEC_MSG + bytes.fromhex("D76C"))
    assert tng.receive() == bytes.fromhex("04000340")
    tng.send(bytes.fromhex("8745220400") + VEC_SIG + VEC_PUB + bytes.fromhex("5178"))
    assert tng.receive() == bytes.fromhex("04000340")
    bad = bytearray(VEC_SIG)
    bad[40] ^= 0x01
    assert tng.run(NONCE, 0x43, 0, VEC_MSG) == OK
    assert tng.command(VERIFY, 0x22, 0x0004, bytes(bad) + VEC_PUB) == bytes.fromhex("040100C3")
    # hashing the message again must fail: the 32 bytes are e itself
    assert tng.run(NONCE, 0x43, 0, hashlib.sha256(VEC_MSG).digest()) == OK
    assert tng.run(VERIFY, 0x22, 0x0004, VEC_SIG + VEC_PUB) == VERIFY_FAIL


def test_verify_errors(tng):
    tng.run(NONCE, 0x43, 0, VEC_MSG)
    off_curve = VEC_PUB[:63] + bytes((VEC_PUB[63] ^ 1,))
    assert tng.run(VERIFY, 0x22, 0x0004, VEC_SIG + off_curve) == EXEC
    assert tng.run(VERIFY, 0x22, 0x0005, VEC_SIG + VEC_PUB) == PARSE
    assert tng.run(VERIFY, 0x22, 0x0004, VEC_SIG) == PARSE
    assert tng.run(VERIFY, 0x04, 0, VEC_SIG) == PARSE
    # the MDB was consumed by the first Verify above, whatever its outcome (strict)
    assert tng.run(VERIFY, 0x22, 0x0004, VEC_SIG + VEC_PUB) == EXEC


def test_verify_stored_key(tng):
    # slot 13: P-256 public key, clear always-write (0x0F0F / 0x0030)
    padded = bytes(4) + VEC_PUB[:32] + bytes(4) + VEC_PUB[32:]
    for block in range(3):
        chunk = padded[32 * block : 32 * block + 32].ljust(32, b"\x00")
        assert tng.run(WRITE, 0x82, (block << 8) | (13 << 3), chunk) == OK
    tng.run(NONCE, 0x03, 0, VEC_MSG)
    assert tng.run(VERIFY, 0x00, 13, VEC_SIG) == OK
    assert tng.run(INFO, 2, 0)[1] & 0x04  # AuthValid
    tng.run(NONCE, 0x03, 0, VEC_MSG)
    assert tng.run(VERIFY, 0x00, 14, VEC_SIG) == EXEC  # slot 14 needs a validated key


# ----------------------------------------------------------------------------------- GenKey --
def test_genkey_rules(tng):
    assert tng.run(GENKEY, 0x04, 0) == EXEC  # slot 0 permanent (WriteConfig bit 13 = 0)
    assert tng.run(GENKEY, 0x04, 1) == EXEC
    assert tng.run(GENKEY, 0x04, 10) == EXEC
    assert tng.run(GENKEY, 0x00, 2) == EXEC  # no key yet
    pub = tng.run(GENKEY, 0x04, 2)
    assert len(pub) == 64
    assert tng.run(GENKEY, 0x00, 2) == pub
    assert tng.run(INFO, 1, 2)[0] == 1
    verify_p256(pub, bytes(32), sign_flow(tng, 2, bytes(32)))
    # lock slot 2 (chip §1.7 literal), then GenKey refuses
    tng.send(bytes.fromhex("07170A00006E09"))
    assert tng.receive() == bytes.fromhex("04000340")
    assert tng.run(GENKEY, 0x04, 2) == EXEC
    assert tng.run(LOCK, 0x0A, 0) == EXEC  # already locked
    assert tng.run(LOCK, 0x02, 0) == EXEC  # slot 0 not lockable
    assert tng.run(GENKEY, 0x04, 0x10) == PARSE
    assert tng.run(GENKEY, 0x01, 2) == PARSE


def test_genkey_digest_and_ephemeral(tng):
    assert tng.run(GENKEY, 0x08, 0) == EXEC  # digest needs a valid TempKey
    tng.run(NONCE, 0x00, 0, bytes(20))  # random TempKey (slot 0 has ReqRandom)
    old = tng.bus.chip.vol.tempkey[:32]
    pub = tng.run(GENKEY, 0x08, 0)
    sn = tng.bus.chip._cfg.sn
    expect = hashlib.sha256(old + bytes((0x40, 0x08, 0, 0, sn[8])) + sn[:2] + bytes(25) + pub)
    assert tng.bus.chip.vol.tempkey[:32] == expect.digest()
    eph = tng.run(GENKEY, 0x04, 0xFFFF)
    assert len(eph) == 64
    assert tng.run(GENKEY, 0x00, 0xFFFF) == PARSE


# ------------------------------------------------------------------------------------- ECDH --
def provision_blank_ecdh(h, slot_config=0x2087):
    set_slot(h, 0, slot_config, 0x0033)
    lock_config(h)
    scalar = (0x3333).to_bytes(32, "big")
    assert h.run(PRIVWRITE, 0x00, 0, bytes(4) + scalar + bytes(32)) == OK


def test_ecdh_vector_via_privwrite(blank):
    provision_blank_ecdh(blank)
    assert blank.run(GENKEY, 0x00, 0) == DEV_PUB_3333
    resp = blank.command(ECDH, 0x0C, 0, PEER_PUB)
    assert resp[0] == 35 and resp[1:33] == SECRET
    assert blank.run(ECDH, 0x00, 0, PEER_PUB) == SECRET  # compatibility mode, ReadKey bit 3 = 0
    assert blank.run(ECDH, 0x08, 0, PEER_PUB) == OK
    assert blank.bus.chip.vol.tempkey[:32] == SECRET
    assert blank.run(ECDH, 0x0E, 0, PEER_PUB) == EXEC  # encrypted output unsupported
    assert blank.run(ECDH, 0x0C, 0, PEER_PUB[:63] + b"\x00") == EXEC  # not on the curve
    assert blank.run(ECDH, 0x0C, 0, PEER_PUB[:32]) == PARSE


def test_ecdh_compat_mode_writes_slot_n_plus_1(blank):
    provision_blank_ecdh(blank, slot_config=0x208F)  # ReadKey bit 3 set
    assert blank.run(ECDH, 0x00, 0, PEER_PUB) == OK
    state = StateFile(blank.bus.state_path).load()
    assert bytes(state.slots[1][:32]) == SECRET


def test_ecdh_not_allowed(tng):
    assert tng.run(ECDH, 0x0C, 1, PEER_PUB) == EXEC  # slot 1 ReadKey bit 2 = 0
    assert tng.run(ECDH, 0x0D, 0, PEER_PUB) == EXEC  # no ephemeral key in TempKey
    eph_pub = tng.run(GENKEY, 0x04, 0xFFFF)
    peer = ec.derive_private_key(0x4444, ec.SECP256R1())
    secret = tng.run(ECDH, 0x0D, 0, PEER_PUB)
    nums = ec.EllipticCurvePublicNumbers(
        int.from_bytes(eph_pub[:32], "big"), int.from_bytes(eph_pub[32:], "big"), ec.SECP256R1()
    )
    assert secret == peer.exchange(ec.ECDH(), nums.public_key())
    assert tng.run(ECDH, 0x0D, 0, PEER_PUB) == EXEC  # consumed


# ----------------------------------------------------------------------------- Read / Write --
def test_read_permissions_tngtls(tng):
    assert tng.run(READ, 0x82, 0 << 3) == EXEC  # private slot 0
    assert tng.run(READ, 0x82, 6 << 3) == EXEC  # IsSecret slot 6
    assert tng.run(READ, 0x82, 9 << 3) == EXEC  # IsSecret slot 9
    assert tng.run(READ, 0x02, 9 << 3) == EXEC
    assert len(tng.run(READ, 0x82, 10 << 3)) == 32
    block2 = tng.run(READ, 0x82, (2 << 8) | (10 << 3))
    assert block2[8:] == bytes(24)  # short last block reads back zero-filled
    assert tng.run(READ, 0x82, (3 << 8) | (10 << 3)) == PARSE
    assert tng.run(READ, 0x02, (2 << 8) | (10 << 3) | 2) == PARSE  # word 2 of an 8-byte block
    assert tng.run(READ, 0x86, 0) == PARSE
    assert tng.run(READ, 0x83, 0) == PARSE
    otp = tng.run(READ, 0x81, 0)
    assert otp[:8].isascii()


def test_read_config_known_answer(tng):
    block0 = tng.command(READ, 0x80, 0)
    assert block0[0] == 0x23 and crc.check(block0)
    assert block0[17:21] == bytes.fromhex("6A000001")


def test_write_permissions_tngtls(tng):
    assert tng.run(WRITE, 0x82, 10 << 3, bytes(32)) == EXEC  # slot 10 WriteConfig Never
    assert tng.run(WRITE, 0x02, 9 << 3, bytes(4)) == EXEC  # slot 9 secret: no 4-byte write
    assert tng.run(WRITE, 0x82, 9 << 3, bytes(32)) == OK  # 32-byte write allowed
    assert tng.run(WRITE, 0x82, 0, bytes(32)) == EXEC  # private slot
    assert tng.run(WRITE, 0x82, 7 << 3, bytes(32)) == EXEC  # slot 7 never
    assert tng.run(WRITE, 0x02, 8 << 3, b"abcd") == OK
    assert tng.run(READ, 0x02, 8 << 3) == b"abcd"
    assert tng.run(WRITE, 0x80, 0x10, bytes(32)) == EXEC  # config locked
    assert tng.run(WRITE, 0x81, 0, bytes(32)) == EXEC  # OTP after data lock
    assert tng.run(WRITE, 0xC2, 8 << 3, bytes(64)) == EXEC  # encrypted: unsupported
    assert tng.run(WRITE, 0x82, 8 << 3, bytes(4)) == PARSE  # length mismatch
    # Spec §1.7 lists "Write slot 8 block 0, 32 zero bytes" with CRC D5 39, but the CRC of
    # that packet is 41 D5 (bit-serial reference agrees): the spec's literal is an erratum.
    tng.send(bytes.fromhex("2712824000") + bytes(32) + bytes.fromhex("D539"))
    assert tng.receive() == bytes.fromhex("04FF0142")
    tng.send(bytes.fromhex("2712824000") + bytes(32) + bytes.fromhex("41D5"))
    assert tng.receive() == bytes.fromhex("04000340")


def test_blank_config_write_rules(blank):
    assert blank.run(WRITE, 0x80, 0, bytes(32)) == EXEC  # block 0 touches SN/RevNum
    assert blank.run(WRITE, 0x00, 0x15, bytes(4)) == EXEC  # word 0x15 = bytes 84-87
    assert blank.run(WRITE, 0x00, 0x04, bytes.fromhex("C0000000")) == OK
    assert blank.run(WRITE, 0x80, 0x18, bytes(32)) == OK  # block 3 = KeyConfig
    assert blank.run(WRITE, 0x82, 8 << 3, bytes(32)) == EXEC  # data before config lock
    assert blank.run(READ, 0x82, 8 << 3) == EXEC  # data reads before data lock


def test_lock_config_crc_and_data_lock(blank):
    assert blank.run(LOCK, 0x00, 0x1234) == EXEC  # CRC mismatch
    assert blank.run(LOCK, 0x01, 0) == EXEC  # data before config
    lock_config(blank)
    assert blank.run(LOCK, 0x80, 0) == EXEC  # already locked
    assert blank.run(WRITE, 0x82, 8 << 3, b"x" * 32) == OK
    assert blank.run(WRITE, 0x02, 8 << 3, b"abcd") == EXEC  # 4-byte before data lock
    assert blank.run(WRITE, 0x81, 0, b"o" * 32) == OK
    assert blank.run(READ, 0x81, 0) == EXEC  # OTP not readable before data lock
    # data CRC excludes private-key slots (0-7 on the blank profile)
    state = StateFile(blank.bus.state_path).load()
    body = b"".join(bytes(state.slots[n]) for n in range(8, 16)) + bytes(state.otp)
    assert blank.run(LOCK, 0x01, crc.crc16(body) ^ 1) == EXEC
    assert blank.run(LOCK, 0x01, crc.crc16(body)) == OK
    assert blank.run(READ, 0x82, 8 << 3) == b"x" * 32
    assert blank.run(READ, 0x81, 0) == b"o" * 32
    assert blank.run(LOCK, 0x41, 0) == PARSE
    assert blank.run(LOCK, 0x03, 0) == PARSE
    assert blank.run(LOCK, 0x81, 1) == PARSE


def test_privwrite_rules(blank):
    key = bytes(4) + (5).to_bytes(32, "big") + bytes(32)
    assert blank.run(PRIVWRITE, 0x00, 0, key) == EXEC  # config unlocked
    lock_config(blank)
    assert blank.run(PRIVWRITE, 0x00, 8, key) == EXEC  # not a private slot
    assert blank.run(PRIVWRITE, 0x00, 0, bytes(68)) == EXEC  # scalar 0
    assert blank.run(PRIVWRITE, 0x00, 0, key[:40]) == PARSE
    assert blank.run(PRIVWRITE, 0x00, 0, key) == OK
    assert blank.run(LOCK, 0x81, 0) == OK
    assert blank.run(PRIVWRITE, 0x00, 0, key) == EXEC  # data locked: encrypted only


# ------------------------------------------------------------------------------ SHA / HMAC ---
def test_sha_abc_vector(tng):
    tng.send(bytes.fromhex("07470000002E85"))
    assert tng.receive() == bytes.fromhex("04000340")
    tng.send(bytes.fromhex("0A47010300616263BC53"))
    assert tng.receive() == bytes.fromhex("04000340")
    tng.send(bytes.fromhex("07 47 C2 00 00 11 00".replace(" ", "")))
    resp = tng.receive()
    assert resp[1:33].hex().upper() == (
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    )


def test_sha_long_message_and_targets(tng):
    msg = bytes(range(256)) * 3
    assert tng.run(SHA, 0x00) == OK
    for i in range(0, 704, 64):
        assert tng.run(SHA, 0x01, 64, msg[i : i + 64]) == OK
    assert tng.run(SHA, 0x42, len(msg) - 704, msg[704:]) == hashlib.sha256(msg).digest()
    assert tng.bus.chip.vol.mdb[:32] == hashlib.sha256(msg).digest()
    tng.run(SHA, 0x00)
    assert tng.run(SHA, 0x02, 0) == hashlib.sha256(b"").digest()
    assert tng.bus.chip.vol.tempkey[:32] == hashlib.sha256(b"").digest()
    assert tng.run(SHA, 0x01, 3, b"abc") == EXEC  # no context after End
    assert tng.run(SHA, 0x01, 4, b"abc") == PARSE
    assert tng.run(SHA, 0x80, 0) == PARSE
    assert tng.run(SHA, 0x06, 0) == EXEC  # context read unsupported in the emulator


def test_hmac_with_slot_key_and_tempkey(tng):
    key = bytes(range(32))
    # slot 8 is KeyType 7 data, clear write
    assert tng.run(WRITE, 0x82, 8 << 3, key) == OK
    assert tng.run(SHA, 0x04, 8) == OK
    assert tng.run(SHA, 0x01, 5, b"hello") == OK
    assert tng.run(SHA, 0xC2, 0) == hmac.new(key, b"hello", hashlib.sha256).digest()
    assert tng.run(SHA, 0x04, 8) == OK
    assert tng.run(SHA, 0xC5, 3, b"abc") == hmac.new(key, b"abc", hashlib.sha256).digest()
    tng.run(NONCE, 0x03, 0, key)
    assert tng.run(SHA, 0x04, 0xFFFF) == OK
    assert tng.run(SHA, 0xC5, 0) == hmac.new(key, b"", hashlib.sha256).digest()
    assert tng.run(SHA, 0x04, 0) == EXEC  # private key slot
    assert tng.run(SHA, 0x04, 6) == EXEC  # ReqRandom without a random TempKey


# -------------------------------------------------------------------------------------- AES --
def test_aes_slot9(tng):
    key = bytes(range(16)) + bytes(range(16, 32))
    assert tng.run(WRITE, 0x82, 9 << 3, key) == OK
    block = b"sixteen byte blk"
    for kb in (0, 1):
        k = key[16 * kb : 16 * kb + 16]
        enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor().update(block)
        assert tng.run(AES, kb << 6, 9, block) == enc
        assert tng.run(AES, (kb << 6) | 1, 9, enc) == block
    assert tng.run(AES, 0x00, 8, block) == EXEC  # not an AES slot
    assert tng.run(AES, 0x02, 9, block) == PARSE
    assert tng.run(AES, 0x00, 9, block[:8]) == PARSE
    # the §1.7 literal: AES encrypt, slot 9 key block 0, 16 zero bytes
    tng.send(bytes.fromhex("1751000900") + bytes(16) + bytes.fromhex("AC62"))
    resp = tng.receive()
    assert resp[1:17] == Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor().update(bytes(16))


def test_aes_gfm_matches_gcm(tng):
    key, nonce, aad = bytes(range(16)), bytes(12), b"A" * 16
    tag = AESGCM(key).encrypt(nonce, b"", aad)
    h = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(bytes(16))
    ek_j0 = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(nonce + b"\x00\x00\x00\x01")
    x1 = tng.run(AES, 0x03, 0, h + aad)
    lengths = (128).to_bytes(8, "big") + bytes(8)
    ghash = tng.run(AES, 0x03, 0, h + bytes(a ^ b for a, b in zip(x1, lengths, strict=False)))
    assert bytes(a ^ b for a, b in zip(ghash, ek_j0, strict=False)) == tag


# --------------------------------------------------------------- Counter / SelfTest / Extra --
def test_counter(tng):
    assert tng.run(COUNTER, 0, 0) == bytes(4)
    assert tng.run(COUNTER, 1, 1) == (1).to_bytes(4, "little")
    assert tng.run(COUNTER, 1, 1) == (2).to_bytes(4, "little")
    assert tng.run(COUNTER, 0, 1) == (2).to_bytes(4, "little")
    assert tng.run(COUNTER, 0, 2) == PARSE
    assert tng.run(COUNTER, 2, 0) == PARSE


#: Counter values and their config bytes, worked by hand from the encoding cryptoauthlib's
#: calib_write_config_counter writes (linear words FFFF >> v % 32, binary words v // 32, the
#: second pair 16 behind).
COUNTER_IMAGES = {
    0: "FFFFFFFF00000000",
    1: "7FFFFFFF00000000",
    15: "0001FFFF00000000",
    16: "0000FFFF00000000",
    17: "00007FFF00000000",
    32: "FFFF000000010000",
    1000: "00FF0000001F001E",
}


def test_counter_increment_shows_in_a_config_read(tng):
    assert tng.run(READ, 0x00, 13) + tng.run(READ, 0x00, 14) == bytes.fromhex(COUNTER_IMAGES[0])
    for value in range(1, 33):
        assert tng.run(COUNTER, 1, 0) == value.to_bytes(4, "little")
        if value in COUNTER_IMAGES:
            image = tng.run(READ, 0x00, 13) + tng.run(READ, 0x00, 14)
            assert image == bytes.fromhex(COUNTER_IMAGES[value]), value
    assert tng.run(READ, 0x00, 15) + tng.run(READ, 0x00, 16) == bytes.fromhex(COUNTER_IMAGES[0])


def test_counter_preset_before_the_config_lock_counts(blank):
    image = bytes.fromhex(COUNTER_IMAGES[1000])
    assert blank.run(WRITE, 0x00, 15, image[:4]) == OK  # counter 1: bytes 60-67, words 15-16
    assert blank.run(WRITE, 0x00, 16, image[4:]) == OK
    assert blank.run(LOCK, 0x80, 0) == OK
    assert blank.run(COUNTER, 0, 1) == (1000).to_bytes(4, "little")
    assert blank.run(COUNTER, 1, 1) == (1001).to_bytes(4, "little")


def test_counter_max(tmp_path):
    path = tmp_path / "c.json"
    create_chip(path)
    sf = StateFile(path)
    with sf.transaction() as txn:
        txn.state.set_counter(0, 2_097_150)
        txn.dirty = True
    h = _host(path)
    assert h.run(COUNTER, 1, 0) == (2_097_151).to_bytes(4, "little")
    assert h.run(COUNTER, 1, 0) == EXEC


def test_selftest_and_update_extra(tng):
    assert tng.command(SELFTEST, 0x3B) == bytes.fromhex("04000340")
    assert tng.run(SELFTEST, 0x00) == 0
    assert tng.run(SELFTEST, 0x3B, 1) == PARSE
    assert tng.run(UPDATEEXTRA, 0x00, 0x42) == OK
    assert tng.run(UPDATEEXTRA, 0x00, 0x43) == EXEC  # already non-zero
    assert tng.run(READ, 0x00, 0x15)[0] == 0x42
    assert tng.run(UPDATEEXTRA, 0x00, 0x0100) == PARSE
    assert tng.run(UPDATEEXTRA, 0x03, 0) == PARSE


def test_update_extra_works_while_the_config_zone_is_unlocked(blank):
    """cryptoauthlib's atcab_write_config_zone sends UpdateExtra (bytes 84 and 85) before the
    config lock, so a real 608 must take it then (the 508A text asks for a locked zone)."""
    assert blank.run(UPDATEEXTRA, 0x00, 0x5A) == OK
    assert blank.run(UPDATEEXTRA, 0x01, 0x00) == OK  # writing zero over zero is allowed
    assert blank.run(READ, 0x00, 0x15)[:4] == bytes((0x5A, 0x00, 0x55, 0x55))
    assert blank.run(UPDATEEXTRA, 0x00, 0x5B) == EXEC  # byte 84 is no longer zero
