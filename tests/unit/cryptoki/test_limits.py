"""Every input has a bound and long work leaves the chip to others between chunks (issue 11)."""

from __future__ import annotations

import hashlib

import pytest
from p11util import ulong
from test_cryptoki_mechanisms import (
    NIST_CBC_CT,
    NIST_ECB_CT,
    NIST_IV,
    NIST_KEY,
    NIST_PT,
    crypt,
    import_aes,
)

from cryptoki import errors, limits
from cryptoki.constants import CKA, CKM, CKO
from cryptoki.types import Mechanism


def test_random_longer_than_the_limit_is_refused_at_once(lib, session):
    with pytest.raises(errors.DataLenRange):
        lib.generate_random(session, 2**63)
    assert len(lib.generate_random(session, limits.MAX_RANDOM_BYTES)) == limits.MAX_RANDOM_BYTES


def test_a_multi_part_operation_past_its_total_limit_ends_with_data_len_range(
    lib, session, monkeypatch
):
    monkeypatch.setattr(limits, "MAX_DATA_PER_OPERATION", 1000)
    lib.digest_init(session, Mechanism(CKM.SHA256))
    lib.digest_update(session, bytes(600))
    with pytest.raises(errors.DataLenRange):
        lib.digest_update(session, bytes(600))
    with pytest.raises(errors.OperationNotInitialized):  # the error ended the operation
        lib.digest_final(session, 32)
    lib.digest_init(session, Mechanism(CKM.SHA256))  # a new operation counts from zero
    lib.digest_update(session, bytes(600))
    assert lib.digest_final(session, 32) == hashlib.sha256(bytes(600)).digest()


def test_a_second_multi_part_digest_in_the_same_process_succeeds(lib, session):
    for _ in range(3):
        lib.digest_init(session, Mechanism(CKM.SHA256))
        lib.digest_update(session, b"a" * 100)
        lib.digest_update(session, b"b" * 30)
        assert lib.digest_final(session, 32) == hashlib.sha256(b"a" * 100 + b"b" * 30).digest()


def test_a_long_digest_is_hashed_on_the_host_and_leaves_the_chip_free(lib, session, monkeypatch):
    backend = lib._slots[0].token.backend
    real = backend.sha256
    chip_calls: list[int] = []

    def counting(data: bytes) -> bytes:
        chip_calls.append(len(data))
        return real(data)

    monkeypatch.setattr(backend, "sha256", counting)
    short, long = b"s" * 100, bytes(range(256)) * 20  # 5 KiB: past limits.CHIP_DIGEST_BYTES
    for data in (short, long):
        lib.digest_init(session, Mechanism(CKM.SHA256))
        assert lib.digest(session, data, 32) == hashlib.sha256(data).digest()
        lib.digest_init(session, Mechanism(CKM.SHA256))
        for i in range(0, len(data), 1000):
            lib.digest_update(session, data[i : i + 1000])
        assert lib.digest_final(session, 32) == hashlib.sha256(data).digest()
    assert chip_calls == [100, 100]  # the short message on the chip, the long one never


def test_aes_in_chunks_gives_the_nist_answers(lib, rw_session, monkeypatch):
    monkeypatch.setattr(limits, "CHIP_CHUNK_BYTES", 16)
    key = import_aes(lib, rw_session, NIST_KEY)
    ecb, cbc = Mechanism(CKM.AES_ECB), Mechanism(CKM.AES_CBC, NIST_IV)
    assert crypt(lib, rw_session, ecb, key, NIST_PT) == NIST_ECB_CT
    assert crypt(lib, rw_session, cbc, key, NIST_PT) == NIST_CBC_CT
    assert crypt(lib, rw_session, cbc, key, NIST_CBC_CT, encrypt=False) == NIST_PT


def test_an_object_over_the_size_limit_is_refused_with_device_memory(lib, rw_session):
    template = [(CKA.CLASS, ulong(CKO.DATA)), (CKA.VALUE, bytes(limits.MAX_OBJECT_BYTES + 1))]
    with pytest.raises(errors.DeviceMemory):
        lib.create_object(rw_session, template)


def test_token_objects_past_the_limit_are_refused(lib, rw_session, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TOKEN_OBJECTS", 2)
    template = [(CKA.CLASS, ulong(CKO.DATA)), (CKA.TOKEN, b"\x01")]
    lib.create_object(rw_session, template)
    lib.create_object(rw_session, template)
    with pytest.raises(errors.DeviceMemory):
        lib.create_object(rw_session, template)


def test_a_long_random_request_goes_to_the_chip_in_pieces(lib, session, monkeypatch):
    """C_GenerateRandom of 64 KiB held the chip for 2,048 Random commands in one go (about 47 s
    on a real chip, nobody else served): it now asks in pieces of limits.RANDOM_CHUNK_BYTES."""
    backend = lib._slots[0].token.backend
    real = backend.random
    asked: list[int] = []

    def counting(length: int) -> bytes:
        asked.append(length)
        return real(length)

    monkeypatch.setattr(backend, "random", counting)
    assert len(lib.generate_random(session, 3000)) == 3000
    assert asked == [1024, 1024, 952]
