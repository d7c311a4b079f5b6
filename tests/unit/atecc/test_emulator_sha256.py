"""The emulated chip's SHA engine: both implementations agree with hashlib, and a context image
moves a running hash between them (the image layout is the 608's, see atecc.emulator.sha256)."""

from __future__ import annotations

import hashlib
import os

import pytest

from atecc.emulator import sha256


def engines() -> list[str]:
    return ["native", "python"] if sha256._native() else ["python"]


def make(kind: str) -> sha256.Sha256:
    ctx = sha256.Sha256()
    if kind == "python":
        ctx._impl = sha256._PySha256()
    return ctx


def test_libcrypto_engine_is_found_here() -> None:
    """hashlib runs on libcrypto on every supported platform, so the fast engine must load."""
    assert sha256._native() is not None


@pytest.mark.parametrize("first", ["native", "python"])
@pytest.mark.parametrize("size", [0, 1, 5, 55, 56, 63, 64, 65, 127, 128, 1000])
def test_context_image_moves_a_running_hash(first: str, size: int) -> None:
    data = os.urandom(size)
    ctx = make(first)
    ctx.update(data[: size // 2])
    image = ctx.context()
    assert len(image) == 36 + (size // 2) % 64
    for second in engines():
        resumed = make(second)
        resumed._impl.load(*_parts(image))
        resumed.update(data[size // 2 :])
        assert resumed.digest() == hashlib.sha256(data).digest(), (first, second)


def _parts(image: bytes) -> tuple[int, list[int], bytes]:
    import struct

    count, *h = struct.unpack_from("<L8L", image)
    return count, list(h), image[36:]


@pytest.mark.parametrize("bad", [bytes(35), bytes(100), bytes(37)])
def test_malformed_context_images_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        sha256.Sha256.from_context(bad)
