"""Reference mutual-TLS server: the server side of a device fleet that uses ``fleet``.

Owns: accepting TLS connections (1.2 minimum) that must present a client certificate signed by
the CA, and then checking what a CA signature and validity dates do not cover -- the certificate
must be the one recorded in the CA's registry for its serial number and device ID (CN), active
there, and absent from the CRL when one is given. The registry and CRL files are re-read whenever
they change on disk, so ``atecc revoke`` / ``atecc ca crl`` take effect on the next connection.

Every connection gets exactly one log line::

    2026-01-01T00:00:00Z 127.0.0.1:40312 device=<CN or -> serial=<hex or -> accepted
    2026-01-01T00:00:00Z 127.0.0.1:40316 device=- serial=- refused: unknown authority (...)

Refusal reasons: ``unknown authority``, ``expired``, ``not yet valid``, ``revoked``,
``unregistered``, ``no certificate``, ``bad certificate``, ``handshake error``, ``server busy``.
When the TLS library refuses a certificate, Python's ``ssl`` does not hand the certificate over,
so those lines carry ``device=-``.

An accepted client gets an answer to one HTTP/1.1 request (``hello <device ID>``), then the
connection closes; a refused client that completed the handshake gets ``403``. One thread per
connection (bounded by ``max_connections``); the handshake has an overall deadline, so clients
that connect and say nothing, send garbage or vanish mid-handshake cost one thread for at most
that long. SIGTERM and SIGINT stop the server: it stops accepting, lets connections in flight
finish for a short grace period, and exits 0.

Must not: sign or issue anything (``fleet.ca``), or write the registry.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fleet import FleetError
from fleet.ca_dir import CA_CERT_NAME, load_ca_certificate
from fleet.registry import REVOKED, DeviceRecord, format_serial, open_registry

#: X509_V_ERR_* codes (OpenSSL x509_vfy.h) mapped to the verdict reasons above.
_UNKNOWN_AUTHORITY = {2, 7, 18, 19, 20, 21, 24, 25, 27, 28, 32}
_EXPIRED = 10
_NOT_YET_VALID = 9
_REVOKED = 23
_INVALID_PURPOSE = 26

_REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/1\.[01]\r?\n")
MAX_REQUEST_HEAD = 16 * 1024


@dataclass
class ServerConfig:
    """Everything ``atecc serve`` takes on its command line."""

    ca_dir: Path
    cert: Path
    key: Path
    host: str = "127.0.0.1"
    port: int = 8443
    crl: Path | None = None
    handshake_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    max_connections: int = 256
    grace_s: float = 3.0


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str
    device_id: str | None = None
    serial: str | None = None


# --- registry look-ups and the CRL -----------------------------------------------------------


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Authority:
    """The CA's view of a client certificate: its registry record (looked up by serial, with a
    short cache) and the CRL file (re-read when it changes)."""

    #: Records looked up within this many seconds are reused (SQLite: also until another
    #: process commits a change, whichever comes first).
    CACHE_TTL_S = 1.0
    CACHE_MAX = 4096

    def __init__(
        self,
        ca_dir: Path,
        crl_path: Path | None,
        log: Callable[[str], None],
        *,
        registry_url: str | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self.ca_cert = load_ca_certificate(ca_dir)
        self.registry = open_registry(ca_dir, registry_url)
        self.crl_path = crl_path
        self._log = log
        self._lock = threading.Lock()
        self._ttl = cache_ttl_s
        self._cache: dict[int, tuple[float, DeviceRecord | None]] = {}
        self._cache_stamp = self.registry.change_stamp()
        self._crl_stamp: object = object()
        self._crl_serials: frozenset[int] = frozenset()
        self.reload(strict=True)

    def close(self) -> None:
        self.registry.close()

    def lookup(self, serial: int) -> DeviceRecord | None:
        """The registry record of ``serial`` (an indexed query, cached for a short while)."""
        with self._lock:
            stamp = self.registry.change_stamp()
            if stamp != self._cache_stamp:
                self._cache.clear()
                self._cache_stamp = stamp
            now = time.monotonic()
            hit = self._cache.get(serial)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
            record = self.registry.get(serial)
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[serial] = (now, record)
            return record

    def reload(self, *, strict: bool = False) -> None:
        """Re-read the CRL if its file changed; ``strict`` raises on a bad file."""
        with self._lock:
            if self.crl_path is not None:
                stamp = _stamp(self.crl_path)
                if stamp != self._crl_stamp:
                    try:
                        self._crl_serials = self._load_crl(self.crl_path)
                        self._crl_stamp = stamp
                    except FleetError as exc:
                        if strict:
                            raise
                        self._log(f"warning: keeping the previous CRL: {exc}")

    def _load_crl(self, path: Path) -> frozenset[int]:
        try:
            raw = path.read_bytes()
            crl = (
                x509.load_pem_x509_crl(raw) if b"-----BEGIN" in raw else x509.load_der_x509_crl(raw)
            )
        except (OSError, ValueError) as exc:
            raise FleetError(f"cannot load the CRL {path}: {exc}") from None
        if crl.issuer != self.ca_cert.subject or not crl.is_signature_valid(
            self.ca_cert.public_key()  # type: ignore[arg-type]
        ):
            raise FleetError(f"the CRL {path} is not signed by the CA")
        next_update = crl.next_update_utc
        if next_update is not None and next_update < datetime.now(UTC):
            self._log(f"warning: the CRL {path} is past its nextUpdate; publish a new one")
        return frozenset(entry.serial_number for entry in crl)

    def check(self, cert: x509.Certificate) -> Verdict:
        """The application-level verdict for a certificate the TLS layer already verified."""
        self.reload()
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        device_id = str(names[-1].value) if names else None
        serial = format_serial(cert.serial_number)
        record = self.lookup(cert.serial_number)
        if record is None:
            return Verdict(False, "unregistered (serial not in the registry)", device_id, serial)
        if record.device_id != device_id or record.certificate != cert.public_bytes(
            serialization.Encoding.DER
        ):
            return Verdict(
                False,
                "unregistered (not the certificate registered for this serial)",
                device_id,
                serial,
            )
        if record.status == REVOKED:
            why = record.reason or "unspecified"
            return Verdict(
                False,
                f"revoked ({why}, in the registry since {record.revoked_at})",
                device_id,
                serial,
            )
        if cert.serial_number in self._crl_serials:
            return Verdict(False, "revoked (listed in the CRL)", device_id, serial)
        return Verdict(True, "registered and active", device_id, serial)


# --- the server ----------------------------------------------------------------------------------


def _classify_verify_error(exc: ssl.SSLCertVerificationError) -> str:
    code = getattr(exc, "verify_code", None)
    message = getattr(exc, "verify_message", None) or str(exc)
    if code in _UNKNOWN_AUTHORITY:
        return f"unknown authority ({message})"
    if code == _EXPIRED:
        return "expired"
    if code == _NOT_YET_VALID:
        return "not yet valid"
    if code == _REVOKED:
        return "revoked"
    if code == _INVALID_PURPOSE:
        return f"bad certificate ({message}: not a client certificate)"
    return f"bad certificate ({message})"


def _classify_ssl_error(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or ""
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason or "CERTIFICATE_REQUIRED" in reason:
        return "no certificate"
    detail = reason.lower().replace("_", " ") if reason else " ".join(str(exc).split())
    return f"handshake error ({detail})"


class MtlsServer:
    """Threaded mutual-TLS server; :meth:`serve_forever` runs until :meth:`stop`."""

    def __init__(self, config: ServerConfig, log_stream: TextIO | None = None) -> None:
        self.config = config
        self._stream = log_stream or sys.stderr
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(config.max_connections)
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        ca_file = config.ca_dir / CA_CERT_NAME
        if not ca_file.is_file():
            raise FleetError(f"{ca_file} not found (is --ca-dir a CA made by 'atecc ca init'?)")
        self.authority = Authority(config.ca_dir, config.crl, self.log)
        self.context = self._context(ca_file)
        self._listener: socket.socket | None = None

    def _context(self, ca_file: Path) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.options |= ssl.OP_NO_RENEGOTIATION
        try:
            context.load_cert_chain(str(self.config.cert), str(self.config.key))
            context.load_verify_locations(cafile=str(ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise FleetError(f"cannot load the server certificate, key or CA: {exc}") from None
        return context

    # -- logging ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._log_lock:
            self._stream.write(f"{stamp} {message}\n")
            self._stream.flush()

    def _verdict(self, peer: str, verdict: Verdict) -> None:
        outcome = "accepted" if verdict.accepted else f"refused: {verdict.reason}"
        self.log(
            f"{peer} device={verdict.device_id or '-'} serial={verdict.serial or '-'} {outcome}"
        )

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
        listener.listen(128)
        listener.settimeout(0.25)  # so the accept loop notices stop() promptly
        self._listener = listener
        host, port = listener.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        self._stopping.set()

    def serve_forever(self) -> None:
        if self._listener is None:
            self.bind()
        assert self._listener is not None
        host, port = self._listener.getsockname()[:2]
        self.log(
            f"listening on {host}:{port} (TLS >= 1.2, client certificates from "
            f"{self.config.ca_dir / CA_CERT_NAME})"
        )
        try:
            while not self._stopping.is_set():
                try:
                    conn, address = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                peer = f"{address[0]}:{address[1]}"
                if not self._slots.acquire(blocking=False):
                    self._verdict(peer, Verdict(False, "server busy"))
                    conn.close()
                    continue
                thread = threading.Thread(target=self._handle, args=(conn, peer), daemon=True)
                with self._threads_lock:
                    self._threads.add(thread)
                thread.start()
        finally:
            self._listener.close()
            with self._threads_lock:
                pending = list(self._threads)
            # One grace period for all of them, not one each.
            deadline = time.monotonic() + self.config.grace_s
            for thread in pending:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            self.log("stopped")

    # -- one connection --------------------------------------------------------------------------

    def _handle(self, conn: socket.socket, peer: str) -> None:
        try:
            self._serve_connection(conn, peer)
        except Exception as exc:  # a bug here must not kill the server, only this connection
            self._verdict(peer, Verdict(False, f"handshake error (internal: {exc!r})"))
        finally:
            try:
                conn.close()
            except OSError:
                pass
            self._slots.release()
            with self._threads_lock:
                self._threads.discard(threading.current_thread())

    def _serve_connection(self, conn: socket.socket, peer: str) -> None:
        cfg = self.config
        conn.settimeout(cfg.handshake_timeout_s)
        # settimeout bounds each recv; the timer bounds the whole handshake (a client trickling
        # one byte per interval would otherwise hold the thread forever).
        watchdog = threading.Timer(cfg.handshake_timeout_s, _shutdown, args=(conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            tls = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except ssl.SSLCertVerificationError as exc:
            self._verdict(peer, Verdict(False, _classify_verify_error(exc)))
            return
        except ssl.SSLError as exc:
            reason = _classify_ssl_error(exc)
            if not watchdog.is_alive() and reason.startswith("handshake error"):
                reason = "handshake error (timeout)"
            self._verdict(peer, Verdict(False, reason))
            return
        except TimeoutError:
            self._verdict(peer, Verdict(False, "handshake error (timeout)"))
            return
        except OSError as exc:
            why = "timeout" if not watchdog.is_alive() else (exc.strerror or "connection lost")
            self._verdict(peer, Verdict(False, f"handshake error ({why.lower()})"))
            return
        finally:
            watchdog.cancel()
        try:
            der = tls.getpeercert(binary_form=True)
            if not der:
                self._verdict(peer, Verdict(False, "no certificate"))
                return
            verdict = self.authority.check(x509.load_der_x509_certificate(der))
            self._verdict(peer, verdict)
            tls.settimeout(cfg.request_timeout_s)
            if verdict.accepted:
                self._answer(tls, verdict)
            else:
                short = verdict.reason.split(" (")[0]
                _respond(tls, 403, "Forbidden", f"refused: {short}\n")
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def _answer(self, tls: ssl.SSLSocket, verdict: Verdict) -> None:
        head = _read_head(tls)
        if not head:
            return  # the client closed or said nothing: nothing to answer
        if _REQUEST_LINE.match(head):
            _respond(tls, 200, "OK", f"hello {verdict.device_id}\n")
        else:
            _respond(tls, 400, "Bad Request", "expected an HTTP/1.1 request\n")


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _read_head(tls: ssl.SSLSocket) -> bytes:
    """Bytes up to the end of the request head (or whatever arrived before EOF/timeout)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < MAX_REQUEST_HEAD:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ssl.SSLError, OSError):
        pass
    return data


def _respond(tls: ssl.SSLSocket, status: int, phrase: str, body: str) -> None:
    payload = body.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    try:
        tls.sendall(head + payload)
        tls.settimeout(1.0)  # unwrap waits for the peer's close_notify; do not wait long
        tls.unwrap()  # close_notify, so the client knows the response is complete
    except (ssl.SSLError, OSError, ValueError):
        pass


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
