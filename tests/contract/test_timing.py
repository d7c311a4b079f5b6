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
