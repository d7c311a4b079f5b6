"""Which of the module's mechanisms pass through p11-kit's RPC, measured, and the README's table.

p11-kit's RPC client forwards only the mechanisms whose parameters it knows how to marshal;
the rest are dropped from C_GetMechanismList and refused with CKR_MECHANISM_INVALID. Each of
our mechanisms is run once with a real operation by python-pkcs11, directly on the module and
through the broker (p11-kit-client.so), on chips made alike; direct mode must pass them all, and
the README's "p11-kit RPC" table must say exactly what the broker run found for the p11-kit
version installed here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cryptoki.constants import CKM

from .conftest import REPO, make_filestore, run, running_broker

pytestmark = pytest.mark.native

#: CKM name -> what the table calls it (the README's first column).
MECHANISMS = (
    "ECDSA",
    "ECDSA_SHA256",
    "EC_KEY_PAIR_GEN",
    "ECDH1_DERIVE",
    "SHA256",
    "SHA256_HMAC",
    "SHA256_HMAC_GENERAL",
    "AES_KEY_GEN",
    "AES_ECB",
    "AES_CBC",
    "AES_CBC_PAD",
    "AES_GCM",
)

HMAC_KEY = b"\x0b" * 20

SCRIPT = textwrap.dedent(
    """
    import hashlib, hmac, json, struct, sys
    import pkcs11
    from pkcs11 import Attribute, KDF, KeyType, Mechanism, MechanismFlag, ObjectClass
    from pkcs11.mechanisms import GCMParams
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(sys.argv[1])
    token = lib.get_token(token_label="00ABC")
    hmac_key = bytes.fromhex(sys.argv[2])
    peer = bytes.fromhex(sys.argv[3])
    out = {"listed": sorted(int(m) for m in token.slot.get_mechanisms())}

    def check(name, fn):
        try:
            out[name] = "ok" if fn() else "wrong result"
        except pkcs11.PKCS11Error as exc:
            out[name] = type(exc).__name__

    with token.open(rw=True, user_pin="any") as s:
        dev = s.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
        pub = s.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC, label="device")
        out["point"] = pub[Attribute.EC_POINT].hex()
        digest = hashlib.sha256(b"mechanism").digest()
        out["ecdsa_sig"] = ""
        def ecdsa():
            out["ecdsa_sig"] = dev.sign(digest, mechanism=Mechanism.ECDSA).hex()
            return True
        check("ECDSA", ecdsa)
        def ecdsa_sha256():
            out["ecdsa_sha256_sig"] = dev.sign(
                b"mechanism", mechanism=Mechanism.ECDSA_SHA256).hex()
            return True
        check("ECDSA_SHA256", ecdsa_sha256)
        def keypair():
            params = encode_named_curve_parameters("secp256r1")
            p, k = s.generate_keypair(
                KeyType.EC, store=False, mechanism=Mechanism.EC_KEY_PAIR_GEN,
                public_template={Attribute.EC_PARAMS: params})
            return len(p[Attribute.EC_POINT]) == 67
        check("EC_KEY_PAIR_GEN", keypair)
        def ecdh():
            key = dev.derive_key(
                KeyType.GENERIC_SECRET, 256, mechanism_param=(KDF.NULL, None, peer),
                template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
            out["ecdh_secret"] = key[Attribute.VALUE].hex()
            return True
        check("ECDH1_DERIVE", ecdh)
        check("SHA256", lambda: s.digest(b"abc", mechanism=Mechanism.SHA256)
              == hashlib.sha256(b"abc").digest())
        mac_key = s.get_key(ObjectClass.SECRET_KEY, label="hmac")
        want = hmac.new(hmac_key, b"Hi There", hashlib.sha256).digest()
        check("SHA256_HMAC", lambda: mac_key.sign(b"Hi There", mechanism=Mechanism.SHA256_HMAC)
              == want)
        check("SHA256_HMAC_GENERAL", lambda: mac_key.sign(
            b"Hi There", mechanism=Mechanism.SHA256_HMAC_GENERAL,
            mechanism_param=struct.pack("@L", 16)) == want[:16])
        def aes_gen():
            k = s.generate_key(KeyType.AES, 128, store=False,
                               capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
            ct = k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)
            return k.decrypt(ct, mechanism=Mechanism.AES_ECB) == bytes(16)
        check("AES_KEY_GEN", aes_gen)
        aes = s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY,
                               Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: bytes(range(16)),
                               Attribute.TOKEN: False, Attribute.ENCRYPT: True,
                               Attribute.DECRYPT: True})
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        def ref(mode, data):
            e = Cipher(algorithms.AES(bytes(range(16))), mode).encryptor()
            return e.update(data) + e.finalize()
        iv, pt = bytes(range(16, 32)), bytes(range(32))
        check("AES_ECB", lambda: aes.encrypt(pt, mechanism=Mechanism.AES_ECB)
              == ref(modes.ECB(), pt))
        check("AES_CBC", lambda: aes.encrypt(pt, mechanism=Mechanism.AES_CBC, mechanism_param=iv)
              == ref(modes.CBC(iv), pt))
        check("AES_CBC_PAD", lambda: aes.decrypt(aes.encrypt(
            pt[:20], mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv),
            mechanism=Mechanism.AES_CBC_PAD, mechanism_param=iv) == pt[:20])
        check("AES_GCM", lambda: aes.encrypt(pt, mechanism=Mechanism.AES_GCM,
                                             mechanism_param=GCMParams(iv[:12], b"aad", 128))
              == AESGCM(bytes(range(16))).encrypt(iv[:12], pt, b"aad"))
    print(json.dumps(out))
    """
)


def provision_hmac_key(filestore: Path) -> None:
    """Slot 6 of a Trust&GO chip holds an HMAC key; the slot file names it."""
    from atecc.constants import Zone
    from atecc.slotfile import EmulatorInterface, open_device

    dev = open_device(EmulatorInterface(filestore / "chip0.json"))
    try:
        dev.write_bytes(Zone.DATA, 6, 0, HMAC_KEY.ljust(32, b"\x00"))
    finally:
        dev.close()
    with open(filestore / "0.conf", "a", encoding="utf-8") as fh:
        fh.write("object = secret,hmac,6\n")


def measure(module: str, env: dict[str, str], tmp_path: Path) -> dict:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    peer = ec.generate_private_key(ec.SECP256R1())
    raw = peer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    script = tmp_path / "mechanisms.py"
    script.write_text(SCRIPT)
    proc = run([sys.executable, script, module, HMAC_KEY.hex(), raw.hex()], env=env, timeout=300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Results that came back are checked here too (signatures verify, the secret agrees).
    device = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes.fromhex(out["point"])[2:]
    )
    if out["ECDSA"] == "ok":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import (
            Prehashed,
            encode_dss_signature,
        )

        sig = bytes.fromhex(out["ecdsa_sig"])
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        device.verify(
            der, hashlib.sha256(b"mechanism").digest(), ec.ECDSA(Prehashed(hashes.SHA256()))
        )
    if out["ECDH1_DERIVE"] == "ok":
        assert out["ecdh_secret"] == peer.exchange(ec.ECDH(), device).hex()
    return out


def readme_table() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    section = text.split("<!-- p11-kit-rpc-table -->", 2)[1]
    rows = re.findall(r"^\| `CKM_(\w+)` \| ([^|]+) \|", section, re.M)
    return {name: verdict.strip() for name, verdict in rows}


def p11kit_version() -> str:
    """The version of the libp11-kit the client module uses (Debian: the libp11-kit0 package)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libp11-kit0"], capture_output=True, text=True
    ).stdout
    return out.split("-")[0] if out else "?"


def test_mechanisms_through_p11_kit_rpc_match_the_readme_table(tmp_path, client_module):
    if shutil.which("dpkg-query") is None:
        pytest.skip("the README's table is for Debian's p11-kit; no dpkg-query here")
    direct_store = make_filestore(tmp_path / "direct")
    provision_hmac_key(direct_store)
    from cryptoki._paths import module_path

    env = {**os.environ, "ATECC_PKCS11_FILESTORE": str(direct_store)}
    direct = measure(module_path(), env, tmp_path / "direct")
    assert {m: direct[m] for m in MECHANISMS} == dict.fromkeys(MECHANISMS, "ok"), direct

    brokered_store = make_filestore(tmp_path / "brokered")
    provision_hmac_key(brokered_store)
    with running_broker(brokered_store) as broker:
        brokered = measure(client_module, broker.client_env, tmp_path / "brokered")
    found = {m: "passes" if brokered[m] == "ok" else "refused" for m in MECHANISMS}
    for m in MECHANISMS:  # a refusal is the client's CKR_MECHANISM_INVALID, never a wrong answer
        assert brokered[m] in ("ok", "MechanismInvalid"), (m, brokered[m])
        listed = int(getattr(CKM, m)) in brokered["listed"]
        assert listed == (brokered[m] == "ok"), (m, brokered["listed"])
    table = readme_table()
    version = p11kit_version()
    assert f"p11-kit {version}" in (REPO / "README.md").read_text(), version
    assert table == found, f"README says {table}, p11-kit {version} measured {found}"
