"""Signing on the emulated chip and verifying on the host: CKM_ECDSA and CKM_ECDSA_SHA256,
single- and multi-part, the length-query convention, operation lifetime, and threads."""

from __future__ import annotations

import hashlib
import threading

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from p11util import attr, find_one

from cryptoki import errors
from cryptoki.constants import CKA, CKF, CKM, CKO
from cryptoki.mechanisms.ecdsa import ecdsa_input
from cryptoki.types import Mechanism

ECDSA = Mechanism(CKM.ECDSA)
ECDSA_SHA256 = Mechanism(CKM.ECDSA_SHA256)


def host_key(lib, session, pub_handle) -> ec.EllipticCurvePublicKey:
    point = attr(lib, session, pub_handle, CKA.EC_POINT)[2:]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def host_verify(key: ec.EllipticCurvePublicKey, digest: bytes, sig: bytes) -> None:
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_ecdsa_sha256_single_part(lib, session, device_key, device_pub):
    lib.sign_init(session, ECDSA_SHA256, device_key)
    sig = lib.sign(session, b"hello", 64)
    assert isinstance(sig, bytes) and len(sig) == 64
    host_verify(host_key(lib, session, device_pub), hashlib.sha256(b"hello").digest(), sig)
    with pytest.raises(errors.OperationNotInitialized):
        lib.sign(session, b"hello", 64)  # the operation ended


def test_length_query_and_buffer_too_small_keep_the_operation(lib, session, device_key):
    lib.sign_init(session, ECDSA_SHA256, device_key)
    assert lib.sign(session, b"m", None) == 64
    with pytest.raises(errors.BufferTooSmall) as exc:
        lib.sign(session, b"m", 10)
    assert exc.value.required == 64
    assert len(lib.sign(session, b"m", 100)) == 64
    # The successful call ended the operation: a new one can start.
    lib.sign_init(session, ECDSA_SHA256, device_key)
    assert len(lib.sign(session, b"m", 64)) == 64


def test_multi_part(lib, session, device_key, device_pub):
    lib.sign_init(session, ECDSA_SHA256, device_key)
    lib.sign_update(session, b"hello ")
    lib.sign_update(session, b"world")
    assert lib.sign_final(session, None) == 64
    with pytest.raises(errors.BufferTooSmall):
        lib.sign_final(session, 63)
    sig = lib.sign_final(session, 64)
    host_verify(host_key(lib, session, device_pub), hashlib.sha256(b"hello world").digest(), sig)
    # C_Verify multi-part with the public key
    lib.verify_init(session, ECDSA_SHA256, device_pub)
    lib.verify_update(session, b"hello ")
    lib.verify_update(session, b"world")
    lib.verify_final(session, sig)


def test_raw_ecdsa_truncates_and_pads(lib, session, device_key, device_pub):
    key = host_key(lib, session, device_pub)
    digest = hashlib.sha256(b"x").digest()
    for data, expect in (
        (digest, digest),
        (digest + b"tail beyond the order", digest),  # leftmost 256 bits
        (b"\x01\x02", bytes(30) + b"\x01\x02"),  # left-padded with zeros
    ):
        lib.sign_init(session, ECDSA, device_key)
        sig = lib.sign(session, data, 64)
        host_verify(key, expect, sig)
        lib.verify_init(session, ECDSA, device_pub)
        lib.verify(session, data, sig)
    assert ecdsa_input(b"") == bytes(32)


def test_raw_ecdsa_is_single_part(lib, session, device_key):
    lib.sign_init(session, ECDSA, device_key)
    with pytest.raises(errors.OperationNotInitialized):
        lib.sign_update(session, b"x")
    # the error ended the operation
    with pytest.raises(errors.OperationNotInitialized):
        lib.sign(session, b"x", 64)


def test_sign_after_update_is_refused_and_ends(lib, session, device_key):
    lib.sign_init(session, ECDSA_SHA256, device_key)
    lib.sign_update(session, b"x")
    with pytest.raises(errors.OperationNotInitialized):
        lib.sign(session, b"x", 64)
    lib.sign_init(session, ECDSA_SHA256, device_key)  # free again
    lib.sign(session, b"x", 64)


def test_sign_init_errors(lib, session, device_key, device_pub):
    with pytest.raises(errors.MechanismInvalid):
        lib.sign_init(session, Mechanism(CKM.ECDSA_SHA384), device_key)
    with pytest.raises(errors.MechanismInvalid):
        lib.sign_init(session, Mechanism(CKM.EC_KEY_PAIR_GEN), device_key)
    with pytest.raises(errors.MechanismParamInvalid):
        lib.sign_init(session, Mechanism(CKM.ECDSA, b"\x01"), device_key)
    with pytest.raises(errors.KeyHandleInvalid):
        lib.sign_init(session, ECDSA, 424242)
    with pytest.raises(errors.KeyTypeInconsistent):
        lib.sign_init(session, ECDSA, device_pub)
    cert = find_one(lib, session, CKO.CERTIFICATE, "device")
    with pytest.raises(errors.KeyTypeInconsistent):
        lib.sign_init(session, ECDSA, cert)
    lib.sign_init(session, ECDSA, device_key)
    with pytest.raises(errors.OperationActive):
        lib.sign_init(session, ECDSA, device_key)
    with pytest.raises(errors.OperationNotInitialized):
        lib.verify(session, b"x", bytes(64))


def test_verify_errors(lib, session, device_key, device_pub):
    lib.sign_init(session, ECDSA_SHA256, device_key)
    sig = lib.sign(session, b"data", 64)
    with pytest.raises(errors.KeyFunctionNotPermitted):
        lib.verify_init(session, ECDSA_SHA256, device_key)
    lib.verify_init(session, ECDSA_SHA256, device_pub)
    with pytest.raises(errors.SignatureLenRange):
        lib.verify(session, b"data", sig[:63])
    lib.verify_init(session, ECDSA_SHA256, device_pub)
    with pytest.raises(errors.SignatureInvalid):
        lib.verify(session, b"other", sig)
    lib.verify_init(session, ECDSA_SHA256, device_pub)
    with pytest.raises(errors.SignatureInvalid):
        lib.verify(session, b"data", bytes(64))
    lib.verify_init(session, ECDSA_SHA256, device_pub)
    lib.verify(session, b"data", sig)


def test_signatures_differ_and_all_verify(lib, session, device_key, device_pub):
    key = host_key(lib, session, device_pub)
    sigs = set()
    for _ in range(3):
        lib.sign_init(session, ECDSA_SHA256, device_key)
        sig = lib.sign(session, b"same", 64)
        host_verify(key, hashlib.sha256(b"same").digest(), sig)
        sigs.add(sig)
    assert len(sigs) == 3  # fresh nonce per signature
    with pytest.raises(InvalidSignature):
        host_verify(key, hashlib.sha256(b"different").digest(), sig)


def test_threads_sign_concurrently(lib, device_pub, session):
    key = host_key(lib, session, device_pub)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            s = lib.open_session(0, CKF.SERIAL_SESSION)
            k = find_one(lib, s, CKO.PRIVATE_KEY, "device")
            for i in range(5):
                msg = f"{n}-{i}".encode()
                lib.sign_init(s, ECDSA_SHA256, k)
                host_verify(key, hashlib.sha256(msg).digest(), lib.sign(s, msg, 64))
            lib.close_session(s)
        except BaseException as exc:  # collected and re-raised in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
