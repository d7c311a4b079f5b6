"""The README's `atecc emulator run` commands, run as written (in a scratch directory that sees
the repository's `.venv` and `conf/`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .conftest import REPO, run


def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no sh block under {heading!r}"
    return match.group(1)


def test_readme_atecc_emulator_run_commands_work(tmp_path: Path) -> None:
    for name in (".venv", "conf"):
        (tmp_path / name).symlink_to(REPO / name)
    script = readme_block("Any I2C program against an emulated chip: `atecc emulator run`")
    env = dict(os.environ)
    env.pop("ATECC_PKCS11_FILESTORE", None)
    proc = run(["bash", "-euo", "pipefail", "-c", f"cd {tmp_path}\n{script}"], env=env, timeout=120)
    serial = re.search(r"serial\s+(0123[0-9A-F]{14})", proc.stdout)
    assert serial, proc.stdout
    assert re.search(rf"serial num\s*:\s*{serial.group(1)[2:18]}", proc.stdout), proc.stdout
    assert f"cryptoauthlib reads serial {serial.group(1)}" in proc.stdout
    log = (tmp_path / "i2c-demo" / "i2c.log").read_text()
    assert "| wake pulse" in log and "command READ" in log
