"""The atecc backend: every driver error is mapped deliberately, slot permissions decode from
the real config zone, and chip failures surface as PKCS#11 errors through the Library."""

from __future__ import annotations

import pytest

import atecc.errors as ae
from cryptoki import errors
from cryptoki.backends.atecc import ERROR_MAP, AteccBackend, chip_errors, map_error


def all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out.add(sub)
        out |= all_subclasses(sub)
    return out


def test_every_atecc_error_has_an_explicit_mapping():
    missing = {c.__name__ for c in all_subclasses(ae.AteccError) | {ae.AteccError}} - {
        c.__name__ for c in ERROR_MAP
    }
    assert not missing, f"AteccError subclasses without a row in ERROR_MAP: {sorted(missing)}"
    for cls, target in ERROR_MAP.items():
        assert issubclass(target, errors.Pkcs11Error)
        assert issubclass(cls, ae.AteccError)


@pytest.mark.parametrize(
    "exc, rv_cls",
    [
        (ae.NoDevice(), errors.DeviceError),
        (ae.BusTimeout(), errors.DeviceError),
        (ae.ResponseCrcError(), errors.DeviceError),
        (ae.EccFault(), errors.FunctionFailed),
        (ae.ExecutionError(), errors.FunctionFailed),
        (ae.StatusError(0x42, "odd"), errors.DeviceError),
    ],
)
def test_map_error(exc, rv_cls):
    assert type(map_error(exc)) is rv_cls


def test_chip_errors_context_overrides():
    with pytest.raises(errors.KeyFunctionNotPermitted):
        with chip_errors("sign", {ae.ExecutionError: errors.KeyFunctionNotPermitted}):
            raise ae.ExecutionError()
    with pytest.raises(errors.FunctionFailed):
        with chip_errors("sign", {ae.ExecutionError: errors.KeyFunctionNotPermitted}):
            raise ae.EccFault()


def test_slot_caps_of_trust_and_go(tngtls_filestore):
    from atecc.slotfile import parse_slot_file

    backend = AteccBackend(parse_slot_file(tngtls_filestore / "0.conf").interface, "0.conf")
    try:
        caps = {n: backend.slot_caps(n) for n in range(16)}
    finally:
        backend.close()
    assert caps[0].p256_private and not caps[0].gen_key  # factory key, never replaced
    assert all(caps[n].gen_key for n in (2, 3, 4))
    assert not any(caps[n].gen_key for n in range(8, 16))


def test_missing_state_file_is_not_present(tmp_path):
    from atecc.slotfile import EmulatorInterface

    backend = AteccBackend(EmulatorInterface(tmp_path / "none.json"), "x.conf")
    with pytest.raises(errors.TokenNotPresent):
        backend.identity()
    backend.close()
    backend.close()  # twice is fine


def emulated_bus(lib):
    """The EmulatedBus behind slot 0 (opened by the first chip access)."""
    return lib._slots[0].token.backend._device.transport.bus


def test_ecc_fault_during_sign_is_function_failed(lib, session, device_key):
    from cryptoki.constants import CKM
    from cryptoki.types import Mechanism

    lib.sign_init(session, Mechanism(CKM.ECDSA_SHA256), device_key)
    emulated_bus(lib).faults.ecc_fault_next(10)  # more than the driver retries
    with pytest.raises(errors.FunctionFailed):
        lib.sign(session, b"x", 64)
    with pytest.raises(errors.OperationNotInitialized):  # the error ended the operation
        lib.sign(session, b"x", 64)


def test_bus_failure_during_random_is_device_error(lib, session):
    lib.generate_random(session, 4)
    emulated_bus(lib).faults.nack_next(1000)
    with pytest.raises(errors.DeviceError):
        lib.generate_random(session, 4)
    emulated_bus(lib).faults.nacks = 0


def test_a_transient_chip_error_while_loading_does_not_hide_the_certificates(
    tngtls_filestore, monkeypatch
):
    """A bus fault while the token first reads its certificates leaves them pending; the next
    listing reads them (they used to stay hidden until C_Finalize)."""
    from cryptoki.constants import CKA, CKF, CKO
    from cryptoki.library import Library

    lib = Library()
    lib.initialize(None)
    try:
        session = lib.open_session(0, CKF.SERIAL_SESSION)
        backend = lib._slots[0].token.backend
        real = backend.certificate_chain
        calls = []

        def first_read_faulty(*args):
            if len(calls) < 2:  # the first listing reads twice (load, then the retry)
                emulated_bus(lib).faults.nack_next(1000)  # the emulated bus stops answering
            calls.append(1)
            try:
                return real(*args)
            finally:
                emulated_bus(lib).faults.nacks = 0

        monkeypatch.setattr(backend, "certificate_chain", first_read_faulty)
        cert = (CKA.CLASS, CKO.CERTIFICATE.to_bytes(8, "little"))
        lib.find_objects_init(session, [cert])
        assert lib.find_objects(session, 10) == []  # the fault: not there yet
        lib.find_objects_final(session)
        lib.find_objects_init(session, [cert])
        assert len(lib.find_objects(session, 10)) == 2  # device and signer, on the next listing
        lib.find_objects_final(session)
    finally:
        lib.finalize()


def test_a_nack_while_rereading_after_a_crc_error_is_a_device_error_or_a_retry(lib, session):
    """The re-read of a corrupted reply that nobody answers used to escape as an OSError
    (CKR_GENERAL_ERROR with a traceback); now the command is resent, or the call answers
    CKR_DEVICE_ERROR when the chip keeps silent."""
    lib.generate_random(session, 4)
    bus = emulated_bus(lib)
    real = bus.i2c_rdwr
    state = {"armed": False, "silent": 0, "skip": 0}

    def rdwr(*msgs):
        if state["skip"]:
            state["skip"] -= 1  # the rewind (word address 0x00) goes through
        elif state["silent"]:
            state["silent"] -= 1
            bus.faults.nack_next(1)  # ... and the re-read finds nobody
        result = real(*msgs)
        if state["armed"] and bus.faults.crc_corruptions == 0:
            state["armed"] = False  # the corrupted reply was just read
            state["skip"], state["silent"] = 1, state.pop("after", 3)
        return result

    bus.i2c_rdwr = rdwr
    for silence in (3, 1000):
        state.update(armed=True, after=silence)
        bus.faults.corrupt_next_crc(1)
        try:
            assert len(lib.generate_random(session, 32)) == 32  # short silence: resent
        except errors.DeviceError:
            assert silence == 1000  # the chip stays silent: device trouble, never GENERAL_ERROR
        state["silent"] = 0
        bus.faults.nacks = 0


def test_random_transfer_faults_give_right_answers_or_device_errors_never_python_errors(
    lib, session, device_key, device_pub
):
    """1,500 chip operations with CRC corruption, NACKs, watchdog expiry and ECC faults injected
    at random: every answer is right (signatures verify, digests and random lengths match) or a
    CKR the spec allows for device trouble; nothing escapes as a Python exception."""
    import hashlib
    import random

    from cryptoki.constants import CKM
    from cryptoki.types import Mechanism

    lib.generate_random(session, 4)
    bus = emulated_bus(lib)
    rng = random.Random(1108)
    allowed = (errors.DeviceError, errors.FunctionFailed)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(1500):
        pick = rng.random()
        if pick < 0.05:
            bus.faults.corrupt_next_crc(rng.randint(1, 4))
        elif pick < 0.10:
            bus.faults.nack_next(rng.randint(1, 6))
        elif pick < 0.12:
            bus.faults.expire_watchdog()
        elif pick < 0.14:
            bus.faults.ecc_fault_next(rng.randint(1, 3))
        op = rng.choice(("sign", "digest", "random"))
        try:
            if op == "sign":
                lib.sign_init(session, Mechanism(CKM.ECDSA_SHA256), device_key)
                sig = lib.sign(session, b"payload", 64)
                lib.verify_init(session, Mechanism(CKM.ECDSA_SHA256), device_pub)
                lib.verify(session, b"payload", sig)  # a wrong signature would raise here
            elif op == "digest":
                lib.digest_init(session, Mechanism(CKM.SHA256))
                assert lib.digest(session, b"d" * 70, 32) == hashlib.sha256(b"d" * 70).digest()
            else:
                assert len(lib.generate_random(session, 48)) == 48
            outcomes["ok"] += 1
        except allowed:
            outcomes["refused"] += 1
        finally:
            bus.faults.nacks = bus.faults.crc_corruptions = bus.faults.ecc_faults = 0
    assert outcomes["ok"] > 1000, outcomes
