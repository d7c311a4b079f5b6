"""The transfer log of ``atecc emulator run --log FILE``: every I2C transfer, decoded.

Owns: one line per message of each transfer, with the time since the log was opened, the
direction, the 7-bit address, the bytes, and what they mean on an ATECC608 bus: the wake pulse,
word addresses (reset, sleep, idle), command packets (opcode name, param1, param2, data length)
and reply groups (status name, or output length). A NACK ends the line with its errno name.

It reads bytes only as a bus analyser would and decodes them with the shared vocabulary of
:mod:`atecc.constants`; it must not import the driver's decoders (``atecc.packet``), so it cannot
agree with the driver by sharing its mistakes.
"""

from __future__ import annotations

import errno
import time
from typing import TextIO

from atecc.constants import Opcode, Status
from atecc.emulator.harness import I2C_M_RD, Msg

_WORDS = {0x00: "reset", 0x01: "sleep", 0x02: "idle"}


def _name(enum_type: type[Opcode] | type[Status], value: int) -> str:
    try:
        return enum_type(value).name
    except ValueError:
        return f"0x{value:02X}"


def describe_write(addr: int, data: bytes) -> str:
    """What a write means: wake pulse, word address, or a command packet."""
    if addr == 0x00:
        return "wake pulse"
    if not data:
        return "address probe"
    word = data[0]
    if word in _WORDS:
        return _WORDS[word]
    if word != 0x03:
        return f"reserved word address 0x{word:02X}"
    packet = data[1:]
    if len(packet) < 7:
        return "command fragment"
    count, opcode, p1 = packet[0], packet[1], packet[2]
    p2 = packet[3] | packet[4] << 8
    text = f"command {_name(Opcode, opcode)} param1=0x{p1:02X} param2=0x{p2:04X}"
    if count > 7:
        text += f" data={count - 7} bytes"
    if count != len(packet):
        text += f" (COUNT {count}, {len(packet)} bytes sent)"
    return text


def describe_read(data: bytes) -> str:
    """What a read returned: a status group, an output group, or a partial read."""
    if not data:
        return "address probe"
    count = data[0]
    if len(data) == 1:
        return f"COUNT {count}"
    if count == 4 and len(data) >= 4:
        return f"status {_name(Status, data[1])}"
    if 4 < count <= len(data):
        return f"{count - 3}-byte output"
    return "partial read"


class TransferLog:
    """Writes decoded transfers to an open text stream (line-buffered by the caller)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._start = time.monotonic()

    def note(self, text: str) -> None:
        self.stream.write(f"{time.monotonic() - self._start:10.6f} {text}\n")
        self.stream.flush()

    def transfer(self, msgs: list[Msg], error: int) -> None:
        for msg in msgs:
            reading = bool(msg.flags & I2C_M_RD)
            data = bytes(msg) if (not reading or not error) else b""
            if reading:
                what = describe_read(data) if not error else "read"
                line = f"R 0x{msg.addr:02X} [{msg.len}] {data.hex(' ').upper()}"
            else:
                what = describe_write(msg.addr, data)
                line = f"W 0x{msg.addr:02X} {data.hex(' ').upper()}"
            self.note(f"{line.rstrip()}  | {what}")
        if error:
            self.note(f"  -> {errno.errorcode.get(error, str(error))}")
