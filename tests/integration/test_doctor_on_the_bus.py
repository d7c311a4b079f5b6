"""``atecc doctor`` over the real smbus2 path (``atecc emulator run`` serves /dev/i2c-1): a slot
file whose I2C address is not the chip's fails the ``chip`` check, and the fix names the address
the chip does answer on, in cryptoauthlib's 8-bit form."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from .conftest import BIN, REPO, run

pytestmark = pytest.mark.native

ATECC = str(BIN / "atecc")


def test_a_chip_at_another_address_fails_the_chip_check_and_names_the_address(tmp_path):
    filestore = tmp_path / "i2c"
    filestore.mkdir()
    shutil.copy(REPO / "conf" / "i2c" / "0.conf", filestore)  # i2c,0x6A,1: a Trust&GO address
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATECC_")}
    proc = run(
        [
            ATECC,
            "emulator",
            "run",
            "--state",
            str(tmp_path / "blank.json"),
            "--device",
            "ATECC608",
            "--",
            ATECC,
            "doctor",
            "--filestore",
            str(filestore),
            "--json",
        ],
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["i2c-bus 1"]["status"] == "ok"
    chip = checks["chip 0.conf"]
    assert chip["status"] == "FAIL" and "address 0x35" in chip["detail"]
    assert "a chip answers at 7-bit 0x60: interface = i2c,0xC0,1" in chip["fix"]
