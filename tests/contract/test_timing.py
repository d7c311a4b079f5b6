"""Realistic timing: the chip NACKs while busy and the transport polls until the reply is ready.

Short on purpose (a few hundred ms of real time).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

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
