"""fleet.server.Authority: the checks after the TLS handshake (registry, CRL, reloads)."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet import FleetError
from fleet.ca import init_ca
from fleet.registry import Registry
from fleet.server import Authority


def _csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def ca(tmp_path):
    return init_ca(tmp_path / "ca", "/CN=Authority CA", days=5)


def unrevoke(registry: Registry, serial: int) -> None:
    """Test-only: put a revoked record back to active (nothing in the product does that), to
    show that the CRL alone refuses the certificate."""
    with registry.transaction():
        registry._execute(
            "UPDATE fleet_devices SET status = 'active', revoked_at = NULL, reason = NULL"
            " WHERE serial = ?",
            (f"{serial:X}" if len(f"{serial:X}") % 2 == 0 else f"0{serial:X}",),
        )


def write_crl(ca, path):
    path.write_bytes(ca.build_crl(days=1).public_bytes(serialization.Encoding.PEM))
    # Make sure the change is visible even on coarse-mtime filesystems.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_verdicts_follow_registry_and_crl(ca, tmp_path):
    logs: list[str] = []
    good = ca.issue_device_certificate(_csr("good"), days=1)
    bad = ca.issue_device_certificate(_csr("bad"), days=1)
    crl_path = tmp_path / "crl.pem"
    write_crl(ca, crl_path)
    authority = Authority(ca.directory, crl_path, logs.append)
    verdict = authority.check(good)
    assert verdict.accepted and verdict.device_id == "good"
    assert authority.check(bad).accepted

    # Registry change is picked up on the next check.
    ca.registry.revoke(serial=bad.serial_number, reason="keyCompromise")
    verdict = authority.check(bad)
    assert not verdict.accepted and verdict.reason.startswith("revoked (keyCompromise")

    # CRL alone: put the registry entry back to active; the CRL still lists it.
    write_crl(ca, crl_path)
    unrevoke(ca.registry, bad.serial_number)
    verdict = authority.check(bad)
    assert not verdict.accepted and verdict.reason == "revoked (listed in the CRL)"
    assert authority.check(good).accepted


def test_unregistered_and_substituted_certificates(ca):
    authority = Authority(ca.directory, None, print)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    registered = ca.issue_device_certificate(_csr("dev"), days=1)
    # Same serial and CN as the registered one, different key: not the registered certificate.
    forged = (
        x509.CertificateBuilder()
        .subject_name(registered.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(stranger_key.public_key())
        .serial_number(registered.serial_number)
        .not_valid_before(registered.not_valid_before_utc)
        .not_valid_after(registered.not_valid_after_utc)
        .sign(ca.key, hashes.SHA256())
    )
    verdict = authority.check(forged)
    assert not verdict.accepted and verdict.reason.startswith("unregistered (not the certificate")
    other = (
        x509.CertificateBuilder()
        .subject_name(registered.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(stranger_key.public_key())
        .serial_number(registered.serial_number + 1)
        .not_valid_before(registered.not_valid_before_utc)
        .not_valid_after(registered.not_valid_after_utc)
        .sign(ca.key, hashes.SHA256())
    )
    verdict = authority.check(other)
    assert not verdict.accepted and verdict.reason.startswith("unregistered (serial")


def test_crl_from_another_ca_is_refused(ca, tmp_path):
    other = init_ca(tmp_path / "other", "/CN=Authority CA", days=5)  # same name, other key
    crl_path = tmp_path / "crl.pem"
    write_crl(other, crl_path)
    with pytest.raises(FleetError, match="not signed by the CA"):
        Authority(ca.directory, crl_path, print)


def test_bad_crl_later_keeps_the_previous_one(ca, tmp_path):
    logs: list[str] = []
    cert = ca.issue_device_certificate(_csr("x"), days=1)
    ca.registry.revoke(serial=cert.serial_number)
    crl_path = tmp_path / "crl.pem"
    write_crl(ca, crl_path)
    authority = Authority(ca.directory, crl_path, logs.append)
    crl_path.write_text("garbage")
    unrevoke(ca.registry, cert.serial_number)
    assert authority.check(cert).reason == "revoked (listed in the CRL)"
    assert any("keeping the previous CRL" in line for line in logs)
