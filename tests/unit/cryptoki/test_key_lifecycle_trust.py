"""Keys are never lost and handles never go stale (issue 11): destroying one half of a pair,
erasing destroyed keys on the chip, handles across "processes" (two Library instances share the
metadata file and the chip as two processes do), copies, C_InitToken, and crash safety of
destroying a secret key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from p11util import attr, find, find_one, ulong
from test_cryptoki_keygen import GEN, templates

from atecc import fileio
from cryptoki import errors
from cryptoki.constants import CKA, CKD, CKF, CKK, CKM, CKO, CKU
from cryptoki.library import Library
from cryptoki.types import Ecdh1DeriveParams, Mechanism

TRUE, FALSE = b"\x01", b"\x00"
AES_GEN = Mechanism(CKM.AES_KEY_GEN)
AES_TEMPLATE = [(CKA.VALUE_LEN, ulong(16)), (CKA.LABEL, b"aes"), (CKA.TOKEN, TRUE)]


def _other() -> tuple[Library, int]:
    """A second Library (another process's view of the same filestore) and a R/W session."""
    other = Library()
    other.initialize(None)
    return other, other.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)


def _chip_public_key(lib: Library, slot: int) -> bytes:
    return lib._slots[0].token.backend.public_key(slot)


def test_destroying_the_public_key_of_a_pair_keeps_its_private_key(lib, rw_session):
    pub, priv = lib.generate_key_pair(rw_session, GEN, *templates(b"pair"))
    lib.destroy_object(rw_session, pub)
    lib.sign_init(rw_session, Mechanism(CKM.ECDSA), priv)
    assert len(lib.sign(rw_session, bytes(32), 64)) == 64
    other, s = _other()
    try:
        assert find(other, s, [(CKA.LABEL, b"pair")]) != []  # the private key, for everyone
        assert find(other, s, [(CKA.CLASS, ulong(CKO.PUBLIC_KEY)), (CKA.LABEL, b"pair")]) == []
    finally:
        other.finalize()


def test_destroying_a_generated_private_key_erases_it_from_the_chip(lib, rw_session):
    pub, priv = lib.generate_key_pair(rw_session, GEN, *templates(b"gone"))
    point = attr(lib, rw_session, pub, CKA.EC_POINT)[3:]
    slot = lib._slots[0].token.object(priv).chip_slot
    assert _chip_public_key(lib, slot) == point
    copy = lib.copy_object(rw_session, priv, [(CKA.TOKEN, FALSE)])
    lib.sign_init(rw_session, Mechanism(CKM.ECDSA), copy)
    lib.destroy_object(rw_session, priv)
    assert _chip_public_key(lib, slot) != point, "the destroyed key can still sign on the chip"
    with pytest.raises(errors.KeyHandleInvalid):  # an operation begun with a copy cannot go on
        lib.sign(rw_session, bytes(32), 64)


def test_a_handle_whose_key_another_process_replaced_fails_instead_of_signing_with_the_new_key(
    lib, rw_session
):
    _, priv = lib.generate_key_pair(rw_session, GEN, *templates(b"mine"))
    slot = lib._slots[0].token.object(priv).chip_slot
    lib.sign_init(rw_session, Mechanism(CKM.ECDSA), priv)
    other, s = _other()
    try:
        (theirs,) = find(other, s, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY)), (CKA.LABEL, b"mine")])
        other.destroy_object(s, theirs)
        # free slots are taken in order, so the new key lands in the same chip slot
        _, new = other.generate_key_pair(s, GEN, *templates(b"new"))
        assert other._slots[0].token.object(new).chip_slot == slot
    finally:
        other.finalize()
    with pytest.raises(errors.KeyHandleInvalid):
        lib.sign(rw_session, bytes(32), 64)
    with pytest.raises(errors.KeyHandleInvalid):
        lib.sign_init(rw_session, Mechanism(CKM.ECDSA), priv)


def test_a_secret_key_destroyed_after_encrypt_init_fails_the_next_encrypt(lib, rw_session):
    key = lib.generate_key(rw_session, AES_GEN, AES_TEMPLATE)
    lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB), key)
    other, s = _other()
    try:
        (theirs,) = find(other, s, [(CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.LABEL, b"aes")])
        other.destroy_object(s, theirs)
        other.generate_key(s, AES_GEN, AES_TEMPLATE)  # same key block, another key
    finally:
        other.finalize()
    with pytest.raises(errors.KeyHandleInvalid):
        lib.encrypt(rw_session, bytes(16), 16)
    # and within one process: destroy after init
    key2 = lib.generate_key(rw_session, AES_GEN, AES_TEMPLATE)
    lib.encrypt_init(rw_session, Mechanism(CKM.AES_ECB), key2)
    lib.destroy_object(rw_session, key2)
    with pytest.raises(errors.KeyHandleInvalid):
        lib.encrypt(rw_session, bytes(16), 16)


_DESTROY_SECRET = """
import os, sys
from atecc import fileio
from cryptoki.constants import CKA, CKF, CKO
from cryptoki.library import Library
lib = Library()
lib.initialize(None)
rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
lib.find_objects_init(rw, [(CKA.LABEL, b"aes")])
(key,) = lib.find_objects(rw, 5)
def hook(name):
    if name == sys.argv[1]:
        os._exit(42)
fileio.crash_hook = hook
lib.destroy_object(rw, key)
os._exit(0)
"""


@pytest.mark.parametrize("step", fileio.WRITE_STEPS)
def test_a_crash_while_destroying_a_secret_key_never_leaves_the_object_with_its_key_gone(
    tngtls_filestore: Path, step: str
) -> None:
    lib = Library()
    lib.initialize(None)
    rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
    key = lib.generate_key(rw, AES_GEN, AES_TEMPLATE)
    lib.encrypt_init(rw, Mechanism(CKM.AES_ECB), key)
    ciphertext = lib.encrypt(rw, b"sixteen byte msg", 16)
    lib.finalize()
    env = {**os.environ, "ATECC_PKCS11_FILESTORE": str(tngtls_filestore)}
    proc = subprocess.run([sys.executable, "-c", _DESTROY_SECRET, step], env=env, check=False)
    assert proc.returncode == 42
    lib = Library()
    lib.initialize(None)
    try:
        rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        found = find(lib, rw, [(CKA.LABEL, b"aes")])
        if found:  # the object survived: then so did its key
            lib.decrypt_init(rw, Mechanism(CKM.AES_ECB), found[0])
            assert lib.decrypt(rw, ciphertext, 16) == b"sixteen byte msg"
    finally:
        lib.finalize()


def test_private_true_on_a_created_object_is_honoured_without_a_pin(lib, rw_session):
    template = [(CKA.CLASS, ulong(CKO.DATA)), (CKA.PRIVATE, TRUE), (CKA.LABEL, b"secret-note")]
    with pytest.raises(errors.UserNotLoggedIn):
        lib.create_object(rw_session, template)
    lib.login(rw_session, CKU.USER, b"any")
    handle = lib.create_object(rw_session, template)
    assert attr(lib, rw_session, handle, CKA.PRIVATE) == TRUE
    lib.logout(rw_session)
    assert find(lib, rw_session, [(CKA.LABEL, b"secret-note")]) == []


def test_a_token_copy_of_a_chip_key_is_a_token_object_that_signs_for_other_processes(
    lib, rw_session, device_key
):
    copy = lib.copy_object(rw_session, device_key, [(CKA.LABEL, b"kept"), (CKA.TOKEN, TRUE)])
    assert attr(lib, rw_session, copy, CKA.TOKEN) == TRUE
    other, s = _other()
    try:
        (seen,) = find(other, s, [(CKA.LABEL, b"kept")])
        other.sign_init(s, Mechanism(CKM.ECDSA), seen)
        assert len(other.sign(s, bytes(32), 64)) == 64
        other.destroy_object(s, seen)
    finally:
        other.finalize()
    assert find(lib, rw_session, [(CKA.LABEL, b"kept")]) == []
    assert attr(lib, rw_session, device_key, CKA.LABEL) == b"device"


def test_copy_may_change_a_data_objects_value_as_set_attribute_value_may(lib, rw_session):
    data = lib.create_object(
        rw_session, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.VALUE, b"one"), (CKA.TOKEN, FALSE)]
    )
    copy = lib.copy_object(rw_session, data, [(CKA.VALUE, b"two")])
    assert attr(lib, rw_session, copy, CKA.VALUE) == b"two"
    lib.set_attribute_value(rw_session, data, [(CKA.VALUE, b"three")])
    assert attr(lib, rw_session, data, CKA.VALUE) == b"three"


def test_init_token_wipes_what_the_module_made_and_takes_the_new_label(lib):
    rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
    pub, priv = lib.generate_key_pair(rw, GEN, *templates(b"old"))
    point = attr(lib, rw, pub, CKA.EC_POINT)[3:]
    slot = lib._slots[0].token.object(priv).chip_slot
    lib.create_object(rw, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, TRUE), (CKA.LABEL, b"old")])
    lib.close_session(rw)
    lib.init_token(0, b"any", b"fresh token".ljust(32))
    assert lib.get_token_info(0).label == "fresh token"
    s = lib.open_session(0, CKF.SERIAL_SESSION)
    assert find(lib, s, [(CKA.LABEL, b"old")]) == []
    assert find_one(lib, s, CKO.PRIVATE_KEY, "device")  # the chip's own key stays
    assert _chip_public_key(lib, slot) != point  # the generated key is erased
    other, s2 = _other()
    try:
        assert other.get_token_info(0).label == "fresh token"
        assert find(other, s2, [(CKA.LABEL, b"old")]) == []
    finally:
        other.finalize()


def test_a_derived_key_too_short_to_hide_its_value_is_refused(lib, rw_session, device_key):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    peer = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    mech = Mechanism(CKM.ECDH1_DERIVE, Ecdh1DeriveParams(CKD.NULL, None, peer))
    base = [(CKA.CLASS, ulong(CKO.SECRET_KEY)), (CKA.KEY_TYPE, ulong(CKK.GENERIC_SECRET))]
    with pytest.raises(errors.AttributeValueInvalid):
        lib.derive_key(rw_session, mech, device_key, [*base, (CKA.VALUE_LEN, ulong(1))])
    key = lib.derive_key(rw_session, mech, device_key, [*base, (CKA.VALUE_LEN, ulong(16))])
    lib.digest_init(rw_session, Mechanism(CKM.SHA256))
    lib.digest_key(rw_session, key)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() in a threaded process
def test_a_child_forked_while_a_thread_writes_metadata_can_use_the_token(tngtls_filestore):
    """fork() while another thread holds the metadata lock used to leave the child blocked
    forever on the lock it inherited, even after a fresh C_Initialize."""
    import threading
    import time

    lib = Library()
    lib.initialize(None)
    store = lib._slots[0].token.store
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.locked():  # what a metadata write holds
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: a fresh C_Initialize, then a token write
        try:
            lib.initialize(None)
            rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
            lib.create_object(
                rw, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, TRUE), (CKA.LABEL, b"child")]
            )
        except BaseException:
            os._exit(3)
        os._exit(0)
    time.sleep(0.3)
    release.set()  # the parent's writer finishes; the child must then get the lock
    thread.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the metadata lock")
    assert os.waitstatus_to_exitcode(status) == 0
    lib.finalize()
