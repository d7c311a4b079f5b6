"""The broker under load, crashes, silence and garbage.

Clients are separate processes (tests/broker_mode/p11client.py, or raw sockets for the protocol
cases) talking to a real `atecc broker` process; the chip is the emulator, in realistic timing
where a test needs an operation to be in flight when something happens.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import running_broker

pytestmark = pytest.mark.native
CLIENT_SCRIPT = Path(__file__).with_name("p11client.py")


def client(client_module, broker, *job, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CLIENT_SCRIPT), client_module, *job],
        env=broker.client_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"client exited {proc.returncode}:\n{out}\n{err}"
    return out


def realistic(filestore: Path) -> None:
    conf = filestore / "0.conf"
    conf.write_text(
        re.sub(r"^interface\s*=.*$", "interface = emulator,chip0.json,realistic", conf.read_text(),
               flags=re.M)
    )  # fmt: skip


def verify_all(out: str) -> int:
    lines = out.splitlines()
    point = bytes.fromhex(lines[0].split()[1])
    assert point[:2] == b"\x04\x41", point.hex()  # DER OCTET STRING around the 65-byte point
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])
    count = 0
    for line in lines[1:]:
        _, digest, sig = line.split()
        raw = bytes.fromhex(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        key.verify(der, bytes.fromhex(digest), ec.ECDSA(Prehashed(hashes.SHA256())))
        count += 1
    return count


def sessions_now(client_module, broker) -> int:
    out = finish(client(client_module, broker, "sessions"))
    return int(out.split()[1])


def test_sixteen_signing_processes_and_four_listing_ones_at_once(broker, client_module):
    signers = [client(client_module, broker, "sign", "15") for _ in range(16)]
    listers = [client(client_module, broker, "list", "20") for _ in range(4)]
    signatures = sum(verify_all(finish(p)) for p in signers)
    found = [int(finish(p).split()[1]) for p in listers]
    assert signatures == 16 * 15
    assert found == [20 * 2] * 4  # one public and one private key, twenty rounds each
    assert sessions_now(client_module, broker) == 1  # every client's session is gone


def test_a_client_killed_mid_signature_loses_its_sessions_and_nothing_else(
    filestore, client_module
):
    realistic(filestore)  # a signature keeps the chip busy for ~160 ms
    with running_broker(filestore) as broker:
        others = [client(client_module, broker, "sign", "3") for _ in range(2)]
        victim = client(client_module, broker, "sign-slowly")
        assert victim.stdout.readline().strip() == "signing"
        time.sleep(0.08)  # C_Sign is in the broker, the chip busy for ~160 ms
        victim.kill()
        victim.wait(10)
        assert sum(verify_all(finish(p)) for p in others) == 6
        after = client(client_module, broker, "sign", "1")
        assert verify_all(finish(after)) == 1  # the chip lock was released
        assert sessions_now(client_module, broker) == 1
        log = broker.log()
    assert re.search(rf"connection of pid {victim.pid}, .* ended: client lost", log), log
    assert "Traceback" not in log


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_broker_gives_its_clients_an_error_and_a_restarted_one_serves_new_ones(
    filestore, client_module, how
):
    with running_broker(filestore) as broker:
        idle = client(client_module, broker, "idle", stdin=subprocess.PIPE)
        assert idle.stdout.readline().strip() == "ready"
        broker.stop(how)
        sockdir = broker.socket.parent
        t0 = time.monotonic()
        idle.stdin.write("go\n")
        idle.stdin.flush()
        out, _ = idle.communicate(timeout=30)
        assert time.monotonic() - t0 < 10  # an error, not a hang
        assert idle.returncode == 3 and out.strip().startswith("rv 0x"), out
        assert out.strip() != "rv 0x0"
    # The same socket path again (after SIGKILL its file is stale and must be replaced).
    sockdir.mkdir(exist_ok=True)
    with running_broker(filestore, sockdir=sockdir) as again:
        assert verify_all(finish(client(client_module, again, "sign", "2"))) == 2


def test_silent_clients_cost_one_bounded_worker_each_and_are_dropped_after_the_deadline(
    filestore, client_module
):
    with running_broker(filestore, "--max-clients", "2", "--handshake-timeout", "4") as broker:
        broker.wait_log("ended: closed")  # the start-up probe's worker is free again
        silent = []
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(broker.socket))
            silent.append(s)
        time.sleep(0.3)
        # Both workers are taken: a third client is turned away at once, not left hanging.
        with socket.socket(socket.AF_UNIX) as third:
            third.settimeout(3)
            third.connect(str(broker.socket))
            try:
                third.sendall(b"\x01")
                assert third.recv(1) == b""
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed before our byte arrived: turned away all the same
        broker.wait_log("(--max-clients)")
        # After the handshake deadline the broker closes the silent ones...
        for s in silent:
            s.settimeout(10)
            assert s.recv(1) == b""
            s.close()
        # ...and serves again.
        assert sessions_now(client_module, broker) == 1
        log = broker.log()
    assert log.count("ended: handshake timeout") == 2, log
    assert "--max-clients" in log


def test_a_trickling_client_is_dropped_after_the_message_deadline(filestore, client_module):
    with running_broker(filestore, "--message-timeout", "1") as broker:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(broker.socket))
        s.sendall(b"\x00")
        assert s.recv(1) in (b"\x00", b"\x01")
        t0 = time.monotonic()
        s.settimeout(10)
        closed = False
        for byte in struct.pack(">III", 1, 0, 40):
            try:
                s.sendall(bytes([byte]))
                time.sleep(0.2)
            except OSError:
                closed = True
                break
        if not closed:
            assert s.recv(1) == b""
        assert time.monotonic() - t0 < 5
        s.close()
        assert sessions_now(client_module, broker) == 1
        log = broker.log()
    assert "ended: message timeout" in log, log


def garbage_cases(seed: int = 1234, n: int = 60) -> list[bytes]:
    rng = random.Random(seed)
    cases = [
        b"\x00" + struct.pack(">III", 1, 0xFFFFFFFF, 0xFFFFFFFF),  # p11-kit would allocate 8 GiB
        b"\x00" + struct.pack(">III", 1, 0, 64 * 1024 * 1024) + b"x" * 100,  # over the limit
        b"\x00" + struct.pack(">III", 1, 0, 16) + os.urandom(16),  # framed, unparseable
        b"\x00" + struct.pack(">III", 0xDEAD, 0, 8) + b"\x00" * 8,  # unknown call code
        b"\x00" + struct.pack(">III", 1, 0, 100) + b"short",  # ends inside a message
        b"\xff" * 64,  # a version byte from the future, then nonsense
    ]
    cases += [rng.randbytes(rng.randrange(1, 400)) for _ in range(n)]
    # Well framed, so that they pass the relay and reach p11-kit's parser: random call codes
    # (valid ones included) with random bodies, sometimes several in one connection.
    for _ in range(n):
        data = bytes([rng.randrange(2)])
        for _ in range(rng.randrange(1, 4)):
            body = rng.randbytes(rng.randrange(0, 300))
            data += struct.pack(">III", rng.randrange(0, 80), 0, len(body)) + body
        cases.append(data)
    return cases


def open_fds_and_threads(pid: int) -> tuple[int, int]:
    threads = int(re.search(r"^Threads:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)[1])
    return len(os.listdir(f"/proc/{pid}/fd")), threads


def test_garbage_on_the_socket_closes_that_connection_and_never_the_broker(broker, client_module):
    finish(client(client_module, broker, "sessions"))  # warm: p11-kit's globals exist
    time.sleep(0.2)
    baseline = open_fds_and_threads(broker.proc.pid)
    for data in garbage_cases():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(15)
        s.connect(str(broker.socket))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):  # the broker answers or closes; either way it ends
                pass
        except OSError:
            pass  # reset by the broker: also a close
        finally:
            s.close()
        assert broker.proc.poll() is None, broker.log()
    assert verify_all(finish(client(client_module, broker, "sign", "2"))) == 2
    assert sessions_now(client_module, broker) == 1
    deadline = time.monotonic() + 10  # workers end just after their client does
    while open_fds_and_threads(broker.proc.pid) != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds_and_threads(broker.proc.pid) == baseline  # nothing leaked per connection
    log = broker.log()
    assert "ended: too large" in log, log
    assert log.count("ended: server closed") >= 60, log  # p11-kit's parser saw the framed ones
    assert "Traceback" not in log
