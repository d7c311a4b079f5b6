"""The token metadata file fails closed: anything that cannot be trusted makes the token absent
(with its reason in the slot description), is never rewritten, and a write interrupted at any
step leaves a file that loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from p11util import find, ulong

from atecc import fileio
from cryptoki import errors
from cryptoki.constants import CKA, CKF, CKO
from cryptoki.library import Library
from cryptoki.store import checksum


def _token_state(filestore: Path) -> tuple[list[int], str, Exception | None]:
    """(present slots, slot 0's description, error of opening a session) from a fresh process
    state."""
    lib = Library()
    lib.initialize(None)
    try:
        present = lib.get_slot_list(True)
        description = lib.get_slot_info(0).slot_description
        try:
            session = lib.open_session(0, CKF.SERIAL_SESSION)
        except errors.Pkcs11Error as exc:
            return present, description, exc
        keys = find(lib, session, [(CKA.CLASS, ulong(CKO.PRIVATE_KEY))])
        assert keys == [], "a private key became visible without the PIN"
        return present, description, None
    finally:
        lib.finalize()


def _rewrite(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_a_damaged_metadata_file_makes_the_pin_token_absent_not_usable_without_pin(
    pin_filestore: Path,
) -> None:
    meta = pin_filestore / "0.pkcs11.json"
    _rewrite(meta, lambda doc: doc.pop("pins"))  # the checksum no longer matches
    before = meta.read_bytes()
    present, description, error = _token_state(pin_filestore)
    assert present == []
    assert isinstance(error, errors.TokenNotPresent)
    assert "checksum" in description
    assert meta.read_bytes() == before, "a file that cannot be trusted was rewritten"


def test_a_file_from_a_newer_version_makes_the_token_absent(pin_filestore: Path) -> None:
    meta = pin_filestore / "0.pkcs11.json"

    def newer(doc):
        doc["version"] = 99
        doc["checksum"] = checksum(doc)

    _rewrite(meta, newer)
    present, description, error = _token_state(pin_filestore)
    assert present == [] and isinstance(error, errors.TokenNotPresent)
    assert "newer version" in description


@pytest.mark.parametrize(
    "change",
    [
        {"keys": 5},
        {"keys": [{"slot": "2", "public_key": "00" * 64}]},
        {"objects": [{"uid": "x", "attrs": {"3": 7}}]},
        {"failures": {"user": "many"}},
        {"objects": [{"uid": "x", "attrs": {"2147483649": True}}]},
    ],
    ids=["keys-not-a-list", "slot-a-string", "label-a-number", "counter-a-string", "unknown-cka"],
)
def test_a_field_of_the_wrong_type_makes_the_token_absent_not_a_general_error(
    tngtls_filestore: Path, change: dict
) -> None:
    meta = tngtls_filestore / "0.pkcs11.json"
    doc = {"format": "atecc-pkcs11-token", "version": 3, "keys": [], **change}
    doc["checksum"] = checksum(doc)
    meta.write_text(json.dumps(doc))
    present, _, error = _token_state(tngtls_filestore)
    assert present == [] and isinstance(error, errors.TokenNotPresent)


def test_a_fifo_as_metadata_file_does_not_hang(tngtls_filestore: Path) -> None:
    os.mkfifo(tngtls_filestore / "0.pkcs11.json")
    started = time.monotonic()
    present, description, _ = _token_state(tngtls_filestore)
    assert time.monotonic() - started < 10
    assert present == [] and "not a regular file" in description


def test_a_version_2_file_is_read_and_upgraded_on_the_next_write(tngtls_filestore: Path) -> None:
    meta = tngtls_filestore / "0.pkcs11.json"
    meta.write_text(
        json.dumps({"format": "atecc-pkcs11-token", "version": 2, "keys": [], "overrides": {}})
    )
    lib = Library()
    lib.initialize(None)
    try:
        rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        lib.create_object(
            rw,
            [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\x01"), (CKA.LABEL, b"upgraded")],
        )
    finally:
        lib.finalize()
    doc = json.loads(meta.read_text())
    assert doc["version"] == 3 and doc["checksum"] == checksum(doc)


_WRITER = """
import os, sys
from atecc import fileio
from cryptoki.constants import CKA, CKF, CKO
from cryptoki.library import Library
step = sys.argv[1]
lib = Library()
lib.initialize(None)
rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
def hook(name):
    if name == step:
        os._exit(42)
fileio.crash_hook = hook
ulong = lambda v: v.to_bytes(8, sys.byteorder)
lib.create_object(rw, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\\x01"),
                       (CKA.LABEL, b"written"), (CKA.VALUE, b"payload")])
os._exit(0)
"""


@pytest.mark.parametrize("step", fileio.WRITE_STEPS)
def test_a_crash_at_each_step_of_a_metadata_write_leaves_a_token_that_works(
    tngtls_filestore: Path, step: str
) -> None:
    # One earlier object, so the file exists before the interrupted write.
    lib = Library()
    lib.initialize(None)
    try:
        rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        lib.create_object(
            rw, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\x01"), (CKA.LABEL, b"first")]
        )
    finally:
        lib.finalize()
    env = {**os.environ, "ATECC_PKCS11_FILESTORE": str(tngtls_filestore)}
    proc = subprocess.run([sys.executable, "-c", _WRITER, step], env=env, check=False)
    assert proc.returncode == 42, "the crash hook did not fire at this step"
    lib = Library()
    lib.initialize(None)
    try:
        assert lib.get_slot_list(True) == [0]
        session = lib.open_session(0, CKF.SERIAL_SESSION)
        labels = {
            lib.get_attribute_value(session, h, [CKA.LABEL])[0]
            for h in find(lib, session, [(CKA.CLASS, ulong(CKO.DATA))])
        }
        assert b"first" in labels  # the old state survives
        assert labels <= {b"first", b"written"}  # the new object is whole or absent
        rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        lib.create_object(rw, [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\x01")])
    finally:
        lib.finalize()
    leftovers = [p.name for p in tngtls_filestore.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], "temporary files of the crashed write were not cleaned up"
