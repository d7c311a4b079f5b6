"""The README's "A blank chip, provisioned", "Troubleshooting: atecc doctor" and "An emulated
chip, step by step" sections run as written: their shell blocks, in order, in an empty directory
with .venv/bin on PATH (the step-by-step one from a directory that sees the repository's .venv,
as it is written for the repository root).

Checked: every block succeeds; the blank chip answers the test pattern with a warning; the dry
run locks nothing (the chip is still blank after the first block alone); the chip ends locked,
with the device key and the CA's certificate on the token, and the engine's CSR carries the new
key; the doctor passes on the fresh chip, then fails on the misspelt device line and names it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .conftest import BIN, REPO

pytestmark = pytest.mark.native


def section_blocks(heading: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.index("\n## ", start + len(heading) + 4)
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)


def run_blocks(blocks: list[str], cwd: Path, *, timeout: int = 240) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATECC_", "OPENSSL_CONF"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_the_readme_blank_chip_section_runs_as_written(tmp_path):
    blocks = section_blocks("A blank chip, provisioned")
    assert len(blocks) == 2
    first = run_blocks(blocks[:1], tmp_path)
    assert "FFFF0000" * 8 in first.stdout and "test pattern" in first.stderr
    assert "dry run, nothing is written or locked" in first.stdout
    state = json.loads((tmp_path / "filestore" / "chip0.json").read_text())
    assert state["config"][87 * 2 : 88 * 2] == "55"  # the dry run locked nothing

    whole = tmp_path / "whole"  # both blocks, in order, from an empty directory
    whole.mkdir()
    both = run_blocks(blocks, whole)
    assert "provisioned with template tls-identity" in both.stdout
    assert "certificate: already stored on the token" in both.stdout  # the second run
    assert re.search(r"config zone\s+locked", both.stdout) and re.search(
        r"data zone\s+locked", both.stdout
    )
    assert "Label: device-tls" in both.stdout  # p11tool lists the CA's certificate
    csr = x509.load_pem_x509_csr((whole / "device.csr").read_bytes())
    pem = subprocess.run(
        [str(BIN / "atecc"), "pubkey"],
        env={**os.environ, "ATECC_PKCS11_FILESTORE": str(whole / "filestore")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert csr.public_key() == load_pem_public_key(pem.encode())  # the engine used the new key


def test_the_readme_troubleshooting_section_runs_as_written(tmp_path):
    (block,) = section_blocks("Troubleshooting: atecc doctor")
    proc = run_blocks([block], tmp_path)
    first, second = proc.stdout.split("everything checked is fine", 1)
    assert "ok    token 0" in first
    assert re.search(r"FAIL  slot-file 0\.conf .*did you mean ATECC608-TNGTLS\?", second)
    assert "FAIL  token 0" in second
    assert "atecc doctor found a problem (exit 1)" in second


def test_the_readme_step_by_step_section_runs_as_written(tmp_path):
    (block,) = section_blocks("An emulated chip, step by step")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    proc = run_blocks([block], tmp_path)
    assert "signature OK" in proc.stdout and "Verified OK" in proc.stdout
    assert "Label: device" in proc.stdout
