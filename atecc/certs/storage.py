"""Full DER certificates stored in a data slot (for certificates that have no compressed form).

Owns: the slot layout ``MAGIC (2) ‖ length (BE16) ‖ DER ‖ zero padding``. The magic lets a reader
tell a stored certificate from an empty or foreign slot; the length lets it ignore the padding.
Only slot 8 (416 bytes) is large enough for a typical P-256 certificate; the 72-byte slots hold
nothing useful, and :func:`write_certificate` says so instead of truncating.

The Device does the I/O and enforces the chip's permissions; this module only lays out bytes.
"""

from __future__ import annotations

from typing import Protocol

from atecc.certs.compressed import CertificateError
from atecc.constants import BLOCK_SIZE, Zone, slot_size

MAGIC = b"X5"  # "X.509"
HEADER_SIZE = 4


class SlotIO(Protocol):
    """The part of :class:`atecc.device.Device` used here."""

    def read_bytes(self, zone: Zone, slot: int, offset: int, length: int) -> bytes: ...

    def write_bytes(self, zone: Zone, slot: int, offset: int, data: bytes) -> None: ...


def capacity(slot: int) -> int:
    """Largest DER certificate that fits ``slot`` (slot size minus the header)."""
    return max(0, slot_size(slot) - HEADER_SIZE)


def encode_slot(der: bytes, slot: int) -> bytes:
    """The bytes :func:`write_certificate` writes: header, DER, zeros to a 32-byte boundary.

    Padding to whole blocks (never past the slot's end) keeps every write a 32-byte write, the
    only kind the chip accepts in every lock state (chip §3.6).

    :raises ValueError: ``der`` is empty, too long for the header, or does not fit the slot.
    """
    if not der:
        raise ValueError("empty certificate")
    room = capacity(slot)
    if len(der) > room:
        raise ValueError(
            f"certificate of {len(der)} bytes does not fit slot {slot} "
            f"({slot_size(slot)} bytes, at most {room} bytes of DER)"
        )
    data = MAGIC + len(der).to_bytes(2, "big") + der
    padded = -(-len(data) // BLOCK_SIZE) * BLOCK_SIZE
    return data + bytes(min(padded, slot_size(slot)) - len(data))


def decode_slot(data: bytes) -> bytes | None:
    """The DER in a slot image, or ``None`` when the slot holds no stored certificate.

    :raises CertificateError: the header is there but its length runs past the data.
    """
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        return None
    length = int.from_bytes(data[2:4], "big")
    if length == 0 or HEADER_SIZE + length > len(data):
        raise CertificateError(f"stored certificate length {length} runs past the slot")
    return bytes(data[HEADER_SIZE : HEADER_SIZE + length])


def write_certificate(device: SlotIO, slot: int, der: bytes) -> None:
    """Store a full DER certificate in data slot ``slot``.

    :raises ValueError: it does not fit (checked before anything is written).
    :raises atecc.errors.AteccError: the chip refused the write (slot config, locks).
    """
    device.write_bytes(Zone.DATA, slot, 0, encode_slot(der, slot))


def read_certificate(device: SlotIO, slot: int) -> bytes | None:
    """The DER certificate stored in ``slot`` by :func:`write_certificate`, else ``None``.

    Reads the 4-byte header first, then only as many bytes as the certificate needs.

    :raises CertificateError: a header whose length does not fit the slot.
    """
    header = device.read_bytes(Zone.DATA, slot, 0, HEADER_SIZE)
    if header[:2] != MAGIC:
        return None
    length = int.from_bytes(header[2:4], "big")
    if length == 0 or length > capacity(slot):
        raise CertificateError(
            f"slot {slot}: stored certificate length {length} does not fit the slot"
        )
    der = device.read_bytes(Zone.DATA, slot, HEADER_SIZE, length)
    return decode_slot(header + der)
