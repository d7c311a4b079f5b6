"""The driver's wake pulse: a write to the general-call address whose data byte is 0x01.

Only the address byte 0x00 wakes the chip (SDA low for 8 bit times, then released for the
acknowledge slot: the rising edge the datasheet asks for). Nobody acknowledges, so the data byte
normally never reaches the wire; it does only when another device on the bus answers general
calls, and then 0x01 is the one value that neither resets it (0x06), nor re-programs its address
(0x04), nor is forbidden (0x00, I2C-bus specification §3.1.13). cryptoauthlib sends 0x01 too.
"""

from __future__ import annotations

from pathlib import Path

from atecc.device import Device
from atecc.emulator.bus import EmulatedBus
from atecc.emulator.profiles import create_chip
from atecc.transport import I2CTransport


class RecordingBus:
    """An emulated bus that remembers every write message (address, data)."""

    def __init__(self, bus: EmulatedBus) -> None:
        self._bus = bus
        self.clock = bus.clock
        self.lock_path = bus.lock_path
        self.writes: list[tuple[int, bytes]] = []

    def i2c_rdwr(self, *msgs) -> None:
        for m in msgs:
            if not m.flags & 0x0001:
                self.writes.append((m.addr, bytes(m)))
        self._bus.i2c_rdwr(*msgs)

    def close(self) -> None:
        self._bus.close()


def test_wake_pulse_data_byte_is_0x01_as_the_i2c_general_call_rules_allow(tmp_path: Path):
    path = tmp_path / "chip.json"
    create_chip(path)
    bus = RecordingBus(EmulatedBus(path))
    device = Device(I2CTransport(bus, 0x35))
    try:
        device.revision()
        device.revision()  # a second transaction wakes again
    finally:
        device.close()
    pulses = [data for addr, data in bus.writes if addr == 0x00]
    assert len(pulses) >= 2
    assert set(pulses) == {b"\x01"}
