"""Library state: initialise/finalise cycles, slots present and absent, token info, sessions,
login, and the error codes of the general, slot and session functions (PKCS#11 3.0 §5.4-§5.6)."""

from __future__ import annotations

import os

import pytest

from cryptoki import errors
from cryptoki import log as cryptoki_log
from cryptoki.constants import CKF, CKM, CKR, CKS, CKU
from cryptoki.library import Library
from cryptoki.types import InitArgs, Mechanism


def rv(excinfo: pytest.ExceptionInfo[errors.Pkcs11Error]) -> int:
    return excinfo.value.rv


# -- C_Initialize / C_Finalize -------------------------------------------------------------


def test_calls_before_initialize_are_refused(tngtls_filestore):
    lib = Library()
    for call in (
        lambda: lib.get_info(),
        lambda: lib.get_slot_list(False),
        lambda: lib.get_token_info(0),
        lambda: lib.open_session(0, CKF.SERIAL_SESSION),
        lambda: lib.close_session(1),
        lambda: lib.finalize(),
    ):
        with pytest.raises(errors.Pkcs11Error) as exc:
            call()
        assert rv(exc) == CKR.CRYPTOKI_NOT_INITIALIZED


def test_initialize_twice_and_cycles(tngtls_filestore):
    lib = Library()
    lib.initialize(None)
    with pytest.raises(errors.CryptokiAlreadyInitialized):
        lib.initialize(None)
    handles = set()
    for _ in range(5):  # p11-kit's server cycles like this in one process
        lib.finalize()
        lib.initialize(
            InitArgs(flags=CKF.OS_LOCKING_OK, has_mutex_functions=False, reserved_is_null=True)
        )
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        assert s not in handles, "session handles are never reused"
        handles.add(s)
        assert lib.get_token_info(0).session_count == 1
    lib.finalize()
    with pytest.raises(errors.CryptokiNotInitialized):
        lib.finalize()


def test_initialize_argument_checks(tngtls_filestore):
    lib = Library()
    with pytest.raises(errors.ArgumentsBad):
        lib.initialize(InitArgs(flags=0, has_mutex_functions=False, reserved_is_null=False))
    with pytest.raises(errors.CantLock):
        lib.initialize(InitArgs(flags=0, has_mutex_functions=True, reserved_is_null=True))
    lib.initialize(
        InitArgs(flags=CKF.OS_LOCKING_OK, has_mutex_functions=True, reserved_is_null=True)
    )
    lib.finalize()


def test_initialize_does_not_touch_the_chip(tmp_path, monkeypatch, slot_file_writer):
    write_slot_file = slot_file_writer
    # A slot whose state file does not exist would fail any chip access; C_Initialize and
    # C_GetSlotList(FALSE) must still succeed.
    filestore = tmp_path / "fs"
    filestore.mkdir()
    write_slot_file(filestore, 0, "missing.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    assert lib.get_slot_list(False) == [0]
    lib.finalize()


def test_pid_change_means_not_initialised(lib, monkeypatch):
    real = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real + 100000)
    with pytest.raises(errors.CryptokiNotInitialized):
        lib.get_slot_list(False)
    lib.initialize(None)  # the "child" starts afresh
    assert lib.get_slot_list(True) == [0]
    lib.finalize()
    monkeypatch.setattr(os, "getpid", lambda: real)
    # Back in the "parent": its own state was replaced by the child's initialise in this
    # simulation; a fresh initialise works.
    with pytest.raises(errors.CryptokiNotInitialized):
        lib.get_info()


def test_get_info(lib):
    info = lib.get_info()
    assert info.manufacturer_id == "Microchip Technology Inc"
    assert info.cryptoki_version.major >= 2
    assert info.flags == 0


# -- slots ------------------------------------------------------------------------------------


def test_slots_present_absent_and_broken(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    make_chip, write_slot_file = chip_factory, slot_file_writer
    filestore = tmp_path / "fs"
    make_chip(filestore, "chip0.json")
    write_slot_file(filestore, 0, "chip0.json", label="first")
    make_chip(filestore, "chip3.json", serial=bytes.fromhex("0123aabbccddeeff01"))
    write_slot_file(filestore, 3, "chip3.json", label="second")
    write_slot_file(filestore, 5, "nochip.json")  # state file missing
    (filestore / "7.conf").write_text("interface = i2c,0xC0,0x3e7\ndevice = ATECC608\n")
    (filestore / "9.conf").write_text("interface = emulator,chip0.json\nthis is not valid\n")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    log_file = tmp_path / "p11.log"
    monkeypatch.setenv("ATECC_PKCS11_LOG", f"{log_file}:INFO")
    cryptoki_log.configure(force=True)
    lib = Library()
    try:
        lib.initialize(None)
        # a misconfigured slot file is a slot whose token is absent and says why (issue 14)
        assert lib.get_slot_list(False) == [0, 3, 5, 7, 9]
        assert lib.get_slot_list(True) == [0, 3]
        assert f"{filestore / '9.conf'}:2:" in log_file.read_text()
        assert lib.get_slot_info(9).slot_description.startswith("9.conf:2: expected 'key = v")
        for absent in (5, 7, 9):
            info = lib.get_slot_info(absent)
            assert not info.flags & CKF.TOKEN_PRESENT
            with pytest.raises(errors.TokenNotPresent):
                lib.get_token_info(absent)
            with pytest.raises(errors.TokenNotPresent):
                lib.open_session(absent, CKF.SERIAL_SESSION)
        assert lib.get_slot_info(0).flags & CKF.TOKEN_PRESENT
        assert lib.get_token_info(3).label == "second"
        assert lib.get_token_info(3).serial_number == "23AABBCCDDEEFF01"  # chip serial bytes 1-8
        with pytest.raises(errors.SlotIdInvalid):
            lib.get_slot_info(8)
    finally:
        lib.finalize()
        monkeypatch.delenv("ATECC_PKCS11_LOG")
        cryptoki_log.configure(force=True)


def test_absent_chip_is_noticed_when_it_appears(
    tmp_path, monkeypatch, chip_factory, slot_file_writer
):
    make_chip, write_slot_file = chip_factory, slot_file_writer
    filestore = tmp_path / "fs"
    filestore.mkdir()
    write_slot_file(filestore, 0, "late.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    assert lib.get_slot_list(True) == []
    make_chip(filestore, "late.json")
    assert lib.get_slot_list(True) == [0]
    lib.finalize()


def test_token_info(lib, tngtls_filestore):
    from atecc.emulator.state import StateFile

    state = StateFile(tngtls_filestore / "chip0.json").load()
    serial = bytes(state.config[0:4] + state.config[8:13])
    info = lib.get_token_info(0)
    assert info.label == "00ABC"
    assert info.manufacturer_id == "Microchip Technology Inc"
    assert info.model in ("ATECC608A", "ATECC608B")
    assert info.serial_number == serial[1:9].hex().upper()
    assert info.flags & CKF.RNG and info.flags & CKF.TOKEN_INITIALIZED
    assert not info.flags & CKF.LOGIN_REQUIRED
    assert info.session_count == 0 and info.max_session_count > 0


def test_token_serial_is_serial_bytes_1_to_8_as_microchips_module_reports_it(
    tmp_path, monkeypatch, chip_factory, slot_file_writer
):
    """libcryptoauth.so shows chip 012326DAE9080CE801 as token serial 2326DAE9080CE801."""
    filestore = tmp_path / "fs"
    chip_factory(filestore, "chip0.json", serial=bytes.fromhex("012326DAE9080CE801"))
    slot_file_writer(filestore, 0, "chip0.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    try:
        assert lib.get_token_info(0).serial_number == "2326DAE9080CE801"
    finally:
        lib.finalize()


def test_model_follows_revision(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    make_chip, write_slot_file = chip_factory, slot_file_writer
    filestore = tmp_path / "fs"
    make_chip(filestore, "b.json", revision="B")
    write_slot_file(filestore, 0, "b.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    assert lib.get_token_info(0).model == "ATECC608B"
    lib.finalize()


def test_mechanisms(lib):
    assert set(lib.get_mechanism_list(0)) == {
        CKM.ECDSA,
        CKM.ECDSA_SHA256,
        CKM.EC_KEY_PAIR_GEN,
        CKM.ECDH1_DERIVE,
        CKM.SHA256,
        CKM.SHA256_HMAC,
        CKM.SHA256_HMAC_GENERAL,
        CKM.AES_KEY_GEN,
        CKM.AES_ECB,
        CKM.AES_CBC,
        CKM.AES_CBC_PAD,
        CKM.AES_GCM,
    }
    info = lib.get_mechanism_info(0, CKM.ECDSA)
    assert (info.min_key_size, info.max_key_size) == (256, 256)
    assert info.flags & CKF.HW and info.flags & CKF.SIGN and info.flags & CKF.VERIFY
    assert lib.get_mechanism_info(0, CKM.EC_KEY_PAIR_GEN).flags & CKF.GENERATE_KEY_PAIR
    with pytest.raises(errors.MechanismInvalid):
        lib.get_mechanism_info(0, CKM.AES_CTR)
    with pytest.raises(errors.SlotIdInvalid):
        lib.get_mechanism_list(42)


def test_wait_for_slot_event_and_init_token(lib):
    with pytest.raises(errors.NoEvent):
        lib.wait_for_slot_event(1)
    lib.init_token(0, b"so", b"label".ljust(32))  # without a PIN: any SO PIN, as for C_Login
    assert lib.get_token_info(0).label == "label"


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_ro_rw_counts_and_states(lib):
    with pytest.raises(errors.SessionParallelNotSupported):
        lib.open_session(0, 0)
    ro = lib.open_session(0, CKF.SERIAL_SESSION)
    rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
    info = lib.get_token_info(0)
    assert (info.session_count, info.rw_session_count) == (2, 1)
    assert lib.get_session_info(ro).state == CKS.RO_PUBLIC_SESSION
    assert lib.get_session_info(rw).state == CKS.RW_PUBLIC_SESSION
    assert lib.get_session_info(rw).flags == CKF.SERIAL_SESSION | CKF.RW_SESSION
    lib.login(ro, CKU.USER, b"any")
    assert lib.get_session_info(ro).state == CKS.RO_USER_FUNCTIONS
    assert lib.get_session_info(rw).state == CKS.RW_USER_FUNCTIONS
    lib.close_session(ro)
    with pytest.raises(errors.SessionHandleInvalid):
        lib.get_session_info(ro)
    lib.close_all_sessions(0)
    assert lib.get_token_info(0).session_count == 0
    # The last session closing logged the user out.
    s = lib.open_session(0, CKF.SERIAL_SESSION)
    assert lib.get_session_info(s).state == CKS.RO_PUBLIC_SESSION
    assert s > rw, "handles count up"


def test_login_logout(lib, session):
    with pytest.raises(errors.UserNotLoggedIn):
        lib.logout(session)
    lib.login(session, CKU.USER, b"1234")
    with pytest.raises(errors.UserAlreadyLoggedIn):
        lib.login(session, CKU.USER, b"1234")
    with pytest.raises(errors.UserAnotherAlreadyLoggedIn):
        lib.login(session, CKU.SO, b"1234")
    lib.logout(session)
    with pytest.raises(errors.SessionReadOnlyExists):
        lib.login(session, CKU.SO, b"x")  # the SO needs read/write sessions only
    with pytest.raises(errors.UserTypeInvalid):
        lib.login(session, 7, b"x")
    with pytest.raises(errors.OperationNotInitialized):
        lib.login(session, CKU.CONTEXT_SPECIFIC, b"x")


def test_so_login_blocks_ro_sessions(lib, rw_session):
    lib.login(rw_session, CKU.SO, None)
    assert lib.get_session_info(rw_session).state == CKS.RW_SO_FUNCTIONS
    with pytest.raises(errors.SessionReadWriteSoExists):
        lib.open_session(0, CKF.SERIAL_SESSION)


def test_invalid_session_handles(lib):
    bad = 999
    for call in (
        lambda: lib.close_session(bad),
        lambda: lib.get_session_info(bad),
        lambda: lib.login(bad, CKU.USER, b""),
        lambda: lib.find_objects_init(bad, []),
        lambda: lib.sign_init(bad, Mechanism(CKM.ECDSA), 1),
        lambda: lib.generate_random(bad, 8),
        lambda: lib.seed_random(bad, b"x"),
        lambda: lib.get_attribute_value(bad, 1, []),
        lambda: lib.encrypt_init(bad, Mechanism(CKM.AES_CBC), 1),
    ):
        with pytest.raises(errors.SessionHandleInvalid):
            call()


def test_unsupported_functions(lib, session):
    # Without ``user_pin = required`` there is no PIN to initialise.
    with pytest.raises(errors.FunctionNotSupported):
        lib.init_pin(session, b"1234")
    with pytest.raises(errors.FunctionNotSupported):
        lib.get_operation_state(session, None)


# -- random -----------------------------------------------------------------------------------


def test_generate_random(lib, session):
    assert lib.generate_random(session, 0) == b""
    for n in (1, 32, 33, 100):
        out = lib.generate_random(session, n)
        assert len(out) == n
    a, b = lib.generate_random(session, 64), lib.generate_random(session, 64)
    assert a != b
    with pytest.raises(errors.RandomSeedNotSupported):
        lib.seed_random(session, b"seed")


def test_random_chip_error_is_reported(lib, session, tngtls_filestore):
    # Break the chip between calls: its state file disappears, so the next command fails.
    token = lib._slots[0].token
    lib.generate_random(session, 8)

    class Broken:
        def random(self, n):
            raise errors.DeviceError("simulated")

    token.backend = Broken()
    with pytest.raises(errors.DeviceError):
        lib.generate_random(session, 8)


def test_token_info_reads_nothing_but_identity_from_the_chip(tngtls_filestore, monkeypatch):
    """C_GetTokenInfo (what `pkcs11-tool -L` asks) must not load the objects: reading the device
    key and rebuilding the certificates cost every short-lived host the first listing's chip
    round trips (and, on the emulator, the import of cryptography)."""
    lib = Library()
    lib.initialize(None)
    try:
        token = lib._slots[0].token
        calls = []
        for name in ("public_key", "certificate_chain", "slot_caps"):
            real = getattr(token.backend, name)
            monkeypatch.setattr(
                token.backend,
                name,
                lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k),
            )
        assert lib.get_token_info(0).label == "00ABC"
        assert calls == []
    finally:
        lib.finalize()
