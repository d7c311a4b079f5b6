"""Real PKCS#11 consumers (GnuTLS p11tool, OpenSC pkcs11-tool, OpenSSL with libp11's engine)
against the built library and an emulated Trust&GO chip, each in its own process."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import REPO, export_public_key, require, run

pytestmark = pytest.mark.native


def list_all(module_path, env, *args):
    return run([require("p11tool"), "--provider", module_path, "--list-all", *args], env=env)


def test_p11tool_lists_the_four_trust_and_go_objects(module_path, token_env, chip_serial):
    out = list_all(module_path, token_env).stdout
    objects = out.split("Object ")[1:]
    assert len(objects) == 4, out
    kinds = sorted(re.search(r"Type: (.*)", o).group(1) for o in objects)
    assert kinds.count("Private key (EC/ECDSA-SECP256R1)") == 1, kinds
    assert kinds.count("Public key (EC/ECDSA-SECP256R1)") == 1, kinds
    assert sum(k.startswith("X.509 Certificate (EC/ECDSA-SECP256R1") for k in kinds) == 2, kinds
    labels = re.findall(r"Label: (.*)", out)
    assert sorted(labels) == ["device", "device", "device", "signer"], labels
    for url in re.findall(r"URL: (.*)", out):
        assert "manufacturer=Microchip%20Technology%20Inc" in url, url
        assert "token=00ABC" in url, url
        # libcryptoauth.so's token serial: chip serial bytes 1-8 (hex digits 2-17)
        assert f"SERIAL={chip_serial[2:18]};" in url.upper(), url
    # Key and certificate of the device share one ID (SHA-1 of the uncompressed point).
    device_ids = {re.search(r"ID: (.*)", o).group(1) for o in objects if "Label: device" in o}
    assert len(device_ids) == 1, device_ids


def test_pkcs11_tool_self_test_passes(module_path, token_env):
    proc = run(
        [require("pkcs11-tool"), "--module", module_path, "--test"], env=token_env, timeout=120
    )
    assert "No errors" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_pkcs11_tool_shows_library_slot_and_token(module_path, token_env, chip_serial):
    out = run([require("pkcs11-tool"), "--module", module_path, "-I", "-L"], env=token_env).stdout
    assert "Microchip Technology Inc" in out
    assert re.search(r"token label\s*:\s*00ABC", out), out
    assert re.search(r"token model\s*:\s*ATECC608[AB]", out), out
    assert re.search(rf"serial num\s*:\s*{chip_serial[2:18]}\s*$", out, re.M | re.I), out


def test_login_on_a_token_without_pin_asks_for_no_pin(module_path, token_env):
    """Without ``user_pin = required`` logging in needs no PIN, and the token says so
    (CKF_PROTECTED_AUTHENTICATION_PATH): pkcs11-tool and p11tool log in without prompting for a
    PIN that does not exist (before, both prompted and, without a terminal, failed)."""
    tool = run(
        [require("pkcs11-tool"), "--module", module_path, "--login", "-O", "--type", "privkey"],
        env=token_env,
        input="",
    )
    assert "label:      device" in tool.stdout, tool.stdout + tool.stderr
    assert "PIN" not in tool.stdout + tool.stderr
    gnutls = run(
        [
            require("p11tool"),
            "--provider",
            module_path,
            "--login",
            "--list-privkeys",
            "pkcs11:token=00ABC",
        ],
        env=token_env,
        input="",
    )
    assert "object=device;type=private" in gnutls.stdout, gnutls.stdout + gnutls.stderr
    assert "PIN" not in gnutls.stdout + gnutls.stderr


def _public_key(module_path, env, tmp_path, label="device"):
    return serialization.load_pem_public_key(export_public_key(module_path, env, label=label))


@pytest.mark.parametrize("mechanism", ["ECDSA", "ECDSA-SHA256"])
def test_pkcs11_tool_signs_and_openssl_verifies(module_path, token_env, tmp_path, mechanism):
    data = tmp_path / "data"
    message = b"message signed by the ATECC608 emulator\n" * 3
    data.write_bytes(hashlib.sha256(message).digest() if mechanism == "ECDSA" else message)
    sig = tmp_path / "sig"
    run(
        [
            require("pkcs11-tool"),
            "--module",
            module_path,
            "--sign",
            "-m",
            mechanism,
            "--label",
            "device",
            "--input-file",
            str(data),
            "--output-file",
            str(sig),
            "--signature-format",
            "openssl",
        ],
        env=token_env,
    )
    pub = _public_key(module_path, token_env, tmp_path)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    if mechanism == "ECDSA":
        cmd = [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(pem),
            "-in",
            str(data),
            "-sigfile",
            str(sig),
        ]
    else:
        cmd = ["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(sig), str(data)]
    out = run(cmd).stdout
    assert "Verified" in out or "Successfully" in out, out
    # A tampered message must fail: the check above can fail.
    data.write_bytes(b"x" + data.read_bytes()[1:])
    assert subprocess.run(cmd, capture_output=True).returncode != 0


def test_generated_key_pair_is_found_and_used_by_another_process(module_path, token_env, tmp_path):
    tool = require("pkcs11-tool")
    run(
        [
            tool,
            "--module",
            module_path,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "generated",
            "--id",
            "4242",
            # pkcs11-tool asks for a private (CKA_PRIVATE) key, which needs a login, as on
            # SoftHSM2; without ``user_pin = required`` any PIN logs in.
            "--login",
            "--pin",
            "0000",
        ],
        env=token_env,
    )
    listing = run([tool, "--module", module_path, "-O"], env=token_env).stdout
    assert "generated" in listing, listing
    data = tmp_path / "digest"
    data.write_bytes(hashlib.sha256(b"second process").digest())
    sig = tmp_path / "sig"
    run(
        [
            tool,
            "--module",
            module_path,
            "--sign",
            "-m",
            "ECDSA",
            "--id",
            "4242",
            "--login",
            "--pin",
            "0000",
            "--input-file",
            str(data),
            "--output-file",
            str(sig),
        ],
        env=token_env,
    )
    raw = sig.read_bytes()
    assert len(raw) == 64
    pub = _public_key(module_path, token_env, tmp_path, label="generated")
    pub.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        data.read_bytes(),
        ec.ECDSA(Prehashed(hashes.SHA256())),
    )
    # The new key is not the device key.
    device = _public_key(module_path, token_env, tmp_path, label="device")
    assert device.public_numbers() != pub.public_numbers()


def test_openssl_engine_csr_verifies(module_path, token_env, tmp_path):
    conf = tmp_path / "engine.cnf"
    engine = run(["bash", str(REPO / "scripts" / "find-pkcs11-engine.sh")]).stdout.strip()
    conf.write_text(
        (REPO / "fleet" / "openssl-pkcs11-engine.cnf.in")
        .read_text()
        .replace("@ENGINE_PATH@", engine)
        .replace("@MODULE_PATH@", module_path)
    )
    env = dict(token_env, OPENSSL_CONF=str(conf))
    csr = tmp_path / "test.csr"
    run(
        [
            "openssl",
            "req",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            "pkcs11:token=00ABC;object=device;type=private",
            "-new",
            "-subj",
            "/CN=test",
            "-out",
            str(csr),
        ],
        env=env,
    )
    assert (
        "verify OK"
        in run(["openssl", "req", "-in", str(csr), "-noout", "-verify"]).stderr
        + run(["openssl", "req", "-in", str(csr), "-noout", "-verify"]).stdout
    )
    request = x509.load_pem_x509_csr(csr.read_bytes())
    device = _public_key(module_path, token_env, tmp_path)
    assert request.public_key().public_numbers() == device.public_numbers()


def test_mutual_tls_demo_completes(module_path, token_env, tmp_path):
    """The README's main job on a fresh filestore: the handshake completes and the server
    reports the device certificate's subject."""
    proc = run(
        ["bash", str(REPO / "scripts" / "mtls-demo.sh"), str(tmp_path / "work"), module_path],
        env=token_env,
        timeout=120,
    )
    assert "mtls-demo: OK" in proc.stdout, proc.stdout + proc.stderr
    assert "server saw: subject=CN = KE CLIENT" in proc.stdout, proc.stdout
