"""Microchip's own library against the emulated chip: ``cryptoauthlib`` (the vendor's Python
package and its ``libcryptoauth.so`` with the Linux I2C HAL) on ``/dev/i2c-1`` at address 0x6A,
served by ``atecc emulator run``.

Each vendor call's result is checked against an independent view: the project's driver and
PKCS#11 module on the same chip (``atecc config``, ``p11tool``, ``pkcs11-tool --derive``), or
``cryptography``/``hashlib``. The whole call list runs once with fast timing; a small subset runs
again with realistic timing (busy NACKs, real execution times).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .conftest import BIN, export_public_key, require, run

ATECC = str(BIN / "atecc")
SCRIPT = Path(__file__).with_name("vendor_calls.py")
SELFTEST_MODES = [0x3B, 0x04, 0x02]
#: SHA-1 key ID of Microchip's "Crypto Authentication Root CA 002" (spec §6.4).
MICROCHIP_ROOT_KEY_ID = "7AED7D6DC6B7789DB23801A5E84A8CB0A40E2A8C"


def xy(key: ec.EllipticCurvePublicKey) -> bytes:
    nums = key.public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def raw_signature(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(public_xy: bytes, digest: bytes, signature: bytes) -> None:
    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(public_xy[:32], "big"), int.from_bytes(public_xy[32:], "big"), ec.SECP256R1()
    ).public_key()
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


CHALLENGE, OTHER = bytes(range(32, 64)), bytes(range(13))  # as vendor_calls.py sends them


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def checkmac_response(key: bytes, chal: bytes, other: bytes, sn: bytes) -> bytes:
    """The client response CheckMac mode 0 expects (spec §4.17, 508A layout)."""
    return sha(
        key,
        chal,
        other[0:4],
        bytes(8),
        other[4:7],
        bytes((sn[8],)),
        other[7:11],
        sn[0:2],
        other[11:13],
    )


class Chip:
    """One emulated chip (Trust&GO unless told), its filestore (emulator interface) and the
    vendor's inputs."""

    def __init__(self, root: Path, device: str = "ATECC608-TNGTLS") -> None:
        self.filestore = root / "filestore"
        run([ATECC, "emulator", "init", "--filestore", str(self.filestore), "--device", device])
        self.state = self.filestore / "chip0.json"
        self.env = dict(os.environ, ATECC_PKCS11_FILESTORE=str(self.filestore))
        self.env.pop("ATECC_PKCS11_LOG", None)
        self.digest = hashlib.sha256(b"signed by cryptoauthlib").digest()
        ext_key = ec.generate_private_key(ec.SECP256R1())
        self.ext_key = ext_key
        signature = raw_signature(ext_key.sign(self.digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        self.peer = ec.generate_private_key(ec.SECP256R1())
        self.peer_der = root / "peer.der"
        self.peer_der.write_bytes(
            self.peer.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.inputs: dict[str, Any] = {
            "bus": 1,
            "address8": 0x6A if device == "ATECC608-TNGTLS" else 0xC0,
            "user_extra": 0x5A,
            "counter_preset": 1000,
            "digest": self.digest.hex(),
            "ext_signature": signature.hex(),
            "ext_bad_signature": signature[:63].hex() + f"{signature[63] ^ 1:02x}",
            "ext_public_key": xy(ext_key.public_key()).hex(),
            "peer_public_key": xy(self.peer.public_key()).hex(),
            "sha_message": os.urandom(150).hex(),
            "aes_key": os.urandom(32).hex(),
            "aes_block": os.urandom(16).hex(),
            "genkey_slot": 2,
            "aes_tempkey_keys": os.urandom(64).hex(),
            "io_key": os.urandom(32).hex(),
            "parent_key": os.urandom(32).hex(),
            "secret_data": os.urandom(32).hex(),
            "priv_scalar": (0x4444).to_bytes(32, "big").hex(),
            # Blank-chip provisioning: slot 2 takes encrypted PrivWrite (write key 11), slot 10
            # encrypted reads and writes (key 11), slot 11 the parent key, slot 12 a DeriveKey
            # roll target (offset: SlotConfig 20 + 2n, KeyConfig 96 + 2n; little-endian).
            "checkmac_response": "",
            "config_patch": [
                (24, "874B"),
                (40, "CB4B"),
                (42, "8F0F"),
                (44, "8F2C"),
                (100, "3300"),
                (116, "3C00"),
                (118, "3C00"),
                (120, "3C00"),
            ],
            "selftest_modes": SELFTEST_MODES,
        }

        self.serial = self.read_serial()
        self.inputs["checkmac_response"] = checkmac_response(
            bytes.fromhex(self.inputs["io_key"]), CHALLENGE, OTHER, self.serial
        ).hex()

    def read_serial(self) -> bytes:
        from atecc.emulator.state import StateFile

        config = StateFile(self.state).load().config
        return bytes(config[0:4] + config[8:13])

    def sn_tail(self, zeros: int = 25) -> bytes:
        sn = self.serial
        return bytes((sn[8], sn[0], sn[1])) + bytes(zeros)

    def vendor(self, plan: str, timing: str) -> dict[str, dict[str, Any]]:
        inp = self.filestore.parent / f"vendor-{plan}-{timing}.in.json"
        out = inp.with_suffix(".out.json")
        inp.write_text(json.dumps(dict(self.inputs, plan=plan)))
        proc = run(
            [
                ATECC,
                "emulator",
                "run",
                "--state",
                str(self.state),
                "--timing",
                timing,
                "--",
                str(BIN / "python"),
                str(SCRIPT),
                str(inp),
                str(out),
            ],
            timeout=120,
        )
        assert "not modelled" not in proc.stderr, proc.stderr
        calls = json.loads(out.read_text())["calls"]
        return {c["call"]: c for c in calls}

    def atecc_json(self, *args: str) -> dict[str, Any]:
        out = run([ATECC, "--filestore", str(self.filestore), *args, "--json"]).stdout
        return json.loads(out)


@pytest.fixture(scope="module")
def chip(tmp_path_factory: pytest.TempPathFactory) -> Chip:
    return Chip(tmp_path_factory.mktemp("vendor"))


@pytest.fixture(scope="module")
def before(chip: Chip) -> dict[str, Any]:
    """The project's view of the chip before the vendor changes it."""
    return {"info": chip.atecc_json("info"), "config": chip.atecc_json("config")}


@pytest.fixture(scope="module")
def calls(chip: Chip, before: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return chip.vendor("full", "fast")


def ok(calls: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    record = calls[name]
    assert record["status"] == 0, record
    return record


def test_vendor_init_and_release_succeed(calls):
    ok(calls, "atcab_init")
    ok(calls, "atcab_release")


def test_vendor_info_is_the_chip_revision(calls, before):
    assert ok(calls, "atcab_info")["revision"].upper() == before["info"]["revision"]


def test_vendor_serial_number_is_the_chip_serial(calls, before):
    assert ok(calls, "atcab_read_serial_number")["serial"].upper() == before["info"]["serial"]


def test_vendor_config_zone_equals_atecc_config(calls, before):
    config = ok(calls, "atcab_read_config_zone")["config"]
    assert config.upper() == before["config"]["config_zone"]


def test_vendor_public_key_equals_the_module_public_key(calls, chip, module_path):
    pem = export_public_key(module_path, chip.env, label="device")
    module_key = serialization.load_pem_public_key(pem)
    assert isinstance(module_key, ec.EllipticCurvePublicKey)
    assert ok(calls, "atcab_get_pubkey(0)")["public_key"] == xy(module_key).hex()


def test_vendor_signature_verifies_with_cryptography(calls, chip):
    public = bytes.fromhex(ok(calls, "atcab_get_pubkey(0)")["public_key"])
    verify_raw(public, chip.digest, bytes.fromhex(ok(calls, "atcab_sign(0)")["signature"]))


def test_vendor_random_twice_gives_two_different_values(calls):
    first = bytes.fromhex(ok(calls, "atcab_random#1")["random"])
    second = bytes.fromhex(ok(calls, "atcab_random#2")["random"])
    assert len(first) == len(second) == 32 and first != second


def test_vendor_verify_extern_accepts_good_and_rejects_bad(calls):
    assert ok(calls, "atcab_verify_extern(good)")["verified"] is True
    assert ok(calls, "atcab_verify_extern(bad)")["verified"] is False


def test_vendor_ecdh_equals_pkcs11_tool_derive(calls, chip, module_path, tmp_path):
    tool = require("pkcs11-tool")
    out = tmp_path / "secret.bin"
    run(
        [
            tool,
            "--module",
            module_path,
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--label",
            "device",
            "--type",
            "privkey",
            "-i",
            str(chip.peer_der),
            "-o",
            str(out),
        ],
        env=chip.env,
    )
    assert ok(calls, "atcab_ecdh(0)")["secret"] == out.read_bytes().hex()


def test_vendor_sha_equals_hashlib(calls, chip):
    expected = hashlib.sha256(bytes.fromhex(chip.inputs["sha_message"])).hexdigest()
    assert ok(calls, "atcab_sha")["digest"] == expected


def test_vendor_aes_encrypt_equals_aes_ecb(calls, chip):
    ok(calls, "atcab_write_bytes_zone(slot 9)")
    key = bytes.fromhex(chip.inputs["aes_key"])[:16]
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    expected = enc.update(bytes.fromhex(chip.inputs["aes_block"])) + enc.finalize()
    assert ok(calls, "atcab_aes_encrypt(9)")["ciphertext"] == expected.hex()


def test_vendor_genkey_makes_a_key_that_signs(calls, chip):
    new = ok(calls, "atcab_genkey(2)")["public_key"]
    assert ok(calls, "atcab_get_pubkey(2)")["public_key"] == new
    verify_raw(
        bytes.fromhex(new), chip.digest, bytes.fromhex(ok(calls, "atcab_sign(2)")["signature"])
    )


def test_vendor_counters_read_and_increment(calls):
    start = ok(calls, "atcab_counter_read(0)")["value"]
    ok(calls, "atcab_counter_read(1)")
    assert ok(calls, "atcab_counter_increment(0)")["value"] == start + 1


@pytest.mark.parametrize("mode", SELFTEST_MODES)
def test_vendor_selftest_passes(calls, mode):
    """0x04 is cryptoauthlib's SELFTEST_MODE_ECDSA_SIGN_VERIFY; the library reports a parse
    error (status 0x03) as a result byte of 3, so the result, not the status, tells."""
    assert ok(calls, f"atcab_selftest(0x{mode:02X})")["result"] == 0


def test_608_tempkey_survives_sixteen_vendor_aes_commands(calls, chip):
    ok(calls, "atcab_nonce_load(TempKey, 64)")
    record = ok(calls, "atcab_aes_encrypt(TempKey) x16")
    keys = bytes.fromhex(chip.inputs["aes_tempkey_keys"])
    expected = []
    for key_block in range(4):
        for n in range(4):
            key = keys[16 * key_block : 16 * key_block + 16]
            enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
            plain = bytes([16 * key_block + n]) * 16
            expected.append((enc.update(plain) + enc.finalize()).hex())
    assert record["ciphertexts"] == expected


def test_608_tempkey_survives_random_nonce_and_sign_until_vendor_verify_stored(calls):
    for name in ("atcab_write_pubkey(13)", "atcab_nonce_rand", "atcab_sign(2, TempKey value)"):
        ok(calls, name)
    assert ok(calls, "atcab_verify_stored_with_tempkey(13)")["verified"] is True


def _module_certificate(chip: Chip, module_path: str, label: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"{label}.der"
    run(
        [
            require("pkcs11-tool"),
            "--module",
            module_path,
            "--read-object",
            "--type",
            "cert",
            "--label",
            label,
            "-o",
            str(out),
        ],
        env=chip.env,
    )
    return out.read_bytes()


def _authority_key_id(der: bytes) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    return aki.key_identifier


def test_vendor_rebuilds_the_device_certificate_byte_identical(calls, chip, module_path, tmp_path):
    vendor = bytes.fromhex(ok(calls, "tng_atcacert_read_device_cert")["certificate"])
    assert vendor == _module_certificate(chip, module_path, "device", tmp_path)


def test_vendor_signer_certificate_differs_only_by_the_microchip_root_key_id(
    calls, chip, module_path, tmp_path
):
    """The vendor fills the signer's authority key ID from Microchip's real root (its key ID is
    fixed in the library); the emulated chip is issued by the emulator's own root. Everything
    else is byte-identical."""
    vendor = bytes.fromhex(ok(calls, "tng_atcacert_read_signer_cert")["certificate"])
    module = _module_certificate(chip, module_path, "signer", tmp_path)
    vendor_aki = _authority_key_id(vendor)
    assert vendor_aki == bytes.fromhex(MICROCHIP_ROOT_KEY_ID)
    assert vendor.replace(vendor_aki, _authority_key_id(module)) == module


def test_vendor_counter_increment_shows_in_its_config_read(calls):
    before = bytes.fromhex(ok(calls, "atcab_read_config_zone")["config"])
    after = bytes.fromhex(ok(calls, "atcab_read_config_zone(after counter)")["config"])
    assert before[52:60] == bytes.fromhex("FFFFFFFF00000000")  # counter 0 at 0
    assert after[52:60] == bytes.fromhex("7FFFFFFF00000000")  # ... and at 1
    assert before[:52] + before[60:] == after[:52] + after[60:]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Chip, dict[str, Any]]:
    chip = Chip(tmp_path_factory.mktemp("blank"), device="ATECC608")
    return chip, chip.vendor("provision", "fast")


def test_vendor_provisions_a_blank_chip_update_extra_before_the_config_lock(provisioned):
    chip, calls = provisioned
    ok(calls, "atcab_write_config_zone")
    ok(calls, "atcab_lock_config_zone")
    ok(calls, "atcab_lock_data_zone")
    config = bytes.fromhex(ok(calls, "atcab_read_config_zone(provisioned)")["config"])
    assert config[84] == chip.inputs["user_extra"]
    assert config[86:88] == b"\x00\x00"  # both zones locked


def test_vendor_counter_preset_before_the_config_lock_counts(provisioned):
    chip, calls = provisioned
    ok(calls, "atcab_write_config_counter(0)")
    assert ok(calls, "atcab_counter_read(0) after preset")["value"] == chip.inputs["counter_preset"]


def test_vendor_provisioned_chip_signs(provisioned):
    chip, calls = provisioned
    public = bytes.fromhex(ok(calls, "atcab_genkey(0) on the blank chip")["public_key"])
    signature = bytes.fromhex(ok(calls, "atcab_sign(0) on the provisioned chip")["signature"])
    verify_raw(public, chip.digest, signature)


# -- commands the emulator once answered with 0x0F ----------------------------------------------
def test_vendor_ecdh_with_io_encrypted_output_decrypts_to_the_clear_secret(calls):
    assert ok(calls, "atcab_ecdh_ioenc(0)")["secret"] == ok(calls, "atcab_ecdh(0)")["secret"]


def test_vendor_verify_extern_mac_checks_the_chips_mac(calls):
    assert ok(calls, "atcab_verify_extern_mac(good)")["verified"] is True
    assert ok(calls, "atcab_verify_extern_mac(bad)")["verified"] is False


def test_vendor_kdf_known_answers(calls, chip, io_decrypt):
    key, msg = bytes(range(16)) * 2, bytes(range(16))
    prf = bytes.fromhex(ok(calls, "atcab_kdf(PRF)")["out"])
    assert prf == bytes.fromhex(  # cryptoauthlib's kdf_prf_output known answer
        "1EBCBE62005AB948FDFFE1C402AABA354EC676050C9BC1AAE1FF5B1509A4A04A"
        "44254664C2A480F5B77EA2D1020C7BA4B3640C4AC793324C26D6FDDFDB1F011A"
    )
    aes = bytes.fromhex(ok(calls, "atcab_kdf(AES)")["out"])[:32]
    assert aes == bytes.fromhex("0A940BB5416EF045F1C39458C653EA5A") + bytes(16)
    hkdf = bytes.fromhex(ok(calls, "atcab_kdf(HKDF)")["out"])[:32]
    import hmac

    assert hkdf == hmac.new(key, msg, hashlib.sha256).digest()  # [U] one HMAC step
    record = ok(calls, "atcab_kdf(PRF encrypted)")
    io_key = bytes.fromhex(chip.inputs["io_key"])
    out, nonce = bytes.fromhex(record["out"]), bytes.fromhex(record["nonce"])
    assert io_decrypt(io_key, out, nonce) == prf


def test_vendor_sha_context_save_and_restore(calls):
    context = bytes.fromhex(ok(calls, "atcab_sha_read_context")["context"])
    assert len(context) == 36 and context[:4] == (64).to_bytes(4, "little")
    expected = hashlib.sha256(bytes(range(64)) + b"abc").hexdigest()
    assert ok(calls, "atcab_sha_end(after read)")["digest"] == expected
    ok(calls, "atcab_sha_write_context")
    assert ok(calls, "atcab_sha_end(after write)")["digest"] == expected


def test_vendor_mac_and_checkmac(calls, chip):
    key = bytes.fromhex(chip.inputs["io_key"])
    sn = chip.serial
    tail = bytes(11) + bytes((sn[8],)) + sn[4:8] + sn[0:2] + sn[2:4]  # mode 0x40: full SN
    expected = sha(key, CHALLENGE, bytes((0x08, 0x40, 6, 0)), tail)
    assert ok(calls, "atcab_mac(0x40, slot 6)")["mac"] == expected.hex()
    ok(calls, "atcab_checkmac(good)")
    assert calls["atcab_checkmac(bad)"]["status"] != 0


def test_vendor_sign_internal_over_a_gendig_digest(calls, chip):
    rand = bytes.fromhex(ok(calls, "atcab_nonce_rand (sign internal)")["rand"])
    tempkey = sha(rand, bytes(20), bytes((0x16, 0x00, 0x00)))
    ok(calls, "atcab_gendig(data, slot 6)")
    io_key = bytes.fromhex(chip.inputs["io_key"])
    tempkey = sha(io_key, bytes((0x15, 2, 6, 0)), chip.sn_tail(), tempkey)
    sn = chip.serial
    msg = (
        tempkey
        + bytes((0x41, 0x40, 1, 0))
        + bytes.fromhex("8F0F7C00")  # SlotConfig[6], KeyConfig[6], little-endian
        + bytes((0x26, 0, 0, sn[8]))  # TempKey flags: GenDigData, random source, KeyID 6
        + sn[4:8]
        + sn[0:2]
        + sn[2:4]
        + bytes((1, 0, 0))
    )
    public = bytes.fromhex(ok(calls, "atcab_get_pubkey(1)")["public_key"])
    signature = bytes.fromhex(ok(calls, "atcab_sign_internal(1)")["signature"])
    verify_raw(public, sha(msg), signature)


def test_vendor_encrypted_write_and_read(provisioned):
    chip, calls = provisioned
    ok(calls, "atcab_write_zone(parent key, slot 11)")
    ok(calls, "atcab_write_enc(slot 10)")
    assert ok(calls, "atcab_read_enc(slot 10)")["data"] == chip.inputs["secret_data"]


def test_vendor_encrypted_priv_write(provisioned):
    _, calls = provisioned
    ok(calls, "atcab_priv_write(slot 2)")
    public = ec.derive_private_key(0x4444, ec.SECP256R1()).public_key()
    assert ok(calls, "atcab_get_pubkey(2) after priv_write")["public_key"] == xy(public).hex()


def test_vendor_derive_key_roll(provisioned):
    chip, calls = provisioned
    rand = bytes.fromhex(ok(calls, "atcab_nonce_rand (derivekey)")["rand"])
    ok(calls, "atcab_derivekey(roll slot 12)")
    tempkey = sha(rand, bytes(20), bytes((0x16, 0x00, 0x00)))
    new_key = sha(bytes(32), bytes((0x1C, 0x00, 12, 0)), chip.sn_tail(), tempkey)
    sn = chip.serial
    tail = bytes(11) + bytes((sn[8],)) + bytes(4) + sn[0:2] + bytes(2)
    expected = sha(new_key, bytes(32), bytes((0x08, 0x00, 12, 0)), tail)
    assert ok(calls, "atcab_mac(slot 12)")["mac"] == expected.hex()


def test_vendor_subset_with_realistic_timing(tmp_path):
    """Busy NACKs and real execution times: the vendor's polling copes, results stay right."""
    chip = Chip(tmp_path)
    calls = chip.vendor("keys", "realistic")
    for name in ("atcab_init", "atcab_info", "atcab_read_config_zone", "atcab_random#1"):
        ok(calls, name)
    public = bytes.fromhex(ok(calls, "atcab_get_pubkey(0)")["public_key"])
    verify_raw(public, chip.digest, bytes.fromhex(ok(calls, "atcab_sign(0)")["signature"]))
    assert ok(calls, "atcab_verify_extern(good)")["verified"] is True
    assert ok(calls, "atcab_verify_extern(bad)")["verified"] is False
