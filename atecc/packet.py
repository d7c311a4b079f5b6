"""Host-side encoding of command packets and decoding of replies (chip §1.5, §1.6, §2).

A command packet is ``COUNT OPCODE PARAM1 PARAM2(LE16) DATA... CRC(LE16)`` and a reply is
``COUNT DATA... CRC``. This module only turns values into bytes and back; it never touches a bus.
The emulator deliberately does not use it (it parses frames itself), so a bug here cannot hide by
being on both ends of the wire; known-answer tests pin it to the spec's packets.
"""

from __future__ import annotations

from atecc import crc
from atecc.constants import MAX_GROUP_COUNT, MIN_GROUP_COUNT, STATUS_GROUP_COUNT, Status
from atecc.errors import ResponseCrcError, ResponseFormatError, status_error
from atecc.record import record


@record(frozen=True)
class Command:
    """One chip command, before encoding."""

    opcode: int
    param1: int = 0
    param2: int = 0
    data: bytes = b""

    def encode(self) -> bytes:
        """COUNT..CRC, ready to follow word address 0x03."""
        if not self.data:
            # Data-less commands (Random, Sign, Info, Read, ...) repeat with the same few
            # parameter sets; their packets are remembered instead of re-CRCed every time.
            key = (self.opcode, self.param1, self.param2)
            packet = _ENCODED.get(key)
            if packet is None:
                packet = self._encode()
                if len(_ENCODED) < 1024:
                    _ENCODED[key] = packet
            return packet
        return self._encode()

    def _encode(self) -> bytes:
        count = 7 + len(self.data)
        if count > MAX_GROUP_COUNT:
            raise ValueError(f"command too long: {count} bytes (max {MAX_GROUP_COUNT})")
        if not (0 <= self.param1 <= 0xFF and 0 <= self.param2 <= 0xFFFF):
            raise ValueError("param1 must fit one byte and param2 two bytes")
        body = bytes((count, self.opcode, self.param1, self.param2 & 0xFF, self.param2 >> 8))
        body += self.data
        return body + crc.crc16_bytes(body)


_ENCODED: dict[tuple[int, int, int], bytes] = {}


def decode_command(packet: bytes) -> Command:
    """Parse an encoded packet (COUNT..CRC) back into a Command; for ``atecc raw`` and tests."""
    if len(packet) < 7 or packet[0] != len(packet):
        raise ValueError("packet COUNT byte does not match its length (minimum 7 bytes)")
    if not crc.check(packet):
        raise ValueError("packet CRC does not match")
    return Command(packet[1], packet[2], packet[3] | packet[4] << 8, bytes(packet[5:-2]))


def check_group(group: bytes) -> bytes:
    """Validate COUNT and CRC of a reply group and return its payload (without COUNT and CRC).

    :raises ResponseFormatError: COUNT outside 4..155 or not equal to the group's length.
    :raises ResponseCrcError: the CRC does not match.
    """
    if len(group) < MIN_GROUP_COUNT or not MIN_GROUP_COUNT <= group[0] <= MAX_GROUP_COUNT:
        raise ResponseFormatError(f"reply COUNT {group[0] if group else None} out of range")
    if group[0] != len(group):
        raise ResponseFormatError(f"reply COUNT {group[0]} but {len(group)} bytes read")
    if not crc.check(group):
        raise ResponseCrcError("reply CRC mismatch")
    return bytes(group[1:-2])


def parse_response(
    group: bytes, expected_len: int | None = None, *, crc_checked: bool = False
) -> bytes:
    """Payload of a reply, raising the typed error when the chip answered with a status.

    ``expected_len`` is the output length of a successful command; ``None`` accepts any length.
    A 1-byte payload is a status group unless the command's output really is one byte (pass
    ``expected_len=1``, e.g. SelfTest, and interpret the byte yourself).

    ``crc_checked=True`` says the caller has just verified COUNT and CRC (the transport does, to
    decide whether to re-read), so they are not computed a second time.

    :raises StatusError: subclass matching the status byte, for any non-zero status group.
    """
    payload = bytes(group[1:-2]) if crc_checked else check_group(group)
    if len(group) == STATUS_GROUP_COUNT and expected_len != 1:
        status = payload[0]
        if status != Status.SUCCESS:
            raise status_error(status)
        if expected_len not in (None, 0):
            raise ResponseFormatError(f"expected {expected_len} bytes, chip answered success")
        return b""
    if expected_len is not None and len(payload) != expected_len:
        raise ResponseFormatError(f"expected {expected_len} payload bytes, got {len(payload)}")
    return payload
