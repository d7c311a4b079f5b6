"""`atecc serve`, the reference mutual-TLS server, against real clients (curl, Python's ssl, raw
sockets), each test with its own CA, registry and server process on 127.0.0.1.

The verdict matrix uses client keys in PEM files made here; one test uses the emulated chip's key
through curl + libp11's OpenSSL engine + the built PKCS#11 module (marked ``native``).

Python's ``ssl`` module cannot use a PKCS#11 key: ``SSLContext.load_cert_chain`` takes only a key
*file* (PEM/DER), and there is no hook to sign the handshake with an external key (no engine or
provider key URIs, no signing callback). A Python client with a chip key needs a TLS stack that
takes one (for example pkcs11-provider with OpenSSL 3.2+ store URIs through another binding) or a
local proxy such as stunnel in front of it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import BIN, require, run

HANDSHAKE_TIMEOUT_S = 1.5
#: curl exit codes of a refused handshake: 35 (handshake), 55 or 56 (TLS 1.3: the alert comes
#: while sending or receiving the request).
CURL_TLS_FAILURES = (35, 55, 56)
KEY_URI = "pkcs11:token=00ABC;object=device;type=private"


# --- the atecc command ---------------------------------------------------------------------------


def atecc_cmd() -> list[str]:
    """``atecc``, which has the fleet's subcommands through its entry-point group."""
    return [str(BIN / "atecc")]


def atecc(*args, env=None, timeout=60, check=True):
    return run([*atecc_cmd(), *map(str, args)], env=env, timeout=timeout, check=check)


def test_console_script_has_the_fleet_commands():
    for command in (
        ["ca", "init", "--help"],
        ["csr", "--help"],
        ["revoke", "--help"],
        ["export", "--help"],
        ["serve", "--help"],
    ):
        run([BIN / "atecc", *command], timeout=60)


# --- CA, client credentials ----------------------------------------------------------------------


@dataclass
class Pki:
    root: Path
    ca_dir: Path
    server_cert: Path
    server_key: Path

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"


@dataclass
class Client:
    key: Path
    cert: Path
    device_id: str
    serial: str = ""


@pytest.fixture
def pki(tmp_path) -> Pki:
    ca_dir = tmp_path / "ca"
    atecc(
        "ca", "init", "--dir", ca_dir, "--subject", "/O=Example/CN=Device Root CA", "--days", "30"
    )
    key, cert = tmp_path / "server.key", tmp_path / "server.crt"
    atecc(
        "ca",
        "server-cert",
        "--dir",
        ca_dir,
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--days",
        "30",
        "--out-key",
        key,
        "--out-cert",
        cert,
    )
    return Pki(tmp_path, ca_dir, cert, key)


def _new_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def registered_client(pki: Pki, device_id: str, *, cn: str | None = None) -> Client:
    """A PEM key, a CSR, and a certificate issued by `atecc ca sign` (so it is registered)."""
    key_path = pki.root / f"{device_id}.key"
    key = _new_key(key_path)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(cn or device_id))
        .sign(key, hashes.SHA256())
    )
    csr_path = pki.root / f"{device_id}.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    cert_path = pki.root / f"{device_id}.crt"
    atecc("ca", "sign", "--dir", pki.ca_dir, "--csr", csr_path, "--days", "5", "--out", cert_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return Client(key_path, cert_path, cn or device_id, f"{cert.serial_number:X}")


def handmade_client(pki: Pki, device_id: str, *, self_signed=False, expired=False) -> Client:
    """A certificate the registry does not know (signed with the CA key directly, or
    self-signed), or an expired one issued (and registered) through the CA API."""
    key_path = pki.root / f"{device_id}.key"
    key = _new_key(key_path)
    now = datetime.now(UTC)
    if expired:
        from fleet.ca import CertificateAuthority

        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(device_id))
            .sign(key, hashes.SHA256())
        )
        cert = CertificateAuthority.load(pki.ca_dir).issue_device_certificate(
            csr, not_before=now - timedelta(days=10), not_after=now - timedelta(days=1)
        )
    else:
        ca_key = serialization.load_pem_private_key((pki.ca_dir / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(device_id))
            .issuer_name(_name(device_id) if self_signed else ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(key if self_signed else ca_key, hashes.SHA256())
        )
    cert_path = pki.root / f"{device_id}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Client(key_path, cert_path, device_id, f"{cert.serial_number:X}")


# --- the server process --------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen
    log: Path
    port: int = 0

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def mark(self) -> int:
        return len(self.lines())

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 15.0) -> str:
        """The first log line after line ``after`` that matches ``pattern`` (a regex)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines()[after:]:
                if re.search(pattern, line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log line matching {pattern!r}; log:\n" + "\n".join(self.lines())
                )
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited {self.proc.returncode}; log:\n"
                    + "\n".join(self.lines())
                    + "\n"
                    + self.stderr()
                )
            time.sleep(0.05)

    def stderr(self) -> str:
        path = self.log.with_suffix(".stderr")
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, signum=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture
def start_server(pki):
    servers: list[Server] = []

    def start(*extra: str) -> Server:
        log = pki.root / f"serve{len(servers)}.log"
        stderr = open(log.with_suffix(".stderr"), "wb")
        proc = subprocess.Popen(
            [
                *atecc_cmd(),
                "serve",
                "--ca-dir",
                str(pki.ca_dir),
                "--cert",
                str(pki.server_cert),
                "--key",
                str(pki.server_key),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--log-file",
                str(log),
                "--handshake-timeout",
                str(HANDSHAKE_TIMEOUT_S),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        server = Server(proc, log)
        servers.append(server)
        line = server.wait_for(r"listening on 127\.0\.0\.1:\d+", timeout=30)
        server.port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> Server:
    return start_server()


# --- clients -------------------------------------------------------------------------------------


def curl(pki: Pki, server: Server, client: Client | None, *extra: str, env=None):
    cmd = [
        require("curl"),
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        str(pki.ca_cert),
        "--resolve",
        f"localhost:{server.port}:127.0.0.1",
        "-w",
        "\n%{http_code}\n",
    ]
    if client is not None:
        cmd += ["--cert", str(client.cert), "--key", str(client.key)]
    cmd += [*extra, f"https://localhost:{server.port}/"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def python_get(pki: Pki, server: Server, client: Client, *, timeout: float = 20.0) -> str:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            try:
                chunk = tls.recv(4096)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode()


def client_hello() -> bytes:
    """The bytes of a real TLS ClientHello, without any socket."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


# --- verdicts ------------------------------------------------------------------------------------


def test_registered_device_is_accepted_by_curl(pki, server):
    client = registered_client(pki, "dev-good")
    proc = curl(pki, server, client)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello dev-good\n\n200\n"  # body, then curl's -w status line
    line = server.wait_for(r"device=dev-good .*accepted")
    assert f"serial={client.serial}" in line or client.serial in line.upper()


def test_tls12_client_is_accepted(pki, server):
    client = registered_client(pki, "dev-tls12")
    proc = curl(pki, server, client, "--tls-max", "1.2")
    assert proc.returncode == 0, proc.stderr
    assert "hello dev-tls12" in proc.stdout


def test_python_ssl_client_with_pem_key(pki, server):
    client = registered_client(pki, "dev-python")
    response = python_get(pki, server, client)
    assert response.startswith("HTTP/1.1 200 OK\r\n"), response
    assert response.endswith("\r\n\r\nhello dev-python\n"), response
    server.wait_for(r"device=dev-python .*accepted")


def test_self_signed_certificate_is_refused_as_unknown_authority(pki, server):
    client = handmade_client(pki, "dev-self", self_signed=True)
    proc = curl(pki, server, client)
    assert proc.returncode != 0
    server.wait_for(rf"device=dev-self serial=0?{client.serial} refused: unknown authority")


def test_unregistered_certificate_fails_the_handshake(pki, server):
    client = handmade_client(pki, "dev-stranger")  # CA-signed, but never recorded
    proc = curl(pki, server, client)
    assert proc.returncode in CURL_TLS_FAILURES, (
        proc.stdout + proc.stderr
    )  # TLS failure, no HTTP at all
    assert "hello" not in proc.stdout
    line = server.wait_for(r"device=dev-stranger .*refused: unregistered")
    assert client.serial in line


def test_expired_certificate_is_refused(pki, server):
    client = handmade_client(pki, "dev-old", expired=True)
    proc = curl(pki, server, client)
    assert proc.returncode != 0
    server.wait_for(r"refused: expired")


def test_missing_client_certificate_is_refused(pki, server):
    proc = curl(pki, server, None)
    assert proc.returncode != 0
    server.wait_for(r"refused: no certificate")


def test_revocation_takes_effect_on_the_next_connection(pki, server):
    client = registered_client(pki, "dev-revoked")
    assert "hello dev-revoked" in curl(pki, server, client).stdout
    atecc("revoke", "--dir", pki.ca_dir, "--serial", client.serial, "--reason", "keyCompromise")
    mark = server.mark()
    proc = curl(pki, server, client)
    assert proc.returncode in CURL_TLS_FAILURES and "hello" not in proc.stdout, (
        proc.stdout + proc.stderr
    )
    server.wait_for(r"device=dev-revoked .*refused: revoked \(keyCompromise", after=mark)


def test_crl_is_honoured(pki, start_server):
    client = registered_client(pki, "dev-crl")
    crl = pki.root / "crl.pem"
    atecc("ca", "crl", "--dir", pki.ca_dir, "--out", crl)
    server = start_server("--crl", str(crl))
    assert "hello dev-crl" in curl(pki, server, client).stdout
    atecc("revoke", "--dir", pki.ca_dir, "--device-id", "dev-crl")
    atecc("ca", "crl", "--dir", pki.ca_dir, "--out", crl)
    crl_serials = [e.serial_number for e in x509.load_pem_x509_crl(crl.read_bytes())]
    assert crl_serials == [int(client.serial, 16)]
    # Only the CRL says so now: the registry row is put back to active behind the server's back.
    with sqlite3.connect(pki.ca_dir / "registry.sqlite3") as db:
        db.execute("UPDATE fleet_devices SET status = 'active', revoked_at = NULL, reason = NULL")
    server.wait_for(r"loaded the CRL")
    mark = server.mark()
    proc = curl(pki, server, client)
    assert proc.returncode in CURL_TLS_FAILURES and "hello" not in proc.stdout, (
        proc.stdout + proc.stderr
    )
    server.wait_for(r"device=dev-crl .*refused: revoked \(listed in the CRL\)", after=mark)


def test_each_refusal_is_one_log_line_with_its_reason(pki, server):
    good = registered_client(pki, "dev-ok")
    cases = [
        (handmade_client(pki, "dev-self2", self_signed=True), "unknown authority"),
        (handmade_client(pki, "dev-nobody"), "unregistered"),
        (handmade_client(pki, "dev-expired", expired=True), "expired"),
        (None, "no certificate"),
        (good, None),
    ]

    def verdicts() -> list[str]:
        return [ln for ln in server.lines() if ln.endswith(" accepted") or " refused: " in ln]

    for n, (client, _) in enumerate(cases, start=1):
        curl(pki, server, client)
        # The client may see the alert before the server has written its line: wait for it, so
        # the lines are in the order of the cases.
        deadline = time.monotonic() + 15
        while len(verdicts()) < n and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(verdicts()) == len(cases), server.lines()
    for (_, reason), line in zip(cases, verdicts(), strict=True):
        assert (f"refused: {reason}" in line) if reason else line.endswith(" accepted"), line


# --- robustness ----------------------------------------------------------------------------------


def test_survives_idle_garbage_and_dropped_clients(pki, server):
    good = registered_client(pki, "dev-after")
    mark = server.mark()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as garbage:
            garbage.sendall(os.urandom(64) + b"GET / HTTP/1.1\r\n\r\n")
        hello = client_hello()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as dropped:
            dropped.sendall(hello[: len(hello) // 2])  # half a ClientHello, then gone
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as dropped:
            dropped.sendall(hello)  # a whole ClientHello, read a little of the answer, gone
            dropped.recv(100)
        # The idle client is still connected: the server serves others meanwhile.
        proc = curl(pki, server, good)
        assert "hello dev-after" in proc.stdout, proc.stderr
        server.wait_for(
            r"handshake error \(timeout\)", after=mark, timeout=HANDSHAKE_TIMEOUT_S + 10
        )
    finally:
        idle.close()
    errors = [ln for ln in server.lines()[mark:] if "refused: handshake error" in ln]
    assert len(errors) >= 3, server.lines()[mark:]
    assert server.proc.poll() is None
    assert "hello dev-after" in python_get(pki, server, good)


def test_many_connections_at_once(pki, server):
    clients = [registered_client(pki, f"dev-many-{i}") for i in range(3)]
    idlers = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(30)]
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            results.append(python_get(pki, server, clients[n % len(clients)]))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for sock in idlers:
            sock.close()
    assert not errors, errors
    assert len(results) == 24
    assert all(r.startswith("HTTP/1.1 200 OK") for r in results)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop(pki, start_server, signum):
    server = start_server()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        started = time.monotonic()
        assert server.stop(signum) == 0, server.stderr()
        assert time.monotonic() - started < 10
    finally:
        idle.close()
    assert server.lines()[-1].endswith(" stopped"), server.lines()
    assert "Traceback" not in server.stderr()


# --- the chip's key, through the PKCS#11 module ---------------------------------------------------


@pytest.mark.native
def test_emulated_chip_key_through_curl_and_the_pkcs11_engine(
    pki, start_server, module_path, token_env, tmp_path
):
    """`atecc csr` makes the request with the chip's slot-0 key, the CA issues the certificate,
    and curl proves possession of the key in the handshake through libp11 + our module."""
    csr = tmp_path / "device.csr"
    atecc("csr", "--out", csr, env=token_env)
    request = x509.load_pem_x509_csr(csr.read_bytes())
    device_id = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cert = tmp_path / "device.crt"
    atecc("ca", "sign", "--dir", pki.ca_dir, "--csr", csr, "--days", "5", "--out", cert)
    server = start_server()

    conf = tmp_path / "engine.cnf"
    atecc("engine-conf", "--out", conf, "--module", module_path)
    env = dict(token_env, OPENSSL_CONF=str(conf))
    proc = subprocess.run(
        [
            require("curl"),
            "-sS",
            "--max-time",
            "30",
            "--engine",
            "pkcs11",
            "--key-type",
            "ENG",
            "--key",
            KEY_URI,
            "--cert",
            str(cert),
            "--cacert",
            str(pki.ca_cert),
            "--resolve",
            f"localhost:{server.port}:127.0.0.1",
            f"https://localhost:{server.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"hello {device_id}\n"
    server.wait_for(rf"device={re.escape(device_id)} .*accepted")


# --- hardening (issue 11): log lines, idle clients, trickling clients -----------------------------


def test_a_newline_in_the_cn_cannot_forge_a_log_line(pki, server):
    """A device whose CN holds a newline and a fake 'accepted' line gets exactly one log line,
    with the newline escaped; no line of the log starts with the forged text."""
    forged = "2026-01-01T00:00:00Z 10.9.9.9:1 device=v accepted"
    cn = f"evil\n{forged}\r\x1b[2J"  # a CN has at most 64 characters
    client = registered_client(pki, "evil", cn=cn)
    stranger = handmade_client(pki, "nobody")
    before = server.mark()
    curl(pki, server, client)
    curl(pki, server, stranger)
    server.wait_for(r"device=nobody .*refused", after=before)
    new = server.lines()[before:]
    assert len(new) == 2, new
    assert not any(line.startswith("2026-01-01T00:00:00Z") for line in server.lines())
    assert "device=evil\\x0a2026-01-01T00:00:00Z\\x2010.9.9.9:1\\x20device=v" in new[0], new[0]
    assert new[0].endswith(" accepted") and "\\x1b[2J" in new[0] and "\\x0d" in new[0]


def test_idle_connections_cannot_lock_out_a_good_client(pki, start_server):
    """More idle connections than the server's limit, all within their handshake time: a good
    client still gets through at once (the oldest idle connection makes room)."""
    server = start_server("--max-connections", "8")
    good = registered_client(pki, "dev-patient")
    idlers = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(30)]
    try:
        started = time.monotonic()
        response = python_get(pki, server, good, timeout=10)
        assert response.startswith("HTTP/1.1 200 OK"), response
        assert time.monotonic() - started < HANDSHAKE_TIMEOUT_S  # not after the idlers timed out
    finally:
        for sock in idlers:
            sock.close()
    assert any("evicted" in line for line in server.lines())


def _closed_by_peer(tls: ssl.SSLSocket) -> bool:
    try:
        return tls.recv(1) == b""
    except TimeoutError:
        return False
    except (ssl.SSLError, OSError):
        return True


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(pki, start_server):
    """An accepted client that sends its request one byte at a time is disconnected when the
    request deadline passes, however regularly the bytes come."""
    server = start_server("--request-timeout", "1.5")
    client = registered_client(pki, "dev-trickle")
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(client.cert), str(client.key))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.settimeout(0.25)
        started = time.monotonic()
        request = b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 200
        closed = False
        for byte in request:
            try:
                tls.sendall(bytes([byte]))
            except (ssl.SSLError, OSError):
                closed = True
                break
            if _closed_by_peer(tls):
                closed = True
                break
            if time.monotonic() - started > 10:
                break
        elapsed = time.monotonic() - started
    assert closed, "the server kept a trickling client for 10 s"
    assert 1.0 < elapsed < 5.0, elapsed


def test_a_client_trickling_its_handshake_is_cut_off_at_the_deadline(pki, server):
    hello = client_hello()
    mark = server.mark()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        closed = False
        for byte in hello:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
            if time.monotonic() - started > 10:
                break
        elapsed = time.monotonic() - started
    assert closed and elapsed < HANDSHAKE_TIMEOUT_S + 3, elapsed
    server.wait_for(r"refused: handshake error \(timeout\)", after=mark)
