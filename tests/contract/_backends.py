"""Shared setup for the driver contract tests: which chips a Device can be opened on.

The emulator backend is always available (a fresh chip per test under ``tmp_path``); the hardware
backend exists when ``ATECC_I2C_BUS`` names a Linux I2C bus (optional ``ATECC_I2C_ADDRESS``,
7-bit, default 0x35 for a Trust&GO part). Tests that change a chip irreversibly run only on the
emulator.
"""

from __future__ import annotations

import os
from pathlib import Path

from atecc.device import Device
from atecc.slotfile import EmulatorInterface, I2CInterface, open_device

TNGTLS = "ATECC608-TNGTLS"
BLANK = "ATECC608"


def hardware_bus() -> int | None:
    value = os.environ.get("ATECC_I2C_BUS")
    return int(value, 0) if value else None


def open_hardware() -> Device:
    bus = hardware_bus()
    assert bus is not None
    address = int(os.environ.get("ATECC_I2C_ADDRESS", "0x35"), 0)
    return open_device(I2CInterface(bus=bus, address7=address))


def new_emulated_chip(tmp_path: Path, device: str = TNGTLS, name: str = "chip.json") -> Path:
    from atecc.emulator.profiles import create_chip

    path = tmp_path / name
    create_chip(path, device=device)
    return path


def open_emulated(path: Path, timing: str = "fast") -> Device:
    return open_device(EmulatorInterface(path, timing))
