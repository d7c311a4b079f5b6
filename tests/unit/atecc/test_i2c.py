"""The smbus2 wrapper, exercised at the syscall level (the only test allowed to patch syscalls).

``os.open`` and ``fcntl.ioctl`` inside smbus2 are replaced by a fake adapter, as smbus2's own
tests do; this checks that our messages reach the kernel interface as single-message I2C_RDWR
transfers with the 7-bit address, and that a NACK errno surfaces as ``OSError``.
"""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path
from typing import Any

import pytest
import smbus2.smbus2 as smbus2_impl

from atecc import i2c

I2C_RDWR = 0x0707
I2C_FUNCS = 0x0705


class FakeAdapter:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.transfers: list[list[tuple[int, int, bytes]]] = []
        self.fail_errno: int | None = None

    def open(self, path: str, flags: int, *args: Any) -> int:
        self.opened.append(path)
        return 42

    def ioctl(self, fd: int, request: int, arg: Any = 0, *rest: Any) -> int:
        assert fd == 42
        if request == I2C_FUNCS:
            return 0
        assert request == I2C_RDWR
        if self.fail_errno is not None:
            raise OSError(self.fail_errno, "fake NACK")
        msgs = []
        for k in range(arg.nmsgs):
            m = arg.msgs[k]
            if m.flags & 1:
                ctypes.memmove(m.buf, bytes(range(1, m.len + 1)), m.len)
                msgs.append((m.addr, m.flags, b""))
            else:
                msgs.append((m.addr, m.flags, ctypes.string_at(m.buf, m.len)))
        self.transfers.append(msgs)
        return 0


@pytest.fixture
def adapter(monkeypatch: pytest.MonkeyPatch) -> FakeAdapter:
    fake = FakeAdapter()
    monkeypatch.setattr(smbus2_impl.os, "open", fake.open)
    monkeypatch.setattr(smbus2_impl.os, "close", lambda fd: None)
    monkeypatch.setattr(smbus2_impl, "ioctl", fake.ioctl)
    return fake


def test_open_bus_and_transfer(adapter: FakeAdapter) -> None:
    bus = i2c.open_bus(1)
    assert adapter.opened == ["/dev/i2c-1"]
    bus.i2c_rdwr(i2c.write_msg(0x35, b"\x03\x07\x30\x00\x00\x00\x03\x5d"))
    read = i2c.read_msg(0x35, 4)
    bus.i2c_rdwr(read)
    assert adapter.transfers[0] == [(0x35, 0, b"\x03\x07\x30\x00\x00\x00\x03\x5d")]
    assert adapter.transfers[1] == [(0x35, 1, b"")]
    assert i2c.msg_bytes(read) == b"\x01\x02\x03\x04"
    bus.close()


@pytest.mark.parametrize("code", [errno.EREMOTEIO, errno.ENXIO, errno.EIO])
def test_nack_is_oserror(adapter: FakeAdapter, code: int) -> None:
    bus = i2c.open_bus(3)
    adapter.fail_errno = code
    with pytest.raises(OSError) as info:
        bus.i2c_rdwr(i2c.read_msg(0x60, 1))
    assert info.value.errno == code


def test_bad_bus_number() -> None:
    with pytest.raises(ValueError):
        i2c.open_bus(-1)


def test_default_lock_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(i2c, "RUN_LOCK_DIR", tmp_path)
    assert i2c.default_lock_path(1, 0x35) == tmp_path / "atecc-i2c-1-0x35.lock"
    monkeypatch.setattr(i2c, "RUN_LOCK_DIR", tmp_path / "missing")
    fallback = i2c.default_lock_path(1, 0x35)
    assert fallback.name == "atecc-i2c-1-0x35.lock" and fallback.parent != tmp_path / "missing"


def test_transport_does_not_import_smbus2_at_module_level() -> None:
    import atecc.transport

    source = Path(atecc.transport.__file__).read_text()
    assert "import smbus2" not in source and "from smbus2" not in source
