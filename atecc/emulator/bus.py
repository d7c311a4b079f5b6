"""``EmulatedBus``: an object with ``smbus2.SMBus``'s ``i2c_rdwr``/``close`` backed by a chip model.

Owns the translation between smbus2 ``i2c_msg`` ctypes structures and the chip's byte-level
``write``/``read``/``stop`` calls, the NACK fault injection at the transfer level, and the
attributes the driver's transport looks for (``clock``, ``lock_path``; ARCHITECTURE §1-§2).
It deliberately does not import smbus2: it reads the struct fields (``addr``, ``flags``, ``len``,
``buf``) directly, so the emulator runs where smbus2 is not installed and cannot drift with it.

One ``i2c_rdwr`` call is one bus transaction ending with a Stop: every message in it is delivered
in order (repeated starts between them), and a command group completed by a write starts
executing only at the final Stop (chip §1.5, §1.10). A read in the same call after the command
write is therefore NACKed, as on real hardware.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from atecc.emulator.chip import Chip, nack
from atecc.emulator.clock import Clock, SystemClock, VirtualClock
from atecc.emulator.faults import Faults
from atecc.emulator.state import StateFile

I2C_M_RD = 0x0001
GENERAL_CALL = 0x00


class EmulatedBus:
    """A fake I2C adapter with one emulated ATECC608 on it.

    :param state_path: the chip's JSON state file (see :mod:`atecc.emulator.profiles`)
    :param timing: ``"fast"`` (no busy time, virtual clock) or ``"realistic"`` (busy time from
        chip §4.0 × ``busy_fraction``, tWHI, real clock)
    :param strict: strict RNG-seed and message-digest-buffer rules (see :mod:`atecc.emulator.chip`)
    :param busy_fraction: fraction of the worst-case execution time the chip stays busy
    :param clock: override the clock (tests use a :class:`VirtualClock` with realistic timing)
    :param seed: deterministic RNG for Random/Nonce/GenKey (ECDSA k stays random)
    :param watchdog_s: override tWATCHDOG (1.3 s)
    """

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        *,
        timing: str = "fast",
        strict: bool = True,
        busy_fraction: float = 1.0,
        clock: Clock | None = None,
        seed: int | None = None,
        watchdog_s: float | None = None,
    ) -> None:
        if timing not in ("fast", "realistic"):
            raise ValueError(f"timing must be 'fast' or 'realistic', not {timing!r}")
        if not 0.0 <= busy_fraction <= 1.0:
            raise ValueError("busy_fraction must be within 0..1")
        self.state_path = Path(state_path)
        self.lock_path = Path(str(state_path) + ".bus.lock")
        self.timing = timing
        if clock is None:
            clock = VirtualClock() if timing == "fast" else SystemClock()
        self.clock: Clock = clock
        self.faults = Faults()
        self._state_file = StateFile(self.state_path)
        self.chip = Chip(
            self._state_file,
            clock,
            faults=self.faults,
            realistic=timing == "realistic",
            strict=strict,
            busy_fraction=busy_fraction,
            seed=seed,
            watchdog_s=watchdog_s,
        )
        self._closed = False

    # -- smbus2.SMBus-compatible surface ---------------------------------------------------------
    def i2c_rdwr(self, *msgs: Any) -> None:
        """Run the messages as one transaction (Start … Stop); NACK raises ``OSError``."""
        if self._closed:
            raise OSError(9, "Bad file descriptor (emulated bus closed)")
        chip = self.chip
        if self.faults.nacks and any(m.addr != GENERAL_CALL for m in msgs):
            if self.faults.take_nack():
                raise nack("injected")
        try:
            for msg in msgs:
                addr, length = msg.addr, msg.len
                if addr == GENERAL_CALL:
                    if not msg.flags & I2C_M_RD:
                        chip.wake()
                    # Nobody ACKs the general-call address (chip §1.3 step 2).
                    raise nack("wake pulse on address 0x00")
                if msg.flags & I2C_M_RD:
                    data = chip.read(addr, length)
                    ctypes.memmove(msg.buf, data, length)
                else:
                    chip.write(addr, ctypes.string_at(msg.buf, length) if length else b"")
        finally:
            chip.stop()

    def close(self) -> None:
        self._closed = True
        self._state_file.close()

    # -- test conveniences -----------------------------------------------------------------------
    def wake(self) -> None:
        """Wake the chip directly (the spec's ``wake()`` test hook, §7.1)."""
        self.chip.wake()

    def __enter__(self) -> EmulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
