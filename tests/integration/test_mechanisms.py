"""Every advertised mechanism through the BUILT library, driven by python-pkcs11 in its own
process (the library reuses the host interpreter, so it is never loaded into the test runner),
compared with hashlib / hmac / `cryptography` on standard vectors; objects made in one process
used and destroyed from another; and the spec's codes for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .conftest import run

pytestmark = pytest.mark.native

PRELUDE = textwrap.dedent(
    """
    import hashlib, json, struct, sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key

    lib = pkcs11.lib(sys.argv[1])
    token = lib.get_token(token_label="00ABC")
    args = json.loads(sys.argv[2])
    out = {}

    def code(fn):
        try:
            fn()
        except pkcs11.PKCS11Error as exc:
            return type(exc).__name__
        return "ok"
    """
)


def client(module_path, env, tmp_path: Path, body: str, args: dict) -> dict:
    script = tmp_path / f"client_{abs(hash(body))}.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n")
    proc = run([sys.executable, str(script), module_path, json.dumps(args)], env=env, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


NIST_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
NIST_IV = "000102030405060708090a0b0c0d0e0f"
NIST_PT = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
NIST_ECB = (
    "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf"
    "43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4"
)
NIST_CBC = (
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)
GCM_KEY = "feffe9928665731c6d6a8f9467308308"
GCM_IV = "cafebabefacedbaddecaf888"
GCM_PT = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_AAD = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
GCM_CT_TAG = (
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
    "5bc94fbc3221a5db94fae95ae7121a47"
)

AES_BODY = """
with token.open(rw=True, user_pin="any") as s:  # private keys need a login
    def imp(hexkey, label):
        return s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                Attribute.KEY_TYPE: KeyType.AES,
                                Attribute.VALUE: bytes.fromhex(hexkey),
                                Attribute.LABEL: label, Attribute.TOKEN: False,
                                Attribute.ENCRYPT: True, Attribute.DECRYPT: True})
    k = imp(args["key"], "nist")
    pt = bytes.fromhex(args["pt"])
    iv = bytes.fromhex(args["iv"])
    out["ecb"] = k.encrypt(pt, mechanism=Mechanism.AES_ECB).hex()
    out["ecb_back"] = k.decrypt(bytes.fromhex(out["ecb"]), mechanism=Mechanism.AES_ECB).hex()
    out["cbc"] = k.encrypt(pt, mechanism=Mechanism.AES_CBC, mechanism_param=iv).hex()
    out["cbc_parts"] = b"".join(k.encrypt([pt[:7], pt[7:40], pt[40:]],
                                           mechanism=Mechanism.AES_CBC,
                                           mechanism_param=iv)).hex()
    out["cbc_pad"] = k.encrypt(pt[:37], mechanism=Mechanism.AES_CBC_PAD,
                               mechanism_param=iv).hex()
    out["cbc_pad_back"] = k.decrypt(bytes.fromhex(out["cbc_pad"]),
                                    mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv).hex()
    g = imp(args["gcm_key"], "gcm")
    from pkcs11.mechanisms import GCMParams
    params = GCMParams(bytes.fromhex(args["gcm_iv"]), bytes.fromhex(args["gcm_aad"]), 128)
    out["gcm"] = g.encrypt(bytes.fromhex(args["gcm_pt"]), mechanism=Mechanism.AES_GCM,
                           mechanism_param=params).hex()
    out["gcm_back"] = g.decrypt(bytes.fromhex(out["gcm"]), mechanism=Mechanism.AES_GCM,
                                mechanism_param=params).hex()
    # bad input
    out["ecb_len"] = code(lambda: k.encrypt(pt[:15], mechanism=Mechanism.AES_ECB))
    out["cbc_iv"] = code(lambda: k.encrypt(pt, mechanism=Mechanism.AES_CBC,
                                           mechanism_param=iv[:8]))
    out["cbc_dec_len"] = code(lambda: k.decrypt(pt[:17], mechanism=Mechanism.AES_CBC,
                                                mechanism_param=iv))
    out["ctr"] = code(lambda: k.encrypt(pt, mechanism=Mechanism.AES_CTR,
                                        mechanism_param=iv))
    dev = s.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
    out["ecb_with_ec_key"] = code(lambda: dev.sign(pt, mechanism=Mechanism.AES_ECB))
    out["gcm_tag0"] = code(lambda: g.encrypt(pt, mechanism=Mechanism.AES_GCM,
                                             mechanism_param=GCMParams(iv[:12], b"", 0)))
    out["gcm_tag136"] = code(lambda: g.encrypt(pt, mechanism=Mechanism.AES_GCM,
                                               mechanism_param=GCMParams(iv[:12], b"", 136)))
    out["gcm_tampered"] = code(lambda: g.decrypt(b"\\0" + bytes.fromhex(out["gcm"])[1:],
                                                 mechanism=Mechanism.AES_GCM,
                                                 mechanism_param=params))
    # Trust&GO slot 9 holds two AES keys (key blocks 0 and 2): free one for C_GenerateKey
    g.destroy()
    # python-pkcs11's default AES capabilities include sign/wrap, which no chip mechanism
    # offers for an AES key: those are refused (CKR_TEMPLATE_INCONSISTENT), so ask for what works
    from pkcs11 import MechanismFlag
    out["default_caps"] = code(lambda: s.generate_key(KeyType.AES, 128, store=False))
    gen = s.generate_key(KeyType.AES, 128, label="gen", store=False,
                         capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
    out["gen_roundtrip"] = gen.decrypt(gen.encrypt(pt, mechanism=Mechanism.AES_ECB),
                                       mechanism=Mechanism.AES_ECB) == pt
    out["gen_local"] = gen[Attribute.LOCAL]
"""


def test_aes_nist_vectors_through_the_library(module_path, token_env, tmp_path):
    out = client(
        module_path,
        token_env,
        tmp_path,
        AES_BODY,
        {
            "key": NIST_KEY,
            "pt": NIST_PT,
            "iv": NIST_IV,
            "gcm_key": GCM_KEY,
            "gcm_iv": GCM_IV,
            "gcm_aad": GCM_AAD,
            "gcm_pt": GCM_PT,
        },
    )
    assert out["ecb"] == NIST_ECB and out["ecb_back"] == NIST_PT
    assert out["cbc"] == NIST_CBC and out["cbc_parts"] == NIST_CBC
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    pt37 = bytes.fromhex(NIST_PT)[:37]
    enc = Cipher(
        algorithms.AES(bytes.fromhex(NIST_KEY)), modes.CBC(bytes.fromhex(NIST_IV))
    ).encryptor()
    assert (
        out["cbc_pad"]
        == (enc.update(padder.update(pt37) + padder.finalize()) + enc.finalize()).hex()
    )
    assert out["cbc_pad_back"] == pt37.hex()
    assert out["gcm"] == GCM_CT_TAG
    assert (
        out["gcm"]
        == AESGCM(bytes.fromhex(GCM_KEY))
        .encrypt(bytes.fromhex(GCM_IV), bytes.fromhex(GCM_PT), bytes.fromhex(GCM_AAD))
        .hex()
    )
    assert out["gcm_back"] == GCM_PT
    assert out["gen_roundtrip"] is True and out["gen_local"] is True
    assert out["default_caps"] == "TemplateInconsistent"
    assert out["ecb_len"] == "DataLenRange"
    assert out["cbc_iv"] == "MechanismParamInvalid"
    assert out["cbc_dec_len"] == "EncryptedDataLenRange"
    assert out["ctr"] == "MechanismInvalid"
    assert out["ecb_with_ec_key"] in ("KeyTypeInconsistent", "MechanismInvalid")
    assert out["gcm_tag0"] == "MechanismParamInvalid"
    assert out["gcm_tag136"] == "MechanismParamInvalid"
    assert out["gcm_tampered"] == "EncryptedDataInvalid"


DIGEST_BODY = """
with token.open() as s:
    for name in ("empty", "abc", "big"):
        # big: limits.MAX_DATA_PER_CALL (1 MiB), the most one C_Digest takes
        data = b"" if name == "empty" else b"abc" if name == "abc" else bytes(
            range(256)) * 4096
        out[name] = s.digest(data, mechanism=Mechanism.SHA256).hex()
        out[name + "_parts"] = s.digest([data[i:i + 65536] for i in range(0, len(data), 65536)]
                                        or [b""], mechanism=Mechanism.SHA256).hex()
"""


def test_sha256_through_the_library(module_path, token_env, tmp_path):
    out = client(module_path, token_env, tmp_path, DIGEST_BODY, {})
    big = bytes(range(256)) * 4096
    for name, data in (("empty", b""), ("abc", b"abc"), ("big", big)):
        assert out[name] == hashlib.sha256(data).hexdigest()
        assert out[name + "_parts"] == hashlib.sha256(data).hexdigest()
    assert out["abc"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


HMAC_BODY = """
with token.open() as s:
    k = s.get_key(ObjectClass.SECRET_KEY, label="hmac")
    data = bytes.fromhex(args["data"])
    out["mac"] = k.sign(data, mechanism=Mechanism.SHA256_HMAC).hex()
    out["mac_parts"] = k.sign([data[:5], data[5:]], mechanism=Mechanism.SHA256_HMAC).hex()
    out["general"] = k.sign(data, mechanism=Mechanism.SHA256_HMAC_GENERAL,
                            mechanism_param=struct.pack("@L", 16)).hex()
    out["verify"] = k.verify(data, bytes.fromhex(out["mac"]), mechanism=Mechanism.SHA256_HMAC)
    out["verify_bad"] = k.verify(data + b"x", bytes.fromhex(out["mac"]),
                                 mechanism=Mechanism.SHA256_HMAC)
    out["general_bad"] = code(lambda: k.sign(data, mechanism=Mechanism.SHA256_HMAC_GENERAL,
                                             mechanism_param=struct.pack("@L", 33)))
"""


@pytest.mark.parametrize(
    "key,data",
    [
        (b"\x0b" * 20, b"Hi There"),  # RFC 4231 test case 1
        (b"Jefe", b"what do ya want for nothing?"),  # test case 2
        (b"\xaa" * 20, b"\xdd" * 50),  # test case 3
    ],
)
def test_hmac_rfc4231_through_the_library(module_path, token_env, tmp_path, key, data):
    import hmac

    from atecc.constants import Zone
    from atecc.slotfile import EmulatorInterface, open_device

    filestore = Path(token_env["ATECC_PKCS11_FILESTORE"])
    dev = open_device(EmulatorInterface(filestore / "chip0.json"))
    try:
        dev.write_bytes(Zone.DATA, 6, 0, key.ljust(32, b"\x00"))  # provisioning, clear write
    finally:
        dev.close()
    with open(filestore / "0.conf", "a", encoding="utf-8") as fh:
        fh.write("object = secret,hmac,6\n")
    out = client(module_path, token_env, tmp_path, HMAC_BODY, {"data": data.hex()})
    expect = hmac.new(key, data, hashlib.sha256).hexdigest()
    assert out["mac"] == expect and out["mac_parts"] == expect
    assert out["general"] == expect[:32]
    assert out["verify"] is True and out["verify_bad"] is False
    assert out["general_bad"] == "MechanismParamInvalid"


ECDH_BODY = """
from pkcs11 import KDF
with token.open(user_pin="any") as s:  # python-pkcs11 derives private keys: a login (any PIN)
    dev = s.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
    pub = s.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC, label="device")
    out["point"] = pub[Attribute.EC_POINT].hex()
    peer = bytes.fromhex(args["peer"])
    for name, data in (("raw", peer), ("der", b"\\x04\\x41" + peer)):
        key = dev.derive_key(KeyType.GENERIC_SECRET, 256,
                             mechanism_param=(KDF.NULL, None, data),
                             template={Attribute.SENSITIVE: False,
                                       Attribute.EXTRACTABLE: True})
        out[name] = key[Attribute.VALUE].hex()
    hidden = dev.derive_key(KeyType.GENERIC_SECRET, 256, mechanism_param=(KDF.NULL, None, peer))
    out["hidden"] = code(lambda: hidden[Attribute.VALUE])
    out["kdf"] = code(lambda: dev.derive_key(KeyType.GENERIC_SECRET, 256,
                                             mechanism_param=(KDF.SHA256, None, peer)))
    bad = peer[:-1] + bytes([peer[-1] ^ 1])
    out["off_curve"] = code(lambda: dev.derive_key(KeyType.GENERIC_SECRET, 256,
                                                   mechanism_param=(KDF.NULL, None, bad)))
"""


def test_ecdh_through_the_library(module_path, token_env, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    peer = ec.generate_private_key(ec.SECP256R1())
    raw = peer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    out = client(module_path, token_env, tmp_path, ECDH_BODY, {"peer": raw.hex()})
    device = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes.fromhex(out["point"])[2:]
    )
    expect = peer.exchange(ec.ECDH(), device).hex()
    assert out["raw"] == expect and out["der"] == expect
    assert out["hidden"] == "AttributeSensitive"
    assert out["kdf"] == "MechanismParamInvalid"
    assert out["off_curve"] == "MechanismParamInvalid"


CREATE_BODY = """
with token.open(rw=True) as s:
    s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                     Attribute.LABEL: "shared", Attribute.APPLICATION: "tests",
                     Attribute.VALUE: b"from process one"})
    k = s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                         Attribute.VALUE: bytes(range(16)), Attribute.TOKEN: True,
                         Attribute.LABEL: "shared-aes", Attribute.ENCRYPT: True,
                         Attribute.DECRYPT: True})
    out["ct"] = k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB).hex()
    dev = s.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
    dev[Attribute.LABEL] = "renamed"
    out["template_incomplete"] = code(lambda: s.create_object(
        {Attribute.CLASS: ObjectClass.CERTIFICATE}))
"""

USE_BODY = """
with token.open(rw=True) as s:
    d = s.get_objects({Attribute.LABEL: "shared"}).__next__()
    out["value"] = d[Attribute.VALUE].decode()
    k = s.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label="shared-aes")
    out["ct"] = k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB).hex()
    out["renamed"] = len(list(s.get_objects({Attribute.LABEL: "renamed",
                                             Attribute.CLASS: ObjectClass.PRIVATE_KEY})))
    d.destroy()
    k.destroy()
    out["left"] = len(list(s.get_objects({Attribute.LABEL: "shared"})))
"""


def test_objects_across_processes(module_path, token_env, tmp_path):
    first = client(module_path, token_env, tmp_path, CREATE_BODY, {})
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(bytes(range(16))), modes.ECB()).encryptor()
    assert first["ct"] == (enc.update(bytes(16)) + enc.finalize()).hex()
    assert first["template_incomplete"] == "TemplateIncomplete"
    second = client(module_path, token_env, tmp_path, USE_BODY, {})
    assert second["value"] == "from process one"
    assert second["ct"] == first["ct"]
    assert second["renamed"] == 1 and second["left"] == 0
    meta = json.loads((Path(token_env["ATECC_PKCS11_FILESTORE"]) / "0.pkcs11.json").read_text())
    assert not meta.get("secret_keys") and not meta.get("objects")
    assert os.stat(Path(token_env["ATECC_PKCS11_FILESTORE"]) / "0.pkcs11.json").st_mode & 0o077 == 0
