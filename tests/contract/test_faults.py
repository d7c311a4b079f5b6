"""Every fault kind of ``EmulatedBus.faults`` is recovered from or raised as a typed error, fast.

Each test runs under a wall-clock bound: the driver's retries are bounded and, on the emulator's
virtual clock, its waits cost nothing, so nothing here may take long or hang.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from atecc.constants import Opcode
from atecc.device import ECC_FAULT_RETRIES, Device
from atecc.errors import BusTimeout, EccFault, NoDevice, SelfTestError, TransportError

from ._backends import new_emulated_chip, open_emulated

BOUND_S = 5.0


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    dev = open_emulated(new_emulated_chip(tmp_path))
    start = time.monotonic()
    yield dev
    dev.close()
    assert time.monotonic() - start < BOUND_S, "a fault test took too long"


def faults(dev: Device):  # type: ignore[no-untyped-def]
    return dev.transport.bus.faults  # type: ignore[attr-defined]


def verify(pub: bytes, digest: bytes, sig: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pub)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_corrupted_reply_crc_is_reread(device: Device, n: int) -> None:
    faults(device).corrupt_next_crc(n)
    assert len(device.random()) == 32
    pub = device.get_public_key(0)
    faults(device).corrupt_next_crc(n)
    digest = hashlib.sha256(b"crc").digest()
    verify(pub, digest, device.sign_digest(0, digest))


def test_counter_increment_not_repeated_after_crc_error(device: Device) -> None:
    # The re-read after word address 0x00 must recover without resending the increment.
    before = device.counter_read(0)
    faults(device).corrupt_next_crc(1)
    assert device.counter_increment(0) == before + 1
    assert device.counter_read(0) == before + 1


@pytest.mark.parametrize("n", [1, 2, 5])
def test_transient_nacks_are_retried(device: Device, n: int) -> None:
    faults(device).nack_next(n)
    assert len(device.random()) == 32
    assert len(device.revision()) == 4


def test_persistent_nack_raises_typed_error(device: Device) -> None:
    faults(device).nack_next(10_000)
    with pytest.raises((NoDevice, BusTimeout, TransportError)):
        device.random()
    faults(device).nacks = 0
    assert len(device.random()) == 32  # and the device recovers afterwards


def test_watchdog_expiry_between_transactions(device: Device) -> None:
    device.random()
    faults(device).expire_watchdog()
    assert len(device.random()) == 32


def test_watchdog_expiry_mid_sequence_redoes_it(device: Device) -> None:
    """The chip falls asleep after Nonce and before Sign: volatile state (the loaded digest) is
    lost, so the driver must re-wake and redo Random → Nonce → Sign."""
    pub = device.get_public_key(0)
    transport = device.transport
    original = transport.execute
    fired = []

    def execute(command, *, expected_len):  # type: ignore[no-untyped-def]
        if command.opcode == Opcode.SIGN and not fired:
            fired.append(True)
            faults(device).expire_watchdog()
        return original(command, expected_len=expected_len)

    transport.execute = execute  # type: ignore[method-assign]
    digest = hashlib.sha256(b"watchdog").digest()
    sig = device.sign_digest(0, digest)
    assert fired
    verify(pub, digest, sig)


def test_ecc_fault_is_retried(device: Device) -> None:
    pub = device.get_public_key(0)
    faults(device).ecc_fault_next(ECC_FAULT_RETRIES)
    digest = hashlib.sha256(b"ecc").digest()
    verify(pub, digest, device.sign_digest(0, digest))
    faults(device).ecc_fault_next(1)
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    assert len(device.ecdh(0, peer.x.to_bytes(32, "big") + peer.y.to_bytes(32, "big"))) == 32


def test_persistent_ecc_fault_raises(device: Device) -> None:
    faults(device).ecc_fault_next(ECC_FAULT_RETRIES + 1)
    with pytest.raises(EccFault):
        device.sign_digest(0, bytes(32))
    assert len(device.sign_digest(0, bytes(32))) == 64


def test_selftest_failure_state(device: Device) -> None:
    faults(device).selftest_fail(0x01)  # RNG unit broken: the chip is in the failure state
    with pytest.raises(SelfTestError):
        device.random()
    assert device.read_config_zone()[:2] == b"\x01\x23"  # config reads still work
    assert device.selftest(0x01) & 0x01
    faults(device).clear_selftest()
    assert device.selftest(0x01) == 0
    assert len(device.random()) == 32


def test_wake_while_awake_recovers(device: Device) -> None:
    from atecc import commands as cmd

    tr = device.transport
    with tr.lock():
        tr.wake()
        tr.wake()  # the chip ignores the pulse and answers its buffer: idle + wake again
        tr._send(cmd.random()[0].encode())  # type: ignore[attr-defined]
        tr.clock.sleep(0.05)
        tr.wake()  # an unread reply is in the output buffer
        assert len(tr.execute(cmd.random()[0], expected_len=32)) == 32
        tr.idle()


def test_watchdog_refreshed_inside_long_sequence(device: Device) -> None:
    """Volatile state survives when the transport restarts the watchdog with idle + wake."""
    from atecc import commands as cmd

    tr = device.transport
    pub = device.get_public_key(0)
    digest = hashlib.sha256(b"long").digest()
    with tr.lock():
        tr.wake()
        tr.execute(*cmd.random()[:1], expected_len=32)
        tr.execute(
            cmd.nonce_load(digest, target=cmd.NonceTarget.MSG_DIGEST_BUFFER)[0], expected_len=0
        )
        tr.bus.clock.advance(0.65)  # type: ignore[attr-defined]  # host dawdles
        sig = tr.execute(cmd.sign(0)[0], expected_len=64)
        tr.idle()
    verify(pub, digest, sig)
