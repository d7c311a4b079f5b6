"""C_CreateObject (certificates, EC public keys, data objects), C_SetAttributeValue (labels and IDs
of chip objects as metadata overrides), C_CopyObject (session copies of chip keys) and
C_DestroyObject, across Library instances sharing one metadata file; and the optional user PIN."""

from __future__ import annotations

import datetime
import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from p11util import attr, find, find_one, ulong

from cryptoki import errors
from cryptoki.constants import CKA, CKC, CKF, CKK, CKM, CKO, CKU, P256_EC_PARAMS
from cryptoki.library import Library
from cryptoki.types import Mechanism

TRUE, FALSE = b"\x01", b"\x00"


def make_cert(public_key=None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issued")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key or key.public_key())
        .serial_number(4242)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def cert_template(der: bytes, label=b"issued", cid=b"\x01\x02", token=True):
    return [
        (CKA.CLASS, ulong(CKO.CERTIFICATE)),
        (CKA.CERTIFICATE_TYPE, ulong(CKC.X_509)),
        (CKA.VALUE, der),
        (CKA.LABEL, label),
        (CKA.ID, cid),
        (CKA.TOKEN, TRUE if token else FALSE),
    ]


def data_template(token=True):
    return [
        (CKA.CLASS, ulong(CKO.DATA)),
        (CKA.APPLICATION, b"my app"),
        (CKA.OBJECT_ID, b"\x06\x03\x2a\x03\x04"),
        (CKA.VALUE, b"hello"),
        (CKA.LABEL, b"data"),
        (CKA.TOKEN, TRUE if token else FALSE),
    ]


def second_library() -> Library:
    other = Library()
    other.initialize(None)
    return other


def test_create_objects_seen_by_another_library(lib, rw_session, tngtls_filestore):
    der = make_cert()
    cert = lib.create_object(rw_session, cert_template(der))
    data = lib.create_object(rw_session, data_template())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = peer.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pub = lib.create_object(
        rw_session,
        [
            (CKA.CLASS, ulong(CKO.PUBLIC_KEY)),
            (CKA.KEY_TYPE, ulong(CKK.EC)),
            (CKA.EC_PARAMS, P256_EC_PARAMS),
            (CKA.EC_POINT, b"\x04\x41" + point),
            (CKA.LABEL, b"peer"),
            (CKA.TOKEN, TRUE),
        ],
    )
    assert (
        attr(lib, rw_session, cert, CKA.SUBJECT)
        == x509.load_der_x509_certificate(der).subject.public_bytes()
    )
    assert attr(lib, rw_session, data, CKA.APPLICATION) == b"my app"
    assert attr(lib, rw_session, pub, CKA.EC_POINT) == b"\x04\x41" + point
    meta = tngtls_filestore / "0.pkcs11.json"
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600
    assert b"hello".hex() in meta.read_text()

    other = second_library()
    try:
        s2 = other.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        c2 = find_one(other, s2, CKO.CERTIFICATE, "issued")
        assert attr(other, s2, c2, CKA.VALUE) == der
        d2 = find_one(other, s2, CKO.DATA, "data")
        assert attr(other, s2, d2, CKA.VALUE) == b"hello"
        assert attr(other, s2, d2, CKA.OBJECT_ID) == b"\x06\x03\x2a\x03\x04"
        p2 = find_one(other, s2, CKO.PUBLIC_KEY, "peer")
        # change in one, seen in the other
        other.set_attribute_value(s2, d2, [(CKA.VALUE, b"bye"), (CKA.LABEL, b"data2")])
        assert find(lib, rw_session, [(CKA.LABEL, b"data2")]) == [data]
        assert attr(lib, rw_session, data, CKA.VALUE) == b"bye"
        other.destroy_object(s2, c2)
        other.destroy_object(s2, p2)
    finally:
        other.finalize()
    assert (
        find(lib, rw_session, [(CKA.CLASS, ulong(CKO.CERTIFICATE)), (CKA.LABEL, b"issued")]) == []
    )
    assert find(lib, rw_session, [(CKA.LABEL, b"peer")]) == []
    doc = json.loads(meta.read_text())
    assert [o["attrs"][str(int(CKA.LABEL))] for o in doc["objects"]] == ["data2"]


def test_session_objects_stay_in_process(lib, rw_session, session):
    data = lib.create_object(session, data_template(token=False))  # r/o session is fine
    assert attr(lib, rw_session, data, CKA.TOKEN) == FALSE  # seen from another session
    other = second_library()
    try:
        s2 = other.open_session(0, CKF.SERIAL_SESSION)
        assert find(other, s2, [(CKA.CLASS, ulong(CKO.DATA))]) == []
    finally:
        other.finalize()
    lib.close_session(session)
    with pytest.raises(errors.ObjectHandleInvalid):
        attr(lib, rw_session, data, CKA.LABEL)


def test_create_errors(lib, rw_session, session):
    count = len(find(lib, rw_session, []))
    der = make_cert()
    with pytest.raises(errors.SessionReadOnly):
        lib.create_object(session, cert_template(der))
    with pytest.raises(errors.TemplateIncomplete):
        lib.create_object(rw_session, [(CKA.LABEL, b"x")])
    with pytest.raises(errors.TemplateIncomplete):
        lib.create_object(
            rw_session,
            [(CKA.CLASS, ulong(CKO.CERTIFICATE)), (CKA.CERTIFICATE_TYPE, ulong(CKC.X_509))],
        )
    with pytest.raises(errors.AttributeValueInvalid):
        lib.create_object(rw_session, cert_template(der[:-3]))
    with pytest.raises(errors.TemplateInconsistent):
        lib.create_object(
            rw_session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.KEY_TYPE, ulong(CKK.EC))]
        )
    with pytest.raises(errors.TemplateInconsistent):
        lib.create_object(
            rw_session,
            [
                (CKA.CLASS, ulong(CKO.CERTIFICATE)),
                (CKA.CERTIFICATE_TYPE, ulong(1)),
                (CKA.VALUE, der),
            ],
        )
    with pytest.raises(errors.TemplateInconsistent):
        lib.create_object(
            rw_session, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.CLASS, ulong(CKO.CERTIFICATE))]
        )
    with pytest.raises(errors.AttributeTypeInvalid):
        lib.create_object(rw_session, [*data_template(), (CKA.EC_POINT, b"x")])
    with pytest.raises(errors.AttributeValueInvalid):
        lib.create_object(rw_session, [*data_template(), (CKA.TOKEN, b"\x01\x00")])
    with pytest.raises(errors.AttributeValueInvalid):  # point not on the curve
        lib.create_object(
            rw_session,
            [
                (CKA.CLASS, ulong(CKO.PUBLIC_KEY)),
                (CKA.KEY_TYPE, ulong(CKK.EC)),
                (CKA.EC_PARAMS, P256_EC_PARAMS),
                (CKA.EC_POINT, b"\x04\x41\x04" + bytes(64)),
            ],
        )
    with pytest.raises(errors.TemplateIncomplete):
        lib.create_object(
            rw_session,
            [
                (CKA.CLASS, ulong(CKO.PUBLIC_KEY)),
                (CKA.KEY_TYPE, ulong(CKK.EC)),
                (CKA.EC_PARAMS, P256_EC_PARAMS),
            ],
        )
    assert len(find(lib, rw_session, [])) == count


def test_labels_and_ids_of_chip_objects(lib, rw_session, session, device_key, tngtls_filestore):
    lib.set_attribute_value(rw_session, device_key, [(CKA.LABEL, b"renamed"), (CKA.ID, b"\x99")])
    assert attr(lib, session, device_key, CKA.LABEL) == b"renamed"
    with pytest.raises(errors.SessionReadOnly):
        lib.set_attribute_value(session, device_key, [(CKA.LABEL, b"x")])
    with pytest.raises(errors.AttributeReadOnly):  # nothing changed by a refused template
        lib.set_attribute_value(rw_session, device_key, [(CKA.LABEL, b"y"), (CKA.SENSITIVE, FALSE)])
    assert attr(lib, session, device_key, CKA.LABEL) == b"renamed"
    other = second_library()
    try:
        s2 = other.open_session(0, CKF.SERIAL_SESSION)
        k2 = find_one(other, s2, CKO.PRIVATE_KEY, "renamed")
        assert attr(other, s2, k2, CKA.ID) == b"\x99"
    finally:
        other.finalize()
    cert = find_one(lib, session, CKO.CERTIFICATE, "device")
    with pytest.raises(errors.AttributeReadOnly):
        lib.set_attribute_value(rw_session, cert, [(CKA.VALUE, b"x")])
    ro = lib.create_object(rw_session, [*data_template(token=False), (CKA.MODIFIABLE, FALSE)])
    # PKCS#11 3.0 §4.4.1: a CKA_MODIFIABLE false object refuses with CKR_ACTION_PROHIBITED.
    with pytest.raises(errors.ActionProhibited):
        lib.set_attribute_value(rw_session, ro, [(CKA.LABEL, b"x")])
    assert attr(lib, session, ro, CKA.LABEL) != b"x"


def test_issued_certificate_sits_next_to_its_key(lib, rw_session, session, device_key, device_pub):
    point = attr(lib, session, device_pub, CKA.EC_POINT)[2:]
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    key_id = attr(lib, session, device_key, CKA.ID)
    cert = lib.create_object(rw_session, cert_template(make_cert(pub), cid=key_id))
    assert cert in find(lib, session, [(CKA.ID, key_id)])


def test_copy_of_chip_key_signs_from_another_session(
    lib, rw_session, session, device_key, device_pub
):
    assert attr(lib, session, device_key, CKA.COPYABLE) == TRUE
    with pytest.raises(errors.SessionReadOnly):  # a copy of a token object is a token object
        lib.copy_object(session, device_key, [(CKA.LABEL, b"copy")])
    copy = lib.copy_object(session, device_key, [(CKA.LABEL, b"copy"), (CKA.TOKEN, FALSE)])
    assert attr(lib, session, copy, CKA.TOKEN) == FALSE
    assert attr(lib, session, copy, CKA.DESTROYABLE) == TRUE
    lib.sign_init(rw_session, Mechanism(CKM.ECDSA_SHA256), copy)
    sig = lib.sign(rw_session, b"m", 64)
    lib.verify_init(session, Mechanism(CKM.ECDSA_SHA256), device_pub)
    lib.verify(session, b"m", sig)
    with pytest.raises(errors.AttributeReadOnly):
        lib.copy_object(rw_session, device_key, [(CKA.SIGN, FALSE)])
    lib.destroy_object(session, copy)
    assert attr(lib, session, device_key, CKA.LABEL) == b"device"  # the original stays
    # created objects copy whole, as token objects when asked
    data = lib.create_object(rw_session, data_template(token=False))
    data_copy = lib.copy_object(rw_session, data, [(CKA.TOKEN, TRUE), (CKA.LABEL, b"dc")])
    assert attr(lib, rw_session, data_copy, CKA.VALUE) == b"hello"
    assert attr(lib, rw_session, data_copy, CKA.UNIQUE_ID) != attr(
        lib, rw_session, data, CKA.UNIQUE_ID
    )


# -- PIN ----------------------------------------------------------------------------------------
@pytest.fixture
def pin_lib(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    filestore = tmp_path / "filestore"
    chip_factory(filestore, "chip0.json")
    slot_file_writer(filestore, 0, "chip0.json", extra="user_pin = required\n")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    library = Library()
    library.initialize(None)
    yield library, filestore
    library.finalize()


#: Not hex, so it cannot turn up by chance in the serial, salts or hashes of the metadata file.
USER_PIN = b"user-pin-\xc3\xa9t\xc3\xa9"


def test_pin_lifecycle(pin_lib):
    lib, filestore = pin_lib
    info = lib.get_token_info(0)
    assert info.flags & CKF.LOGIN_REQUIRED and not info.flags & CKF.USER_PIN_INITIALIZED
    assert (info.min_pin_len, info.max_pin_len) == (4, 64)
    lib.init_token(0, b"so-secret", b"00ABC")  # first C_InitToken sets the SO PIN
    rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
    with pytest.raises(errors.UserPinNotInitialized):
        lib.login(rw, CKU.USER, USER_PIN)
    with pytest.raises(errors.UserNotLoggedIn):
        lib.init_pin(rw, USER_PIN)
    lib.login(rw, CKU.SO, b"so-secret")
    with pytest.raises(errors.PinLenRange):
        lib.init_pin(rw, b"12")
    lib.init_pin(rw, USER_PIN)
    lib.logout(rw)
    with pytest.raises(errors.UserNotLoggedIn):
        lib.logout(rw)
    assert lib.get_token_info(0).flags & CKF.USER_PIN_INITIALIZED
    text = (filestore / "0.pkcs11.json").read_text()
    assert USER_PIN.decode() not in text and "so-secret" not in text and "scrypt" in text

    # private objects are invisible before login
    assert find(lib, rw, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY))]) == []
    with pytest.raises(errors.PinIncorrect):
        lib.login(rw, CKU.USER, b"9999")
    assert lib.get_token_info(0).flags & CKF.USER_PIN_COUNT_LOW
    lib.login(rw, CKU.USER, USER_PIN)
    assert not lib.get_token_info(0).flags & CKF.USER_PIN_COUNT_LOW  # reset on success
    with pytest.raises(errors.UserAlreadyLoggedIn):
        lib.login(rw, CKU.USER, USER_PIN)
    key = find_one(lib, rw, CKO.PRIVATE_KEY, "device")
    assert attr(lib, rw, key, CKA.PRIVATE) == TRUE
    lib.sign_init(rw, Mechanism(CKM.ECDSA), key)
    assert len(lib.sign(rw, bytes(32), 64)) == 64
    lib.set_pin(rw, USER_PIN, b"5678")
    lib.logout(rw)
    with pytest.raises(errors.KeyHandleInvalid):  # unusable after logout
        lib.sign_init(rw, Mechanism(CKM.ECDSA), key)

    # the counter is shared with another "process" and locks after 10 wrong PINs
    other = Library()
    other.initialize(None)
    try:
        s2 = other.open_session(0, CKF.SERIAL_SESSION)
        for i in range(1, 10):
            with pytest.raises(errors.PinIncorrect):
                other.login(s2, CKU.USER, b"0000")
            flags = lib.get_token_info(0).flags
            assert flags & CKF.USER_PIN_COUNT_LOW
            assert bool(flags & CKF.USER_PIN_FINAL_TRY) == (i == 9)
        with pytest.raises(errors.PinIncorrect):
            other.login(s2, CKU.USER, b"0000")
        assert lib.get_token_info(0).flags & CKF.USER_PIN_LOCKED
        with pytest.raises(errors.PinLocked):
            other.login(s2, CKU.USER, b"5678")
    finally:
        other.finalize()
    # the SO unlocks by setting a new user PIN
    lib.login(rw, CKU.SO, b"so-secret")
    lib.init_pin(rw, b"abcd")
    lib.logout(rw)
    assert not lib.get_token_info(0).flags & CKF.USER_PIN_LOCKED
    lib.login(rw, CKU.USER, b"abcd")


def test_without_pin_any_pin_logs_in(lib, session):
    lib.login(session, CKU.USER, b"whatever")
    with pytest.raises(errors.UserAlreadyLoggedIn):
        lib.login(session, CKU.USER, b"")
    lib.logout(session)
    with pytest.raises(errors.SessionExists):
        lib.init_token(0, b"so", b"x")
    assert not lib.get_token_info(0).flags & CKF.LOGIN_REQUIRED
