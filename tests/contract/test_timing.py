"""Realistic timing: the chip NACKs while busy and the transport polls until the reply is ready.

Short on purpose (a few hundred ms of real time).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from atecc.constants import exec_time_max_s
from atecc.device import Device
from atecc.emulator.bus import EmulatedBus
from atecc.emulator.profiles import create_chip
from atecc.transport import I2CTransport


class CountingBus:
    """Wraps a bus and counts the NACKed transfers (polls while busy)."""

    def __init__(self, bus: EmulatedBus) -> None:
        self._bus = bus
        self.clock = bus.clock
        self.lock_path = bus.lock_path
        self.nacks = 0

    def i2c_rdwr(self, *msgs: object) -> None:
        try:
            self._bus.i2c_rdwr(*msgs)
        except OSError:
            if all(getattr(m, "addr", 0) != 0 for m in msgs):
                self.nacks += 1
            raise

    def close(self) -> None:
        self._bus.close()


def test_polling_under_realistic_timing(tmp_path: Path) -> None:
    path = tmp_path / "chip.json"
    create_chip(path)
    bus = CountingBus(EmulatedBus(path, timing="realistic"))
    device = Device(I2CTransport(bus, 0x35))
    try:
        start = time.monotonic()
        sig = device.sign_digest(0, hashlib.sha256(b"slow").digest())
        elapsed = time.monotonic() - start
    finally:
        device.close()
    assert len(sig) == 64
    assert bus.nacks > 0, "the chip was busy at least once: the transport must have polled"
    # Random + Nonce + Sign worst cases plus tWHI and the poll slack, with generous headroom.
    budget = exec_time_max_s(0x1B) + exec_time_max_s(0x16) + exec_time_max_s(0x41)
    assert elapsed < budget + 0.5


def test_a_command_that_takes_its_worst_case_time_is_read_at_that_time(tmp_path: Path) -> None:
    """Busy times modelled on a virtual clock (deterministic): the chip is busy for exactly the
    worst-case time of each command, after tWHI. The transport's last poll lands exactly on that
    time, so a signature costs the chip's time and not up to a poll interval more per command
    (before: Random and Sign were each read 0.75 ms late, 1.5 ms of a 159.5 ms signature)."""
    from atecc.constants import WAKE_HIGH_S
    from atecc.emulator.clock import VirtualClock

    path = tmp_path / "chip.json"
    create_chip(path)
    clock = VirtualClock()
    bus = CountingBus(EmulatedBus(path, timing="realistic", clock=clock))
    device = Device(I2CTransport(bus, 0x35))
    try:
        start = clock.monotonic()
        device.sign_digest(0, hashlib.sha256(b"on time").digest())
        elapsed = clock.monotonic() - start
    finally:
        device.close()
    chip = WAKE_HIGH_S + sum(exec_time_max_s(op) for op in (0x1B, 0x16, 0x41))
    assert bus.nacks > 0  # it was busy, and polled
    assert abs(elapsed - chip) < 1e-6, (elapsed, chip)


# -- ChipMode clock divider (config byte 19, bits 7:3) --------------------------------------------
#: Worst-case Verify time per divider (cryptoauthlib's 608 M0/M1/M2 tables): 105, 295, 1085 ms.
VERIFY_MS = {0x00: 105, 0x28: 295, 0x68: 1085}
VEC_PUB = bytes.fromhex(
    "40114EBB814E71A6BE6318309D141DD8EB4BFDBE937BD0090559FBD77023DA28"
    "4EBF3819048E5A4C21ACC934055B8EF2CDF4EE7186F07049516D5EEA2AE03407"
)
VEC_SIG = bytes.fromhex(
    "E03396C3B08274FDED0CC7EE55EFF8708471B43A9DFD769D6C227EE45AD20B5C"
    "F78A2F6C229C30E2069E3D6939E53463E81779B3F48F6C075B6ACCE43A6CC465"
)


def _chip_with_clock_divider(tmp_path: Path, divider: int) -> Path:
    from atecc.emulator.state import StateFile

    path = tmp_path / "chip.json"
    create_chip(path)
    with StateFile(path).transaction() as txn:
        txn.state.config[19] = (txn.state.config[19] & 0x07) | divider
        txn.dirty = True
    return path


@pytest.mark.parametrize("divider", sorted(VERIFY_MS))
def test_emulator_busy_time_follows_the_clock_divider(tmp_path: Path, divider: int) -> None:
    """Realistic timing on a virtual clock: the chip stays busy for its divider's time."""
    from atecc.emulator.clock import VirtualClock
    from atecc.emulator.harness import Host

    clock = VirtualClock()
    bus = EmulatedBus(_chip_with_clock_divider(tmp_path, divider), timing="realistic", clock=clock)
    host = Host(bus)
    try:
        host.wake()
        host.send(bytes.fromhex("2716430000") + bytes(range(32)) + bytes.fromhex("D76C"))
        assert host.receive() == bytes.fromhex("04000340")
        host.send(bytes.fromhex("8745220400") + VEC_SIG + VEC_PUB + bytes.fromhex("5178"))
        start = clock.monotonic()
        assert host.receive(poll_s=0.001) == bytes.fromhex("04000340")
        busy_ms = (clock.monotonic() - start) * 1000
    finally:
        bus.close()
    assert VERIFY_MS[divider] <= busy_ms < VERIFY_MS[divider] + 2


@pytest.mark.parametrize("learned", [True, False], ids=["divider-read", "divider-unknown"])
def test_driver_waits_for_an_m2_chip(tmp_path: Path, learned: bool) -> None:
    """At M2 Verify takes up to 1085 ms: the driver's deadline must not give up at M0's 105."""
    from atecc.emulator.clock import VirtualClock

    clock = VirtualClock()
    bus = EmulatedBus(_chip_with_clock_divider(tmp_path, 0x68), timing="realistic", clock=clock)
    device = Device(I2CTransport(bus, 0x35))
    try:
        if learned:
            assert device.config_zone().data[19] & 0xF8 == 0x68
        assert device.verify_external(bytes(range(32)), VEC_SIG, VEC_PUB) is True
    finally:
        device.close()
