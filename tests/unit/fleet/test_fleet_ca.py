"""fleet.ca: CA, server and device certificate profiles, serials, registry records, CRLs."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atecc.certs.csr import build_csr, device_id_for_serial
from atecc.emulator.profiles import create_chip
from atecc.slotfile import EmulatorInterface, open_device
from fleet import FleetError
from fleet.ca import CertificateAuthority, init_ca
from fleet.registry import format_serial
from fleet.subjects import parse_reason, parse_subject


@pytest.fixture
def device(tmp_path):
    state = tmp_path / "chip.json"
    create_chip(state, device="ATECC608-TNGTLS")
    dev = open_device(EmulatorInterface(state))
    yield dev
    dev.close()


@pytest.fixture
def ca(tmp_path):
    return init_ca(tmp_path / "ca", "/O=Example/CN=Device Root CA", days=30)


def software_csr(cn: str) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


# --- subjects ------------------------------------------------------------------------------------


def test_parse_subject_openssl_style():
    name = parse_subject("/C=DE/O=Example/OU=Fleet\\/East+L=Berlin/CN=Device Root CA")
    assert [len(rdn) for rdn in name.rdns] == [1, 1, 2, 1]
    assert name.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    assert name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Fleet/East"
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Device Root CA"


@pytest.mark.parametrize("bad", ["CN=x", "/", "/CN=", "/XX=1", "/CN=a//O=b", "/C=DEU", "/CN=a\\"])
def test_parse_subject_rejects_bad_input(bad):
    with pytest.raises(FleetError):
        parse_subject(bad)


# --- the CA --------------------------------------------------------------------------------------


def test_ca_certificate_profile_and_key_file_mode(ca):
    cert = x509.load_pem_x509_certificate((ca.directory / "ca.crt").read_bytes())
    assert cert.subject == cert.issuer == parse_subject("/O=Example/CN=Device Root CA")
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        cert.public_key()
    )
    cert.verify_directly_issued_by(cert)
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=29) < lifetime <= timedelta(days=30)
    assert stat.S_IMODE((ca.directory / "ca.key").stat().st_mode) == 0o600
    assert CertificateAuthority.load(ca.directory).certificate == cert


def test_ca_init_refuses_to_replace_a_ca(ca):
    with pytest.raises(FleetError, match="already exists"):
        init_ca(ca.directory, "/CN=Other", days=1)


def test_ca_load_detects_a_mismatched_key(ca, tmp_path):
    other = init_ca(tmp_path / "other", "/CN=Other", days=1)
    (ca.directory / "ca.key").write_bytes((other.directory / "ca.key").read_bytes())
    with pytest.raises(FleetError, match="does not belong"):
        CertificateAuthority.load(ca.directory)


def test_server_certificate_profile(ca):
    key, cert = ca.issue_server_certificate(
        dns_names=["localhost", "mtls.example.test"], ip_addresses=["127.0.0.1", "::1"], days=10
    )
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mtls.example.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    ca_ski = ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    assert 0 < cert.serial_number < 2**159


@pytest.mark.parametrize(("dns", "ips"), [([], []), (["bad name"], []), (["ok"], ["999.1.1.1"])])
def test_server_certificate_rejects_bad_names(ca, dns, ips):
    with pytest.raises(FleetError):
        ca.issue_server_certificate(dns_names=dns, ip_addresses=ips)


# --- device certificates -------------------------------------------------------------------------


def test_device_certificate_from_chip_csr(ca, device):
    csr = build_csr(device)
    cert = ca.issue_device_certificate(csr, days=7)
    cert.verify_directly_issued_by(ca.certificate)
    chip_key = device.get_public_key(0)
    point = cert.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == b"\x04" + chip_key
    device_id = device_id_for_serial(device.serial_number())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        cert.public_key()
    )
    ca_ski = ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=7, minutes=5)


def test_registry_records_each_issue(ca):
    cert = ca.issue_device_certificate(software_csr("dev-A"), days=3)
    records = ca.registry.records()
    assert len(records) == 1
    record = records[0]
    assert record.serial == format_serial(cert.serial_number)
    assert int(record.serial, 16) == cert.serial_number
    assert record.serial == record.serial.upper() and len(record.serial) % 2 == 0
    assert record.device_id == "dev-A"
    assert record.status == "active" and record.revoked_at is None and record.reason is None
    assert x509.load_der_x509_certificate(record.certificate) == cert
    assert record.issued.endswith("Z") and record.expires.endswith("Z")
    expires = datetime.strptime(record.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expires == cert.not_valid_after_utc


def test_serials_are_unique_positive_and_at_most_20_bytes(ca):
    serials = [
        ca.issue_device_certificate(software_csr(f"dev-{i}"), days=1).serial_number
        for i in range(50)
    ]
    assert len(set(serials)) == 50
    assert all(0 < s and (s.bit_length() + 8) // 8 <= 20 for s in serials)
    registered = {r.serial_number for r in ca.registry.records()}
    assert registered == set(serials)


def test_device_csr_with_bad_signature_is_refused(ca, device):
    der = bytearray(build_csr(device).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside s
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(FleetError, match="signature"):
        ca.issue_device_certificate(tampered, days=1)
    assert ca.registry.records() == []


def test_device_csr_without_cn_or_with_rsa_key_is_refused(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    no_cn = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(FleetError, match="CN"):
        ca.issue_device_certificate(no_cn, days=1)
    p384 = ec.generate_private_key(ec.SECP384R1())
    other_curve = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(p384, hashes.SHA256())
    )
    with pytest.raises(FleetError, match="P-256"):
        ca.issue_device_certificate(other_curve, days=1)


def test_requested_extensions_are_ignored(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    greedy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "greedy")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = ca.issue_device_certificate(greedy, days=1)
    assert not ext(cert, x509.BasicConstraints).value.ca


# --- revocation ----------------------------------------------------------------------------------


def test_revoke_and_crl(ca):
    keep = ca.issue_device_certificate(software_csr("keep"), days=5)
    gone = ca.issue_device_certificate(software_csr("gone"), days=5)
    registry = ca.registry
    revoked = registry.revoke(serial=gone.serial_number, reason=parse_reason("key-compromise"))
    assert [r.device_id for r in revoked] == ["gone"]
    record = registry.get(gone.serial_number)
    assert record.status == "revoked" and record.reason == "keyCompromise"
    assert record.revoked_at.endswith("Z")
    assert registry.get(keep.serial_number).status == "active"

    crl = ca.build_crl(days=2)
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.issuer == ca.certificate.subject
    assert [e.serial_number for e in crl] == [gone.serial_number]
    entry = crl.get_revoked_certificate_by_serial_number(gone.serial_number)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=2)
    first = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    second = ca.build_crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert second == first + 1
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest


def test_revoke_by_device_id_takes_every_active_certificate(ca):
    a = ca.issue_device_certificate(software_csr("twice"), days=5)
    b = ca.issue_device_certificate(software_csr("twice"), days=5)
    registry = ca.registry
    revoked = registry.revoke(device_id="twice")
    assert {r.serial_number for r in revoked} == {a.serial_number, b.serial_number}
    assert {e.serial_number for e in ca.build_crl()} == {a.serial_number, b.serial_number}
    entry = next(iter(ca.build_crl()))
    # reason "unspecified" is expressed by leaving the reasonCode out (RFC 5280 5.3.1)
    with pytest.raises(x509.ExtensionNotFound):
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_expired_validity_window_can_be_given_explicitly(ca):
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    cert = ca.issue_device_certificate(
        software_csr("old"), not_before=past, not_after=past + timedelta(days=1)
    )
    assert cert.not_valid_after_utc < datetime.now(UTC)
