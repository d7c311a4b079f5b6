"""Fixtures for broker-mode tests: a real `atecc broker` process on a throwaway socket.

Each test gets a new emulated Trust&GO chip (made with `atecc emulator init`, as a user would)
and a broker started as a separate process, exactly as the service would run it; clients are
real programs loading p11-kit's client module (p11-kit-client.so) with
``P11_KIT_SERVER_ADDRESS`` naming the broker's socket. Sockets live in short directories under
/tmp because AF_UNIX paths are limited to 108 bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import require, run  # noqa: F401 (used by the tests)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLIENT_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib64/pkcs11/p11-kit-client.so",
)


@pytest.fixture(scope="session")
def client_module() -> str:
    for path in CLIENT_CANDIDATES:
        if os.path.isfile(path):
            return path
    pytest.fail("p11-kit-client.so is not installed (scripts/setup.sh installs p11-kit-modules)")


@pytest.fixture(scope="session")
def module_path() -> str:
    from cryptoki._paths import module_path as find

    return find()


@dataclass
class Broker:
    """A running `atecc broker` and the environment its clients use."""

    socket: Path
    proc: subprocess.Popen
    log_path: Path
    filestore: Path
    client_env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 30) -> str:
        """Wait until ``needle`` occurs ``count`` times in the broker's log."""
        deadline = time.monotonic() + timeout
        while (log := self.log()).count(needle) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} x{count} not in the broker's log:\n{log}")
            time.sleep(0.02)
        return log

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"broker did not stop on {sig}:\n{self.log()}") from None
        return self.proc.returncode


def wait_for_socket(path: Path, proc: subprocess.Popen, log_path: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited {proc.returncode}:\n{log_path.read_text()}")
        if path.exists():
            with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
                probe.connect(str(path))
                return
        time.sleep(0.02)
    raise AssertionError(f"broker did not listen on {path} in {timeout} s:\n{log_path.read_text()}")


def make_filestore(directory: Path) -> Path:
    filestore = directory / "filestore"
    run([BIN / "atecc", "emulator", "init", "--filestore", filestore])
    return filestore


@contextlib.contextmanager
def running_broker(
    filestore: Path, *args: str, env: dict[str, str] | None = None, sockdir: Path | None = None
) -> Iterator[Broker]:
    """Start `atecc broker --filestore F --socket S ARGS`; stopped (SIGTERM) on exit."""
    own_dir = sockdir is None
    sockdir = sockdir or Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp"))
    sock = sockdir / "p11.sock"
    log_path = filestore.parent / f"broker-{time.monotonic_ns()}.log"
    full_env = dict(env if env is not None else os.environ)
    full_env.pop("ATECC_PKCS11_LOG", None)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [BIN / "atecc", "broker", "--filestore", filestore, "--socket", sock, "-v", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    broker = Broker(sock, proc, log_path, filestore)
    broker.client_env = {
        **os.environ,
        "P11_KIT_SERVER_ADDRESS": f"unix:path={sock}",
        # A client must not find the chip by itself: everything goes through the broker.
        "ATECC_PKCS11_FILESTORE": str(filestore.parent / "no-filestore-here"),
    }
    try:
        wait_for_socket(sock, proc, log_path)
        yield broker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if own_dir:
            shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture
def filestore(tmp_path) -> Path:
    return make_filestore(tmp_path)


@pytest.fixture
def broker(filestore) -> Iterator[Broker]:
    with running_broker(filestore) as running:
        yield running
