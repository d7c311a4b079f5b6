"""SHA-256 whose running state can be read out and put back: the emulated chip's SHA engine.

Owns: the SHA-256 compression (FIPS 180-4) and the context image that SHA modes 6 (read
context) and 7 (write context) carry. ``hashlib`` cannot export its state, hence this small
implementation; it runs only while a SHA command sequence is open (at most 64 bytes a command).

Context image, as cryptoauthlib's ``sha_context`` test shows a 608 reading it back after SHA
start and a 5-byte update: the byte count (4 bytes, little-endian), the eight state words (each
little-endian), then the bytes of the unfinished block (count % 64 of them): 36 to 99 bytes.
(The spec's "40 + low 6 bits of the first byte" disagrees by four bytes.)

The engine runs on libcrypto's SHA256_Init/Update/Final through ``ctypes`` when the process
has libcrypto (``hashlib`` loads it): its SHA256_CTX holds the state words, the bit count and
the unfinished block in the open, so the image is read from and written to it directly. Without
it, a pure-Python compression takes over (about 100 times slower: fine for a few blocks,
noticeable for a megabyte of C_DigestUpdate).

Must not: be used where a plain digest will do (``hashlib`` is faster still).
"""

from __future__ import annotations

import ctypes
import struct

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
_M = 0xFFFFFFFF
CONTEXT_MIN = 36
CONTEXT_MAX = 36 + 63


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _M


def _compress(h: list[int], block: bytes) -> None:
    w = list(struct.unpack(">16L", block))
    for t in range(16, 64):
        x, y = w[t - 15], w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & _M)
    a, b, c, d, e, f, g, hh = h
    for t in range(64):
        t1 = hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[t] + w[t]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, hh = (t1 + t2) & _M, a, b, c, (d + t1) & _M, e, f, g
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _M


class _Ctx(ctypes.Structure):
    """OpenSSL's SHA256_CTX (the same in 1.1 and 3.x)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("nl", ctypes.c_uint32),
        ("nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * 64),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


def _load_libcrypto() -> ctypes.CDLL | None:
    import hashlib  # noqa: F401 - makes sure the process has libcrypto mapped

    for name in ("libcrypto.so.3", "libcrypto.so.1.1"):
        try:
            lib = ctypes.CDLL(name)
            for fn in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
                getattr(lib, fn).restype = ctypes.c_int
        except (OSError, AttributeError):
            continue
        lib.SHA256_Update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_char_p, ctypes.c_size_t]
        return lib
    return None


_libcrypto: list[ctypes.CDLL | None] = []  # empty: not looked for yet


def _native() -> ctypes.CDLL | None:
    if not _libcrypto:
        _libcrypto.append(_load_libcrypto())
    return _libcrypto[0]


class _NativeSha256:
    """The same interface as :class:`_PySha256`, on libcrypto's SHA256_CTX."""

    __slots__ = ("_ctx", "_lib")

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._ctx = _Ctx()
        lib.SHA256_Init(ctypes.byref(self._ctx))

    def update(self, data: bytes) -> None:
        data = bytes(data)
        self._lib.SHA256_Update(ctypes.byref(self._ctx), data, len(data))

    def digest(self) -> bytes:
        copy = _Ctx.from_buffer_copy(self._ctx)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(copy))
        return out.raw

    def context(self) -> bytes:
        ctx = self._ctx
        count = (ctx.nh << 29) | (ctx.nl >> 3)
        if count > _M:
            raise ValueError("the chip's context counts bytes in 32 bits")
        return struct.pack("<L8L", count, *ctx.h) + bytes(ctx.data[: ctx.num])

    def load(self, count: int, h: list[int], tail: bytes) -> None:
        ctx = self._ctx
        ctx.h[:] = h
        ctx.nl, ctx.nh = (count << 3) & _M, count >> 29
        ctypes.memmove(ctx.data, tail, len(tail))
        ctx.num = len(tail)


class Sha256:
    """Incremental SHA-256 with :meth:`context` / :meth:`from_context`; native when it can be."""

    __slots__ = ("_impl",)

    def __init__(self) -> None:
        lib = _native()
        self._impl: _NativeSha256 | _PySha256 = _NativeSha256(lib) if lib else _PySha256()

    def update(self, data: bytes) -> None:
        self._impl.update(data)

    def digest(self) -> bytes:
        return self._impl.digest()

    def context(self) -> bytes:
        return self._impl.context()

    @classmethod
    def from_context(cls, image: bytes) -> Sha256:
        """Restore a context image; ValueError when its length disagrees with its byte count."""
        if not CONTEXT_MIN <= len(image) <= CONTEXT_MAX:
            raise ValueError("context image must be 36-99 bytes")
        count, *h = struct.unpack_from("<L8L", image)
        if len(image) != CONTEXT_MIN + count % 64:
            raise ValueError("context length does not match its byte count")
        ctx = cls()
        ctx._impl.load(count, list(h), bytes(image[CONTEXT_MIN:]))
        return ctx


class _PySha256:
    """SHA-256 in Python, with its state in the open (the fallback engine)."""

    __slots__ = ("_buf", "_count", "_h")

    def __init__(self) -> None:
        self._h = list(_IV)
        self._buf = b""
        self._count = 0

    def update(self, data: bytes) -> None:
        self._count += len(data)
        buf = self._buf + bytes(data)
        full = len(buf) - len(buf) % 64
        for i in range(0, full, 64):
            _compress(self._h, buf[i : i + 64])
        self._buf = buf[full:]

    def digest(self) -> bytes:
        h = list(self._h)
        tail = self._buf + b"\x80" + bytes((55 - self._count) % 64)
        tail += (8 * self._count).to_bytes(8, "big")
        for i in range(0, len(tail), 64):
            _compress(h, tail[i : i + 64])
        return struct.pack(">8L", *h)

    def context(self) -> bytes:
        if self._count > _M:
            raise ValueError("the chip's context counts bytes in 32 bits")
        return struct.pack("<L8L", self._count, *self._h) + self._buf

    def load(self, count: int, h: list[int], tail: bytes) -> None:
        self._count, self._h, self._buf = count, h, tail
