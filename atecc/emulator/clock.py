"""Clocks for the emulated bus: a virtual one for fast deterministic runs and the real one.

Owns only the notion of "now" and "wait" that both the chip model (busy time, tWHI, watchdog) and
the driver (poll delays, via ``bus.clock``) use. Sharing one clock object is what makes ``fast``
timing consistent: the driver's ``sleep`` advances the same virtual time the chip's watchdog reads.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the emulator and the transport need from a clock."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class VirtualClock:
    """Time that moves only when someone sleeps or calls :meth:`advance`.

    ``sleep`` returns at once, so a driver that waits 115 ms for a Sign costs nothing, yet the
    chip still sees the time pass (its watchdog expires after 1.3 s of virtual waiting).
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)

    def monotonic(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward (tests use this to age the watchdog)."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self._now += seconds


class SystemClock:
    """The real monotonic clock (``realistic`` timing)."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
