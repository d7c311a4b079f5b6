"""Files the module reads are bounded and checked (issue 11): slot files, the filestore, chip state
files, and the environment variables that name them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from atecc import environment
from atecc.slotfile import SlotFileError, filestore_dir, parse_slot_file
from cryptoki.library import Library


def _present(filestore: Path) -> list[int]:
    lib = Library(filestore=filestore)
    lib.initialize(None)
    try:
        return lib.get_slot_list(True)
    finally:
        lib.finalize()


def test_a_slot_file_with_a_long_line_parses_in_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "0.conf"
    path.write_text("interface = emulator,c.json\nlabel = x" + " " * 60_000 + "y\n")
    started = time.monotonic()
    with pytest.raises(SlotFileError):  # a 60 kB label is refused, quickly
        parse_slot_file(path)
    assert time.monotonic() - started < 1  # the old regular expression took minutes here


def test_a_slot_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "0.conf"
    path.write_text("# padding\n" * 7000 + "interface = emulator,c.json\n")
    with pytest.raises(SlotFileError, match="larger than"):
        parse_slot_file(path)


def test_a_slot_file_numbered_past_2_64_is_skipped_and_the_others_still_work(
    tngtls_filestore: Path, capfd
) -> None:
    big = tngtls_filestore / f"{2**64}.conf"
    big.write_text((tngtls_filestore / "0.conf").read_text())
    assert _present(tngtls_filestore) == [0]
    assert "slot IDs go up to" in capfd.readouterr().err  # the module logs to stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_chip_state_path_that_is_a_fifo_or_a_device_does_not_hang(
    tmp_path: Path, slot_file_writer, kind: str
) -> None:
    filestore = tmp_path / "fs"
    filestore.mkdir()
    if kind == "fifo":
        os.mkfifo(filestore / "chip0.json")
        state = "chip0.json"
    else:
        state = "/dev/zero"
    slot_file_writer(filestore, 0, state)
    started = time.monotonic()
    assert _present(filestore) == []
    assert time.monotonic() - started < 10


def test_a_filestore_others_can_write_is_refused(tngtls_filestore: Path, capfd) -> None:
    tngtls_filestore.chmod(0o777)
    assert _present(tngtls_filestore) == []
    assert "writable by others" in capfd.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_slot_file_owned_by_another_user_is_skipped(tngtls_filestore: Path) -> None:
    os.chown(tngtls_filestore / "0.conf", 65534, 65534)
    assert _present(tngtls_filestore) == []


def test_the_filestore_variable_is_ignored_in_secure_mode(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(tmp_path))
    assert filestore_dir(conf=tmp_path / "none.conf") == tmp_path
    monkeypatch.setattr(environment, "_secure", True)  # what AT_SECURE makes secure_mode say
    assert filestore_dir(conf=tmp_path / "none.conf") != tmp_path


def test_secure_mode_is_read_from_the_auxiliary_vector() -> None:
    assert environment._auxv_secure() is False  # a plain process: AT_SECURE present and 0
