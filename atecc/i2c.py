"""The real I2C bus: the only module of the project that imports ``smbus2``.

Owns: opening ``/dev/i2c-N`` through ``smbus2.SMBus``, building ``i2c_msg`` read/write messages
for the transport, and the default path of the inter-process bus lock file.

Must not: know anything about the chip's protocol (that is ``transport.py``), or import
``smbus2`` at module level: ``smbus2`` is a dependency of the package (the emulator path builds
its messages with ``smbus2.i2c_msg`` too), but importing it (and ``ctypes``) costs start-up time
that a process which never touches the bus should not pay, so it is imported on first use.

The emulator's ``EmulatedBus`` reads the same message objects (``.addr .flags .len .buf``), so the
transport builds messages here for both kinds of bus.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Directory where system-wide lock files normally live; not writable by every user.
RUN_LOCK_DIR = Path("/run/lock")


def open_bus(bus_number: int) -> Any:
    """Open ``/dev/i2c-<bus_number>`` and return the ``smbus2.SMBus``.

    :param bus_number: Linux I2C adapter number (``/dev/i2c-1`` on a Raspberry Pi).
    :raises OSError: the device node is missing or not accessible (errno from ``open(2)``).
    """
    import smbus2  # lazy: see module docstring

    if bus_number < 0:
        raise ValueError(f"I2C bus number must be >= 0, got {bus_number}")
    return smbus2.SMBus(bus_number)


_i2c_msg: Any = None


def _msg_class() -> Any:
    # Imported on first use and kept: a function-level ``from smbus2 import i2c_msg`` costs
    # about a microsecond per message, and a chip transaction builds about ten messages.
    global _i2c_msg
    if _i2c_msg is None:
        from smbus2 import i2c_msg

        _i2c_msg = i2c_msg
    return _i2c_msg


def write_msg(addr7: int, data: bytes) -> Any:
    """An ``i2c_msg`` write of ``data`` to 7-bit address ``addr7`` (one Stop-terminated write)."""
    return (_i2c_msg or _msg_class()).write(addr7, bytes(data))


def read_msg(addr7: int, n: int) -> Any:
    """An ``i2c_msg`` read of ``n`` bytes from the 7-bit address ``addr7``."""
    return (_i2c_msg or _msg_class()).read(addr7, n)


def msg_bytes(msg: Any) -> bytes:
    """The bytes a read message received (``smbus2.i2c_msg`` implements ``__bytes__``)."""
    return bytes(msg)


def default_lock_path(bus_number: int, address7: int) -> Path:
    """Lock file serialising chip transactions between processes on a real bus.

    ``/run/lock/atecc-i2c-<bus>-0x<addr>.lock`` when ``/run/lock`` is writable (it is the
    FHS place for such files and is a tmpfs, so stale files vanish at reboot); otherwise the same
    name in :func:`tempfile.gettempdir`. Every process talking to the same chip must agree on the
    path, which is why it depends only on the bus number and the 7-bit address.
    """
    name = f"atecc-i2c-{bus_number}-0x{address7:02x}.lock"
    if RUN_LOCK_DIR.is_dir() and os.access(RUN_LOCK_DIR, os.W_OK | os.X_OK):
        return RUN_LOCK_DIR / name
    import tempfile  # lazy: needed only when /run/lock is unusable

    return Path(tempfile.gettempdir()) / name
