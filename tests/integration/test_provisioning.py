"""Provisioning as a user types it: own CA, a CSR signed by the chip, the issued certificate
stored back on the token, found by p11tool next to the key with the key's CKA_ID."""

from __future__ import annotations

import re

import pytest
from cryptography import x509

from .conftest import BIN, require, run

pytestmark = pytest.mark.native


def _objects(listing: str) -> list[dict[str, str]]:
    found = []
    for block in listing.split("Object ")[1:]:
        fields = dict(re.findall(r"^\s*(Type|Label|ID): (.*)$", block, re.M))
        found.append(fields)
    return found


def test_issued_certificate_is_stored_next_to_the_chip_key(module_path, token_env, tmp_path):
    atecc = str(BIN / "atecc")
    ca = tmp_path / "ca"
    run(
        [atecc, "ca", "init", "--dir", str(ca), "--subject", "/O=Example/CN=Device CA"],
        env=token_env,
    )
    csr = tmp_path / "device.csr"
    run([atecc, "csr", "--out", str(csr)], env=token_env)
    assert x509.load_pem_x509_csr(csr.read_bytes()).is_signature_valid
    crt = tmp_path / "device.crt"
    run(
        [atecc, "ca", "sign", "--dir", str(ca), "--csr", str(csr), "--out", str(crt)], env=token_env
    )
    out = run(
        [atecc, "cert-store", "--in", str(crt), "--label", "device-tls"], env=token_env
    ).stdout
    assert "next to private key 'device'" in out, out

    listing = run(
        [require("p11tool"), "--provider", module_path, "--list-all"], env=token_env
    ).stdout
    objects = _objects(listing)
    key_ids = {o["ID"] for o in objects if o["Type"].startswith("Private key")}
    stored = [o for o in objects if o.get("Label") == "device-tls"]
    assert len(stored) == 1 and stored[0]["Type"].startswith("X.509 Certificate"), listing
    assert stored[0]["ID"] in key_ids, listing

    # A certificate for a key that is not on this chip is refused, and nothing is stored.
    proc = run([atecc, "cert-store", "--in", str(ca / "ca.crt")], env=token_env, check=False)
    assert proc.returncode != 0 and "not issued for a key of this chip" in proc.stderr
    assert "Traceback" not in proc.stderr
    again = run([require("p11tool"), "--provider", module_path, "--list-all"], env=token_env).stdout
    assert len(_objects(again)) == len(objects)


def test_cert_store_is_idempotent_and_replaces_only_with_force(module_path, token_env, tmp_path):
    atecc = str(BIN / "atecc")
    ca = tmp_path / "ca"
    run([atecc, "ca", "init", "--dir", str(ca), "--subject", "/CN=Device CA"], env=token_env)
    csr = tmp_path / "device.csr"
    run([atecc, "csr", "--out", str(csr)], env=token_env)
    first, second = tmp_path / "first.crt", tmp_path / "second.crt"
    for crt in (first, second):  # two certificates for the same chip key
        run(
            [atecc, "ca", "sign", "--dir", str(ca), "--csr", str(csr), "--out", str(crt)],
            env=token_env,
        )

    def stored() -> list[dict[str, str]]:
        listing = run(
            [require("p11tool"), "--provider", module_path, "--list-all"], env=token_env
        ).stdout
        return [o for o in _objects(listing) if o.get("Label") == "device-tls"]

    run([atecc, "cert-store", "--in", str(first)], env=token_env)
    out = run([atecc, "cert-store", "--in", str(first), "--json"], env=token_env).stdout
    assert '"action": "unchanged"' in out
    assert len(stored()) == 1

    proc = run([atecc, "cert-store", "--in", str(second)], env=token_env, check=False)
    assert proc.returncode == 2 and "--force replaces it" in proc.stderr
    assert len(stored()) == 1

    out = run([atecc, "cert-store", "--in", str(second), "--force"], env=token_env).stdout
    assert out.startswith("replaced")
    assert len(stored()) == 1
    exported = run(
        [
            require("p11tool"),
            "--provider",
            module_path,
            "--export",
            "pkcs11:token=00ABC;object=device-tls;type=cert",
        ],
        env=token_env,
    ).stdout
    assert x509.load_pem_x509_certificate(exported.encode()) == x509.load_pem_x509_certificate(
        second.read_bytes()
    )
