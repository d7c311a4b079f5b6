"""Helpers shared by the Cryptoki core tests (imported by name; pytest puts this directory on
sys.path)."""

from __future__ import annotations

import struct

from cryptoki.constants import CKA
from cryptoki.library import Library
from cryptoki.types import AttributeFailure

#: Not hex, so it cannot turn up by chance in the serial, salts or hashes of the metadata file.
TOKEN_USER_PIN = b"user-pin-\xc3\xa9t\xc3\xa9"


def ulong(value: int) -> bytes:
    return struct.pack("@L", value)


def find(lib: Library, session: int, template: list[tuple[int, bytes]]) -> list[int]:
    lib.find_objects_init(session, template)
    try:
        return lib.find_objects(session, 1000)
    finally:
        lib.find_objects_final(session)


def find_one(lib: Library, session: int, cls: int, label: str) -> int:
    handles = find(lib, session, [(CKA.CLASS, ulong(cls)), (CKA.LABEL, label.encode())])
    assert len(handles) == 1, handles
    return handles[0]


def attr(lib: Library, session: int, handle: int, attr_type: int) -> bytes:
    (value,) = lib.get_attribute_value(session, handle, [attr_type])
    assert not isinstance(value, AttributeFailure), value
    return value
