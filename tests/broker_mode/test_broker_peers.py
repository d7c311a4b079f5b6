"""Real PKCS#11 consumers through the broker: p11-kit's client module, never our library.

Every client here loads p11-kit-client.so (or finds the broker through a p11-kit `remote:` module
file) with a filestore variable that points nowhere, so whatever it sees of the chip came over
the broker's socket.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import REPO, require, run

pytestmark = pytest.mark.native


def public_key(client_module, env, label="device"):
    out = run(
        [
            require("p11tool"),
            "--provider",
            client_module,
            "--export",
            f"pkcs11:token=00ABC;object={label};type=public",
        ],
        env=env,
    ).stdout
    pem = out[out.index("-----BEGIN PUBLIC KEY-----") :]
    return serialization.load_pem_public_key(pem.encode())


def sign_digest(client_module, env, tmp_path, digest: bytes, *select: str) -> bytes:
    """Sign with pkcs11-tool; ``select``: its key options (default ``--label device``).

    A generated key is selected by ``--id``: pkcs11-tool 0.23 picks the signing key by ID only
    and, given just ``--label``, signs with the first private key (in direct mode too)."""
    data, sig = tmp_path / "digest", tmp_path / "sig"
    data.write_bytes(digest)
    run(
        [
            require("pkcs11-tool"),
            "--module",
            client_module,
            "--sign",
            "-m",
            "ECDSA",
            *(select or ("--label", "device")),
            "--input-file",
            data,
            "--output-file",
            sig,
        ],
        env=env,
    )
    raw = sig.read_bytes()
    assert len(raw) == 64, raw.hex()
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def verifies(key, digest: bytes, der: bytes) -> bool:
    try:
        key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except Exception:
        return False
    return True


def test_pkcs11_tool_lists_the_token_through_the_broker(broker, client_module):
    out = run([require("pkcs11-tool"), "--module", client_module, "-L"], env=broker.client_env)
    assert re.search(r"token label\s*:\s*00ABC", out.stdout), out.stdout
    assert "Microchip Technology Inc" in out.stdout
    # Without the broker the same client sees nothing: the token really came over the socket.
    broker.stop()
    gone = run(
        [require("pkcs11-tool"), "--module", client_module, "-L"],
        env=broker.client_env,
        check=False,
    )
    assert "00ABC" not in gone.stdout


def test_p11tool_lists_all_objects_through_the_client_module(broker, client_module):
    out = run(
        [require("p11tool"), "--provider", client_module, "--list-all", "pkcs11:token=00ABC"],
        env=broker.client_env,
    ).stdout
    kinds = sorted(re.findall(r"Type: (.*)", out))
    assert kinds.count("Private key (EC/ECDSA-SECP256R1)") == 1, out
    assert kinds.count("Public key (EC/ECDSA-SECP256R1)") == 1, out
    assert sum(k.startswith("X.509 Certificate") for k in kinds) == 2, out


def test_p11tool_finds_the_broker_through_a_remote_module_file(broker, tmp_path):
    # As root p11-kit reads only /etc/pkcs11/modules: a unique name, removed whatever happens.
    name = f"atecc608-broker-test-{uuid.uuid4().hex[:8]}"
    script = REPO / "scripts" / "install-p11-kit-module.sh"
    env = dict(broker.client_env)
    env.pop("P11_KIT_SERVER_ADDRESS")
    if os.getuid() != 0:
        env["HOME"] = str(tmp_path)
        env.pop("XDG_CONFIG_HOME", None)
    out = run(["bash", script, "--broker", "--socket", broker.socket, "--name", name], env=env)
    try:
        assert f"remote: unix:path={broker.socket}" in open(out.stdout.split()[1]).read()
        listing = run([require("p11tool"), "--list-tokens"], env=env).stdout
        assert "Label: 00ABC" in listing, listing
        assert "Manufacturer: Microchip Technology Inc" in listing, listing
    finally:
        run(["bash", script, "--remove", "--name", name], env=env)


def test_pkcs11_tool_signature_through_the_broker_verifies(broker, client_module, tmp_path):
    key = public_key(client_module, broker.client_env)
    digest = hashlib.sha256(b"signed through the broker").digest()
    der = sign_digest(client_module, broker.client_env, tmp_path, digest)
    assert verifies(key, digest, der)
    assert not verifies(key, hashlib.sha256(b"another message").digest(), der)


def test_pkcs11_tool_generates_a_key_pair_through_the_broker(broker, client_module, tmp_path):
    tool = require("pkcs11-tool")
    run(
        [
            tool,
            "--module",
            client_module,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "brokered",
            "--id",
            "4243",
            # The generated private key is CKA_PRIVATE: a login (any PIN without user_pin).
            "--login",
            "--pin",
            "0000",
        ],
        env=broker.client_env,
    )
    listing = run([tool, "--module", client_module, "-O"], env=broker.client_env).stdout
    assert "brokered" in listing, listing
    digest = hashlib.sha256(b"new key, new process").digest()
    der = sign_digest(
        client_module, broker.client_env, tmp_path, digest, "--id", "4243", "--login", "--pin", "0"
    )
    key = public_key(client_module, broker.client_env, label="brokered")
    assert verifies(key, digest, der)
    assert not verifies(public_key(client_module, broker.client_env), digest, der)


def test_openssl_engine_csr_and_mutual_tls_through_the_broker(broker, client_module, tmp_path):
    """scripts/mtls-demo.sh with MODULE_PATH = p11-kit's client: CSR signed by the chip's key,
    a certificate from a local CA, and an `s_client` handshake the server verifies."""
    proc = run(
        ["bash", REPO / "scripts" / "mtls-demo.sh", tmp_path / "work", client_module],
        env=broker.client_env,
        timeout=120,
    )
    assert "mtls-demo: OK" in proc.stdout, proc.stdout + proc.stderr
    assert "server saw: subject=CN = KE CLIENT" in proc.stdout, proc.stdout
    csr_key = subprocess.run(
        ["openssl", "req", "-in", tmp_path / "work" / "client_csr.csr", "-noout", "-pubkey"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    device = public_key(client_module, broker.client_env)
    assert serialization.load_pem_public_key(csr_key.encode()) == device
