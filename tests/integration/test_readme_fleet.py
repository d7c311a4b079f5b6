"""The README's fleet section runs as written: its shell blocks, in order, in an empty directory
with .venv/bin on PATH and a fresh emulated chip (made by the section's own first block). The
only change is the port: 8443 becomes a free one, so parallel runs cannot collide.

Checked: every block succeeds; curl gets `hello <device ID>` before the revocation and is refused
in the handshake after it; the server's log has one accepted and one refused line for the device.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import pytest

from .conftest import BIN, REPO

pytestmark = pytest.mark.native

SECTION = "## Your own CA, device identities and the server side"


def fleet_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_fleet_section_runs_as_written(tmp_path):
    blocks = fleet_blocks()
    assert len(blocks) >= 5
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("8443", str(free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATECC_", "OPENSSL_CONF"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the server, if a block failed before `kill`
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    device_id = re.search(r"device id\s+(\S+)", out).group(1)
    hello = out.index(f"hello {device_id}")
    refused = out.index("refused in the TLS handshake (curl exit ")
    assert hello < refused, out
    assert re.search(r"curl exit (35|55|56)\)", out), out
    log = (tmp_path / "serve.log").read_text()
    assert re.search(rf"device={re.escape(device_id)} serial=\w+ accepted", log), log
    assert re.search(rf"device={re.escape(device_id)} serial=\w+ refused: revoked", log), log
    assert (tmp_path / "device_cert.h").read_text().startswith("unsigned char device_cert[]")
