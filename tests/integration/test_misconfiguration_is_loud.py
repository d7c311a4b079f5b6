"""Misconfiguration is loud (issue 14 point 3), seen from a real PKCS#11 host (pkcs11-tool) at
the module's default log level: an unknown ``device``, key or interface is an error on stderr with
file and line, and that slot's token is absent with the reason in C_GetSlotInfo's description;
an absent chip is one WARNING, not one per probe; an empty filestore names its directory.

Before: ``device = ATECC608-TNGTSL`` gave a token with no objects and no message at any level,
an unknown key was kept with a warning, a missing chip was logged only at INFO, and an empty
filestore gave ``No slots.`` alone.
"""

from __future__ import annotations

import logging
import os

import pytest

from cryptoki import errors
from cryptoki.constants import CKF
from cryptoki.library import Library

from .conftest import BIN, require, run

pytestmark = pytest.mark.native

ATECC = str(BIN / "atecc")


@pytest.fixture
def filestore(tmp_path):
    path = tmp_path / "fs"
    run([ATECC, "emulator", "init", "--filestore", str(path)])
    return path


def listing(module_path: str, filestore) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATECC_")}
    env["ATECC_PKCS11_FILESTORE"] = str(filestore)
    proc = run([require("pkcs11-tool"), "--module", module_path, "-L"], env=env, check=False)
    return proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("device = ATECC608-TNGTSL", "unknown device 'ATECC608-TNGTSL'"),
        ("devices = ATECC608-TNGTLS", "unknown key 'devices'"),
        ("interface = spi,1", "interface 'spi' is cryptoauthlib's"),
        ("user_pin = sometimes", "user_pin must be one of required, none"),
    ],
)
def test_a_misconfigured_slot_file_is_an_error_and_an_absent_token_with_the_reason(
    module_path, filestore, line, said
):
    conf = filestore / "0.conf"
    conf.write_text(conf.read_text() + line + "\n")
    lineno = len(conf.read_text().splitlines())
    out, err = listing(module_path, filestore)
    assert f"{conf}:{lineno}: {said}" in err  # default log level, file and line
    # Through the module's own handler (attached when the first warning loads logging), not
    # Python's bare last-resort one.
    line = next(t for t in err.splitlines() if f"{conf}:{lineno}: {said}" in t)
    assert "atecc-pkcs11[" in line and "] ERROR " in line, err
    # The driver's own warnings (e.g. "device repeated") take the same way, not Python's bare
    # last-resort handler.
    assert all("atecc-pkcs11[" in t for t in err.splitlines()), err
    assert "Slot 0 (0x0): 0.conf:" in out and "token state:   uninitialized" not in out, out
    assert "token label" not in out  # no token is shown for it
    assert "Traceback" not in err


def test_the_drivers_warnings_follow_atecc_pkcs11_log_to_its_file(module_path, filestore, tmp_path):
    conf = filestore / "0.conf"
    conf.write_text(conf.read_text() + "device = ATECC608-TNGTLS\n")  # repeated: a warning
    log_file = tmp_path / "p11.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATECC_")}
    env.update(ATECC_PKCS11_FILESTORE=str(filestore), ATECC_PKCS11_LOG=str(log_file))
    proc = run([require("pkcs11-tool"), "--module", module_path, "-L"], env=env)
    assert "token label" in proc.stdout  # a repeated key is a warning, the token is there
    assert proc.stderr == ""  # the host's stderr is left alone, as the operator asked
    logged = log_file.read_text()
    assert "] WARNING " in logged and "device repeated" in logged, logged


def test_the_slot_description_carries_the_reason(filestore):
    conf = filestore / "0.conf"
    conf.write_text(
        conf.read_text().replace("device = ATECC608-TNGTLS", "device = ATECC608-TNGTSL")
    )
    lineno = next(
        n for n, t in enumerate(conf.read_text().splitlines(), 1) if "= ATECC608-TNGTSL" in t
    )
    lib = Library(filestore=filestore)
    lib.initialize(None)
    try:
        info = lib.get_slot_info(0)
        assert not info.flags & CKF.TOKEN_PRESENT
        assert info.slot_description.startswith(
            f"0.conf:{lineno}: unknown device 'ATECC608-TNGTSL'"
        )
        with pytest.raises(errors.TokenNotPresent):
            lib.get_token_info(0)
    finally:
        lib.finalize()


def test_an_absent_chip_is_one_warning_not_one_per_probe(filestore, caplog):
    (filestore / "chip0.json").unlink()
    lib = Library(filestore=filestore)
    lib.initialize(None)
    try:
        with caplog.at_level(logging.DEBUG, logger="cryptoki"):
            for _ in range(5):
                assert lib.get_slot_list(True) == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, caplog.text
        assert "0.conf: cannot open emulator state" in warnings[0].getMessage()
        description = lib.get_slot_info(0).slot_description
        assert description.startswith("0.conf: cannot open emulator state"), description
    finally:
        lib.finalize()


def test_an_empty_filestore_names_its_directory(module_path, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out, err = listing(module_path, empty)
    assert "No slots" in out + err
    assert f"no slot files (<N>.conf) in the filestore {empty}" in err
