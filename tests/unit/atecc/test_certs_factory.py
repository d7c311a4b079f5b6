"""Factory provisioning and rebuild (chip §6.7, §6.8), checked with the ``cryptography`` package.

The worked check of §6.8 pins dates, signer ID, serial numbers and subject; the rest proves that
what the factory signs is exactly what a host rebuilds, and that the chain verifies to the root.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from atecc.certs.compressed import CertificateError, CompressedCert
from atecc.certs.factory import (
    ROOT_NAME_AS_TEMPLATE,
    FactoryCerts,
    make_tng_chain,
    public_key_bytes,
)
from atecc.certs.rebuild import (
    build_certificate,
    pad_public_key,
    serial_from_public_key,
    tbs_certificate,
    unpad_public_key,
    verify_signature,
)
from atecc.certs.templates import (
    DEVICE_TEMPLATE,
    DEVICE_TEMPLATE_LEGACY,
    MICROCHIP_ROOT_KEY_ID,
    SIGNER_TEMPLATE,
    key_id,
)

SERIAL = bytes.fromhex("0123AABBCCDDEEFF01")


def _key(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _pub(scalar: int) -> bytes:
    return public_key_bytes(_key(scalar).public_key())


@pytest.fixture(scope="module")
def worked() -> FactoryCerts:
    """The §6.8 worked check: root 0x1111, signer 0x2222, device 0x3333, signer ID C0DE."""
    return make_tng_chain(
        _pub(0x3333),
        SERIAL,
        now=datetime(2024, 1, 1),
        root_key=_key(0x1111),
        signer_key=_key(0x2222),
        signer_id=b"\xc0\xde",
    )


def test_worked_check_compressed_tails(worked: FactoryCerts) -> None:
    assert worked.signer_compressed[64:].hex(" ").upper() == "C0 84 1F C0 DE 10 A0 00"
    assert worked.device_compressed[64:].hex(" ").upper() == "C0 84 1C C0 DE 20 A0 00"
    assert len(worked.signer_compressed) == len(worked.device_compressed) == 72
    assert worked.signer_public_key == _pub(0x2222)
    assert worked.signer_id == b"\xc0\xde"
    assert worked.otp_code == b"wdNxAjae"


def test_worked_check_serials_and_subject(worked: FactoryCerts) -> None:
    signer = x509.load_der_x509_certificate(worked.signer_der)
    device = x509.load_der_x509_certificate(worked.device_der)
    assert f"{signer.serial_number:032X}" == "7500EE9D47A2C73232E8806215901ECF"
    assert f"{device.serial_number:032X}" == "619674CA1B29AC0DC73B1A487A275E46"
    assert device.subject.rfc4514_string() == (
        "CN=0123AABBCCDDEEFF01 ATECC,O=Microchip Technology Inc"
    )
    assert signer.subject.rfc4514_string() == (
        "CN=Crypto Authentication Signer C0DE,O=Microchip Technology Inc"
    )
    # 521 bytes in the spec's run; the DER signature varies by a byte or two with random k.
    assert 518 <= len(worked.signer_der) <= 522
    assert signer.not_valid_before_utc.year == 2024 and signer.not_valid_after_utc.year == 2055
    assert device.not_valid_after_utc.year == 2052


def test_rebuilt_certificates_verify_up_to_the_root(worked: FactoryCerts) -> None:
    root = x509.load_der_x509_certificate(worked.root_ca_der)
    signer = x509.load_der_x509_certificate(worked.signer_der)
    device = x509.load_der_x509_certificate(worked.device_der)
    assert x509.load_pem_x509_certificate(worked.root_ca_pem) == root
    # Signatures: root → signer → device, each over exactly the rebuilt TBS bytes.
    root.verify_directly_issued_by(root)
    assert verify_signature(worked.signer_der, worked.root_public_key)
    assert verify_signature(worked.device_der, worked.signer_public_key)
    assert not verify_signature(worked.device_der, worked.root_public_key)
    # Key identifiers link the chain as well as the names do.
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski == key_id(worked.root_public_key)
    device_aki = device.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    signer_ski = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert device_aki.key_identifier == signer_ski.digest
    device.verify_directly_issued_by(signer)
    # The default root carries the issuer name template 1 fixes, so name chaining works too.
    signer.verify_directly_issued_by(root)


def test_chain_by_name_with_template_named_root() -> None:
    # Template 1 fixes the signer's issuer name; a root carrying that name lets name-based path
    # building link the whole chain (OpenSSL-style), not only the signatures.
    certs = make_tng_chain(_pub(0x4444), SERIAL, root_name=ROOT_NAME_AS_TEMPLATE)
    root = x509.load_der_x509_certificate(certs.root_ca_der)
    signer = x509.load_der_x509_certificate(certs.signer_der)
    device = x509.load_der_x509_certificate(certs.device_der)
    signer.verify_directly_issued_by(root)
    device.verify_directly_issued_by(signer)


def test_rebuild_from_compressed_is_byte_identical(worked: FactoryCerts) -> None:
    signer = build_certificate(
        SIGNER_TEMPLATE,
        CompressedCert.from_bytes(worked.signer_compressed),
        worked.signer_public_key,
        issuer_public_key=worked.root_public_key,
    )
    device = build_certificate(
        DEVICE_TEMPLATE_LEGACY,
        CompressedCert.from_bytes(worked.device_compressed),
        _pub(0x3333),
        issuer_public_key=worked.signer_public_key,
        device_serial=SERIAL,
    )
    assert (signer, device) == (worked.signer_der, worked.device_der)
    # Outer length fixed, TBS length unchanged (chip §6.7 step 5).
    assert int.from_bytes(device[2:4], "big") == len(device) - 4
    assert len(tbs_certificate(device)) == DEVICE_TEMPLATE_LEGACY.tbs_length


def test_signer_aki_defaults_to_microchip_root(worked: FactoryCerts) -> None:
    der = build_certificate(
        SIGNER_TEMPLATE,
        CompressedCert.from_bytes(worked.signer_compressed),
        worked.signer_public_key,
    )
    aki = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    )
    assert aki.value.key_identifier == MICROCHIP_ROOT_KEY_ID
    assert not verify_signature(der, worked.root_public_key)  # AKI is signed: wrong root key ID


def test_template_3_device_certificate() -> None:
    eui = b"0004A3123456"
    certs = make_tng_chain(_pub(0x5555), SERIAL, device_template=3, eui48=eui)
    assert certs.otp_code == b"KQp2ZkD8"
    assert certs.device_compressed[69:71] == b"\x30\xa0"
    device = x509.load_der_x509_certificate(certs.device_der)
    assert device.subject.rfc4514_string() == "CN=sn0123AABBCCDDEEFF01,O=Microchip Technology Inc"
    assert b"eui48_0004A3123456" in certs.device_der
    assert verify_signature(certs.device_der, certs.signer_public_key)
    assert len(tbs_certificate(certs.device_der)) == DEVICE_TEMPLATE.tbs_length


def test_serial_number_rule() -> None:
    comp = CompressedCert.from_bytes(make_tng_chain(_pub(7), SERIAL).device_compressed)
    serial = serial_from_public_key(_pub(7), comp)
    assert len(serial) == 16 and serial[0] & 0xC0 == 0x40


def test_late_issue_dates_use_format_v1() -> None:
    certs = make_tng_chain(_pub(8), SERIAL, now=datetime(2040, 6, 15, 12, 34, 56))
    comp = CompressedCert.from_bytes(certs.device_compressed)
    assert comp.format_version == 1 and comp.issue_date == datetime(2040, 6, 15, 12)
    assert verify_signature(certs.device_der, certs.signer_public_key)
    device = x509.load_der_x509_certificate(certs.device_der)
    assert device.not_valid_after_utc.year == 2068


def test_padding_round_trip() -> None:
    padded = pad_public_key(_pub(9))
    assert len(padded) == 72 and padded[:4] == padded[36:40] == bytes(4)
    assert unpad_public_key(padded) == _pub(9)


def test_rebuild_refuses_mismatched_template(worked: FactoryCerts) -> None:
    with pytest.raises(CertificateError, match="template ID"):
        build_certificate(
            DEVICE_TEMPLATE_LEGACY,
            CompressedCert.from_bytes(worked.signer_compressed),
            worked.signer_public_key,
            device_serial=SERIAL,
        )
    with pytest.raises(CertificateError, match="serial number"):
        build_certificate(
            DEVICE_TEMPLATE_LEGACY,
            CompressedCert.from_bytes(worked.device_compressed),
            _pub(0x3333),
        )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((bytes(63), SERIAL), {}, "64 bytes"),
        ((bytes(64), SERIAL[:8]), {}, "9 bytes"),
        ((bytes(64), SERIAL), {"device_template": 1}, "2 or 3"),
        ((bytes(64), SERIAL), {"signer_id": b"\x01"}, "2 bytes"),
    ],
)
def test_factory_rejects_bad_input(
    args: tuple[bytes, bytes], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(CertificateError, match=message):
        make_tng_chain(*args, **kwargs)  # type: ignore[arg-type]


def test_factory_rejects_point_off_the_curve() -> None:
    with pytest.raises(CertificateError, match="P-256"):
        make_tng_chain(bytes(64), SERIAL)


# --- rebuilding from a chip (emulator, through the driver) ---------------------------------------


def test_read_chain_from_emulated_chip(tmp_path: Path) -> None:
    profiles = pytest.importorskip("atecc.emulator.profiles")
    from atecc.certs.rebuild import read_chain
    from atecc.slotfile import EmulatorInterface, open_device

    state = tmp_path / "chip0.json"
    profiles.create_chip(state, device="ATECC608-TNGTLS", serial=SERIAL)
    root = x509.load_pem_x509_certificate(profiles.root_ca_path(state).read_bytes())
    root_key = public_key_bytes(root.public_key())  # type: ignore[arg-type]
    dev = open_device(EmulatorInterface(state))
    try:
        device_der, signer_der = read_chain(dev, root_public_key=root_key)
        chip_key = dev.get_public_key(0)
        _, signer_without_root = read_chain(dev)
    finally:
        dev.close()
    device = x509.load_der_x509_certificate(device_der)
    signer = x509.load_der_x509_certificate(signer_der)
    assert public_key_bytes(device.public_key()) == chip_key  # type: ignore[arg-type]
    assert device.subject.rfc4514_string() == (
        "CN=0123AABBCCDDEEFF01 ATECC,O=Microchip Technology Inc"
    )
    device.verify_directly_issued_by(signer)
    assert verify_signature(signer_der, root_key)
    # Without the root key the signer's AKI is Microchip's, which the emulated root did not sign.
    assert not verify_signature(signer_without_root, root_key)


def test_default_chain_verifies_with_openssl_and_root_says_emulated(tmp_path: Path) -> None:
    """The root saved beside an emulated chip must let ordinary tools check the chain by name,
    and must say it is not Microchip's."""
    import shutil
    import subprocess

    from cryptography.hazmat.primitives.serialization import Encoding

    from atecc.certs.factory import EMULATED_COMMENT

    certs = make_tng_chain(_pub(0x5555), SERIAL)
    root = x509.load_pem_x509_certificate(certs.root_ca_pem)
    comment = root.extensions.get_extension_for_oid(x509.ObjectIdentifier("2.16.840.1.113730.1.13"))
    assert EMULATED_COMMENT.encode() in comment.value.value
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    (tmp_path / "root.pem").write_bytes(certs.root_ca_pem)
    signer = x509.load_der_x509_certificate(certs.signer_der).public_bytes(Encoding.PEM)
    device = x509.load_der_x509_certificate(certs.device_der).public_bytes(Encoding.PEM)
    (tmp_path / "signer.pem").write_bytes(signer)
    (tmp_path / "device.pem").write_bytes(device)
    proc = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "signer.pem"),
            str(tmp_path / "device.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "device.pem: OK" in proc.stdout, proc.stdout + proc.stderr
