"""Two processes sign with the same emulated chip at the same time (ARCHITECTURE.md §6).

Each process opens its own EmulatedBus on the shared state file; the driver's bus lock
(``bus.lock_path``) keeps every Random → Nonce → Sign sequence whole. Every signature must verify
against slot 0's public key, and the state file must still be intact JSON afterwards.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from ._backends import new_emulated_chip, open_emulated

SIGNS_PER_PROCESS = 25


def _worker(
    path: str, tag: int, start: multiprocessing.synchronize.Event
) -> list[tuple[bytes, bytes]]:
    from atecc.slotfile import EmulatorInterface, open_device

    device = open_device(EmulatorInterface(Path(path)))
    start.wait(10)
    out = []
    try:
        for i in range(SIGNS_PER_PROCESS):
            digest = hashlib.sha256(f"{tag}-{i}".encode()).digest()
            out.append((digest, device.sign_digest(0, digest)))
            if i % 5 == 0:
                device.counter_increment(1)  # an EEPROM write in the mix
    finally:
        device.close()
    return out


def test_two_processes_sign_concurrently(tmp_path: Path) -> None:
    path = new_emulated_chip(tmp_path)
    dev = open_emulated(path)
    pub = dev.get_public_key(0)
    counter_before = dev.counter_read(1)
    dev.close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(2) as pool:
            jobs = [pool.apply_async(_worker, (str(path), tag, start)) for tag in (1, 2)]
            start.set()
            results = [job.get(timeout=120) for job in jobs]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pub)
    count = 0
    for result in results:
        for digest, sig in result:
            r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            count += 1
    assert count == 2 * SIGNS_PER_PROCESS
    doc = json.loads(path.read_text())
    assert doc["format"] == "atecc608-emulator-state"
    dev = open_emulated(path)
    assert dev.counter_read(1) == counter_before + 2 * (SIGNS_PER_PROCESS // 5)
    dev.close()
