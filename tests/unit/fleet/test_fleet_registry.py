"""fleet.registry: JSON format, serial notation, locking against concurrent issuers."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atecc.fileio import atomic_write
from fleet import FleetError
from fleet.ca import CertificateAuthority, init_ca
from fleet.registry import (
    DeviceRecord,
    Registry,
    RegistryData,
    format_serial,
    parse_serial,
)


def _csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )


def _issue_many(ca_dir: str, prefix: str, count: int) -> None:
    ca = CertificateAuthority.load(ca_dir)
    for i in range(count):
        ca.issue_device_certificate(_csr(f"{prefix}-{i}"), days=1)


def test_serial_notation():
    assert format_serial(0x1) == "01"
    assert format_serial(0xABC) == "0ABC"
    assert parse_serial("0x0abc") == 0xABC
    assert parse_serial("0a:bc") == 0xABC
    assert parse_serial(" 0A BC ") == 0xABC
    for bad in ("xyz", "0", ""):
        with pytest.raises(FleetError):
            parse_serial(bad)


def test_file_format(tmp_path):
    registry = Registry(tmp_path / "registry.json")
    assert registry.load() == RegistryData()  # no file yet: empty
    with registry.transaction() as data:
        data.devices.append(
            DeviceRecord("0A", "dev", "PEM", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
        )
        data.crl_number = 4
    doc = json.loads((tmp_path / "registry.json").read_text())
    assert doc == {
        "version": 1,
        "crl_number": 4,
        "devices": [
            {
                "serial": "0A",
                "device_id": "dev",
                "certificate": "PEM",
                "issued": "2026-01-01T00:00:00Z",
                "expires": "2027-01-01T00:00:00Z",
                "status": "active",
                "revoked_at": None,
                "reason": None,
            }
        ],
    }
    assert registry.load().find_serial(10).device_id == "dev"


def test_failed_transaction_leaves_the_file_alone(tmp_path):
    registry = Registry(tmp_path / "registry.json")
    with registry.transaction() as data:
        data.crl_number = 1
    before = registry.path.read_bytes()
    with pytest.raises(RuntimeError), registry.transaction() as data:
        data.crl_number = 99
        raise RuntimeError("boom")
    assert registry.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"version": 7}'])
def test_malformed_registry_is_a_clean_error(tmp_path, content):
    (tmp_path / "registry.json").write_bytes(content)
    with pytest.raises(FleetError):
        Registry(tmp_path / "registry.json").load()


def test_atomic_write_sets_mode(tmp_path):
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    target.chmod(0o644)
    atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600


def test_concurrent_issuers_lose_nothing(tmp_path):
    """Threads and processes issuing at once: every record kept, every serial unique."""
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=Concurrent CA", days=1)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_issue_many, args=(str(ca_dir), f"p{n}", 8)) for n in range(2)]
    threads = [
        threading.Thread(target=_issue_many, args=(str(ca_dir), f"t{n}", 8)) for n in range(2)
    ]
    for worker in (*procs, *threads):
        worker.start()
    for thread in threads:
        thread.join(timeout=120)
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    devices = Registry.in_directory(ca_dir).load().devices
    assert len(devices) == 32
    assert len({d.serial for d in devices}) == 32
    assert {d.device_id for d in devices} == {
        f"{w}-{i}" for w in ("p0", "p1", "t0", "t1") for i in range(8)
    }
