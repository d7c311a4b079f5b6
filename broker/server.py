"""The broker process: the module loaded once, many clients served over p11-kit's RPC.

Owns: the accept loop and the life of each connection. At start the PKCS#11 module is loaded
through p11-kit and initialised once (the interpreter, the token core and the chip are then warm
for every client). Each accepted connection is checked against the allow list (kernel
credentials, before any byte is read), counted against ``max_clients`` (over it: closed at once,
with a log line), and served in a worker thread by its own managed instance of the module; when
the connection ends, however it ends, that instance is finalised, which closes the sessions the
client left open, and released. SIGTERM/SIGINT stop the broker: no new connections, every relay
is told to stop (a call in progress completes first), then the module is finalised.

Must not: touch PKCS#11 semantics (p11-kit's managed module and the token core own them), log
anything a client sent, or let one connection's failure reach another (each worker catches and
logs its own errors).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from broker import relay
from broker.peers import AllowList, peer_of

log = logging.getLogger("broker")


class Broker:
    """One listening socket, one module, a bounded set of client connections."""

    def __init__(
        self,
        module_path: str,
        listener: socket.socket,
        allow: AllowList,
        limits: relay.Limits,
        *,
        max_clients: int,
    ) -> None:
        self.module_path = module_path
        self.listener = listener
        self.listener.setblocking(False)  # readiness comes from the selector
        self.allow = allow
        self.limits = limits
        self.max_clients = max_clients
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._workers: set[threading.Thread] = set()
        self._stopping = False
        self._main: relay.ManagedModule | None = None

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Load and initialise the module once (raises :class:`relay.BrokerError`)."""
        main = relay.ManagedModule(self.module_path)
        try:
            main.initialize()
        except relay.BrokerError:
            main.release()
            raise
        self._main = main

    def stop(self) -> None:
        """Ask everything to stop (safe from any thread, and more than once)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        os.write(self._stop_w, b"x")  # stays readable: every relay and the accept loop see it

    def close(self, timeout: float = 30.0) -> None:
        """After :meth:`serve_forever`: wait for the workers, finalise the module."""
        self.stop()
        for worker in list(self._workers):
            worker.join(timeout)
        if self._main is not None:
            self._main.finalize()
            self._main.release()
            self._main = None
        self.listener.close()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._workers)

    # --- accepting -----------------------------------------------------------------------------
    def serve_forever(self, *, install_signals: bool = True) -> None:
        """Accept until :meth:`stop` (or SIGTERM/SIGINT when ``install_signals``)."""
        restore: list[tuple[signal.Signals, Any]] = []
        if install_signals:
            # The handler runs in this thread when select() is interrupted; its byte on the
            # stop pipe ends the loop (and every relay).
            for sig in (signal.SIGTERM, signal.SIGINT):
                restore.append((sig, signal.signal(sig, lambda *_: self.stop())))
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self._stop_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                events = selector.select()
                if any(key.fileobj == self._stop_r for key, _ in events) or self._stopping:
                    break
                self._accept_one()
        finally:
            selector.close()
            for sig, handler in restore:
                signal.signal(sig, handler)

    def _accept_one(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and friends: keep serving the clients we have
            log.warning("accept failed: %s", exc.strerror)
            return
        try:
            peer = peer_of(conn)
        except OSError as exc:
            log.warning("refused a connection: its credentials cannot be read (%s)", exc.strerror)
            conn.close()
            return
        if not self.allow.allows(peer):
            log.warning("refused %s: not in the allow list", peer.describe())
            conn.close()
            return
        with self._lock:
            if len(self._workers) >= self.max_clients:
                full = True
            else:
                full = False
                worker = threading.Thread(
                    target=self._connection,
                    args=(conn, peer.describe()),
                    name=f"broker-client-{peer.pid}",
                    daemon=True,
                )
                self._workers.add(worker)
        if full:
            log.warning(
                "refused %s: %d clients connected (--max-clients)",
                peer.describe(),
                self.max_clients,
            )
            conn.close()
            return
        log.debug("accepted %s", peer.describe())
        worker.start()

    # --- one connection ------------------------------------------------------------------------
    def _connection(self, conn: socket.socket, who: str) -> None:
        instance: relay.ManagedModule | None = None
        try:
            instance = relay.ManagedModule(self.module_path)
            result = relay.serve(instance, conn.fileno(), self.limits, self._stop_r)
            _log_end(who, result)
        except Exception as exc:  # one client's failure must not reach the others
            log.error("connection of %s failed: %s", who, exc)
        finally:
            if instance is not None:
                rv = instance.finalize()  # closes whatever sessions the client left open
                if rv not in (relay.CKR_OK, relay.CKR_CRYPTOKI_NOT_INITIALIZED):
                    log.warning("C_Finalize for %s returned 0x%X", who, rv)
                instance.release()
            conn.close()
            with self._lock:
                self._workers.discard(threading.current_thread())


_END_LEVELS: dict[relay.End, Callable[..., None]] = {
    relay.End.CLOSED: log.debug,
    relay.End.STOPPED: log.debug,
}


def _log_end(who: str, result: relay.Result) -> None:
    reason = result.end.name.lower().replace("_", " ")
    detail = f" ({os.strerror(result.errno)})" if result.errno else ""
    _END_LEVELS.get(result.end, log.info)(
        "connection of %s ended: %s%s after %d requests", who, reason, detail, result.requests
    )
