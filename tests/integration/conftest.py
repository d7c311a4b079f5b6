"""Fixtures for tests that drive real PKCS#11 consumers against the built library.

Every test gets its own filestore with a freshly made emulated Trust&GO chip, created through the
`atecc` CLI exactly as a user would. The peers run as separate processes with
ATECC_PKCS11_FILESTORE pointing at that filestore.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cmd, *, env=None, timeout=60, check=True, input=None, **kw):
    """Run a command, return CompletedProcess; on failure show its output in the assertion.
    (Shared with the broker-mode tests.)"""
    proc = subprocess.run(
        [str(c) for c in cmd],
        env=env,
        timeout=timeout,
        capture_output=True,
        input=input,
        text=not isinstance(input, bytes),
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (scripts/setup.sh installs it)")
    return path


@pytest.fixture(scope="session")
def module_path() -> str:
    from cryptoki._paths import module_path as find

    path = find()
    assert os.path.isfile(path), path
    return path


@pytest.fixture
def token_env(tmp_path) -> dict[str, str]:
    """Environment for a peer process: a new emulated TNGTLS chip in its own filestore."""
    filestore = tmp_path / "filestore"
    run(
        [
            BIN / "atecc",
            "emulator",
            "init",
            "--device",
            "ATECC608-TNGTLS",
            "--filestore",
            str(filestore),
        ]
    )
    env = dict(os.environ)
    env["ATECC_PKCS11_FILESTORE"] = str(filestore)
    env.pop("ATECC_PKCS11_LOG", None)
    return env


@pytest.fixture
def chip_serial(token_env) -> str:
    out = run([BIN / "atecc", "info", "--json"], env=token_env).stdout
    import json

    return json.loads(out)["serial"].upper()


def export_public_key(
    module_path: str, env: dict[str, str], *, label: str | None = None, key_id: str | None = None
) -> bytes:
    """The token's public key as PEM, read with GnuTLS p11tool.

    Not with ``pkcs11-tool --read-object --type pubkey``: OpenSC 0.23 (Debian 12) frees the EC
    parameters it exported and then uses them (valgrind shows the use-after-free with SoftHSM2
    too), so that command fails or succeeds depending on the heap layout of the process.
    """
    selector = (
        f"object={label}"
        if label
        else "id=" + "".join(f"%{key_id[i : i + 2]}" for i in range(0, len(key_id), 2))
    )
    url = f"pkcs11:token=00ABC;{selector};type=public"
    # ``--export`` reads the public key object itself; ``--export-pubkey`` looks up the
    # *private* key of that label instead, which a private (CKA_PRIVATE) key hides before login.
    out = run([require("p11tool"), "--provider", module_path, "--export", url], env=env).stdout
    start = out.index("-----BEGIN PUBLIC KEY-----")
    return out[start:].encode()


def read_until(fd: int, marker: bytes, timeout: float = 60) -> bytes:
    """What a program on a pseudo-terminal (``pty.fork``) wrote, up to ``marker``."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen
