"""Handshake-time refusal, with the emulated chip's key as the client's: `openssl s_client
-engine pkcs11` (libp11 + the built module) against `atecc serve`. A registered device completes
the handshake and gets its answer; a device revoked in the CRL, an unregistered one and a
self-signed one never complete the handshake (so they never send a byte of HTTP), and each
connection is one log line with the reason.

The engine is configured per command through OPENSSL_CONF, as scripts/mtls-demo.sh does.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from . import test_mtls_server as mtls
from .conftest import require, run
from .test_mtls_server import KEY_URI, atecc

pytestmark = pytest.mark.native

# The CA and server fixtures of test_mtls_server.py.
pki = mtls.pki
start_server = mtls.start_server


def _engine_env(tmp_path, module_path, token_env) -> dict[str, str]:
    conf = tmp_path / "engine.cnf"
    atecc("engine-conf", "--out", conf, "--module", module_path)
    return dict(token_env, OPENSSL_CONF=str(conf))


def s_client(env, pki, server, cert, *extra: str) -> subprocess.CompletedProcess[str]:
    """One connection with the chip's key; sends a request and prints what comes back."""
    return subprocess.run(
        [
            require("openssl"),
            "s_client",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            KEY_URI,
            "-cert",
            str(cert),
            "-CAfile",
            str(pki.ca_cert),
            "-connect",
            f"127.0.0.1:{server.port}",
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
            *extra,
        ],
        input="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def chip(pki, tmp_path, module_path, token_env):
    """The chip's CSR (made through the driver), its device ID and the engine environment."""
    csr_path = tmp_path / "device.csr"
    atecc("csr", "--out", csr_path, env=token_env)
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    device_id = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return csr_path, csr, device_id, _engine_env(tmp_path, module_path, token_env)


def _refused(proc: subprocess.CompletedProcess[str]) -> None:
    assert "hello" not in proc.stdout, proc.stdout
    assert proc.returncode != 0 or "alert" in (proc.stdout + proc.stderr).lower(), (
        proc.stdout + proc.stderr
    )


def test_registered_device_completes_the_handshake(pki, start_server, chip, tmp_path):
    csr_path, _, device_id, env = chip
    cert = tmp_path / "device.crt"
    atecc("ca", "sign", "--dir", pki.ca_dir, "--csr", csr_path, "--days", "5", "--out", cert)
    crl = tmp_path / "crl.pem"
    atecc("ca", "crl", "--dir", pki.ca_dir, "--out", crl)
    server = start_server("--crl", str(crl))
    proc = s_client(env, pki, server, cert)
    assert f"hello {device_id}" in proc.stdout, proc.stdout + proc.stderr
    server.wait_for(rf"device={re.escape(device_id)} serial=\w+ accepted")


@pytest.mark.parametrize("tls", ["-tls1_2", "-tls1_3"])
def test_device_revoked_in_the_crl_fails_the_handshake(pki, start_server, chip, tmp_path, tls):
    csr_path, _, device_id, env = chip
    cert = tmp_path / "device.crt"
    atecc("ca", "sign", "--dir", pki.ca_dir, "--csr", csr_path, "--days", "5", "--out", cert)
    atecc("revoke", "--dir", pki.ca_dir, "--device-id", device_id, "--reason", "keyCompromise")
    crl = tmp_path / "crl.pem"
    atecc("ca", "crl", "--dir", pki.ca_dir, "--out", crl)
    server = start_server("--crl", str(crl))
    proc = s_client(env, pki, server, cert, tls)
    _refused(proc)
    if tls == "-tls1_2":  # the client's own handshake fails (in 1.3 it learns from the alert)
        assert proc.returncode != 0 and "Verify return code" not in proc.stdout.split("---")[-1]
    server.wait_for(rf"device={re.escape(device_id)} .*refused: revoked \(listed in the CRL\)")


def test_unregistered_device_fails_the_handshake(pki, start_server, chip, tmp_path):
    """Signed by the CA's key, but never through `atecc ca sign`: the registry does not know it."""
    _, csr, device_id, env = chip
    ca_key = serialization.load_pem_private_key((pki.ca_dir / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert = tmp_path / "unregistered.crt"
    cert.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    server = start_server()
    _refused(s_client(env, pki, server, cert, "-tls1_2"))
    server.wait_for(rf"device={re.escape(device_id)} .*refused: unregistered \(serial not in")


def test_self_signed_device_fails_the_handshake(pki, start_server, chip, tmp_path):
    """A certificate the chip signed for itself (openssl req -x509 through the engine)."""
    _, _, device_id, env = chip
    cert = tmp_path / "self.crt"
    run(
        [
            require("openssl"),
            "req",
            "-x509",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            KEY_URI,
            "-subj",
            f"/CN={device_id}",
            "-days",
            "1",
            "-out",
            str(cert),
        ],
        env=env,
    )
    server = start_server()
    _refused(s_client(env, pki, server, cert, "-tls1_2"))
    server.wait_for(rf"device={re.escape(device_id)} .*refused: unknown authority")
