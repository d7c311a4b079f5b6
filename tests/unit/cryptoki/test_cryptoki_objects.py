"""The Trust&GO token's four objects, their attributes, and C_FindObjects with templates."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from p11util import attr, find, find_one, ulong

from cryptoki import errors
from cryptoki.constants import (
    CKA,
    CKC,
    CKF,
    CKK,
    CKM,
    CKO,
    CKR,
    P256_EC_PARAMS,
)
from cryptoki.types import AttributeFailure

TRUE, FALSE = b"\x01", b"\x00"


def test_four_objects_with_tutorial_names(lib, session):
    handles = find(lib, session, [])
    summary = sorted(
        (
            int.from_bytes(attr(lib, session, h, CKA.CLASS), "little"),
            attr(lib, session, h, CKA.LABEL).decode(),
        )
        for h in handles
    )
    assert summary == [
        (CKO.CERTIFICATE, "device"),
        (CKO.CERTIFICATE, "signer"),
        (CKO.PUBLIC_KEY, "device"),
        (CKO.PRIVATE_KEY, "device"),
    ]


def test_key_pair_and_certificate_share_the_id(lib, session, device_key, device_pub):
    cert = find_one(lib, session, CKO.CERTIFICATE, "device")
    ids = {attr(lib, session, h, CKA.ID) for h in (device_key, device_pub, cert)}
    assert len(ids) == 1
    point = attr(lib, session, device_pub, CKA.EC_POINT)
    assert point[:3] == b"\x04\x41\x04" and len(point) == 67
    assert ids.pop() == hashlib.sha1(point[2:]).digest()


def test_private_key_attributes(lib, session, device_key):
    expect = {
        CKA.CLASS: ulong(CKO.PRIVATE_KEY),
        CKA.KEY_TYPE: ulong(CKK.EC),
        CKA.TOKEN: TRUE,
        CKA.PRIVATE: FALSE,
        CKA.SENSITIVE: TRUE,
        CKA.ALWAYS_SENSITIVE: TRUE,
        CKA.NEVER_EXTRACTABLE: TRUE,
        CKA.EXTRACTABLE: FALSE,
        CKA.SIGN: TRUE,
        CKA.DECRYPT: FALSE,
        CKA.ALWAYS_AUTHENTICATE: FALSE,
        # label/ID changes live in the metadata file; a copy names the same chip slot
        CKA.COPYABLE: TRUE,
        CKA.MODIFIABLE: TRUE,
        CKA.DESTROYABLE: FALSE,
        CKA.LOCAL: TRUE,
        CKA.KEY_GEN_MECHANISM: ulong(CKM.EC_KEY_PAIR_GEN),
        CKA.EC_PARAMS: P256_EC_PARAMS,
        CKA.START_DATE: b"",
        # the Trust&GO device key allows ECDH (slot 0 ReadKey bit 2)
        CKA.ALLOWED_MECHANISMS: ulong(CKM.ECDSA)
        + ulong(CKM.ECDSA_SHA256)
        + ulong(CKM.ECDH1_DERIVE),
    }
    got = lib.get_attribute_value(session, device_key, list(expect))
    assert dict(zip(expect, got, strict=True)) == expect
    assert lib.get_attribute_value(session, device_key, [CKA.DERIVE])[0] in (TRUE, FALSE)


def test_sensitive_and_invalid_per_entry(lib, session, device_key):
    # python-pkcs11 / p11tool style: several attributes in one call, some not applicable.
    types = [
        CKA.LABEL,
        CKA.VALUE,
        CKA.MODULUS,
        CKA.PARAMETER_SET,
        CKA.ID,
        0x8000_1234,
        CKA.EC_POINT,
    ]
    got = lib.get_attribute_value(session, device_key, types)
    assert got[0] == b"device"
    assert got[1] == AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)
    assert got[2] == AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)
    assert got[3] == AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)
    assert isinstance(got[4], bytes) and len(got[4]) == 20
    assert got[5] == AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)
    assert got[6] == AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID)


def test_public_key_attributes(lib, session, device_pub, device_key):
    assert attr(lib, session, device_pub, CKA.VERIFY) == TRUE
    assert attr(lib, session, device_pub, CKA.EC_PARAMS) == P256_EC_PARAMS
    spki = attr(lib, session, device_pub, CKA.PUBLIC_KEY_INFO)
    key = serialization.load_der_public_key(spki)
    point = attr(lib, session, device_pub, CKA.EC_POINT)
    assert (
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        == point[2:]
    )
    assert attr(lib, session, device_key, CKA.PUBLIC_KEY_INFO) == spki


def test_certificates(lib, session, device_pub):
    dev = find_one(lib, session, CKO.CERTIFICATE, "device")
    signer = find_one(lib, session, CKO.CERTIFICATE, "signer")
    dev_der = attr(lib, session, dev, CKA.VALUE)
    signer_der = attr(lib, session, signer, CKA.VALUE)
    dev_cert = x509.load_der_x509_certificate(dev_der)
    signer_cert = x509.load_der_x509_certificate(signer_der)
    assert attr(lib, session, dev, CKA.CERTIFICATE_TYPE) == ulong(CKC.X_509)
    assert attr(lib, session, dev, CKA.SUBJECT) == dev_cert.subject.public_bytes()
    assert attr(lib, session, dev, CKA.ISSUER) == dev_cert.issuer.public_bytes()
    serial_tlv = attr(lib, session, dev, CKA.SERIAL_NUMBER)
    assert serial_tlv[0] == 0x02
    assert int.from_bytes(serial_tlv[2:], "big") == dev_cert.serial_number
    # The device certificate holds the device key, is issued by the signer, and the signer
    # is a trusted authority certificate.
    assert (
        dev_cert.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        == attr(lib, session, device_pub, CKA.EC_POINT)[2:]
    )
    dev_cert.verify_directly_issued_by(signer_cert)
    assert attr(lib, session, signer, CKA.CERTIFICATE_CATEGORY) == ulong(2)
    assert attr(lib, session, signer, CKA.TRUSTED) == TRUE
    assert attr(lib, session, dev, CKA.TRUSTED) == FALSE
    assert attr(lib, session, dev, CKA.CHECK_VALUE) == hashlib.sha1(dev_der).digest()[:3]
    signer_point = signer_cert.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert attr(lib, session, signer, CKA.ID) == hashlib.sha1(signer_point).digest()


def test_find_templates(lib, session, device_key, device_pub):
    key_id = attr(lib, session, device_key, CKA.ID)
    assert find(lib, session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY))]) == [device_key]
    assert find(lib, session, [(CKA.CLASS, ulong(CKO.PUBLIC_KEY)), (CKA.ID, key_id)]) == [
        device_pub
    ]
    assert len(find(lib, session, [(CKA.LABEL, b"device")])) == 3
    assert len(find(lib, session, [(CKA.ID, key_id)])) == 3
    assert find(lib, session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.LABEL, b"nope")]) == []
    assert find(lib, session, [(CKA.CLASS, ulong(CKO.SECRET_KEY))]) == []
    # A sensitive or unknown attribute, or a value of the wrong width, matches nothing.
    assert find(lib, session, [(CKA.VALUE, b"")]) != [device_key]
    assert find(lib, session, [(0x8000_0001, b"x")]) == []
    assert find(lib, session, [(CKA.CLASS, b"\x03")]) == []
    # Any non-zero CK_BBOOL means true.
    assert find(lib, session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.SIGN, b"\x07")]) == [
        device_key
    ]


def test_find_cursor_and_errors(lib, session):
    with pytest.raises(errors.OperationNotInitialized):
        lib.find_objects(session, 1)
    with pytest.raises(errors.OperationNotInitialized):
        lib.find_objects_final(session)
    lib.find_objects_init(session, [])
    with pytest.raises(errors.OperationActive):
        lib.find_objects_init(session, [])
    got = (
        lib.find_objects(session, 1) + lib.find_objects(session, 2) + lib.find_objects(session, 10)
    )
    assert len(got) == 4 and len(set(got)) == 4
    assert lib.find_objects(session, 10) == []
    lib.find_objects_final(session)


def test_object_handle_errors(lib, session, device_key, rw_session):
    with pytest.raises(errors.ObjectHandleInvalid):
        lib.get_attribute_value(session, 99999, [CKA.CLASS])
    with pytest.raises(errors.ObjectHandleInvalid):
        lib.get_object_size(session, 99999)
    assert lib.get_object_size(session, device_key) > 0
    with pytest.raises(errors.SessionReadOnly):
        lib.destroy_object(session, device_key)
    with pytest.raises(errors.ActionProhibited):
        lib.destroy_object(rw_session, device_key)
    # CKA_LABEL can change now (an override in the metadata file); the key material cannot
    with pytest.raises(errors.AttributeReadOnly):
        lib.set_attribute_value(rw_session, device_key, [(CKA.SIGN, b"\x00")])
    with pytest.raises(errors.AttributeTypeInvalid):
        lib.set_attribute_value(rw_session, device_key, [(CKA.VALUE_BITS, ulong(1))])


def test_listing_is_cached(lib, session):
    """After the first listing no chip round trip is needed to list again."""
    find(lib, session, [])
    token = lib._slots[0].token

    class NoChip:
        def __getattr__(self, name):
            raise AssertionError(f"chip accessed: {name}")

    real, token.backend = token.backend, NoChip()
    try:
        assert len(find(lib, session, [])) == 4
        assert lib.get_token_info(0).label == "00ABC"
        assert lib.get_slot_info(0).flags & CKF.TOKEN_PRESENT
    finally:
        token.backend = real


def test_configured_objects(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    """``object =`` lines: a private key slot gives a key pair; a public key slot a public key."""
    from cryptoki.library import Library

    filestore = tmp_path / "fs"
    chip_factory(filestore, "chip.json")
    # Slot 1 of a Trust&GO part holds a second factory key; slot 11 the signer public key.
    slot_file_writer(
        filestore, 0, "chip.json", extra="object = private,extra,1\nobject = public,signerkey,11\n"
    )
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    try:
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        priv = find_one(lib, s, CKO.PRIVATE_KEY, "extra")
        pub = find_one(lib, s, CKO.PUBLIC_KEY, "extra")
        assert attr(lib, s, priv, CKA.ID) == attr(lib, s, pub, CKA.ID)
        assert attr(lib, s, priv, CKA.LOCAL) == FALSE
        signer_pub = find_one(lib, s, CKO.PUBLIC_KEY, "signerkey")
        signer_cert = find_one(lib, s, CKO.CERTIFICATE, "signer")
        assert attr(lib, s, signer_pub, CKA.ID) == attr(lib, s, signer_cert, CKA.ID)
    finally:
        lib.finalize()


def test_configured_certificate_and_secret(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    """``object = certificate,...,8`` reads full DER from a data slot; ``secret`` lists a key."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from atecc.constants import Zone
    from atecc.slotfile import open_device, parse_slot_file
    from cryptoki.library import Library

    filestore = tmp_path / "fs"
    chip_factory(filestore, "chip.json")
    conf = slot_file_writer(
        filestore, 0, "chip.json", extra="object = certificate,mycert,8\nobject = secret,io,6\n"
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slot 8 cert")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1234)
        .not_valid_before(datetime.datetime(2024, 1, 1))
        .not_valid_after(datetime.datetime(2034, 1, 1))
        .sign(key, hashes.SHA256())
    )
    value = cert.public_bytes(serialization.Encoding.DER)
    device = open_device(parse_slot_file(conf).interface)
    try:
        device.write_bytes(Zone.DATA, 8, 0, value + bytes(-len(value) % 32))
    finally:
        device.close()
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    try:
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        h = find_one(lib, s, CKO.CERTIFICATE, "mycert")
        assert attr(lib, s, h, CKA.VALUE) == value  # slot padding trimmed
        assert attr(lib, s, h, CKA.SERIAL_NUMBER) == b"\x02\x02\x12\x34"
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert attr(lib, s, h, CKA.ID) == hashlib.sha1(point).digest()
        secret = find_one(lib, s, CKO.SECRET_KEY, "io")
        assert lib.get_attribute_value(s, secret, [CKA.VALUE]) == [
            AttributeFailure(CKR.ATTRIBUTE_SENSITIVE)
        ]
    finally:
        lib.finalize()
