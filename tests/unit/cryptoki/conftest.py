"""Fixtures for the Cryptoki core tests: an initialised Library on an emulated Trust&GO chip.

Tests call the core's methods directly (the same calls ``cryptoki._abi`` makes), with a fresh
``Library`` per test so that no state leaks between tests; the process-wide ``LIBRARY`` is left
alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from p11util import TOKEN_USER_PIN, find_one

from cryptoki.constants import CKF, CKO, CKU
from cryptoki.library import Library


@pytest.fixture
def lib(tngtls_filestore) -> Iterator[Library]:
    """An initialised Library over the Trust&GO filestore; finalised afterwards."""
    library = Library()
    library.initialize(None)
    yield library
    try:
        library.finalize()
    except Exception:
        pass


@pytest.fixture
def session(lib: Library) -> int:
    """A read-only session on slot 0."""
    return lib.open_session(0, CKF.SERIAL_SESSION)


@pytest.fixture
def rw_session(lib: Library) -> int:
    return lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)


@pytest.fixture
def device_key(lib: Library, session: int) -> int:
    return find_one(lib, session, CKO.PRIVATE_KEY, "device")


@pytest.fixture
def device_pub(lib: Library, session: int) -> int:
    return find_one(lib, session, CKO.PUBLIC_KEY, "device")


@pytest.fixture
def pin_filestore(tmp_path, monkeypatch, chip_factory, slot_file_writer):
    """A Trust&GO token with ``user_pin = required``, SO PIN ``so-secret`` and user PIN
    :data:`TOKEN_USER_PIN`; the environment points at it."""
    filestore = tmp_path / "filestore"
    chip_factory(filestore, "chip0.json")
    slot_file_writer(filestore, 0, "chip0.json", extra="user_pin = required\n")
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    lib = Library()
    lib.initialize(None)
    try:
        lib.init_token(0, b"so-secret", b"00ABC")
        rw = lib.open_session(0, CKF.SERIAL_SESSION | CKF.RW_SESSION)
        lib.login(rw, CKU.SO, b"so-secret")
        lib.init_pin(rw, TOKEN_USER_PIN)
    finally:
        lib.finalize()
    return filestore
