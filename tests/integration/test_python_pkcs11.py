"""python-pkcs11 loads the built library in its own process (the library reuses the host's
interpreter, so it must not share the test runner's): sign, verify, find by label and by ID."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from .conftest import run

pytestmark = pytest.mark.native

CLIENT = textwrap.dedent(
    """
    import hashlib, json, sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    lib = pkcs11.lib(sys.argv[1])
    token = lib.get_token(token_label="00ABC")
    result = {"manufacturer": token.manufacturer_id, "model": token.model}
    with token.open() as session:
        priv = session.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC, label="device")
        pub = session.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC, label="device")
        key_id = priv[Attribute.ID]
        by_id = list(session.get_objects({Attribute.ID: key_id}))
        result["objects_with_key_id"] = sorted(int(o.object_class) for o in by_id)
        digest = hashlib.sha256(b"python-pkcs11").digest()
        sig = priv.sign(digest, mechanism=Mechanism.ECDSA)
        result["sig_len"] = len(sig)
        result["verifies"] = pub.verify(digest, sig, mechanism=Mechanism.ECDSA)
        result["tampered_verifies"] = pub.verify(b"\\0" + digest[1:], sig,
                                                 mechanism=Mechanism.ECDSA)
        sig2 = priv.sign(b"whole message", mechanism=Mechanism.ECDSA_SHA256)
        result["sha256_verifies"] = pub.verify(b"whole message", sig2,
                                               mechanism=Mechanism.ECDSA_SHA256)
        result["random_len"] = len(session.generate_random(2048))  # python-pkcs11 counts bits
        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        result["cert_labels"] = sorted(c[Attribute.LABEL] for c in certs)
    print(json.dumps(result))
    """
)


def test_python_pkcs11_signs_verifies_and_finds(module_path, token_env, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    out = run([sys.executable, str(script), module_path], env=token_env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["manufacturer"] == "Microchip Technology Inc"
    assert result["model"] in ("ATECC608A", "ATECC608B")
    # private key, public key and certificate share the ID
    assert result["objects_with_key_id"] == [1, 2, 3]
    assert result["sig_len"] == 64
    assert result["verifies"] is True
    assert result["tampered_verifies"] is False
    assert result["sha256_verifies"] is True
    assert result["random_len"] == 256
    assert result["cert_labels"] == ["device", "signer"]
