"""fleet.server.authority: the registry verdict the handshake asks for (by serial, cached,
fail closed), and loading the CRL the TLS context checks."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fleet_helpers import software_csr

from fleet import FleetError
from fleet.ca import init_ca
from fleet.server.authority import Authority


def test_verdicts_follow_the_registry_within_the_cache_time(ca):
    good = ca.issue_device_certificate(software_csr("good"), days=1)
    bad = ca.issue_device_certificate(software_csr("bad"), days=1)
    authority = Authority(ca.directory, None, print, registry_url=ca.registry_url, cache_ttl_s=0.2)
    try:
        verdict = authority.check(good)
        assert verdict.accepted and verdict.device_id == "good"
        assert authority.check(bad).accepted
        ca.registry.revoke(serial=bad.serial_number, reason="keyCompromise")
        time.sleep(0.25)  # PostgreSQL: the cache's time to live; SQLite notices at once
        verdict = authority.check(bad)
        assert not verdict.accepted and verdict.reason.startswith("revoked (keyCompromise")
        assert authority.check(good).accepted
    finally:
        authority.close()


def test_unregistered_and_substituted_certificates(ca):
    authority = Authority(ca.directory, None, print, registry_url=ca.registry_url)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    registered = ca.issue_device_certificate(software_csr("dev"), days=1)

    def forged(serial):
        return (
            x509.CertificateBuilder()
            .subject_name(registered.subject)
            .issuer_name(ca.certificate.subject)
            .public_key(stranger_key.public_key())
            .serial_number(serial)
            .not_valid_before(registered.not_valid_before_utc)
            .not_valid_after(registered.not_valid_after_utc)
            .sign(ca.key, hashes.SHA256())
        )

    try:
        # Same serial and CN as the registered one, different key: not the registered cert.
        verdict = authority.check(forged(registered.serial_number))
        assert not verdict.accepted
        assert verdict.reason.startswith("unregistered (not the certificate")
        verdict = authority.check(forged(registered.serial_number + 1))
        assert not verdict.accepted and verdict.reason.startswith("unregistered (serial")
    finally:
        authority.close()


def test_a_registry_that_cannot_be_asked_refuses(ca):
    cert = ca.issue_device_certificate(software_csr("dev"), days=1)
    authority = Authority(ca.directory, None, print, registry_url=ca.registry_url)
    authority.registry.close()  # as if the database went away
    verdict = authority.check(cert)
    assert not verdict.accepted and verdict.reason.startswith("registry unavailable")


def test_crl_from_another_ca_is_refused(ca, tmp_path):
    other = init_ca(tmp_path / "other", "/O=Example/CN=Device Root CA", days=5)  # same name
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(other.build_crl(days=1).public_bytes(serialization.Encoding.PEM))
    other.close()
    authority = Authority(ca.directory, crl_path, print, registry_url=ca.registry_url)
    try:
        with pytest.raises(FleetError, match="not signed by the CA"):
            authority.load_crl()
        crl_path.write_text("garbage")
        with pytest.raises(FleetError, match="cannot load the CRL"):
            authority.load_crl()
    finally:
        authority.close()
