"""A minimal byte-level host for driving an :class:`EmulatedBus` in tests and tools.

Owns nothing but convenience: frame building with :mod:`atecc.crc`, a wake helper and a
send-then-poll-then-read loop. It is deliberately *not* the project's driver (``atecc.transport``
and ``atecc.device`` are): tests of the emulator must not depend on the code the emulator is
meant to check. ``Msg`` mirrors smbus2's ``i2c_msg`` ctypes layout so that this module, like the
rest of the emulator, runs without smbus2.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

from atecc import crc

I2C_M_RD = 0x0001


class Msg(ctypes.Structure):
    """Same fields as ``smbus2.i2c_msg`` (linux/i2c.h ``struct i2c_msg``)."""

    _fields_ = [
        ("addr", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("len", ctypes.c_uint16),
        ("buf", ctypes.POINTER(ctypes.c_char)),
    ]

    @classmethod
    def write(cls, addr: int, data: bytes) -> Msg:
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        msg = cls(
            addr=addr, flags=0, len=len(data), buf=ctypes.cast(buf, ctypes.POINTER(ctypes.c_char))
        )
        msg._keep = buf  # keep the buffer alive
        return msg

    @classmethod
    def read(cls, addr: int, length: int) -> Msg:
        buf = ctypes.create_string_buffer(length)
        msg = cls(
            addr=addr,
            flags=I2C_M_RD,
            len=length,
            buf=ctypes.cast(buf, ctypes.POINTER(ctypes.c_char)),
        )
        msg._keep = buf
        return msg

    def __bytes__(self) -> bytes:
        return ctypes.string_at(self.buf, self.len)


def packet(opcode: int, p1: int = 0, p2: int = 0, data: bytes = b"") -> bytes:
    """COUNT OPCODE P1 P2(LE) DATA CRC (chip §1.5)."""
    body = bytes((7 + len(data), opcode, p1, p2 & 0xFF, p2 >> 8)) + bytes(data)
    return body + crc.crc16_bytes(body)


def is_nack(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO)


class Host:
    """Talks to one chip on ``bus`` at ``addr7`` (default: the chip's current address)."""

    def __init__(self, bus: Any, addr7: int | None = None) -> None:
        self.bus = bus
        self.addr = addr7 if addr7 is not None else bus.chip.address7

    def write(self, data: bytes) -> None:
        self.bus.i2c_rdwr(Msg.write(self.addr, data))

    def read(self, n: int) -> bytes:
        msg = Msg.read(self.addr, n)
        self.bus.i2c_rdwr(msg)
        return bytes(msg)

    def wake(self) -> bytes:
        """Wake pulse, tWHI, then read the 4-byte wake response."""
        try:
            self.bus.i2c_rdwr(Msg.write(0x00, b"\x00"))
        except OSError:
            pass  # nobody ACKs the general call
        self.bus.clock.sleep(0.0015)
        return self.read(4)

    def idle(self) -> None:
        self.write(b"\x02")

    def sleep(self) -> None:
        self.write(b"\x01")

    def send(self, pkt: bytes) -> None:
        self.write(b"\x03" + pkt)

    def receive(self, *, poll_s: float = 0.001, timeout_s: float = 3.0) -> bytes:
        """Poll until the chip answers, then read COUNT and the rest (two transfers, §1.6)."""
        clock = self.bus.clock
        deadline = clock.monotonic() + timeout_s
        while True:
            try:
                head = self.read(1)
                break
            except OSError as exc:
                if not is_nack(exc) or clock.monotonic() >= deadline:
                    raise
                clock.sleep(poll_s)
        count = head[0]
        return head + (self.read(count - 1) if count > 1 else b"")

    def command(self, opcode: int, p1: int = 0, p2: int = 0, data: bytes = b"") -> bytes:
        """Send one command and return the whole response group (COUNT … CRC)."""
        self.send(packet(opcode, p1, p2, data))
        return self.receive()

    def run(self, opcode: int, p1: int = 0, p2: int = 0, data: bytes = b"") -> bytes | int:
        """Like :meth:`command` but CRC-checked and unwrapped: output bytes, or the status int."""
        resp = self.command(opcode, p1, p2, data)
        if not crc.check(resp):
            raise ValueError(f"bad response CRC: {resp.hex()}")
        return resp[1] if resp[0] == 4 else resp[1:-2]
