"""atecc.certs.csr: PKCS#10 requests built by hand and signed by an emulated chip's key."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from atecc.certs.csr import (
    DEVICE_ID_NAMESPACE,
    CsrError,
    build_csr,
    certification_request_info,
    csr_pem,
    device_id_for_serial,
)
from atecc.emulator.profiles import create_chip
from atecc.slotfile import EmulatorInterface, open_device


def _chip(path, device="ATECC608-TNGTLS"):
    create_chip(path, device=device)
    return open_device(EmulatorInterface(path))


@pytest.fixture
def device(tmp_path):
    dev = _chip(tmp_path / "chip.json")
    yield dev
    dev.close()


def point(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_chip_csr_verifies_and_carries_the_slot_key(device):
    csr = build_csr(device)
    assert csr.is_signature_valid
    assert point(csr.public_key()) == b"\x04" + device.get_public_key(0)
    assert csr.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert len(csr.attributes) == 0
    assert len(csr.extensions) == 0


def test_default_cn_is_the_device_id_derived_from_the_serial(device):
    serial = device.serial_number()
    csr = build_csr(device)
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == str(uuid.uuid5(DEVICE_ID_NAMESPACE, serial.hex().upper()))
    assert uuid.UUID(cn).version == 5
    # Deterministic per chip: a second request has the same CN (and a fresh signature).
    again = build_csr(device)
    assert again.subject == csr.subject
    assert again.signature != csr.signature


def test_device_ids_differ_between_chips(tmp_path):
    first = _chip(tmp_path / "a.json")
    second = _chip(tmp_path / "b.json")
    try:
        assert first.serial_number() != second.serial_number()
        assert device_id_for_serial(first.serial_number()) != device_id_for_serial(
            second.serial_number()
        )
    finally:
        first.close()
        second.close()


def test_explicit_cn_and_other_slot(device):
    pub2 = device.gen_key(2)  # TNGTLS slot 2: a key the host may (re)generate
    csr = build_csr(device, common_name="KE CLIENT", slot=2)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=KE CLIENT"
    assert point(csr.public_key()) == b"\x04" + pub2


def test_request_info_der_layout():
    info = certification_request_info("x", bytes(range(64)))
    # SEQUENCE { INTEGER 0, Name, SPKI, [0] {} }: version first, empty [0] last.
    assert info[0] == 0x30
    assert info[2:5] == b"\x02\x01\x00"
    assert info.endswith(b"\xa0\x00")
    assert b"\x03\x42\x00\x04" + bytes(range(64)) in info


def test_bad_inputs():
    with pytest.raises(CsrError):
        device_id_for_serial(b"\x01" * 8)
    with pytest.raises(CsrError):
        certification_request_info("", bytes(64))
    with pytest.raises(CsrError):
        certification_request_info("x", bytes(65))


def test_openssl_verifies_the_chip_csr(device, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    path = tmp_path / "device.csr"
    path.write_bytes(csr_pem(build_csr(device)))
    proc = subprocess.run(
        ["openssl", "req", "-in", str(path), "-noout", "-verify"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verify OK" in proc.stdout + proc.stderr
