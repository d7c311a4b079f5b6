"""Full DER certificates in data slots: layout, size limits, and a round trip through the chip.

The round trips run on the emulator (a fresh Trust&GO chip per test) through the real driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atecc.certs import storage
from atecc.certs.compressed import CertificateError
from atecc.constants import Zone


def _small_cert() -> bytes:
    """A short self-signed P-256 certificate (~300 bytes: fits slot 8's 412)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slot 8 test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_capacity_per_slot() -> None:
    assert storage.capacity(8) == 412
    assert storage.capacity(10) == 68
    assert storage.capacity(0) == 32


def test_encode_decode_round_trip() -> None:
    der = _small_cert()
    image = storage.encode_slot(der, 8)
    assert image[:2] == storage.MAGIC
    assert int.from_bytes(image[2:4], "big") == len(der)
    assert len(image) % 32 == 0 and len(image) <= 416
    assert storage.decode_slot(image) == der
    assert storage.decode_slot(bytes(416)) is None  # an empty slot holds no certificate


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit slot 8"):
        storage.encode_slot(bytes(413), 8)
    with pytest.raises(ValueError, match="does not fit slot 12"):
        storage.encode_slot(_small_cert(), 12)
    with pytest.raises(ValueError, match="empty"):
        storage.encode_slot(b"", 8)
    storage.encode_slot(bytes(412), 8)  # exactly full is fine


def test_padding_never_passes_the_slot_end() -> None:
    assert len(storage.encode_slot(bytes(60), 9)) == 64  # two whole blocks
    assert len(storage.encode_slot(bytes(65), 9)) == 72  # third block stops at the slot's end


def test_decode_rejects_overlong_length() -> None:
    with pytest.raises(CertificateError, match="runs past"):
        storage.decode_slot(storage.MAGIC + (500).to_bytes(2, "big") + bytes(100))


# --- through the driver and the emulator ---------------------------------------------------------


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Any]:
    profiles = pytest.importorskip("atecc.emulator.profiles")
    from atecc.slotfile import EmulatorInterface, open_device

    state = tmp_path / "chip0.json"
    profiles.create_chip(state, device="ATECC608-TNGTLS")
    dev = open_device(EmulatorInterface(state))
    try:
        yield dev
    finally:
        dev.close()


def test_write_and_read_back_slot_8(device: Any) -> None:
    der = _small_cert()
    assert storage.read_certificate(device, 8) is None  # factory slot 8 is empty
    storage.write_certificate(device, 8, der)
    assert storage.read_certificate(device, 8) == der
    raw = device.read_bytes(Zone.DATA, 8, 0, 4)
    assert raw[:2] == storage.MAGIC


def test_refuses_before_touching_the_chip(device: Any) -> None:
    before = device.read_bytes(Zone.DATA, 8, 0, 416)
    big = bytes(413)
    with pytest.raises(ValueError, match="does not fit"):
        storage.write_certificate(device, 8, big)
    assert device.read_bytes(Zone.DATA, 8, 0, 416) == before


def test_chip_refuses_write_to_certificate_slot(device: Any) -> None:
    from atecc.errors import ExecutionError

    # Slot 10 is never-write on Trust&GO (chip §6.2); the chip, not this module, says no.
    with pytest.raises(ExecutionError):
        storage.write_certificate(device, 10, bytes(60))
