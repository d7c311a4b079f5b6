"""The certificate rebuild on every process's first listing: no cryptography, no second GenKey.

Checked against an emulated Trust&GO chip and, for the root key, against ``cryptography``'s own
reading of the same certificate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from atecc.certs.factory import public_key_bytes
from atecc.certs.rebuild import (
    certificate_public_key,
    load_root_public_key,
    read_chain,
    verify_signature,
)
from atecc.emulator.bus import EmulatedBus
from atecc.emulator.profiles import create_chip, root_ca_path


class GenKeyCounter:
    """A Device stand-in that forwards to the real one and counts GenKey (public key) calls."""

    def __init__(self, device) -> None:
        self.device = device
        self.gen_key_calls = 0

    def read_bytes(self, *args):
        return self.device.read_bytes(*args)

    def serial_number(self):
        return self.device.serial_number()

    def get_public_key(self, slot):
        self.gen_key_calls += 1
        return self.device.get_public_key(slot)


@pytest.fixture
def chip(tmp_path):
    from atecc.device import Device
    from atecc.transport import I2CTransport

    state = tmp_path / "chip0.json"
    create_chip(state, "ATECC608-TNGTLS")
    device = Device(I2CTransport(EmulatedBus(state), 0x35))
    yield device, Path(root_ca_path(state))
    device.close()


def test_root_key_read_without_cryptography_matches_cryptographys_reading(chip):
    _, root_pem = chip
    cert = x509.load_pem_x509_certificate(root_pem.read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert load_root_public_key(root_pem) == public_key_bytes(key)
    assert certificate_public_key(cert.public_bytes(serialization.Encoding.DER)) == (
        public_key_bytes(key)
    )


def test_root_key_of_a_non_p256_or_unreadable_certificate_is_none(tmp_path):
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(rsa_key, hashes.SHA256())
    )
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert load_root_public_key(pem) is None
    (tmp_path / "junk.pem").write_text(
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----"
    )
    assert load_root_public_key(tmp_path / "junk.pem") is None
    assert load_root_public_key(tmp_path / "missing.pem") is None


def test_a_public_key_already_read_is_not_asked_of_the_chip_again(chip):
    device, root_pem = chip
    root = load_root_public_key(root_pem)
    counting = GenKeyCounter(device)
    plain = read_chain(counting, root_public_key=root)
    assert counting.gen_key_calls == 1
    counting.gen_key_calls = 0
    public = device.get_public_key(0)
    again = read_chain(counting, root_public_key=root, device_public_key=public)
    assert counting.gen_key_calls == 0
    assert again == plain
    signer_key = x509.load_der_x509_certificate(again[1]).public_key()
    assert verify_signature(again[0], public_key_bytes(signer_key))
    assert verify_signature(again[1], root)


def test_rebuilding_the_chain_imports_no_cryptography(tmp_path):
    """What the module does on a process's first listing, in a fresh interpreter: rebuild the
    chain of an emulated chip (the emulator, which stands for the hardware, is imported first
    and may use cryptography for its own ECC; the rebuild itself must add no x509)."""
    state = tmp_path / "chip0.json"
    create_chip(state, "ATECC608-TNGTLS")
    code = f"""
import sys
from atecc.emulator.bus import EmulatedBus
from atecc.device import Device
from atecc.transport import I2CTransport
device = Device(I2CTransport(EmulatedBus({str(state)!r}), 0x35))
public = device.get_public_key(0)
before = {{m for m in sys.modules if m.startswith("cryptography")}}
from atecc.certs.rebuild import load_root_public_key, read_chain
root = load_root_public_key({str(root_ca_path(state))!r})
device_der, signer_der = read_chain(device, root_public_key=root, device_public_key=public)
added = {{m for m in sys.modules if m.startswith("cryptography")}} - before
print(len(device_der) > 300, len(signer_der) > 300, sorted(added))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.split() == ["True", "True", "[]"], out
