"""The server's connections: one thread, non-blocking sockets, a deadline on each.

Owns: accepting, the bound on open connections, the per-connection deadlines, the handshake
(through :mod:`fleet.server.tls`), reading one HTTP/1.1 request head, answering it, the one log
line per connection, and stopping on SIGTERM/SIGINT.

Connections cost no thread: a selector waits on all of them. Each has one deadline for its
handshake (``handshake_timeout_s`` from accept) and one for its request and answer
(``request_timeout_s`` from the end of the handshake) -- whole-phase deadlines, so a client that
trickles one byte at a time is cut off like an idle one. When ``max_connections`` are open and
another client arrives, the oldest connection still in its handshake (else the oldest of all) is
closed to make room: idle or slow clients can delay a good client by at most one handshake, never
lock it out. Accepted clients get ``hello <device ID>`` to one request; refused ones never
complete the handshake.

Must not: decide verdicts (``authority.py``, ``tls.py``) or write the registry.
"""

from __future__ import annotations

import errno
import re
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography import x509
from OpenSSL import SSL

from fleet import FleetError
from fleet.ca_dir import CA_CERT_NAME
from fleet.server import logline
from fleet.server.authority import Authority, file_stamp
from fleet.server.tls import Handshake, build_context, handshake_error_reason

_REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r?\n")
MAX_REQUEST_HEAD = 16 * 1024
#: Seconds between checks of the CRL file for a new version.
CRL_CHECK_INTERVAL_S = 0.5


@dataclass
class ServerConfig:
    """Everything ``atecc serve`` takes on its command line."""

    ca_dir: Path
    cert: Path
    key: Path
    host: str = "127.0.0.1"
    port: int = 8443
    crl: Path | None = None
    registry_url: str | None = None
    handshake_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    max_connections: int = 256
    grace_s: float = 3.0


@dataclass(eq=False)
class _Conn:
    fd: int
    sock: socket.socket
    tls: SSL.Connection
    peer: str
    opened: float
    deadline: float
    state: Handshake
    phase: str = "handshake"  # -> "request" -> "answer"
    inbox: bytes = b""
    outbox: bytes = b""
    logged: bool = False
    events: int = field(default=selectors.EVENT_READ)


class MtlsServer:
    """The reference mutual-TLS server; :meth:`serve_forever` runs until :meth:`stop`."""

    def __init__(self, config: ServerConfig, log_stream: TextIO | None = None) -> None:
        if config.max_connections < 1:
            raise FleetError("max_connections must be at least 1")
        self.config = config
        self._stream = log_stream or sys.stderr
        self._stopping = threading.Event()
        self.ca_file = config.ca_dir / CA_CERT_NAME
        self.authority = Authority(
            config.ca_dir, config.crl, self.log, registry_url=config.registry_url
        )
        try:
            self._crl_stamp = file_stamp(config.crl) if config.crl else None
            self.context = self._context(self.authority.load_crl())
        except BaseException:
            self.authority.close()
            raise
        self._crl_checked = time.monotonic()
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}

    def _context(self, crl: x509.CertificateRevocationList | None) -> SSL.Context:
        cfg = self.config
        return build_context(cfg.cert, cfg.key, self.ca_file, self.authority, crl)

    # -- logging ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        self._stream.write(logline.stamped(message))
        self._stream.flush()

    def _verdict(self, conn: _Conn, reason: str | None) -> None:
        if conn.logged:
            return
        conn.logged = True
        state = conn.state
        self.log(logline.verdict_line(conn.peer, state.device_id, state.serial, reason))

    # -- lifecycle -------------------------------------------------------------------------------

    def bind(self) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.config.host, self.config.port))
        except OSError as exc:
            listener.close()
            raise FleetError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}"
            ) from None
        listener.listen(512)
        listener.setblocking(False)
        self._listener = listener
        host, port = listener.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        self._stopping.set()

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        listener = self._listener
        assert listener is not None
        host, port = listener.getsockname()[:2]
        self.log(
            f"listening on {host}:{port} (TLS >= 1.2, client certificates from {self.ca_file}, "
            f"at most {self.config.max_connections} connections)"
        )
        self._selector.register(listener, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                self._turn()
            self._selector.unregister(listener)
            listener.close()
            grace_end = time.monotonic() + self.config.grace_s
            while self._conns and time.monotonic() < grace_end:
                self._turn(until=grace_end)
        finally:
            for conn in list(self._conns.values()):
                self._close(conn, "server stopping")
            if listener.fileno() != -1:
                listener.close()
            self._selector.close()
            self.authority.close()
            self.log("stopped")

    # -- the loop --------------------------------------------------------------------------------

    def _turn(self, until: float | None = None) -> None:
        now = time.monotonic()
        wait = 0.25
        if self._conns:
            wait = min(wait, max(0.0, min(c.deadline for c in self._conns.values()) - now))
        if until is not None:
            wait = min(wait, max(0.0, until - now))
        for key, _ in self._selector.select(wait):
            if key.data is None:
                self._accept()
            else:
                conn: _Conn = key.data
                if self._conns.get(conn.fd) is conn:
                    self._step(conn)
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            # After the handshake the line is written already; a slow request just ends.
            self._close(conn, "handshake error (timeout)" if conn.phase == "handshake" else None)
        self._maybe_reload_crl(now)

    def _maybe_reload_crl(self, now: float) -> None:
        if self.config.crl is None or now - self._crl_checked < CRL_CHECK_INTERVAL_S:
            return
        self._crl_checked = now
        stamp = file_stamp(self.config.crl)
        if stamp == self._crl_stamp:
            return
        try:
            self.context = self._context(self.authority.load_crl())
            self._crl_stamp = stamp
            self.log(f"loaded the CRL {self.config.crl}")
        except FleetError as exc:
            self._crl_stamp = stamp  # say it once per change, keep the previous CRL
            self.log(f"warning: keeping the previous CRL: {exc}")

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log(f"warning: cannot accept: {exc.strerror}")
                    self._evict()
                    return
                raise
            if len(self._conns) >= self.config.max_connections:
                self._evict()
            self._open(sock, f"{address[0]}:{address[1]}")

    def _evict(self) -> None:
        """Close the oldest connection still in its handshake (else the oldest of all)."""
        if not self._conns:
            return
        waiting = [c for c in self._conns.values() if c.phase == "handshake"]
        victim = min(waiting or self._conns.values(), key=lambda c: c.opened)
        self._close(victim, "handshake error (evicted: server full, oldest connection)")

    def _open(self, sock: socket.socket, peer: str) -> None:
        now = time.monotonic()
        sock.setblocking(False)
        state = Handshake()
        tls = SSL.Connection(self.context, sock)
        tls.set_app_data(state)
        tls.set_accept_state()
        conn = _Conn(
            sock.fileno(), sock, tls, peer, now, now + self.config.handshake_timeout_s, state
        )
        self._conns[conn.fd] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)
        self._step(conn)

    def _close(self, conn: _Conn, reason: str | None) -> None:
        """End a connection; during the handshake that is a refusal (``reason`` for the log)."""
        if conn.phase == "handshake":
            self._verdict(conn, reason or "handshake error (connection lost)")
        if self._conns.get(conn.fd) is conn:
            del self._conns[conn.fd]
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _want(self, conn: _Conn, events: int) -> None:
        if conn.events != events:
            conn.events = events
            self._selector.modify(conn.sock, events, conn)

    # -- one connection --------------------------------------------------------------------------

    def _step(self, conn: _Conn) -> None:
        try:
            if conn.phase == "handshake":
                self._handshake(conn)
            if conn.phase == "request":
                self._read_request(conn)
            if conn.phase == "answer":
                self._write_answer(conn)
        except SSL.WantReadError:
            self._want(conn, selectors.EVENT_READ)
        except SSL.WantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
        except SSL.ZeroReturnError:
            self._close(conn, "handshake error (closed by the client)")
        except SSL.SysCallError:
            self._close(conn, conn.state.refusal or "handshake error (connection lost)")
        except SSL.Error as exc:
            self._close(conn, handshake_error_reason(exc, conn.state))
        except OSError:
            self._close(conn, "handshake error (connection lost)")

    def _handshake(self, conn: _Conn) -> None:
        conn.tls.do_handshake()
        if not conn.state.verified:  # the callback never accepted a certificate: refuse
            raise SSL.Error([("", "", "no verified client certificate")])
        self._verdict(conn, None)
        conn.phase = "request"
        conn.deadline = time.monotonic() + self.config.request_timeout_s

    def _read_request(self, conn: _Conn) -> None:
        while b"\r\n\r\n" not in conn.inbox and b"\n\n" not in conn.inbox:
            if len(conn.inbox) >= MAX_REQUEST_HEAD:
                break
            chunk = conn.tls.recv(4096)
            if not chunk:
                break
            conn.inbox += chunk
        if _REQUEST_LINE.match(conn.inbox):
            status, body = "200 OK", f"hello {conn.state.device_id}\n"
        else:
            status, body = "400 Bad Request", "expected an HTTP/1.1 request\n"
        payload = body.encode("utf-8")
        conn.outbox = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode("ascii") + payload
        conn.phase = "answer"

    def _write_answer(self, conn: _Conn) -> None:
        while conn.outbox:
            sent = conn.tls.send(conn.outbox)
            conn.outbox = conn.outbox[sent:]
        try:
            conn.tls.shutdown()  # close_notify, so the client knows the answer is complete
        except SSL.Error:
            pass
        self._close(conn, None)


def run(
    config: ServerConfig,
    log_path: Path | None = None,
    ready: Callable[[str, int], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT and return 0; raise :class:`FleetError` on a bad setup."""
    stream: TextIO = sys.stderr
    if log_path is not None:
        stream = open(log_path, "a", encoding="utf-8", buffering=1)
    try:
        server = MtlsServer(config, stream)
        host, port = server.bind()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: server.stop())
        if ready is not None:
            ready(host, port)
        server.serve_forever()
        return 0
    finally:
        if stream is not sys.stderr:
            stream.close()
