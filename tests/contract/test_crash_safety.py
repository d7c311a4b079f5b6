"""A process killed at any point never leaves a corrupt or half-written chip state file.

A child process increments a counter and rewrites a data slot as fast as it can (every command
commits the state file); the test SIGKILLs it at random moments, twenty times. After each kill the
file must load, keep mode 0600, hold a counter that never went backwards and a data slot that is
one of the child's complete writes, and the per-command lock must be free (the kernel drops an
flock with its process).
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

from atecc.emulator.profiles import create_chip
from atecc.emulator.state import StateFile

CHILD = textwrap.dedent(
    """
    import sys
    from atecc.emulator.bus import EmulatedBus
    from atecc.transport import I2CTransport
    from atecc.device import Device
    from atecc.constants import Zone

    path = sys.argv[1]
    bus = EmulatedBus(path)
    device = Device(I2CTransport(bus, bus.chip.address7, lock_path=bus.lock_path))
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        device.counter_increment(0)
        # Slot 8 is clear-writable on Trust&GO: a whole block of one repeated byte, so a torn
        # write would show as a block with two different bytes.
        device.write_bytes(Zone.DATA, 8, 0, bytes([n % 251]) * 32)
    """
)


def test_sigkill_at_random_points_never_corrupts_the_state(tmp_path):
    path = tmp_path / "chip0.json"
    create_chip(path, "ATECC608-TNGTLS")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(1234)
    last_counter = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.005, 0.08))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        state = StateFile(path).load()  # raises on a corrupt or half-written file
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert state.counters[0] >= last_counter
        last_counter = state.counters[0]
        block = bytes(state.slots[8][:32])
        assert block == bytes([block[0]]) * 32, block.hex()
        # The lock is free again: a transaction completes at once.
        started = time.monotonic()
        with StateFile(path).transaction() as txn:
            assert txn.state.counters[0] == last_counter
        assert time.monotonic() - started < 2.0
    assert last_counter > 0, "the child never committed anything: the test proved nothing"
