"""The PIN is a real gate (issue 11): every try is counted before its comparison, and the PIN
record is bound to the chip, so a copy of the metadata file allows no offline guessing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from p11util import TOKEN_USER_PIN as PIN

from cryptoki import errors, pin
from cryptoki.constants import CKF, CKU
from cryptoki.library import Library


def _record(filestore: Path) -> dict:
    return json.loads((filestore / "0.pkcs11.json").read_text())


def test_the_pin_record_is_bound_to_the_chip_so_the_file_alone_cannot_check_a_guess(pin_filestore):
    record = _record(pin_filestore)["pins"]["user"]
    assert record["scheme"] == "scrypt-ecdh"
    salt = bytes.fromhex(record["salt"])
    offline = hashlib.scrypt(PIN, salt=salt, n=2**14, r=8, p=1, dklen=32)
    assert record["hash"] != offline.hex()  # the right PIN, checked offline: no match
    assert record["hash"] != hashlib.sha256(offline).hexdigest()
    with pytest.raises(errors.DeviceError):  # without the chip, no comparison at all
        pin.pin_matches(record, PIN, None)
    lib = Library()
    lib.initialize(None)
    try:
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        lib.login(s, CKU.USER, PIN)  # with the chip: fine
    finally:
        lib.finalize()


_CRASH_DURING_COMPARISON = """
import os
from cryptoki import pin
from cryptoki.constants import CKF, CKU
from cryptoki.library import Library
lib = Library()
lib.initialize(None)
s = lib.open_session(0, CKF.SERIAL_SESSION)
def crash(*args, **kwargs):
    os._exit(42)   # killed while the PIN is being compared
pin._digest = crash
lib.login(s, CKU.USER, b"0000-guess")
"""


def test_a_try_killed_during_the_comparison_is_still_counted(pin_filestore):
    env = {**os.environ, "ATECC_PKCS11_FILESTORE": str(pin_filestore)}
    for expected in (1, 2):
        proc = subprocess.run([sys.executable, "-c", _CRASH_DURING_COMPARISON], env=env)
        assert proc.returncode == 42
        assert _record(pin_filestore)["failures"]["user"] == expected


def test_a_right_pin_resets_the_count_and_binds_an_older_record(pin_filestore):
    meta = pin_filestore / "0.pkcs11.json"
    lib = Library()
    lib.initialize(None)
    try:
        store = lib._slots[0].token.store
        # An older record (plain scrypt), as a previous version wrote it:
        store.modify(lambda m: m.pins.__setitem__("user", pin.hash_pin(PIN)))
        s = lib.open_session(0, CKF.SERIAL_SESSION)
        with pytest.raises(errors.PinIncorrect):
            lib.login(s, CKU.USER, b"wrong-pin")
        assert json.loads(meta.read_text())["failures"]["user"] == 1
        lib.login(s, CKU.USER, PIN)
    finally:
        lib.finalize()
    doc = json.loads(meta.read_text())
    assert "user" not in doc.get("failures", {})
    assert doc["pins"]["user"]["scheme"] == "scrypt-ecdh"


def test_hash_to_curve_gives_points_on_p256():
    from cryptoki.der import on_curve

    for seed in (b"", b"a", bytes(32), os.urandom(32)):
        assert on_curve(pin.hash_to_curve(seed))
