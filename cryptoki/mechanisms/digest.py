"""CKM_SHA256 on the chip's SHA engine, and HMAC-SHA256 (CKM_SHA256_HMAC[_GENERAL]) with a slot key.

Owns: single- vs multi-part bookkeeping for C_Digest*/C_Sign*/C_Verify* with these mechanisms,
output lengths and their length-query behaviour, the HMAC_GENERAL output-length parameter, and the
constant-time MAC comparison on verify, and where a plain digest is computed (the chip up to
``limits.CHIP_DIGEST_BYTES``, the host beyond: :class:`DigestOperation`). Must not: touch the chip
except through the callables the token binds.

HMAC multi-part: the chip's HMAC context cannot be saved and restored like a plain SHA context
(it holds the key), and keeping the bus locked between an application's calls would block every
other user, so C_SignUpdate/C_VerifyUpdate collect the data and the final call sends it all to the
chip in one HMAC start/update/end transaction.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from cryptoki import errors, limits
from cryptoki.constants import CKM
from cryptoki.types import Mechanism, Output

DIGEST_SIZE = 32
_ULONG = struct.Struct("@L")


def _room(out_len: int | None, size: int) -> int | None:
    """None to go ahead; the required length for a NULL-buffer query."""
    if out_len is None:
        return size
    if out_len < size:
        raise errors.BufferTooSmall(size)
    return None


class DigestOperation:
    """An active C_DigestInit(CKM_SHA256).

    A message of up to ``limits.CHIP_DIGEST_BYTES`` is hashed on the chip's SHA engine in one
    transaction (single-part as given; multi-part collected until C_DigestFinal). A longer one is
    hashed on the host: the chip takes a command per 64-byte block (up to 36 ms each), so 2 MiB
    would hold it for many minutes, and a SHA-256 without a key gives the same result wherever it
    is computed.

    :param on_chip: SHA-256 of a whole message on the chip (one transaction).
    """

    kind = "digest"

    def __init__(self, on_chip: Callable[[bytes], bytes]) -> None:
        self._on_chip = on_chip
        self._parts: bytearray | None = None  #: multi-part input while it fits the chip
        self._host: Any = None  #: hashlib object once the input outgrew it

    def _hash(self, data: bytes) -> bytes:
        if len(data) <= limits.CHIP_DIGEST_BYTES:
            return self._on_chip(data)
        import hashlib  # lazy: loads libcrypto (start-up cost: bench/design-measurements.md)

        return hashlib.sha256(data).digest()

    def digest(self, data: bytes, out_len: int | None) -> Output:
        if self._parts is not None or self._host is not None:
            raise errors.OperationNotInitialized("a multi-part digest is in progress")
        query = _room(out_len, DIGEST_SIZE)
        if query is not None:
            return query
        return self._hash(bytes(data))

    def update(self, data: bytes) -> None:
        if self._host is not None:
            self._host.update(data)
            return
        if self._parts is None:
            self._parts = bytearray()
        self._parts += data
        if len(self._parts) > limits.CHIP_DIGEST_BYTES:
            import hashlib

            self._host = hashlib.sha256(self._parts)
            self._parts = None

    def final(self, out_len: int | None) -> Output:
        query = _room(out_len, DIGEST_SIZE)
        if query is not None:
            return query
        if self._host is not None:
            return bytes(self._host.digest())
        return self._hash(bytes(self._parts or b""))


def hmac_length(mechanism: Mechanism) -> int:
    """Output bytes of an HMAC mechanism: 32, or the CK_ULONG parameter of HMAC_GENERAL.

    :raises errors.MechanismParamInvalid: HMAC_GENERAL without a CK_ULONG in 1..32.
    """
    if mechanism.type != CKM.SHA256_HMAC_GENERAL:
        return DIGEST_SIZE
    param = mechanism.param
    if not isinstance(param, bytes) or len(param) != _ULONG.size:
        raise errors.MechanismParamInvalid("CKM_SHA256_HMAC_GENERAL takes a CK_ULONG length")
    (length,) = _ULONG.unpack(param)
    if not 1 <= length <= DIGEST_SIZE:
        raise errors.MechanismParamInvalid("HMAC output length must be 1..32 bytes")
    return int(length)


class _HmacOperation:
    """Shared by sign and verify: the collected data and the chip callable."""

    def __init__(self, mac: Callable[[bytes], bytes], length: int) -> None:
        self._mac = mac
        self.length = length
        self._parts: list[bytes] | None = None

    def update(self, data: bytes) -> None:
        if self._parts is None:
            self._parts = []
        self._parts.append(bytes(data))

    def _single(self, data: bytes) -> bytes:
        if self._parts is not None:
            raise errors.OperationNotInitialized("a multi-part operation is in progress")
        return self._mac(bytes(data))[: self.length]

    def _final(self) -> bytes:
        return self._mac(b"".join(self._parts or []))[: self.length]


class HmacSignOperation(_HmacOperation):
    kind = "sign"

    def sign(self, data: bytes, out_len: int | None) -> Output:
        if self._parts is not None:
            raise errors.OperationNotInitialized("a multi-part operation is in progress")
        query = _room(out_len, self.length)
        if query is not None:
            return query
        return self._single(data)

    def final(self, out_len: int | None) -> Output:
        query = _room(out_len, self.length)
        if query is not None:
            return query
        return self._final()


class HmacVerifyOperation(_HmacOperation):
    kind = "verify"

    def _check(self, mac: Callable[[], bytes], signature: bytes) -> None:
        if len(signature) != self.length:
            raise errors.SignatureLenRange(f"the MAC is {self.length} bytes")
        import hmac  # lazy: hmac imports _hashlib (libcrypto), not needed at start

        if not hmac.compare_digest(mac(), bytes(signature)):
            raise errors.SignatureInvalid("MAC does not match")

    def verify(self, data: bytes, signature: bytes) -> None:
        if self._parts is not None:
            raise errors.OperationNotInitialized("a multi-part operation is in progress")
        self._check(lambda: self._single(data), signature)

    def final(self, signature: bytes) -> None:
        self._check(self._final, signature)
