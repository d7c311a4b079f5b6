"""The emulator end of ``atecc emulator run``: one :class:`EmulatedBus` served over a UNIX socket.

Owns: the socket protocol spoken with the C preload shim (``native/i2c_preload.c`` documents the
wire format), the bounds on what a client may send (42 messages of at most 8192 bytes per
transfer, as i2c-dev allows; at most :data:`MAX_CONNECTIONS` open descriptors), and the loop that
serves transfers until the supervised client process ends.

Every transfer runs as one ``bus.i2c_rdwr(*msgs)`` call, so the bus semantics (wake on address
0x00, NACK as ``EREMOTEIO``, execution at the Stop) are exactly those of the in-process emulator.
All connections share the one bus: a program that opens the device node for every transfer (as
cryptoauthlib's Linux HAL does) talks to the same chip, with the same volatile state, each time.

Must not: block on one client (sockets are non-blocking, replies are queued), trust a length
field before checking it, or outlive the client process it serves.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from atecc.emulator.harness import I2C_M_RD, Msg

log = logging.getLogger("atecc.emulator")

VERSION = 1
GREETING = b"ATI2" + bytes((VERSION, 0, 0, 0))
GREETING_BUSY = b"ATI2" + bytes((VERSION, 1, 0, 0))
MAX_MSGS = 42  #: I2C_RDWR_IOCTL_MAX_MSGS
MAX_MSG_LEN = 8192  #: i2c-dev's per-message limit
MAX_CONNECTIONS = 64
#: A client that does not read its replies is dropped once this much is queued for it.
MAX_QUEUED_REPLY = 4 * (8 + MAX_MSGS * MAX_MSG_LEN)
_HEADER = 4
_DESCRIPTOR = struct.Struct("<HHH")
_REPLY = struct.Struct("<II")


class Bus(Protocol):
    def i2c_rdwr(self, *msgs: Msg) -> None: ...


class TransferSink(Protocol):
    """Where decoded transfers go (:class:`atecc.emulator.translog.TransferLog`)."""

    def transfer(self, msgs: list[Msg], error: int) -> None: ...


class ProtocolError(Exception):
    """A client sent something that is not a request: its connection is closed."""


class _Conn:
    __slots__ = ("inbuf", "outbuf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()


def parse_request(buf: bytes | bytearray) -> tuple[list[Msg], int] | None:
    """Decode one request at the start of ``buf``: (messages, bytes used), or None if incomplete.

    :raises ProtocolError: a malformed header or a message outside the bounds.
    """
    if len(buf) < _HEADER:
        return None
    nmsgs = buf[0]
    if not 1 <= nmsgs <= MAX_MSGS or any(buf[1:_HEADER]):
        raise ProtocolError(f"bad request header {bytes(buf[:_HEADER]).hex()}")
    end = _HEADER + _DESCRIPTOR.size * nmsgs
    if len(buf) < end:
        return None
    descriptors = [
        _DESCRIPTOR.unpack_from(buf, _HEADER + _DESCRIPTOR.size * i) for i in range(nmsgs)
    ]
    for addr, flags, length in descriptors:
        if addr > 0x7F or flags & ~I2C_M_RD or length > MAX_MSG_LEN:
            raise ProtocolError(f"message out of bounds: addr {addr} flags {flags} len {length}")
    need = end + sum(length for _, flags, length in descriptors if not flags & I2C_M_RD)
    if len(buf) < need:
        return None
    msgs = []
    offset = end
    for addr, flags, length in descriptors:
        if flags & I2C_M_RD:
            msgs.append(Msg.read(addr, length))
        else:
            msgs.append(Msg.write(addr, bytes(buf[offset : offset + length])))
            offset += length
    return msgs, need


def run_transfer(bus: Bus, msgs: list[Msg]) -> tuple[int, bytes]:
    """Run the messages as one transaction: (errno or 0, the bytes of the read messages)."""
    try:
        bus.i2c_rdwr(*msgs)
    except OSError as exc:
        return exc.errno or errno.EIO, b""
    except Exception:
        # A broken state file or an emulator bug must not take the server down with it; the
        # client sees an I/O error, the operator the traceback in the log.
        log.exception("emulator error while running a transfer")
        return errno.EIO, b""
    return 0, b"".join(bytes(m) for m in msgs if m.flags & I2C_M_RD)


class I2CServer:
    """Listens on ``socket_path`` (created 0600 in a private directory by the caller)."""

    def __init__(
        self,
        bus: Bus,
        socket_path: str | os.PathLike[str],
        *,
        sink: TransferSink | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.bus = bus
        self.sink = sink
        self.max_connections = max_connections
        self.path = Path(socket_path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._listener.bind(str(self.path))
        finally:
            os.umask(old)
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._conns: dict[int, _Conn] = {}
        self.transfers = 0

    # -- loop ----------------------------------------------------------------------------------
    def serve(
        self, finished: Callable[[], bool], *, pid: int | None = None, poll_s: float = 1.0
    ) -> None:
        """Serve until ``finished()`` is true, checked at least every ``poll_s``; ``pid``'s exit
        wakes the loop at once (pidfd)."""
        pidfd = None
        if pid is not None and hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = None  # old kernel: the one-second poll below still notices the exit
        if pidfd is not None:
            self._selector.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while not finished():
                for key, events in self._selector.select(timeout=poll_s):
                    if key.data == "exit":
                        continue  # loop test above sees it
                    if key.data is None:
                        self._accept()
                    else:
                        self._service(key.data, events)
        finally:
            if pidfd is not None:
                self._selector.unregister(pidfd)
                os.close(pidfd)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self._conns) >= self.max_connections:
            try:
                sock.sendall(GREETING_BUSY)
            except OSError:
                pass
            sock.close()
            log.warning("refused an I2C connection: %d already open", self.max_connections)
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        conn.outbuf += GREETING
        self._conns[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def _service(self, conn: _Conn, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                data = conn.sock.recv(65536)
                if not data:
                    self._drop(conn)
                    return
                conn.inbuf += data
                self._handle_requests(conn)
            if conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except (OSError, ProtocolError) as exc:
            if isinstance(exc, ProtocolError):
                log.warning("dropped an I2C client: %s", exc)
            self._drop(conn)
            return
        if len(conn.outbuf) > MAX_QUEUED_REPLY:
            log.warning("dropped an I2C client that does not read its replies")
            self._drop(conn)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        self._selector.modify(conn.sock, want, conn)

    def _handle_requests(self, conn: _Conn) -> None:
        while True:
            parsed = parse_request(conn.inbuf)
            if parsed is None:
                return
            msgs, used = parsed
            del conn.inbuf[:used]
            error, data = run_transfer(self.bus, msgs)
            self.transfers += 1
            if self.sink is not None:
                self.sink.transfer(msgs, error)
            conn.outbuf += _REPLY.pack(error, len(data)) + data

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def close(self) -> None:
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._selector.close()
        self._listener.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
