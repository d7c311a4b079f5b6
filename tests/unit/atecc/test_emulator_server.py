"""The emulator's socket server for the preload shim: request bounds and a loop that never waits
on one client. Clients here speak the wire format with raw sockets (as the C shim does)."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atecc.emulator.bus import EmulatedBus
from atecc.emulator.profiles import create_chip
from atecc.emulator.server import (
    GREETING,
    GREETING_BUSY,
    I2CServer,
    ProtocolError,
    parse_request,
)


def request(*msgs: tuple[int, int, bytes | int]) -> bytes:
    """(addr, flags, data-or-read-length) messages in the wire format."""
    head = bytes((len(msgs), 0, 0, 0))
    desc = b"".join(
        struct.pack("<HHH", a, f, d if isinstance(d, int) else len(d)) for a, f, d in msgs
    )
    return head + desc + b"".join(d for _, _, d in msgs if isinstance(d, bytes))


def test_incomplete_request_waits_for_more_bytes() -> None:
    whole = request((0x35, 0, b"\x03\x07\x30\x00\x00\x00\x03\x5d"))
    for cut in range(len(whole)):
        assert parse_request(whole[:cut]) is None
    msgs, used = parse_request(whole + b"extra")
    assert used == len(whole) and len(msgs) == 1


@pytest.mark.parametrize(
    "raw",
    [
        bytes((0, 0, 0, 0)),  # no message
        bytes((43, 0, 0, 0)),  # over i2c-dev's 42
        bytes((1, 1, 0, 0)),  # reserved header bytes
        request((0x80, 0, b"\x00")),  # 10-bit style address
        request((0x35, 0x0010, b"\x00")),  # a flag other than I2C_M_RD
        request((0x35, 1, 8193)),  # longer than i2c-dev's 8192
    ],
)
def test_malformed_request_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_request(raw)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[I2CServer]:
    state = tmp_path / "chip.json"
    create_chip(state)
    bus = EmulatedBus(state)
    srv = I2CServer(bus, tmp_path / "i2c.sock", max_connections=3)
    stop = threading.Event()
    thread = threading.Thread(
        target=srv.serve, args=(stop.is_set,), kwargs={"poll_s": 0.02}, daemon=True
    )
    thread.start()
    yield srv
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    srv.close()
    bus.close()


def connect(srv: I2CServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(srv.path))
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "server closed the connection"
        data += chunk
    return data


def transfer(sock: socket.socket, *msgs: tuple[int, int, bytes | int]) -> tuple[int, bytes]:
    sock.sendall(request(*msgs))
    err, n = struct.unpack("<II", recv_exact(sock, 8))
    return err, recv_exact(sock, n)


def test_wake_is_a_nack_and_the_chip_answers_afterwards(server: I2CServer) -> None:
    sock = connect(server)
    assert recv_exact(sock, 8) == GREETING
    assert transfer(sock, (0x00, 0, b"\x01")) == (errno.EREMOTEIO, b"")
    assert transfer(sock, (0x35, 1, 4)) == (0, bytes.fromhex("04113343"))


def test_a_stalled_client_does_not_block_another(server: I2CServer) -> None:
    stalled = connect(server)
    recv_exact(stalled, 8)
    stalled.sendall(request((0x35, 0, b"\x03" * 100))[:20])  # half a request, then silence
    other = connect(server)
    recv_exact(other, 8)
    assert transfer(other, (0x00, 0, b"\x00"))[0] == errno.EREMOTEIO


def test_connections_over_the_limit_get_busy_and_are_closed(server: I2CServer) -> None:
    held = [connect(server) for _ in range(3)]
    for sock in held:
        assert recv_exact(sock, 8) == GREETING
    extra = connect(server)
    assert recv_exact(extra, 8) == GREETING_BUSY
    assert extra.recv(1) == b""
    held[0].close()
    again = None
    for _ in range(50):  # the server notices the close on its next loop turn
        again = connect(server)
        if recv_exact(again, 8) == GREETING:
            break
        again.close()
        again = None
        threading.Event().wait(0.02)
    assert again is not None


def test_garbage_closes_only_that_connection(server: I2CServer) -> None:
    bad = connect(server)
    recv_exact(bad, 8)
    bad.sendall(bytes((200, 0, 0, 0)))
    assert bad.recv(1) == b""
    good = connect(server)
    recv_exact(good, 8)
    assert transfer(good, (0x00, 0, b"\x00"))[0] == errno.EREMOTEIO
