"""Shared fixtures: emulated chips and filestores for tests that run the Cryptoki core in-process.

Every fixture builds its chip with ``atecc.emulator.profiles.create_chip`` under ``tmp_path``, so
tests never share state and can run in parallel; chip behaviour comes from the emulator, never
from canned bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def write_slot_file(
    filestore: Path,
    slot_id: int,
    state_name: str,
    *,
    device: str = "ATECC608-TNGTLS",
    label: str = "00ABC",
    extra: str = "",
) -> Path:
    """Write ``<slot_id>.conf`` naming an emulated chip state file in the same directory."""
    path = filestore / f"{slot_id}.conf"
    root = Path(state_name).stem + ".root-ca.pem"  # beside an emulated Trust&GO chip
    root_line = f"root_ca = {root}\n" if (filestore / root).is_file() else ""
    path.write_text(
        f"interface = emulator,{state_name}\ndevice = {device}\nlabel = {label}\n"
        f"{root_line}{extra}",
        encoding="utf-8",
    )
    return path


def make_chip(filestore: Path, state_name: str, device: str = "ATECC608-TNGTLS", **kw) -> Path:
    from atecc.emulator.profiles import create_chip

    filestore.mkdir(parents=True, exist_ok=True)
    state = filestore / state_name
    create_chip(state, device, **kw)
    return state


@pytest.fixture
def tngtls_filestore(tmp_path, monkeypatch) -> Path:
    """A filestore with one emulated Trust&GO chip as slot 0 (label 00ABC); env var set."""
    filestore = tmp_path / "filestore"
    make_chip(filestore, "chip0.json")
    write_slot_file(filestore, 0, "chip0.json")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    return filestore


@pytest.fixture
def chip_factory():
    """``make_chip(filestore, state_name, device=..., serial=..., revision=...)`` for tests that
    need several chips or non-default ones."""
    return make_chip


@pytest.fixture
def slot_file_writer():
    """``write_slot_file(filestore, slot_id, state_name, device=..., label=..., extra=...)``."""
    return write_slot_file


def _io_decrypt(io_key: bytes, data: bytes, nonce: bytes) -> bytes:
    """Undo the IO-protection encryption of a chip output: each 32-byte block XOR
    SHA-256(IO key ‖ 16 bytes of the 32-byte output nonce), the layout cryptoauthlib's
    atcah_io_decrypt uses. Written here, independently of the emulator's own code."""
    import hashlib

    out = b""
    for i in range(0, len(data), 32):
        pad = hashlib.sha256(io_key + nonce[i // 2 : i // 2 + 16]).digest()
        out += bytes(a ^ b for a, b in zip(data[i : i + 32], pad, strict=True))
    return out


@pytest.fixture
def io_decrypt():
    """``io_decrypt(io_key, data, nonce)``: see :func:`_io_decrypt`."""
    return _io_decrypt
