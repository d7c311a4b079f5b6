"""Commands and modes the emulator used to answer with 0x0F and now models: GenDig, MAC,
CheckMac, DeriveKey, KDF (PRF, AES, HKDF), SHA context read/write, encrypted Read/Write and
PrivWrite, ECDH and Verify with the IO protection key, Sign internal, Verify validate, and
limited-use keys; plus the "not modelled" record for what is still missing.

Expected values are computed here from the documented message layouts (spec §4.17 and the
layouts cryptoauthlib's host helpers use) with hashlib/hmac/cryptography; the vendor-library
tests check the same commands against cryptoauthlib's own host code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from test_emulator_commands import _host, lock_config, set_slot, verify_p256

from atecc.emulator.harness import Host
from atecc.emulator.profiles import create_chip

OK, MISS, PARSE, EXEC = 0x00, 0x01, 0x03, 0x0F
READ, MAC, WRITE, GENDIG, NONCE, LOCK, RANDOM = 0x02, 0x08, 0x12, 0x15, 0x16, 0x17, 0x1B
DERIVEKEY, COUNTER, CHECKMAC, INFO, GENKEY, SIGN = 0x1C, 0x24, 0x28, 0x30, 0x40, 0x41
ECDH, VERIFY, PRIVWRITE, SHA, AES, KDF, SECUREBOOT = 0x43, 0x45, 0x46, 0x47, 0x51, 0x56, 0x80
IO_SLOT = 6  # Trust&GO: ChipOptions 0x600E names slot 6 as the IO protection key


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def aes_block(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


@pytest.fixture(name="tng")
def _tng(tmp_path):
    path = tmp_path / "tng.json"
    create_chip(path, "ATECC608-TNGTLS")
    h = _host(path)
    yield h
    h.bus.close()


def serial(h: Host) -> bytes:
    cfg = h.run(READ, 0x80, 0)
    return cfg[0:4] + cfg[8:13]


def sn_tail(h: Host, zeros: int = 25) -> bytes:
    sn = serial(h)
    return bytes((sn[8], sn[0], sn[1])) + bytes(zeros)


def load_tempkey(h: Host, value: bytes) -> None:
    assert h.run(NONCE, 0x03, 0, value) == OK


def random_tempkey(h: Host) -> bytes:
    num_in = bytes(range(20))
    rand_out = h.run(NONCE, 0x00, 0, num_in)
    return sha(rand_out, num_in, bytes((NONCE, 0x00, 0x00)))


def tempkey_by_aes(h: Host) -> bytes:
    """Observe TempKey's first 16 bytes through AES with key 0xFFFF (it leaves TempKey alone)."""
    return h.run(AES, 0x00, 0xFFFF, bytes(16))


def write_slot(h: Host, slot: int, data: bytes) -> None:
    padded = data.ljust(32 * ((len(data) + 31) // 32), b"\x00")
    for block in range(len(padded) // 32):
        addr = (block << 8) | (slot << 3)
        assert h.run(WRITE, 0x82, addr, padded[32 * block : 32 * block + 32]) == OK


def info_flags(h: Host) -> tuple[int, int]:
    state = h.run(INFO, 2, 0)
    return state[0], state[1]


# ------------------------------------------------------------------------------- GenDig ------
def test_gendig_config_block_digest(tng):
    tk = bytes(range(32))
    load_tempkey(tng, tk)
    assert tng.run(GENDIG, 0x00, 1) == OK
    block1 = tng.run(READ, 0x80, 1 << 3)
    expected = sha(block1, bytes((GENDIG, 0, 1, 0)), sn_tail(tng), tk)
    assert tempkey_by_aes(tng) == aes_block(expected[:16], bytes(16))
    flags, valid = info_flags(tng)
    assert valid & 0x80 and not flags & 0x20  # valid, GenDigData only for data slots


def test_gendig_counter_and_key_config_zones(tng):
    sn = serial(tng)
    assert tng.run(COUNTER, 1, 1) == (1).to_bytes(4, "little")
    tk = bytes(32)
    load_tempkey(tng, tk)
    assert tng.run(GENDIG, 0x04, 1) == OK
    middle = bytes((sn[8], sn[0], sn[1], 0)) + (1).to_bytes(4, "little") + bytes(20)
    expected = sha(bytes(32), bytes((GENDIG, 4, 1, 0)), middle, tk)
    assert tempkey_by_aes(tng) == aes_block(expected[:16], bytes(16))
    load_tempkey(tng, tk)
    assert tng.run(GENDIG, 0x05, 0) == OK
    fields = bytes.fromhex("8500") + bytes.fromhex("5300") + b"\x01"  # slot 0, not locked
    middle = bytes((sn[8], sn[0], sn[1], 0)) + fields + bytes(19)
    expected = sha(bytes(32), bytes((GENDIG, 5, 0, 0)), middle, tk)
    assert tempkey_by_aes(tng) == aes_block(expected[:16], bytes(16))


def test_gendig_data_slot_marks_tempkey(tng):
    key = bytes(range(100, 132))
    write_slot(tng, IO_SLOT, key)
    tk = random_tempkey(tng)  # slot 6 has ReqRandom
    assert tng.run(GENDIG, 0x02, IO_SLOT) == OK
    expected = sha(key, bytes((GENDIG, 2, IO_SLOT, 0)), sn_tail(tng), tk)
    assert tempkey_by_aes(tng) == aes_block(expected[:16], bytes(16))
    flags, _ = info_flags(tng)
    assert flags & 0x20 and flags & 0x0F == IO_SLOT  # GenDigData, KeyID


def test_gendig_takes_other_data_for_any_key_as_cryptoauthlib_sends_it(tng):
    """cryptoauthlib's read/write/PrivWrite helpers send GenDig's own opcode and parameters as
    4 bytes of OtherData whether or not the key is NoMac; for other keys they play no part."""
    key = bytes(range(100, 132))
    write_slot(tng, IO_SLOT, key)
    tk = random_tempkey(tng)
    params = bytes((GENDIG, 2, IO_SLOT, 0))
    assert tng.run(GENDIG, 0x02, IO_SLOT, params) == OK
    expected = sha(key, params, sn_tail(tng), tk)
    assert tempkey_by_aes(tng) == aes_block(expected[:16], bytes(16))


def test_gendig_errors(tng):
    assert tng.run(GENDIG, 0x00, 1) == EXEC  # no TempKey
    assert tng.run(GENDIG, 0x06, 0) == PARSE
    assert tng.run(GENDIG, 0x00, 4) == PARSE
    load_tempkey(tng, bytes(32))
    assert tng.run(GENDIG, 0x02, 0) == EXEC  # a private key


# ---------------------------------------------------------------------------- MAC / CheckMac --
def include_sn(h: Host, mode: int) -> bytes:
    sn = serial(h)
    full = bool(mode & 0x40)
    return (
        bytes(11)
        + bytes((sn[8],))
        + (sn[4:8] if full else bytes(4))
        + sn[0:2]
        + (sn[2:4] if full else bytes(2))
    )


def test_mac_with_a_challenge_and_with_tempkey(tng):
    key = bytes(range(32))
    write_slot(tng, IO_SLOT, key)
    chal = bytes(range(50, 82))
    out = tng.run(MAC, 0x40, IO_SLOT, chal)
    assert out == sha(key, chal, bytes((MAC, 0x40, IO_SLOT, 0)), include_sn(tng, 0x40))
    tk = random_tempkey(tng)
    out = tng.run(MAC, 0x01, IO_SLOT)  # block 2 = TempKey (random: mode bit 2 clear)
    assert out == sha(key, tk, bytes((MAC, 0x01, IO_SLOT, 0)), include_sn(tng, 0x01))
    assert not info_flags(tng)[1] & 0x80  # TempKey used up
    load_tempkey(tng, bytes(32))
    assert tng.run(MAC, 0x01, IO_SLOT) == EXEC  # mode bit 2 says random, TempKey is input
    assert tng.run(MAC, 0x08, IO_SLOT, chal) == PARSE
    assert tng.run(MAC, 0x00, 0, chal) == EXEC  # an ECC private key


def test_checkmac_match_and_miscompare(tng):
    key = bytes(range(32))
    write_slot(tng, IO_SLOT, key)
    sn = serial(tng)
    chal, other = bytes(range(32, 64)), bytes(range(13))
    msg = (
        key + chal + other[0:4] + bytes(8) + other[4:7] + bytes((sn[8],)) + other[7:11] + sn[0:2]
    ) + other[11:13]
    good = sha(msg)
    assert tng.run(CHECKMAC, 0x00, IO_SLOT, chal + good + other) == OK
    assert tng.run(INFO, 2, 0)[1] & 0x04  # AuthValid
    bad = bytes((good[0] ^ 1,)) + good[1:]
    assert tng.run(CHECKMAC, 0x00, IO_SLOT, chal + bad + other) == MISS


# ------------------------------------------------------------------------------- DeriveKey ---
@pytest.fixture
def custom(tmp_path):
    """A blank chip configured for the symmetric tests, config and data locked:
    slot 2 PrivWrite-able (WriteKey 11), slot 10 encrypted read and write (key 11),
    slot 11 the parent key (clear writes), slot 12 a DeriveKey roll target, slot 13 a
    limited-use key; CountMatch on, limit in slot 14."""
    path = tmp_path / "custom.json"
    create_chip(path, "ATECC608")
    h = _host(path)
    set_slot(h, 2, 0x4B87, 0x0033)
    set_slot(h, 10, 0x4BCB, 0x003C)
    set_slot(h, 11, 0x0F8F, 0x003C)
    set_slot(h, 12, 0x2C8F, 0x003C)
    set_slot(h, 13, 0x0FAF, 0x003C)
    set_slot(h, 14, 0x0F0F, 0x003C)
    cfg16 = bytearray(h.run(READ, 0x00, 4))
    cfg16[2] = 0xE1  # CountMatch: enabled, key slot 14
    assert h.run(WRITE, 0x00, 4, bytes(cfg16)) == OK
    lock_config(h)
    h.parent = bytes(range(200, 232))
    write_slot(h, 11, h.parent)
    write_slot(h, 12, bytes(range(1, 33)))
    write_slot(h, 13, bytes(range(64, 96)))
    write_slot(h, 14, (2).to_bytes(4, "little") * 2)  # CountMatch limit 2 (not a multiple of 32)
    assert h.run(LOCK, 0x81, 0) == OK
    yield h
    h.bus.close()


def test_derive_key_roll_makes_the_documented_key(custom):
    h = custom
    tk = random_tempkey(h)
    assert h.run(DERIVEKEY, 0x00, 12) == OK
    new = sha(bytes(range(1, 33)), bytes((DERIVEKEY, 0, 12, 0)), sn_tail(h), tk)
    chal = bytes(32)
    assert h.run(MAC, 0x00, 12, chal) == sha(new, chal, bytes((MAC, 0, 12, 0)), include_sn(h, 0))
    assert h.run(DERIVEKEY, 0x00, 12) == EXEC  # TempKey used up
    load_tempkey(h, bytes(32))
    assert h.run(DERIVEKEY, 0x00, 12) == EXEC  # mode bit 2 clear wants a random TempKey
    assert h.run(DERIVEKEY, 0x00, 11) == EXEC  # not a DeriveKey target


# --------------------------------------------------------------------- encrypted transfers ---
def gendig_from(h: Host, slot: int, key: bytes) -> bytes:
    tk = random_tempkey(h)
    assert h.run(GENDIG, 0x02, slot) == OK
    return sha(key, bytes((GENDIG, 2, slot, 0)), sn_tail(h), tk)


def test_encrypted_write_then_encrypted_read(custom):
    h = custom
    plain = bytes(range(32))
    tk = gendig_from(h, 11, h.parent)
    p1, p2 = 0xC2, 10 << 3
    mac = sha(tk, bytes((WRITE, p1, p2 & 0xFF, p2 >> 8)), sn_tail(h), plain)
    enc = bytes(a ^ b for a, b in zip(plain, tk, strict=True))
    assert h.run(WRITE, 0x82, p2, plain) == EXEC  # the slot takes encrypted writes only
    assert h.run(WRITE, p1, p2, enc + bytes(32)) == EXEC  # wrong MAC
    tk = gendig_from(h, 11, h.parent)
    mac = sha(tk, bytes((WRITE, p1, p2 & 0xFF, p2 >> 8)), sn_tail(h), plain)
    enc = bytes(a ^ b for a, b in zip(plain, tk, strict=True))
    assert h.run(WRITE, p1, p2, enc + mac) == OK
    assert h.run(READ, 0x82, p2) == EXEC  # no GenDig TempKey
    tk = gendig_from(h, 11, h.parent)
    out = h.run(READ, 0x82, p2)
    assert bytes(a ^ b for a, b in zip(out, tk, strict=True)) == plain
    assert h.run(READ, 0x02, p2) == EXEC  # 4-byte reads of an encrypted slot


def test_encrypted_priv_write_after_the_data_lock(custom):
    h = custom
    scalar = (0x3333).to_bytes(32, "big")
    key36 = bytes(4) + scalar
    assert h.run(PRIVWRITE, 0x00, 2, key36 + bytes(32)) == EXEC  # must be encrypted now
    tk = gendig_from(h, 11, h.parent)
    enc = bytes(a ^ b for a, b in zip(key36[:32], tk, strict=True))
    enc += bytes(a ^ b for a, b in zip(key36[32:], sha(tk)[:4], strict=True))
    mac = sha(tk, bytes((PRIVWRITE, 0x40, 2, 0)), sn_tail(h, 21), key36)
    assert h.run(PRIVWRITE, 0x40, 2, enc + mac) == OK
    pub = h.run(GENKEY, 0x00, 2)
    nums = ec.derive_private_key(0x3333, ec.SECP256R1()).public_key().public_numbers()
    assert pub == nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


# ------------------------------------------------------------------------- limited-use keys --
def test_limited_use_key_counts_on_counter_0_until_count_match(custom):
    h = custom
    chal = bytes(32)
    assert h.run(COUNTER, 0, 0) == (0).to_bytes(4, "little")
    assert len(h.run(MAC, 0x00, 13, chal)) == 32
    assert h.run(COUNTER, 0, 0) == (1).to_bytes(4, "little")
    assert len(h.run(MAC, 0x00, 13, chal)) == 32
    assert h.run(MAC, 0x00, 13, chal) == EXEC  # counter 0 reached the CountMatch value 2
    assert h.run(COUNTER, 0, 0) == (2).to_bytes(4, "little")
    assert len(h.run(MAC, 0x00, 11, chal)) == 32  # a key without LimitedUse is not counted


# ------------------------------------------------------------------------------------- KDF ---
VENDOR_KEY = bytes(range(16)) * 2  # cryptoauthlib's kdf tests: TempKey 00..0F 00..0F
VENDOR_MSG = bytes(range(16))


def test_kdf_prf_known_answer(tng):
    """cryptoauthlib's kdf_prf_output: TLS 1.2 PRF, 32-byte key, 16-byte message, 64 bytes."""
    load_tempkey(tng, VENDOR_KEY)
    details = (0x01 | 0x100 | (16 << 24)).to_bytes(4, "little")
    out = tng.run(KDF, 0x10, 0x1234, details + VENDOR_MSG)
    assert out == bytes.fromhex(
        "1EBCBE62005AB948FDFFE1C402AABA354EC676050C9BC1AAE1FF5B1509A4A04A"
        "44254664C2A480F5B77EA2D1020C7BA4B3640C4AC793324C26D6FDDFDB1F011A"
    )


def test_kdf_aes_known_answer(tng):
    load_tempkey(tng, VENDOR_KEY)
    out = tng.run(KDF, 0x30, 0x1234, bytes(4) + VENDOR_MSG)
    assert out == bytes.fromhex("0A940BB5416EF045F1C39458C653EA5A") + bytes(16)


def test_kdf_hkdf_is_one_hmac_step(tng):
    load_tempkey(tng, VENDOR_KEY)
    details = (0x02 | (16 << 24)).to_bytes(4, "little")
    out = tng.run(KDF, 0x50, 0, details + VENDOR_MSG)
    assert out == hmac.new(VENDOR_KEY, VENDOR_MSG, hashlib.sha256).digest()


def test_kdf_into_a_slot_needs_pubinfo(tng):
    load_tempkey(tng, VENDOR_KEY)
    details = (0x02 | (16 << 24)).to_bytes(4, "little")
    assert tng.run(KDF, 0x48, 9 << 8, details + VENDOR_MSG) == OK  # slot 9: KeyConfig 0x001A
    assert tng.run(KDF, 0x48, 8 << 8, details + VENDOR_MSG) == EXEC  # slot 8: no PubInfo


def test_kdf_encrypted_output_decrypts_with_the_io_key(tng, io_decrypt):
    io_key = bytes(range(7, 39))
    write_slot(tng, IO_SLOT, io_key)
    load_tempkey(tng, VENDOR_KEY)
    details = (0x01 | 0x100 | (16 << 24)).to_bytes(4, "little")
    clear = tng.run(KDF, 0x10, 0, details + VENDOR_MSG)
    out = tng.run(KDF, 0x14, 0, details + VENDOR_MSG)
    assert io_decrypt(io_key, out[:64], out[64:]) == clear


# ------------------------------------------------------------------------------ SHA context --
def test_sha_context_read_is_the_608_image_and_restores(tng):
    """The image cryptoauthlib's sha_context test shows for SHA start + 01 02 03 04 05."""
    assert tng.run(SHA, 0x00) == OK
    assert tng.run(SHA, 0x01, 5, bytes((1, 2, 3, 4, 5))) == OK
    context = tng.run(SHA, 0x06)
    assert context == bytes.fromhex(
        "0500000067E6096A85AE67BB72F36E3C3AF54FA57F520E518C68059BABD9831F19CDE05B0102030405"
    )
    assert tng.run(SHA, 0xC2, 64, bytes(64))  # another message in between
    assert tng.run(SHA, 0x00) == OK
    assert tng.run(SHA, 0x07, len(context), context) == OK
    digest = tng.run(SHA, 0xC2, 3, b"abc")
    assert digest == hashlib.sha256(bytes((1, 2, 3, 4, 5)) + b"abc").digest()
    assert tng.run(SHA, 0x07, 40, context[:40]) == PARSE  # length disagrees with its count


# ------------------------------------------------------------------ IO protection / ECC ------
def device_key(h: Host, slot: int = 0) -> ec.EllipticCurvePublicKey:
    pub = h.run(GENKEY, 0x00, slot)
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(pub[:32], "big"), int.from_bytes(pub[32:], "big"), ec.SECP256R1()
    ).public_key()


def xy(key: ec.EllipticCurvePublicKey) -> bytes:
    nums = key.public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def test_ecdh_encrypted_output_decrypts_with_the_io_key(tng, io_decrypt):
    io_key = bytes(range(9, 41))
    write_slot(tng, IO_SLOT, io_key)
    peer = ec.generate_private_key(ec.SECP256R1())
    expected = peer.exchange(ec.ECDH(), device_key(tng))
    out = tng.run(ECDH, 0x0E, 0, xy(peer.public_key()))
    assert len(out) == 64 and out[:32] != expected
    assert io_decrypt(io_key, out[:32], out[32:]) == expected


def test_verify_mac_output(tng):
    io_key = bytes(range(11, 43))
    write_slot(tng, IO_SLOT, io_key)
    priv = ec.generate_private_key(ec.SECP256R1())
    msg, nonce = hashlib.sha256(b"m").digest(), bytes(range(32))
    r, s = utils.decode_dss_signature(priv.sign(msg, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert tng.run(NONCE, 0x63, 0, msg + nonce) == OK  # 64 bytes into the message digest buffer
    out = tng.run(VERIFY, 0xA2, 0x0004, sig + xy(priv.public_key()))
    assert out == sha(io_key, msg, nonce, sig, bytes((VERIFY, 0xA2, 0x04, 0x00)))
    assert tng.run(NONCE, 0x63, 0, bytes(32) + nonce) == OK
    assert tng.run(VERIFY, 0xA2, 0x0004, sig + xy(priv.public_key())) == MISS


def gendig_data_tempkey(h: Host) -> bytes:
    key = bytes(range(100, 132))
    write_slot(h, IO_SLOT, key)
    tk = random_tempkey(h)
    assert h.run(GENDIG, 0x02, IO_SLOT) == OK
    return sha(key, bytes((GENDIG, 2, IO_SLOT, 0)), sn_tail(h), tk)


def test_sign_internal_with_the_trust_and_go_attestation_key(tng):
    """Slot 1 signs the 55-byte internal message over a GenDig digest (spec §4.5, with the
    SlotLocked byte as cryptoauthlib's atcah_sign_internal_msg sets it)."""
    sn = serial(tng)
    pub1 = tng.run(GENKEY, 0x00, 1)
    assert tng.run(SIGN, 0x40, 1) == EXEC  # no GenDig/GenKey TempKey yet
    tk = gendig_data_tempkey(tng)
    tng.run(RANDOM)
    sig = tng.run(SIGN, 0x40, 1)  # internal, full serial number
    msg = (
        tk
        + bytes((SIGN, 0x40, 1, 0))
        + bytes.fromhex("8F0F")  # SlotConfig[6] = 0x0F8F, little-endian
        + bytes.fromhex("7C00")  # KeyConfig[6] = 0x007C
        + bytes((0x20 | IO_SLOT, 0, 0, sn[8]))  # TempKey flags: GenDigData, random, KeyID 6
        + sn[4:8]
        + sn[0:2]
        + sn[2:4]
        + bytes((1, 0, 0))  # slot 6 not locked (raw SlotLocked bit 1), no validated key, 0
    )
    verify_p256(pub1, sha(msg), sig)


def test_verify_validate_marks_a_stored_public_key_valid(tng):
    """Trust&GO slot 14 holds a key that must be validated by its parent in slot 13."""
    parent = ec.generate_private_key(ec.SECP256R1())
    child = ec.generate_private_key(ec.SECP256R1())
    pad = lambda k: bytes(4) + xy(k)[:32] + bytes(4) + xy(k)[32:]  # noqa: E731
    write_slot(tng, 13, pad(parent.public_key()))
    write_slot(tng, 14, pad(child.public_key()))
    assert tng.run(INFO, 1, 14)[0] == 0  # not validated: the write left nibble 0xA
    sn = serial(tng)
    tk0 = bytes(range(32))
    load_tempkey(tng, tk0)
    other3 = bytes((0x41, 0x02, 0x00))
    assert tng.run(GENKEY, 0x10, 14, other3) == OK
    tk = sha(tk0, bytes((GENKEY,)), other3, sn_tail(tng), xy(child.public_key()))
    other19 = bytes(range(19))
    msg = sha(
        tk, bytes((SIGN,)), other19[0:10], bytes((sn[8],)), other19[10:14], sn[0:2], other19[14:]
    )
    r, s = utils.decode_dss_signature(parent.sign(msg, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert tng.run(VERIFY, 0x03, 14, sig + other19) == OK
    assert tng.run(INFO, 1, 14)[0] == 1
    assert tng.run(READ, 0x02, 14 << 3)[0] >> 4 == 0x5


# ----------------------------------------------------------------------------- not modelled --
@pytest.mark.parametrize(
    ("opcode", "p1", "p2", "data", "what"),
    [
        (SECUREBOOT, 0x05, 0, bytes(96), "SecureBoot"),
        (GENKEY, 0x24, 2, b"", "GenKey MAC mode"),
        (KDF, 0x50, 0, (0x03 | (32 << 24)).to_bytes(4, "little") + bytes(32), "HKDF"),
        (SHA, 0x03, 9, b"", "SHA mode 3"),
    ],
    ids=["secureboot", "genkey-mac", "hkdf-iv", "sha-public"],
)
def test_what_is_not_modelled_is_recorded_and_logged(tng, caplog, opcode, p1, p2, data, what):
    load_tempkey(tng, bytes(32))
    with caplog.at_level(logging.WARNING, logger="atecc.emulator"):
        assert tng.run(opcode, p1, p2, data) == EXEC
    assert any(what in key for key in tng.bus.chip.not_modelled), tng.bus.chip.not_modelled
    assert any("not modelled" in r.getMessage() and what in r.getMessage() for r in caplog.records)
