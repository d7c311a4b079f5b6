"""Microchip's cryptoauthlib (the ``cryptoauthlib`` Python package and its ``libcryptoauth.so``)
talking to ``/dev/i2c-1``, run by the vendor-library tests under ``atecc emulator run``.

Usage: ``python vendor_calls.py IN.json OUT.json``. IN names the calls' inputs (digests, keys,
plan); OUT receives one record per call: the status cryptoauthlib returned and the outputs, as hex.
Comparing them with the project's own view is the test's job; this script only calls the vendor.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import sys
from typing import Any

import cryptoauthlib as cal

ZONE_CONFIG, ZONE_DATA = 0, 2
NONCE_TARGET_TEMPKEY = 0x00


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, name: str, status: Any, **outputs: Any) -> int:
        record: dict[str, Any] = {"call": name, "status": int(status)}
        for key, value in outputs.items():
            record[key] = value.hex() if isinstance(value, bytes | bytearray) else value
        self.calls.append(record)
        return int(status)


def init(rec: Recorder, bus: int, address8: int) -> None:
    cfg = cal.cfg_ateccx08a_i2c_default()
    cfg.cfg.atcai2c.bus = bus
    cfg.cfg.atcai2c.address = address8
    rec("atcab_init", cal.atcab_init(cfg))


def identity(rec: Recorder) -> None:
    rev = bytearray(4)
    rec("atcab_info", cal.atcab_info(rev), revision=rev)
    sn = bytearray(9)
    rec("atcab_read_serial_number", cal.atcab_read_serial_number(sn), serial=sn)
    config = bytearray(128)
    rec("atcab_read_config_zone", cal.atcab_read_config_zone(config), config=config)


def keys(rec: Recorder, inp: dict[str, Any]) -> None:
    pub = bytearray(64)
    rec("atcab_get_pubkey(0)", cal.atcab_get_pubkey(0, pub), public_key=pub)
    sig = bytearray(64)
    digest = bytes.fromhex(inp["digest"])
    rec("atcab_sign(0)", cal.atcab_sign(0, digest, sig), signature=sig)
    for n in (1, 2):
        rnd = bytearray(32)
        rec(f"atcab_random#{n}", cal.atcab_random(rnd), random=rnd)
    for name, signature in (("good", inp["ext_signature"]), ("bad", inp["ext_bad_signature"])):
        ok = cal.AtcaReference(False)
        status = cal.atcab_verify_extern(
            digest, bytes.fromhex(signature), bytes.fromhex(inp["ext_public_key"]), ok
        )
        rec(f"atcab_verify_extern({name})", status, verified=bool(ok.value))


def full(rec: Recorder, inp: dict[str, Any]) -> None:
    pms = bytearray(32)
    peer = bytes.fromhex(inp["peer_public_key"])
    rec("atcab_ecdh(0)", cal.atcab_ecdh(0, peer, pms), secret=pms)
    message = bytes.fromhex(inp["sha_message"])
    digest = bytearray(32)
    rec("atcab_sha", cal.atcab_sha(len(message), message, digest), digest=digest)
    key = bytes.fromhex(inp["aes_key"])
    rec("atcab_write_bytes_zone(slot 9)", cal.atcab_write_bytes_zone(ZONE_DATA, 9, 0, key, 32))
    out = bytearray(16)
    block = bytes.fromhex(inp["aes_block"])
    rec("atcab_aes_encrypt(9)", cal.atcab_aes_encrypt(9, 0, block, out), ciphertext=out)
    slot = inp["genkey_slot"]
    new_pub = bytearray(64)
    rec(f"atcab_genkey({slot})", cal.atcab_genkey(slot, new_pub), public_key=new_pub)
    again = bytearray(64)
    rec(f"atcab_get_pubkey({slot})", cal.atcab_get_pubkey(slot, again), public_key=again)
    sig = bytearray(64)
    digest_in = bytes.fromhex(inp["digest"])
    rec(f"atcab_sign({slot})", cal.atcab_sign(slot, digest_in, sig), signature=sig)
    for counter_id in (0, 1):
        before = cal.AtcaReference(0)
        rec(
            f"atcab_counter_read({counter_id})",
            cal.atcab_counter_read(counter_id, before),
            value=before.value,
        )
    after = cal.AtcaReference(0)
    rec("atcab_counter_increment(0)", cal.atcab_counter_increment(0, after), value=after.value)
    config = bytearray(128)
    rec("atcab_read_config_zone(after counter)", cal.atcab_read_config_zone(config), config=config)
    for mode in inp["selftest_modes"]:
        result = cal.AtcaReference(0xFF)
        rec(
            f"atcab_selftest(0x{mode:02X})",
            cal.atcab_selftest(mode, 0, result),
            result=result.value,
        )
    cert = bytearray(1024)
    size = cal.AtcaReference(len(cert))
    status = cal.tng_atcacert_read_device_cert(cert, size)
    rec("tng_atcacert_read_device_cert", status, certificate=bytes(cert[: size.value]))
    cert = bytearray(1024)
    size = cal.AtcaReference(len(cert))
    status = cal.tng_atcacert_read_signer_cert(cert, size)
    rec("tng_atcacert_read_signer_cert", status, certificate=bytes(cert[: size.value]))


def tempkey_608(rec: Recorder, inp: dict[str, Any]) -> None:
    """cryptoauthlib's own 608 sequences that rely on TempKey surviving other commands."""
    keys = bytes.fromhex(inp["aes_tempkey_keys"])
    rec("atcab_nonce_load(TempKey, 64)", cal.atcab_nonce_load(NONCE_TARGET_TEMPKEY, keys, 64))
    blocks = []
    statuses = []
    for key_block in range(4):
        for n in range(4):
            out = bytearray(16)
            plain = bytes([16 * key_block + n]) * 16
            statuses.append(int(cal.atcab_aes_encrypt(0xFFFF, key_block, plain, out)))
            blocks.append(bytes(out).hex())
    rec("atcab_aes_encrypt(TempKey) x16", max(statuses, key=abs), ciphertexts=blocks)
    # verify_stored_with_tempkey: Nonce(random) -> [Random, Nonce(MDB), Sign] -> Verify(TempKey)
    slot, pub_slot = inp["genkey_slot"], 13
    pub = bytearray(64)
    rec(f"atcab_get_pubkey({slot}) for slot 13", cal.atcab_get_pubkey(slot, pub))
    rec("atcab_write_pubkey(13)", cal.atcab_write_pubkey(pub_slot, bytes(pub)))
    num_in = bytes(20)
    rand_out = bytearray(32)
    rec("atcab_nonce_rand", cal.atcab_nonce_rand(num_in, rand_out))
    tempkey = hashlib.sha256(bytes(rand_out) + num_in + bytes((0x16, 0x00, 0x00))).digest()
    sig = bytearray(64)
    rec(f"atcab_sign({slot}, TempKey value)", cal.atcab_sign(slot, tempkey, sig))
    verified = ctypes.c_bool(False)
    lib = cal.get_cryptoauthlib()
    status = lib.atcab_verify_stored_with_tempkey(bytes(sig), pub_slot, ctypes.byref(verified))
    rec("atcab_verify_stored_with_tempkey(13)", status, verified=bool(verified.value))


def modelled(rec: Recorder, inp: dict[str, Any]) -> None:
    """Commands the emulator once answered 0x0F, driven by the vendor's own helpers (several of
    which check the chip's answer with the vendor's host-side code)."""
    io_key = bytes.fromhex(inp["io_key"])
    rec("atcab_write_zone(IO key, slot 6)", cal.atcab_write_zone(ZONE_DATA, 6, 0, 0, io_key, 32))
    peer = bytes.fromhex(inp["peer_public_key"])
    pms = bytearray(32)
    rec("atcab_ecdh_ioenc(0)", cal.atcab_ecdh_ioenc(0, peer, pms, io_key), secret=pms)
    digest = bytes.fromhex(inp["digest"])
    for name, signature in (("good", inp["ext_signature"]), ("bad", inp["ext_bad_signature"])):
        ok = cal.AtcaReference(False)
        status = cal.atcab_verify_extern_mac(
            digest,
            bytes.fromhex(signature),
            bytes.fromhex(inp["ext_public_key"]),
            bytes(32),
            io_key,
            ok,
        )
        rec(f"atcab_verify_extern_mac({name})", status, verified=bool(ok.value))
    kdf_key, kdf_msg = bytes(range(16)) * 2, bytes(range(16))
    for name, mode, details in (
        ("PRF", 0x10, 0x01 | 0x100 | (16 << 24)),
        ("AES", 0x30, 0),
        ("HKDF", 0x50, 0x02 | (16 << 24)),
        ("PRF encrypted", 0x14, 0x01 | 0x100 | (16 << 24)),
    ):
        rec(f"atcab_nonce (KDF {name})", cal.atcab_nonce(kdf_key))
        out, nonce = bytearray(64), bytearray(32)
        status = cal.atcab_kdf(mode, 0x1234, details, kdf_msg, out, nonce)
        rec(f"atcab_kdf({name})", status, out=out, nonce=nonce)
    block = bytes(range(64))
    rec("atcab_sha_start", cal.atcab_sha_start())
    rec("atcab_sha_update", cal.atcab_sha_update(block))
    context, size = bytearray(128), cal.AtcaReference(128)
    status = cal.atcab_sha_read_context(context, size)
    rec("atcab_sha_read_context", status, context=bytes(context[: size.value]))
    first = bytearray(32)
    rec("atcab_sha_end(after read)", cal.atcab_sha_end(first, 3, b"abc"), digest=first)
    rec("atcab_sha_write_context", cal.atcab_sha_write_context(bytes(context), size.value))
    second = bytearray(32)
    rec("atcab_sha_end(after write)", cal.atcab_sha_end(second, 3, b"abc"), digest=second)
    challenge = bytes(range(32, 64))
    mac = bytearray(32)
    rec("atcab_mac(0x40, slot 6)", cal.atcab_mac(0x40, 6, challenge, mac), mac=mac)
    other = bytes(range(13))
    response = bytes.fromhex(inp["checkmac_response"])
    rec("atcab_checkmac(good)", cal.atcab_checkmac(0x00, 6, challenge, response, other))
    bad = bytes((response[0] ^ 1,)) + response[1:]
    rec("atcab_checkmac(bad)", cal.atcab_checkmac(0x00, 6, challenge, bad, other))
    num_in, rand_out = bytes(20), bytearray(32)
    rec("atcab_nonce_rand (sign internal)", cal.atcab_nonce_rand(num_in, rand_out), rand=rand_out)
    rec("atcab_gendig(data, slot 6)", cal.atcab_gendig(ZONE_DATA, 6, b"", 0))
    sig, pub = bytearray(64), bytearray(64)
    rec("atcab_sign_internal(1)", cal.atcab_sign_internal(1, False, True, sig), signature=sig)
    rec("atcab_get_pubkey(1)", cal.atcab_get_pubkey(1, pub), public_key=pub)


def provision(rec: Recorder, inp: dict[str, Any]) -> None:
    """A blank 608 provisioned the vendor's way: write the config zone (which sends UpdateExtra
    before the lock), preset counter 0, lock config, make a key, lock data, sign."""
    config = bytearray(128)
    rec("atcab_read_config_zone(blank)", cal.atcab_read_config_zone(config), config=config)
    config[84] = inp["user_extra"]
    for offset, value in inp["config_patch"]:
        config[offset : offset + len(bytes.fromhex(value))] = bytes.fromhex(value)
    rec("atcab_write_config_zone", cal.atcab_write_config_zone(bytes(config)))
    preset = inp["counter_preset"]
    rec("atcab_write_config_counter(0)", cal.atcab_write_config_counter(0, preset))
    rec("atcab_lock_config_zone", cal.atcab_lock_config_zone())
    value = cal.AtcaReference(0)
    rec("atcab_counter_read(0) after preset", cal.atcab_counter_read(0, value), value=value.value)
    pub = bytearray(64)
    rec("atcab_genkey(0) on the blank chip", cal.atcab_genkey(0, pub), public_key=pub)
    rec("atcab_lock_data_zone", cal.atcab_lock_data_zone())
    sig = bytearray(64)
    status = cal.atcab_sign(0, bytes.fromhex(inp["digest"]), sig)
    rec("atcab_sign(0) on the provisioned chip", status, signature=sig)
    after = bytearray(128)
    rec("atcab_read_config_zone(provisioned)", cal.atcab_read_config_zone(after), config=after)
    # Encrypted transfers with parent key 11, written in clear (WriteConfig Always).
    parent = bytes.fromhex(inp["parent_key"])
    rec(
        "atcab_write_zone(parent key, slot 11)",
        cal.atcab_write_zone(ZONE_DATA, 11, 0, 0, parent, 32),
    )
    secret = bytes.fromhex(inp["secret_data"])
    status = cal.atcab_write_enc(10, 0, secret, parent, 11, bytes(20))
    rec("atcab_write_enc(slot 10)", status)
    back = bytearray(32)
    status = cal.atcab_read_enc(10, 0, back, parent, 11, bytes(20))
    rec("atcab_read_enc(slot 10)", status, data=back)
    key36 = bytes(4) + bytes.fromhex(inp["priv_scalar"])
    rec("atcab_priv_write(slot 2)", cal.atcab_priv_write(2, key36, 11, parent, bytes(20)))
    pub = bytearray(64)
    rec("atcab_get_pubkey(2) after priv_write", cal.atcab_get_pubkey(2, pub), public_key=pub)
    num_in, rand_out = bytes(20), bytearray(32)
    rec("atcab_nonce_rand (derivekey)", cal.atcab_nonce_rand(num_in, rand_out), rand=rand_out)
    rec("atcab_derivekey(roll slot 12)", cal.atcab_derivekey(0x00, 12, b""))
    mac = bytearray(32)
    rec("atcab_mac(slot 12)", cal.atcab_mac(0x00, 12, bytes(32), mac), mac=mac)


def main() -> int:
    inp = json.loads(open(sys.argv[1], encoding="utf-8").read())
    rec = Recorder()
    cal.load_cryptoauthlib()
    init(rec, inp["bus"], inp["address8"])
    try:
        identity(rec)
        if inp["plan"] == "provision":
            provision(rec, inp)
            return 0
        keys(rec, inp)
        if inp["plan"] == "full":
            full(rec, inp)
            tempkey_608(rec, inp)
            modelled(rec, inp)
    finally:
        rec("atcab_release", cal.atcab_release())
        with open(sys.argv[2], "w", encoding="utf-8") as out:
            json.dump({"calls": rec.calls}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
