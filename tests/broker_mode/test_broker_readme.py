"""The README's broker section, run as written: its commands must stay true.

The "Try it" block runs in a scratch directory whose ``.venv`` is this checkout's. The service
block needs systemd as PID 1; its files are checked by test_broker_service.py (installed into a
scratch root by the same script, then `systemd-analyze verify` and socket activation).
"""

from __future__ import annotations

import os
import re
import subprocess

from .conftest import REPO

BIN = REPO / ".venv"


def block(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    part = text.split(f"<!-- {marker} -->")[1]
    match = re.search(r"```sh\n(.*?)```", part, re.S)
    assert match, f"no sh block between the {marker} markers"
    return match.group(1)


def test_readme_broker_try_it_block_runs(tmp_path):
    (tmp_path / ".venv").symlink_to(BIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATECC_", "P11_KIT"))}
    proc = subprocess.run(
        ["bash", "-e", "-c", block("broker-try")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"token label\s*:\s*00ABC", proc.stdout), proc.stdout + proc.stderr
    assert "serving" in proc.stderr and "allowed users" in proc.stderr, proc.stderr
