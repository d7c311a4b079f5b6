"""C_GenerateKeyPair: templates, free-slot selection, persistence across Library instances and
processes through the metadata file, session key pairs, and destruction."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from p11util import attr, find, find_one, ulong

from cryptoki import errors
from cryptoki.constants import CKA, CKF, CKK, CKM, CKO, CKU, P256_EC_PARAMS
from cryptoki.library import Library
from cryptoki.types import Mechanism

GEN = Mechanism(CKM.EC_KEY_PAIR_GEN)
TRUE, FALSE = b"\x01", b"\x00"


def templates(
    label: bytes = b"mykey",
    *,
    token: bool = True,
    params: bytes = P256_EC_PARAMS,
    key_id: bytes | None = None,
):
    pub = [
        (CKA.TOKEN, TRUE if token else FALSE),
        (CKA.EC_PARAMS, params),
        (CKA.VERIFY, TRUE),
        (CKA.LABEL, label),
    ]
    priv = [
        (CKA.TOKEN, TRUE if token else FALSE),
        (CKA.SIGN, TRUE),
        (CKA.SENSITIVE, TRUE),
        (CKA.LABEL, label),
    ]
    if key_id is not None:
        pub.append((CKA.ID, key_id))
        priv.append((CKA.ID, key_id))
    return pub, priv


def test_generate_sign_verify(lib, rw_session):
    pub, priv = lib.generate_key_pair(rw_session, GEN, *templates())
    assert attr(lib, rw_session, priv, CKA.LABEL) == b"mykey"
    point = attr(lib, rw_session, pub, CKA.EC_POINT)
    assert attr(lib, rw_session, priv, CKA.ID) == hashlib.sha1(point[2:]).digest()
    assert attr(lib, rw_session, pub, CKA.ID) == attr(lib, rw_session, priv, CKA.ID)
    assert attr(lib, rw_session, priv, CKA.LOCAL) == TRUE
    assert attr(lib, rw_session, priv, CKA.DESTROYABLE) == TRUE
    assert attr(lib, rw_session, priv, CKA.KEY_TYPE) == ulong(CKK.EC)
    lib.sign_init(rw_session, Mechanism(CKM.ECDSA_SHA256), priv)
    sig = lib.sign(rw_session, b"msg", 64)
    lib.verify_init(rw_session, Mechanism(CKM.ECDSA_SHA256), pub)
    lib.verify(rw_session, b"msg", sig)
    assert find(lib, rw_session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.LABEL, b"mykey")]) == [
        priv
    ]


def test_ec_params_spellings(lib, rw_session):
    for i, params in enumerate((P256_EC_PARAMS, b"\x13\x0aprime256v1", b"\x13\x09secp256r1")):
        _, priv = lib.generate_key_pair(
            rw_session, GEN, *templates(f"k{i}".encode(), params=params)
        )
        assert attr(lib, rw_session, priv, CKA.EC_PARAMS) == P256_EC_PARAMS


def test_free_slots_run_out(lib, rw_session, tngtls_filestore):
    slots = set()
    for i in range(3):  # Trust&GO: slots 2, 3 and 4
        lib.generate_key_pair(rw_session, GEN, *templates(f"k{i}".encode()))
    doc = json.loads((tngtls_filestore / "0.pkcs11.json").read_text())
    slots = {k["slot"] for k in doc["keys"]}
    assert slots == {2, 3, 4}
    assert os.stat(tngtls_filestore / "0.pkcs11.json").st_mode & 0o777 == 0o600
    with pytest.raises(errors.DeviceMemory):
        lib.generate_key_pair(rw_session, GEN, *templates(b"k4"))
    # Destroying the private key frees its slot; the public key is data and stays.
    victim = find_one(lib, rw_session, CKO.PRIVATE_KEY, "k1")
    lib.destroy_object(rw_session, victim)
    (public,) = find(lib, rw_session, [(CKA.LABEL, b"k1")])
    assert attr(lib, rw_session, public, CKA.CLASS) == ulong(CKO.PUBLIC_KEY)
    lib.generate_key_pair(rw_session, GEN, *templates(b"again"))
    lib.destroy_object(rw_session, public)
    assert find(lib, rw_session, [(CKA.LABEL, b"k1")]) == []


def test_template_errors(lib, session, rw_session):
    with pytest.raises(errors.SessionReadOnly):
        lib.generate_key_pair(session, GEN, *templates())
    with pytest.raises(errors.MechanismInvalid):
        lib.generate_key_pair(rw_session, Mechanism(CKM.ECDSA), *templates())
    pub, priv = templates()
    cases = [
        ([(CKA.TOKEN, TRUE)], priv, errors.TemplateIncomplete),  # no EC_PARAMS
        ([*pub, (CKA.MODULUS_BITS, ulong(2048))], priv, errors.AttributeTypeInvalid),
        (pub, [*priv, (CKA.EXTRACTABLE, TRUE)], errors.TemplateInconsistent),
        (pub, [*priv, (CKA.SENSITIVE, FALSE)], errors.TemplateInconsistent),
        (pub, [*priv, (CKA.KEY_TYPE, ulong(CKK.RSA))], errors.TemplateInconsistent),
        (pub, [*priv, (CKA.LOCAL, TRUE)], errors.AttributeReadOnly),
        (pub, [*priv, (CKA.SIGN, b"\x01\x00")], errors.AttributeValueInvalid),
        ([(CKA.EC_PARAMS, bytes.fromhex("06052b81040022"))], priv, errors.CurveNotSupported),
        ([(CKA.EC_PARAMS, b"\xff")], priv, errors.AttributeValueInvalid),
        (pub, [(CKA.TOKEN, FALSE)], errors.TemplateInconsistent),  # token flags disagree
    ]
    for pub_t, priv_t, exc in cases:
        with pytest.raises(exc):
            lib.generate_key_pair(rw_session, GEN, pub_t, priv_t)
    assert find(lib, rw_session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY))]) != []


def test_private_true_is_honoured_without_a_pin_not_stored_as_false(lib, rw_session):
    pub, priv = templates()
    with pytest.raises(errors.UserNotLoggedIn):  # a private object needs the user (any PIN)
        lib.generate_key_pair(rw_session, GEN, pub, [*priv, (CKA.PRIVATE, TRUE)])
    lib.login(rw_session, CKU.USER, b"any")
    _, handle = lib.generate_key_pair(rw_session, GEN, pub, [*priv, (CKA.PRIVATE, TRUE)])
    assert attr(lib, rw_session, handle, CKA.PRIVATE) == TRUE
    lib.logout(rw_session)
    assert find(lib, rw_session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.LABEL, b"k")]) == []


def test_empty_id_means_derived_id(lib, rw_session):
    _, priv = lib.generate_key_pair(rw_session, GEN, *templates(key_id=b""))
    assert len(attr(lib, rw_session, priv, CKA.ID)) == 20
    _, priv2 = lib.generate_key_pair(rw_session, GEN, *templates(b"x", key_id=b"\x42"))
    assert attr(lib, rw_session, priv2, CKA.ID) == b"\x42"


def test_second_library_finds_generated_key(lib, rw_session):
    pub, _priv = lib.generate_key_pair(rw_session, GEN, *templates(b"shared", key_id=b"\x07"))
    point = attr(lib, rw_session, pub, CKA.EC_POINT)
    other = Library()
    other.initialize(None)
    try:
        s = other.open_session(0, CKF.SERIAL_SESSION)
        found = find(other, s, [(CKA.CLASS, ulong(CKO.PUBLIC_KEY)), (CKA.ID, b"\x07")])
        assert len(found) == 1
        assert attr(other, s, found[0], CKA.EC_POINT) == point
        # And the first library notices keys the second one generates (metadata file changed).
        rw = other.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        other.generate_key_pair(rw, GEN, *templates(b"from-other"))
        assert find(lib, rw_session, [(CKA.LABEL, b"from-other")]) != []
    finally:
        other.finalize()


def test_subprocess_finds_and_signs(lib, rw_session, tngtls_filestore):
    pub, _ = lib.generate_key_pair(rw_session, GEN, *templates(b"persist"))
    point = attr(lib, rw_session, pub, CKA.EC_POINT)
    script = textwrap.dedent(
        """
        import struct, sys
        from cryptoki.library import Library
        from cryptoki.constants import CKA, CKF, CKM, CKO
        from cryptoki.types import Mechanism
        lib = Library()
        lib.initialize(None)
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        lib.find_objects_init(s, [(CKA.CLASS, struct.pack("@L", CKO.PRIVATE_KEY)),
                                  (CKA.LABEL, b"persist")])
        (key,) = lib.find_objects(s, 10)
        lib.find_objects_final(s)
        lib.sign_init(s, Mechanism(CKM.ECDSA_SHA256), key)
        sys.stdout.write(lib.sign(s, b"from child", 64).hex())
        lib.finalize()
        """
    )
    env = dict(os.environ, ATECC_PKCS11_FILESTORE=str(tngtls_filestore))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.returncode == 0, proc.stderr
    sig = bytes.fromhex(proc.stdout)
    lib.verify_init(rw_session, Mechanism(CKM.ECDSA_SHA256), pub)
    lib.verify(rw_session, b"from child", sig)
    assert len(point) == 67


def test_session_key_pair_is_released(lib, session, tngtls_filestore):
    # CKA_TOKEN false is allowed in a read-only session; the slot is taken while it lives.
    _pub, priv = lib.generate_key_pair(session, GEN, *templates(b"tmp", token=False))
    assert attr(lib, session, priv, CKA.TOKEN) == FALSE
    doc = json.loads((tngtls_filestore / "0.pkcs11.json").read_text())
    assert [k.get("session_pid") for k in doc["keys"]] == [os.getpid()]
    other = lib.open_session(0, CKF.SERIAL_SESSION)
    assert find(lib, other, [(CKA.LABEL, b"tmp")]) != []  # visible to the application
    lib.close_session(session)
    with pytest.raises(errors.ObjectHandleInvalid):
        lib.get_attribute_value(other, priv, [CKA.LABEL])
    doc = json.loads((tngtls_filestore / "0.pkcs11.json").read_text())
    assert doc["keys"] == []


def test_dead_process_session_key_frees_its_slot(lib, rw_session, tngtls_filestore):
    from cryptoki.store import KeyRecord, MetadataStore

    store_path = tngtls_filestore / "0.pkcs11.json"
    serial = lib.get_token_info(0).serial_number
    store = MetadataStore(store_path, "")
    with store.locked():
        # Three session keys of a process that no longer exists take every free slot.
        dead = 2**22 + 12345
        store.write(
            [
                KeyRecord(slot=s, label="old", id=b"\x01", public_key=bytes(64), session_pid=dead)
                for s in (2, 3, 4)
            ]
        )
    assert serial
    lib.generate_key_pair(rw_session, GEN, *templates(b"fresh"))


def test_unwritable_store_fails_before_genkey(lib, rw_session, tngtls_filestore):
    # The lock file cannot be opened (a directory is in the way; works as root too, where
    # permission bits would not stop us): the call fails cleanly and no slot is used up.
    (tngtls_filestore / "0.pkcs11.json.lock").mkdir()
    with pytest.raises(errors.FunctionFailed):
        lib.generate_key_pair(rw_session, GEN, *templates())
    (tngtls_filestore / "0.pkcs11.json.lock").rmdir()
    lib.generate_key_pair(rw_session, GEN, *templates())
