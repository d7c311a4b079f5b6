"""pkcs11-tool and p11tool against the built library: ECDH (--derive, compared with OpenSSL's
``pkeyutl -derive``), --hash, --write-object / --delete-object, p11tool --write, and the optional
user PIN (--init-token, --init-pin, --login, a wrong PIN refused and counted)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from .conftest import export_public_key, require, run

pytestmark = pytest.mark.native


def tool(module_path, env, *args, check=True, input=None):
    return run(
        [require("pkcs11-tool"), "--module", module_path, *map(str, args)],
        env=env,
        check=check,
        input=input,
    )


def device_id(module_path, env) -> str:
    out = tool(module_path, env, "--list-objects", "--type", "privkey").stdout
    return re.search(r"ID:\s+([0-9a-f]+)", out).group(1)


def test_mechanism_list(module_path, token_env):
    out = tool(module_path, token_env, "--list-mechanisms").stdout
    for name in (
        "ECDH1-DERIVE",
        "SHA256,",
        "SHA256-HMAC",
        "AES-KEY-GEN",
        "AES-ECB",
        "AES-CBC,",
        "AES-CBC-PAD",
        "AES-GCM",
        "ECDSA-SHA256",
    ):
        assert name in out, (name, out)
    assert "AES-CTR" not in out and "RSA" not in out


def test_derive_matches_openssl(module_path, token_env, tmp_path):
    openssl = require("openssl")
    peer = tmp_path / "peer.pem"
    run([openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", peer])
    run([openssl, "ec", "-in", peer, "-pubout", "-outform", "DER", "-out", tmp_path / "peer.der"])
    key_id = device_id(module_path, token_env)
    tool(
        module_path,
        token_env,
        "--derive",
        "-m",
        "ECDH1-DERIVE",
        "--id",
        key_id,
        "-i",
        tmp_path / "peer.der",
        "-o",
        tmp_path / "secret.bin",
    )
    (tmp_path / "dev.pem").write_bytes(export_public_key(module_path, token_env, key_id=key_id))
    run(
        [
            openssl,
            "pkeyutl",
            "-derive",
            "-inkey",
            peer,
            "-peerkey",
            tmp_path / "dev.pem",
            "-out",
            tmp_path / "openssl.bin",
        ]
    )
    secret = (tmp_path / "secret.bin").read_bytes()
    assert len(secret) == 32
    assert secret == (tmp_path / "openssl.bin").read_bytes()


@pytest.mark.parametrize("size", [0, 3, 4096, 2 * 1024 * 1024 + 5])
def test_hash_sha256(module_path, token_env, tmp_path, size):
    data = b"abc" if size == 3 else os.urandom(size)
    (tmp_path / "in").write_bytes(data)
    tool(
        module_path,
        token_env,
        "--hash",
        "-m",
        "SHA256",
        "-i",
        tmp_path / "in",
        "-o",
        tmp_path / "out",
    )
    assert (tmp_path / "out").read_bytes() == hashlib.sha256(data).digest()


def _make_cert(tmp_path, key_pem=None):
    openssl = require("openssl")
    key = key_pem or tmp_path / "k.pem"
    if key_pem is None:
        run([openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
    run(
        [
            openssl,
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-subj",
            "/CN=written",
            "-days",
            "2",
            "-outform",
            "DER",
            "-out",
            tmp_path / "cert.der",
        ]
    )
    run(
        [
            openssl,
            "x509",
            "-inform",
            "DER",
            "-in",
            tmp_path / "cert.der",
            "-out",
            tmp_path / "cert.pem",
        ]
    )
    return tmp_path / "cert.der"


def test_write_and_delete_objects(module_path, token_env, tmp_path):
    cert = _make_cert(tmp_path)
    tool(
        module_path,
        token_env,
        "--write-object",
        cert,
        "--type",
        "cert",
        "--id",
        "a1b2",
        "--label",
        "written",
    )
    (tmp_path / "blob").write_bytes(b"some data")
    tool(
        module_path,
        token_env,
        "--write-object",
        tmp_path / "blob",
        "--type",
        "data",
        "--label",
        "blob",
        "--application-label",
        "myapp",
    )
    # another process sees, reads and deletes them
    listing = tool(module_path, token_env, "--list-objects").stdout
    assert "written" in listing and "blob" in listing and "myapp" in listing
    tool(
        module_path,
        token_env,
        "--read-object",
        "--type",
        "cert",
        "--id",
        "a1b2",
        "-o",
        tmp_path / "back.der",
    )
    assert (tmp_path / "back.der").read_bytes() == cert.read_bytes()
    tool(
        module_path,
        token_env,
        "--read-object",
        "--type",
        "data",
        "--label",
        "blob",
        "-o",
        tmp_path / "blob.back",
    )
    assert (tmp_path / "blob.back").read_bytes() == b"some data"
    tool(module_path, token_env, "--delete-object", "--type", "cert", "--id", "a1b2")
    tool(module_path, token_env, "--delete-object", "--type", "data", "--label", "blob")
    listing = tool(module_path, token_env, "--list-objects").stdout
    assert "written" not in listing and "blob" not in listing
    # the Trust&GO objects cannot be deleted
    proc = tool(
        module_path,
        token_env,
        "--delete-object",
        "--type",
        "cert",
        "--label",
        "device",
        check=False,
    )
    assert proc.returncode != 0
    assert "device" in tool(module_path, token_env, "--list-objects", "--type", "cert").stdout


def test_p11tool_write_and_issued_cert_next_to_key(module_path, token_env, tmp_path):
    p11tool = require("p11tool")
    openssl = require("openssl")
    _make_cert(tmp_path)
    url = run(
        [p11tool, "--provider", module_path, "--list-token-urls"], env=token_env
    ).stdout.split()[0]
    run(
        [
            p11tool,
            "--provider",
            module_path,
            "--login",
            "--set-pin",
            "1234",
            "--write",
            "--load-certificate",
            tmp_path / "cert.pem",
            "--label",
            "viap11tool",
            url,
        ],
        env=token_env,
    )
    certs = run([p11tool, "--provider", module_path, "--list-all-certs", url], env=token_env).stdout
    assert "viap11tool" in certs
    # a certificate issued for the device key, written with the key's CKA_ID
    key_id = device_id(module_path, token_env)
    (tmp_path / "dev.pem").write_bytes(export_public_key(module_path, token_env, key_id=key_id))
    run(
        [
            openssl,
            "x509",
            "-new",
            "-subj",
            "/CN=issued-device",
            "-key",
            tmp_path / "k.pem",
            "-force_pubkey",
            tmp_path / "dev.pem",
            "-days",
            "2",
            "-outform",
            "DER",
            "-out",
            tmp_path / "issued.der",
        ]
    )
    tool(
        module_path,
        token_env,
        "--write-object",
        tmp_path / "issued.der",
        "--type",
        "cert",
        "--id",
        key_id,
        "--label",
        "issued",
    )
    listing = run([p11tool, "--provider", module_path, "--list-all", url], env=token_env).stdout
    pct = "".join(f"%{key_id[i : i + 2].upper()}" for i in range(0, len(key_id), 2))
    urls = [line for line in listing.splitlines() if "URL:" in line and pct in line.upper()]
    kinds = {re.search(r"type=(\w+)", u).group(1) for u in urls}
    names = {re.search(r"object=([^;]+)", u).group(1) for u in urls}
    assert {"cert", "private", "public"} <= kinds
    assert "issued" in names


def pin_env(token_env):
    conf = os.path.join(token_env["ATECC_PKCS11_FILESTORE"], "0.conf")
    with open(conf, "a", encoding="utf-8") as fh:
        fh.write("user_pin = required\n")
    return token_env


#: Not hex digits, so it cannot turn up by chance in the serial, salts or hashes of the file
#: (``"1234"`` did, about one run in sixteen).
USER_PIN = "pin-wxyz"


def test_login_pin_flows(module_path, token_env, tmp_path):
    env = pin_env(token_env)
    info = tool(module_path, env, "--list-slots").stdout
    assert "login required" in info
    tool(module_path, env, "--init-token", "--so-pin", "so-pin-1", "--label", "00ABC")
    tool(module_path, env, "--init-pin", "--so-pin", "so-pin-1", "--pin", USER_PIN)
    # private keys are invisible without login
    assert "Private Key" not in tool(module_path, env, "--list-objects").stdout
    listed = tool(module_path, env, "--login", "--pin", USER_PIN, "--list-objects").stdout
    assert "Private Key" in listed
    # sign after login
    (tmp_path / "msg").write_bytes(b"message")
    tool(
        module_path,
        env,
        "--login",
        "--pin",
        USER_PIN,
        "--sign",
        "-m",
        "ECDSA-SHA256",
        "--label",
        "device",
        "-i",
        tmp_path / "msg",
        "-o",
        tmp_path / "sig",
    )
    assert len((tmp_path / "sig").read_bytes()) == 64
    # a wrong PIN is refused and counted, in the file every process reads
    bad = tool(module_path, env, "--login", "--pin", "9999", "--list-objects", check=False)
    assert bad.returncode != 0 and "CKR_PIN_INCORRECT" in bad.stdout + bad.stderr
    meta = json.loads(open(os.path.join(env["ATECC_PKCS11_FILESTORE"], "0.pkcs11.json")).read())
    assert meta["failures"]["user"] == 1
    assert USER_PIN not in json.dumps(meta)
    assert "count low" in tool(module_path, env, "--list-slots").stdout.lower()
    # change the PIN; the old one stops working, and a good login resets the counter
    tool(module_path, env, "--login", "--pin", USER_PIN, "--change-pin", "--new-pin", "5678")
    assert (
        tool(
            module_path, env, "--login", "--pin", USER_PIN, "--list-objects", check=False
        ).returncode
        != 0
    )
    tool(module_path, env, "--login", "--pin", "5678", "--list-objects")
    meta = json.loads(open(os.path.join(env["ATECC_PKCS11_FILESTORE"], "0.pkcs11.json")).read())
    assert meta.get("failures", {}).get("user", 0) == 0


def test_aes_via_pkcs11_tool(module_path, token_env, tmp_path):
    """AES key generation, encryption and deletion through pkcs11-tool. A chip key cannot be
    read back, so CKA_SENSITIVE false is refused; pkcs11-tool needs --sensitive."""
    refused = tool(
        module_path, token_env, "--keygen", "--key-type", "AES:16", "--label", "x", check=False
    )
    assert "CKR_TEMPLATE_INCONSISTENT" in refused.stderr
    out = tool(
        module_path,
        token_env,
        "--login",
        "--pin",
        "0000",
        "--keygen",
        "--sensitive",
        "--key-type",
        "AES:16",
        "--label",
        "aeskey",
        "--id",
        "77",
    ).stdout
    assert "Secret Key Object" in out
    data = os.urandom(64)
    (tmp_path / "plain").write_bytes(data)
    iv = "000102030405060708090a0b0c0d0e0f"
    tool(
        module_path,
        token_env,
        "--encrypt",
        "-m",
        "AES-CBC",
        "--id",
        "77",
        "--iv",
        iv,
        "-i",
        tmp_path / "plain",
        "-o",
        tmp_path / "ct",
    )
    tool(
        module_path,
        token_env,
        "--decrypt",
        "-m",
        "AES-CBC",
        "--id",
        "77",
        "--iv",
        iv,
        "-i",
        tmp_path / "ct",
        "-o",
        tmp_path / "back",
    )
    assert (tmp_path / "back").read_bytes() == data
    assert (tmp_path / "ct").read_bytes() != data
    tool(module_path, token_env, "--delete-object", "--type", "secrkey", "--id", "77")
    assert "aeskey" not in tool(module_path, token_env, "--list-objects").stdout
