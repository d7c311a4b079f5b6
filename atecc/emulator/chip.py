"""Behavioural model of one ATECC608 as seen from the I2C bus (chip §1, §2, §7.1).

Owns: the power/bus state machine (asleep, idle, awake, busy; wake by a write to address 0x00;
NACK = ``OSError(EREMOTEIO)``), address matching (config byte 16, alternate address rule §1.1),
word addresses 0x00-0x03, the input FIFO split across writes, execution on the Stop after the
write that completes COUNT bytes, the output buffer and its address counter, CRC checking of
input and framing of output, the status-code precedence of §2, the volatile state lifecycle of
§1.9, the TempKey invalidation rule of §4.0, and the timing model (busy time, tWHI, watchdog).
Per-command behaviour lives in the ``_cmd_*`` modules; EEPROM persistence in ``state.py``.

Modelling choices (spec tags in brackets):

* Volatile state belongs to this object. Two :class:`~atecc.emulator.bus.EmulatedBus` instances
  on one state file share the EEPROM (via the file and its lock) but each has its own SRAM, as if
  each process talked to its own copy of the chip. The driver keeps multi-command sequences inside
  one ``bus.lock_path`` transaction, so this is invisible to it.
* Reserved word addresses 0x04-0xFF are NACKed [U].
* A COUNT byte outside 7..155 ends the group at once with ``04 FF 01 42`` (commands are at least
  7 bytes; a COUNT that small cannot carry opcode and parameters).
* tWHI (1.5 ms after a wake, during which the chip NACKs) and busy time are only modelled with
  ``realistic`` timing; in ``fast`` timing the chip answers at once. The watchdog runs in both
  modes on the bus clock, and the 0xEE check ("not enough watchdog time left") uses the
  command's modelled execution time (§4.0 maximum × busy_fraction) in both modes.
* TempKey follows the 608, not the 508A: a command changes TempKey only when it writes it
  (Nonce, GenDig, GenKey digest or ephemeral key, SHA End to TempKey, ECDH or KDF to TempKey,
  CheckMac copy) or consumes it as an ephemeral private key (ECDH from TempKey); sleep and the
  watchdog clear it. Evidence: cryptoauthlib's own 608 tests load TempKey once and then run
  sixteen AES commands with it (``atca_tests_aes.c``), and run Random, Nonce to the message
  digest buffer and Sign between a random Nonce and a Verify that uses its TempKey
  (``atca_tests_verify.c``). The 508A rule "every other command clears TempKey" (chip §4.0)
  would fail both; there is no 508A profile, so it is not kept.
* ``strict`` (default) makes Sign require an RNG seed update since the last sleep [U] (§4.2)
  and invalidates the message digest buffer after Sign and Verify [U] (§4.5, §8): both catch a
  driver that skips a step cryptoauthlib always takes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from atecc import crc
from atecc.constants import (
    CFG_CHIP_MODE,
    CFG_I2C_ADDRESS,
    CFG_USER_EXTRA_ADD,
    CLOCK_DIVIDER_MASK,
    CLOCK_M0,
    CLOCK_M1,
    CLOCK_M2,
    MAX_GROUP_COUNT,
    MIN_COMMAND_COUNT,
    WAKE_HIGH_S,
    WATCHDOG_S,
    Opcode,
    Status,
    exec_time_max_s,
)
from atecc.emulator import (
    _cmd_auth,
    _cmd_ecc,
    _cmd_general,
    _cmd_kdf,
    _cmd_memory,
    _cmd_symmetric,
)
from atecc.emulator._core import Cfg, CmdError, Exec, Volatile
from atecc.emulator.clock import Clock
from atecc.emulator.faults import Faults
from atecc.emulator.state import StateFile
from atecc.lazylog import get_logger

log = get_logger("atecc.emulator")

#: Long watchdog (ChipMode bit 2): ≈10 s on the 508A, ≈13 s per cryptoauthlib for the 608 [U].
WATCHDOG_LONG_S = 13.0

ASLEEP, IDLE, AWAKE = "asleep", "idle", "awake"

Handler = Callable[[Exec], "bytes | int | None"]

HANDLERS: dict[int, Handler] = {
    **_cmd_general.HANDLERS,
    **_cmd_memory.HANDLERS,
    **_cmd_ecc.HANDLERS,
    **_cmd_symmetric.HANDLERS,
    **_cmd_auth.HANDLERS,
    **_cmd_kdf.HANDLERS,
}


def _group(payload: bytes) -> bytes:
    body = bytes((len(payload) + 3,)) + payload
    return body + crc.crc16_bytes(body)


_STATUS_GROUPS = {s: _group(bytes((s,))) for s in range(256)}
WAKE_RESPONSE = _STATUS_GROUPS[Status.WAKE_OK]  # 04 11 33 43
POST_FAILED_RESPONSE = _STATUS_GROUPS[Status.SELFTEST_ERROR]  # 04 07 40 C2 (computed, §1.3)

# Commands that consume the message digest buffer in strict mode [U] (§4.5, §8).
_MDB_CONSUMERS = frozenset((Opcode.SIGN, Opcode.VERIFY))
#: Outcomes after which the command did not run: nothing it would consume is consumed.
_NOT_RUN = frozenset((Status.CRC_ERROR, Status.ECC_FAULT))


def nack(why: str) -> OSError:
    """What a Linux I2C adapter reports when the address byte (or a data byte) is not ACKed."""
    return OSError(errno.EREMOTEIO, f"Remote I/O error (emulated ATECC608 NACK: {why})")


class Chip:
    """One emulated chip. Driven by :class:`~atecc.emulator.bus.EmulatedBus`, inspected by tests.

    :param state_file: the EEPROM image (shared with other processes through its lock)
    :param clock: bus clock (virtual in ``fast`` timing)
    :param realistic: model busy time and tWHI
    :param strict: see the module docstring
    :param busy_fraction: fraction of the §4.0 maximum execution time used as busy time
    :param seed: make the RNG deterministic (ECDSA nonces still come from ``cryptography``)
    :param watchdog_s: override tWATCHDOG (default 1.3 s, or the long watchdog per ChipMode)
    """

    def __init__(
        self,
        state_file: StateFile,
        clock: Clock,
        *,
        faults: Faults | None = None,
        realistic: bool = False,
        strict: bool = True,
        busy_fraction: float = 1.0,
        seed: int | None = None,
        watchdog_s: float | None = None,
    ) -> None:
        self.state_file = state_file
        self.clock = clock
        self.faults = faults if faults is not None else Faults()
        self.faults.attach(self)
        self.realistic = realistic
        self.strict = strict
        self.busy_fraction = busy_fraction
        # Modelled execution time per ChipMode clock divider and opcode, precomputed: it is
        # looked up twice per command. An undocumented divider is timed as the slowest known.
        self._exec_s = {
            d: tuple(exec_time_max_s(op, d) * busy_fraction for op in range(256))
            for d in (CLOCK_M0, CLOCK_M1, CLOCK_M2)
        }
        self._exec_slowest = tuple(exec_time_max_s(op, None) * busy_fraction for op in range(256))
        #: What the chip was asked to do that the emulator does not model, with counts: the
        #: answer given (0x0F, or a guess) is not chip behaviour. Also logged, once per kind.
        self.not_modelled: dict[str, int] = {}
        self._watchdog_override = watchdog_s
        self._rng: Callable[[int], bytes] = os.urandom
        if seed is not None:  # `random` is imported only for seeded chips (start-up cost)
            import random

            self._rng = random.Random(seed).randbytes
        self._cfg: Cfg | None = None
        # --- volatile -----------------------------------------------------------------------
        self.power = ASLEEP
        self.vol = Volatile()
        self.selftest_register = 0  #: failed-unit bitmap; non-zero = Failure state (§4.14)
        self._selftest_armed = 0  #: failures injected while not awake, applied after the wake
        self.persistent_latch = False  #: survives sleep (§1.9), lost only on power loss
        self.wake_time = 0.0
        self.watchdog_deadline = 0.0
        self.busy_until = 0.0
        self._fifo = bytearray()
        self._pending: bytes | None = None  #: complete group waiting for the Stop
        self._out = WAKE_RESPONSE
        self._out_bad = WAKE_RESPONSE
        self._out_is_reply = False
        self._ptr = 0
        self._corrupt_pass = False
        self.address7 = 0
        self.last_status: int | None = None  #: status/first byte of the last response (tests)
        self._latch_address()  # power-up

    # ================================================================ bus-level interface ====
    def tick(self) -> None:
        """Apply the watchdog: a chip awake past its deadline falls asleep (§1.8)."""
        if self.power == AWAKE and self.clock.monotonic() >= self.watchdog_deadline:
            self.watchdog_expire()

    def wake(self) -> None:
        """A wake pulse (write to address 0x00). Ignored while awake (I2C mode, §1.2)."""
        self.tick()
        if self.power == AWAKE:
            return
        now = self.clock.monotonic()
        self.power = AWAKE
        self.wake_time = now
        self.watchdog_deadline = now + self._watchdog_s()
        self.busy_until = now
        self._fifo.clear()
        self._pending = None
        # The failure register is cleared at every wake (§1.9); POST may set it again.
        self.selftest_register = self._selftest_armed
        self._selftest_armed = 0
        response = WAKE_RESPONSE
        cfg = self._cfg
        if cfg is not None and cfg.chip_options & 0x0001 and self.faults.selftest_broken:
            self.selftest_register |= self.faults.selftest_broken
        if self.selftest_register and cfg is not None and cfg.chip_options & 0x0001:
            response = POST_FAILED_RESPONSE
        self._set_output(response, reply=False)

    def write(self, addr7: int, data: bytes) -> None:
        """An I2C write transaction addressed to the chip (address already matched)."""
        self._check_ready(addr7, reading=False)
        if not data:
            return  # address-only probe: ACKed, no effect
        word = data[0]
        # Any write moves the output address counter back to the start (§1.6).
        self._ptr = 0
        self._corrupt_pass = False
        if word == 0x03:
            self._feed(data[1:])
        elif word == 0x00:
            # Reset: rewind the I/O buffer; a half-written command is discarded with it.
            self._fifo.clear()
        elif word == 0x02:
            self._enter_idle()
        elif word == 0x01:
            self._enter_sleep()
        else:
            raise nack(f"reserved word address 0x{word:02X}")

    def read(self, addr7: int, length: int) -> bytes:
        """An I2C read transaction: continue from the address counter, 0xFF past the end."""
        self._check_ready(addr7, reading=True)
        if self._fifo or self._pending is not None:
            raise nack("a command is partially written")
        ptr = self._ptr
        if ptr == 0 and self._out_is_reply:
            self._corrupt_pass = self.faults.take_crc_corruption()
        out = self._out_bad if self._corrupt_pass else self._out
        chunk = out[ptr : ptr + length]
        self._ptr = min(ptr + length, len(out))
        if len(chunk) < length:
            chunk += b"\xff" * (length - len(chunk))
        return chunk

    def stop(self) -> None:
        """The Stop condition ending an ``i2c_rdwr`` call: a complete group starts executing."""
        packet = self._pending
        if packet is None:
            return
        self._pending = None
        response, busy_s = self._execute(packet)
        self._set_output(response, reply=True)
        if self.realistic and busy_s > 0:
            self.busy_until = self.clock.monotonic() + busy_s

    # ---------------------------------------------------------------- internals (bus) ------
    def _check_ready(self, addr7: int, *, reading: bool) -> None:
        self.tick()
        if addr7 != self.address7:
            raise nack(f"no device at 0x{addr7:02X}")
        if self.power != AWAKE:
            raise nack(f"chip is {self.power}")
        if self.realistic:
            now = self.clock.monotonic()
            if now < self.busy_until:
                raise nack("chip is busy executing")
            if now < self.wake_time + WAKE_HIGH_S:
                raise nack("within tWHI after wake")

    def _feed(self, chunk: bytes) -> None:
        if self._pending is not None or not chunk:
            return  # bytes after a complete group are ignored until execution (§1.5)
        fifo = self._fifo
        fifo += chunk
        count = fifo[0]
        if not MIN_COMMAND_COUNT <= count <= MAX_GROUP_COUNT:
            fifo.clear()
            self._set_output(_STATUS_GROUPS[Status.CRC_ERROR], reply=True)
            return
        if len(fifo) >= count:
            self._pending = bytes(fifo[:count])
            fifo.clear()

    def _set_output(self, response: bytes, *, reply: bool) -> None:
        self._out = response
        # Corrupted twin served on a corrupted read pass: flip bits in the CRC's high byte.
        self._out_bad = response[:-1] + bytes((response[-1] ^ 0xA5,))
        self._out_is_reply = reply
        self._ptr = 0
        self._corrupt_pass = False
        self.last_status = response[1] if len(response) > 1 else None

    def _enter_idle(self) -> None:
        # TempKey, RNG seed, SHA context, MDB, auth state survive idle (§1.9).
        self.power = IDLE
        self._fifo.clear()
        self._pending = None

    def _enter_sleep(self) -> None:
        self.power = ASLEEP
        self._fifo.clear()
        self._pending = None
        self.vol = Volatile()
        self._latch_address()

    def watchdog_expire(self) -> None:
        """Watchdog fired (or was injected): sleep, losing all volatile state (§1.8, §1.9)."""
        self._enter_sleep()

    def selftest_failure(self, mask: int) -> None:
        """Enter the self-test Failure state now (or right after the next wake)."""
        if self.power == AWAKE:
            self.selftest_register |= mask
        else:
            self._selftest_armed |= mask

    def _latch_address(self) -> None:
        """Re-read the I2C address at power-up and sleep (§1.1: byte 85 takes effect then)."""
        with self.state_file.transaction() as txn:
            cfg = self.config(txn.state.config)
        addr8 = cfg.raw[CFG_I2C_ADDRESS]
        if cfg.raw[CFG_CHIP_MODE] & 0x01 and cfg.raw[CFG_USER_EXTRA_ADD]:
            addr8 = cfg.raw[CFG_USER_EXTRA_ADD]
        self.address7 = addr8 >> 1

    def _watchdog_s(self) -> float:
        if self._watchdog_override is not None:
            return self._watchdog_override
        if self._cfg is not None and self._cfg.raw[CFG_CHIP_MODE] & 0x04:
            return WATCHDOG_LONG_S
        return WATCHDOG_S

    # ================================================================ command execution =====
    def config(self, raw: bytes | bytearray) -> Cfg:
        """Decoded config zone, rebuilt only when the bytes changed."""
        cfg = self._cfg
        if cfg is None or cfg.raw != raw:
            cfg = self._cfg = Cfg(raw)
        return cfg

    def random_bytes(self, n: int) -> bytes:
        return self._rng(n)

    def exec_time_s(self, opcode: int) -> float:
        """Modelled execution time at the clock divider of ChipMode (config byte 19 bits 7:3)."""
        divider = self._cfg.raw[CFG_CHIP_MODE] & CLOCK_DIVIDER_MASK if self._cfg else CLOCK_M0
        table = self._exec_s.get(divider)
        if table is None:
            self.note_not_modelled(f"ChipMode clock divider 0x{divider:02X} (timed as M2)")
            table = self._exec_slowest
        return table[opcode]

    def note_not_modelled(self, what: str) -> None:
        """Record (and log once per kind) something the emulator does not model."""
        count = self.not_modelled.get(what)
        if count is None:
            if len(self.not_modelled) >= 256:
                return  # bounded: a client cannot grow this without limit
            log.warning("not modelled: %s", what)
            count = 0
        self.not_modelled[what] = count + 1

    def check_gate(self, opcode: int, selftest_exempt: bool) -> None:
        if self.selftest_register and not selftest_exempt:
            raise CmdError(Status.SELFTEST_ERROR, "chip is in self-test failure state")
        remaining = self.watchdog_deadline - self.clock.monotonic()
        if remaining < self.exec_time_s(opcode):
            raise CmdError(Status.WATCHDOG_ABOUT_TO_EXPIRE, "watchdog about to expire")

    def _execute(self, packet: bytes) -> tuple[bytes, float]:
        """Run one complete group; returns (response group, busy seconds)."""
        if not crc.check(packet):
            # CRC errors beat every other error and leave everything untouched (§2).
            return _STATUS_GROUPS[Status.CRC_ERROR], 0.0
        opcode, p1 = packet[1], packet[2]
        p2 = packet[3] | (packet[4] << 8)
        data = packet[5:-2]
        result: bytes | int | None
        with self.state_file.transaction() as txn:
            state = txn.state
            ctx = Exec(self, state, self.config(state.config), opcode, p1, p2, data)
            handler = HANDLERS.get(opcode)
            try:
                if handler is None:
                    raise CmdError(Status.PARSE_ERROR, f"unknown opcode 0x{opcode:02X}")
                result = handler(ctx)
                if not ctx.gated:  # pragma: no cover - a handler bug, not a chip behaviour
                    raise AssertionError(f"handler for 0x{opcode:02X} skipped the gate")
                status = 0 if result is None or isinstance(result, bytes) else int(result)
            except CmdError as err:
                status = result = int(err.status)
                if opcode == Opcode.SHA:
                    self.vol.sha = None  # an error ends the SHA sequence (§4.11)
            if ctx.dirty:
                txn.dirty = True
        if self.strict and opcode in _MDB_CONSUMERS and status not in _NOT_RUN:
            self.vol.mdb_valid = False
        response = _group(result) if isinstance(result, bytes) else _STATUS_GROUPS[status]
        return response, self.exec_time_s(opcode)
