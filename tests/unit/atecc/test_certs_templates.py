"""Our generated TNGTLS templates (chip §6.6): layout and skeleton check values.

The skeleton hashes prove that certificates rebuilt from our templates are byte-identical to
those rebuilt from Microchip's: everything outside the dynamic fields is the same.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509

from atecc.certs import templates
from atecc.certs.templates import (
    DEVICE_TEMPLATE,
    DEVICE_TEMPLATE_LEGACY,
    MICROCHIP_ROOT_KEY_ID,
    SIGNER_TEMPLATE,
)
from atecc.der import encode_length, integer, oid

SKELETON_SHA256 = {
    1: ("53AD5F93C38647201F596D8681B6A7C562E32BF1CC7A76F6631C2CD3AA2F1945", 446),
    2: ("883CB3E55C9ED07FA184046FB2FEB642661E8CC900EE79FCB4AAC2DF5655CB41", 431),
    3: ("0C5F4B63F237AF97507A99B3630DAF33CB79762C47BCE60965B78C31C7C89489", 473),
}


@pytest.mark.parametrize("template_id", [1, 2, 3])
def test_skeleton_sha256_matches_spec(template_id: int) -> None:
    tmpl = templates.template(template_id)
    digest, length = SKELETON_SHA256[template_id]
    skeleton = tmpl.skeleton()
    assert len(skeleton) == length == tmpl.signature_offset
    assert hashlib.sha256(skeleton).hexdigest().upper() == digest


def test_signer_template_layout() -> None:
    t = SIGNER_TEMPLATE
    assert (len(t.der), t.tbs_offset, t.tbs_length, t.signature_offset) == (520, 4, 430, 446)
    expected = {
        "serial_number": (15, 16),
        "issue_date": (128, 13),
        "expire_date": (143, 15),
        "signer_id": (235, 4),
        "public_key": (266, 64),
        "subject_key_id": (381, 20),
        "authority_key_id": (414, 20),
    }
    assert {k: (f.offset, f.length) for k, f in t.fields.items()} == expected
    assert (t.template_id, t.chain_id, t.sn_source, t.default_expire_years) == (1, 0, 0xA, 31)
    # The default AKI is Microchip's root key ID, kept when the root key is unknown.
    aki = t.fields["authority_key_id"]
    assert t.der[aki.offset : aki.end] == MICROCHIP_ROOT_KEY_ID


def test_device_template_layouts() -> None:
    t2, t3 = DEVICE_TEMPLATE_LEGACY, DEVICE_TEMPLATE
    assert (len(t2.der), t2.tbs_length, t2.signature_offset) == (505, 415, 431)
    assert (len(t3.der), t3.tbs_length, t3.signature_offset) == (546, 457, 473)
    assert t2.fields["sn03"].offset == 206 and t2.fields["sn48"].offset == 214
    assert t2.fields["public_key"].offset == 257 and t3.fields["public_key"].offset == 253
    assert t3.fields["eui48"].offset == 355
    assert t2.default_expire_years == t3.default_expire_years == 28


def test_templates_are_parseable_certificates() -> None:
    signer = x509.load_der_x509_certificate(SIGNER_TEMPLATE.der)
    assert signer.issuer.rfc4514_string() == (
        "CN=Crypto Authentication Root CA 002,O=Microchip Technology Inc"
    )
    assert signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    device = x509.load_der_x509_certificate(DEVICE_TEMPLATE_LEGACY.der)
    assert device.subject.rfc4514_string().endswith(" ATECC,O=Microchip Technology Inc")
    usage = device.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement
    # Template 3: loads; its SAN's "eui48_" value is not a legal PrintableString (chip §6.6),
    # so only the raw extension bytes are checked here.
    t3 = x509.load_der_x509_certificate(DEVICE_TEMPLATE.der)
    assert t3.subject.rfc4514_string().startswith("CN=sn0123")
    assert b"eui48_" in DEVICE_TEMPLATE.der


def test_der_helpers() -> None:
    assert encode_length(0x7F) == b"\x7f"
    assert encode_length(0x80) == b"\x81\x80"
    assert encode_length(0x1F5) == b"\x82\x01\xf5"
    assert integer(0) == b"\x02\x01\x00"
    assert integer(0x80) == b"\x02\x02\x00\x80"
    assert oid("1.2.840.10045.4.3.2") == bytes.fromhex("06082A8648CE3D040302")


def test_otp_codes_name_device_templates() -> None:
    assert templates.OTP_CODES[b"wdNxAjae"] == 2
    assert templates.OTP_CODES[b"KQp2ZkD8"] == 3
