"""Fixtures for the ``atecc`` command-line tests: a clean environment and a fresh emulated chip
made by ``atecc emulator init`` in-process."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def no_atecc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No filestore, PIN or module log settings leak in from the shell that runs the tests."""
    for name in ("ATECC_PKCS11_FILESTORE", "ATECC_PIN", "ATECC_PKCS11_LOG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_atecc_env: None) -> Path:
    """A filestore with a fresh emulated Trust&GO chip as slot 0 (its output swallowed)."""
    from atecc.cli import main

    path = tmp_path / "fs"
    assert main(["emulator", "init", "--filestore", str(path)]) == 0
    capsys.readouterr()
    return path
