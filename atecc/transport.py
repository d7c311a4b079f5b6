"""Byte transport to one ATECC608 on an I2C bus: wake, idle, sleep, command execution, locking.

Owns: the host side of chip §1 -- the wake sequence (§1.3), the word-address bytes (§1.4),
writing a command packet as one Stop-terminated write, polling for the reply while the chip is
busy (§1.8), reading and CRC-checking the reply group (§1.6, §1.7), bounded retries, and the
inter-process bus lock (ARCHITECTURE.md §1, §6).

Must not: know what a command means (``commands.py`` builds packets, ``device.py`` sequences them)
or import ``smbus2`` at module level (``i2c.py`` builds the messages, lazily).

The bus is anything with ``i2c_rdwr(*msgs)`` and ``close()``: ``smbus2.SMBus`` on hardware or
``atecc.emulator.bus.EmulatedBus``. Optional ``bus.clock`` (``monotonic()``/``sleep()``) replaces
the real clock, so waits cost nothing on the emulator's virtual clock; optional ``bus.lock_path``
names the lock file when the caller gives none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from atecc import i2c
from atecc.constants import (
    CLOCK_M0,
    MAX_GROUP_COUNT,
    MIN_GROUP_COUNT,
    STATUS_GROUP_COUNT,
    WAKE_HIGH_S,
    WATCHDOG_MIN_S,
    Opcode,
    Status,
    WordAddress,
    exec_time_max_s,
)
from atecc.crc import check as crc_check
from atecc.errors import (
    BusTimeout,
    ChipCrcError,
    NoDevice,
    ResponseCrcError,
    ResponseFormatError,
    SelfTestError,
    TransportError,
)
from atecc.fileio import FileLock
from atecc.lazylog import DEBUG, get_logger
from atecc.packet import Command, parse_response

log = get_logger(__name__)

#: errno values an adapter uses for "no ACK" (chip §1.10): busy, asleep, idle or absent chip.
NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO, errno.EIO})

#: General-call address the wake pulse is sent to (chip §1.3 step 2).
WAKE_ADDRESS = 0x00
#: Data byte of the wake write. The wake itself is the address byte 0x00: SDA low for eight bit
#: times, then released for the acknowledge slot -- the rising edge after >= tWLO low that the
#: datasheet asks for. Nobody acknowledges, so the master stops and this byte never reaches the
#: wire, unless another device on the bus answers general calls: then the I2C-bus specification
#: (§3.1.13) gives 0x06 (reset) and 0x04 (re-program the address) a meaning and forbids 0x00,
#: while 0x01 (a hardware general call) is ignored by devices that do not implement it.
#: cryptoauthlib sends 0x01 for the same reason.
WAKE_DATA = b"\x01"
#: Read polls while the chip is busy: cryptoauthlib polls every 2 ms; 1.5 ms halves its latency
#: cost while keeping bus traffic trivial (a NACKed read is one address byte). One poll is also
#: placed exactly at the command's worst-case time, by which the chip is done: a command that
#: takes its full time is never picked up up to an interval late (the average cost was half an
#: interval per command, ~2.3 ms of a 158 ms signature).
POLL_INTERVAL_S = 0.0015
#: First poll after this fraction of the command's worst-case time. The 608's typical times are
#: not public (chip §8, [U]); the 508A's typical/max ratios are 0.1-0.8, so 0.25 is a point where
#: most commands are not yet done but polling has not wasted much.
FIRST_POLL_FRACTION = 0.25
#: Slack past the worst-case execution time before declaring the chip stuck.
EXEC_MARGIN_S = 0.05
#: Budget per wake period (chip §1.8: "budget <= ~0.7 s"); past it we refresh the watchdog with
#: idle + wake, which keeps TempKey, the RNG seed and the SHA context (chip §1.9).
WATCHDOG_BUDGET_S = WATCHDOG_MIN_S
#: After this long from the wake pulse the chip has certainly slept (tWATCHDOG max 1.7 s).
WATCHDOG_MAX_S = 1.7
#: Wake attempts while the read after the pulse is NACKed (cryptoauthlib: rx_retries = 20).
WAKE_ATTEMPTS = 20
#: ``time.sleep`` returns ~0.05-0.1 ms late (timer slack, scheduling). A wait that ends where the
#: chip is known to be ready (tWHI after a wake, a command's worst-case time) sleeps this much
#: less and spins the rest on the clock: four such waits per signature otherwise cost ~0.3 ms.
SPIN_S = 0.0002


class Clock(Protocol):
    """Time source; the emulator supplies a virtual one in ``fast`` timing."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _RealClock:
    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


def _runs_by_itself(clock: Any) -> bool:
    """False for a virtual clock (the emulator's ``fast`` timing), whose time moves only when
    someone sleeps or calls its ``advance``: spinning on it would never end."""
    return not hasattr(clock, "advance")


class Transport(Protocol):
    """What :class:`atecc.device.Device` needs from a transport (ARCHITECTURE.md §3)."""

    def wake(self) -> None: ...

    def idle(self) -> None: ...

    def sleep(self) -> None: ...

    def execute(self, command: Command, *, expected_len: int | None) -> bytes: ...

    def transfer_raw(self, packet: bytes) -> bytes: ...

    def lock(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


def _is_nack(exc: OSError) -> bool:
    return exc.errno in NACK_ERRNOS


class I2CTransport:
    """Talks the ATECC608 I2C protocol over ``bus`` to the chip at ``address7``.

    :param bus: object with ``i2c_rdwr(*msgs)`` and ``close()``.
    :param address7: the chip's 7-bit I2C address (0x60 generic, 0x35 Trust&GO TLS).
    :param lock_path: file to ``flock`` around each :meth:`lock` block; default ``bus.lock_path``
        if the bus has one, else no inter-process lock (only the in-process one).
    :param retries: bound for each kind of retry (NACKed command write, reply re-read after a CRC
        error, command resend after a CRC error on either side).
    """

    def __init__(
        self,
        bus: Any,
        address7: int,
        *,
        lock_path: str | os.PathLike[str] | None = None,
        retries: int = 3,
    ) -> None:
        if not 0x08 <= address7 <= 0x77:
            raise ValueError(f"7-bit I2C address 0x{address7:02X} outside 0x08..0x77")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.bus = bus
        self.address7 = address7
        self.retries = retries
        self.clock: Clock = getattr(bus, "clock", None) or _RealClock()
        self._spin = _runs_by_itself(self.clock)
        if lock_path is None:
            lock_path = getattr(bus, "lock_path", None)
        self.lock_path: Path | None = Path(lock_path) if lock_path is not None else None
        self.awake = False
        #: ChipMode byte (config byte 19) once known: its clock divider (bits 7:3) sets the
        #: chip's execution times. None until someone reads the config zone (``Device`` does);
        #: meanwhile the poll deadline allows for the slowest divider (M2: Sign 665 ms).
        self.chip_mode: int | None = None
        #: Clock time of the last successful wake pulse; the watchdog counts from it.
        self.wake_time = 0.0
        #: Inter-process lock around each transaction; a process-local one without a lock path.
        self._lock: FileLock | threading.RLock = (
            FileLock(self.lock_path) if self.lock_path is not None else threading.RLock()
        )

    # -- raw bus helpers ---------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self.bus.i2c_rdwr(i2c.write_msg(self.address7, data))

    def _read(self, n: int) -> bytes:
        msg = i2c.read_msg(self.address7, n)
        self.bus.i2c_rdwr(msg)
        return i2c.msg_bytes(msg)

    def _wait_until(self, when: float) -> None:
        """Return at ``when`` on the bus clock, not ``time.sleep``'s slack later."""
        clock = self.clock
        left = when - clock.monotonic()
        if not self._spin:
            clock.sleep(left)
            return
        if left > SPIN_S:
            clock.sleep(left - SPIN_S)
        while clock.monotonic() < when:
            pass

    def _write_word(self, word: int) -> bool:
        """Send a lone word-address byte; False when NACKed (e.g. the chip already sleeps)."""
        try:
            self._write(bytes((word,)))
        except OSError as exc:
            if not _is_nack(exc):
                raise TransportError(f"I2C write failed: {exc}") from exc
            return False
        return True

    # -- power states (chip §1.2-§1.4) -----------------------------------------------------------
    def wake(self) -> None:
        """Wake the chip and check its wake reply ``[04 11 CRC]`` by CRC and status byte.

        :raises SelfTestError: the wake reply carries status 0x07 (power-on self test failed).
        :raises NoDevice: nothing answered after :data:`WAKE_ATTEMPTS` pulses.
        """
        stale_replies = 0
        for _ in range(WAKE_ATTEMPTS):
            try:
                # The 0x00 address byte holds SDA low for 8+ bit times (>= 60 us at 100 kHz);
                # nobody ACKs it, so the OSError is the expected outcome (chip §1.3 step 2).
                self.bus.i2c_rdwr(i2c.write_msg(WAKE_ADDRESS, WAKE_DATA))
            except OSError:
                pass
            pulse = self.clock.monotonic()
            self._wait_until(pulse + WAKE_HIGH_S)
            try:
                reply = self._read(STATUS_GROUP_COUNT)
            except OSError as exc:
                if not _is_nack(exc):
                    raise TransportError(f"I2C read failed during wake: {exc}") from exc
                continue  # not awake yet: pulse again (chip §1.3 step 5)
            ok = reply[0] == STATUS_GROUP_COUNT and check_crc(reply)
            if ok and reply[1] == Status.WAKE_OK:
                self.awake = True
                self.wake_time = pulse
                return
            if ok and reply[1] == Status.SELFTEST_ERROR:
                self.awake = True
                self.wake_time = pulse
                raise SelfTestError()
            # The chip was already awake and we read whatever its output buffer held (a stale
            # reply, or 0xFF past its end): idle it, then wake again (chip §1.3 step 7).
            stale_replies += 1
            if stale_replies > self.retries + 1:
                raise ResponseFormatError(f"chip does not give a wake reply: {reply.hex()}")
            self._write_word(WordAddress.IDLE)
        self.awake = False
        raise NoDevice(f"no ATECC608 answers at I2C address 0x{self.address7:02X}")

    def idle(self) -> None:
        """Word address 0x02: idle; TempKey, RNG seed and SHA context survive (chip §1.9)."""
        self.awake = False
        self._write_word(WordAddress.IDLE)

    def sleep(self) -> None:
        """Word address 0x01: sleep; every volatile register is cleared (chip §1.4)."""
        self.awake = False
        self._write_word(WordAddress.SLEEP)

    def _refresh_watchdog(self, opcode: int) -> None:
        # A sequence must finish inside one watchdog period; rather than making every caller
        # count time, restart the watchdog when the next command might not fit. Idle + wake keeps
        # the state the sequence depends on (TempKey, message digest buffer, SHA context).
        if not self.awake:
            return
        elapsed = self.clock.monotonic() - self.wake_time
        expected = exec_time_max_s(opcode, self.chip_mode or CLOCK_M0)
        if elapsed + expected + EXEC_MARGIN_S > WATCHDOG_BUDGET_S:
            self.idle()
            self.wake()

    # -- commands --------------------------------------------------------------------------------
    def execute(self, command: Command, *, expected_len: int | None) -> bytes:
        """Send ``command``, wait for and return its output payload (no COUNT, no CRC).

        ``expected_len`` is the output length on success (0 for status-only commands, ``None``
        for "any"), passed to :func:`atecc.packet.parse_response`.

        :raises StatusError: subclass for the chip's status byte (after resending on 0xFF).
        :raises BusTimeout: the chip never acknowledged (busy past its limit, or asleep).
        :raises ResponseCrcError: every re-read and resend came back corrupted.
        """
        packet = command.encode()
        for attempt in range(self.retries + 1):
            try:
                group = self._transfer(packet)
            except ResponseCrcError:
                if attempt == self.retries:
                    raise
                continue  # resend the whole command (chip §2: ATCA_RX_CRC_ERROR → resend)
            try:
                # _transfer returns only groups whose COUNT and CRC it has checked.
                return parse_response(group, expected_len, crc_checked=True)
            except ChipCrcError:
                # The chip saw a corrupted command and executed nothing: resending is safe.
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def transfer_raw(self, packet: bytes) -> bytes:
        """Send an already encoded packet (COUNT..CRC) and return the whole reply group.

        The group is CRC-checked (re-read on a mismatch) but its status is not interpreted.
        For ``atecc raw``; no resend, since a hand-made command may not be idempotent.
        """
        if len(packet) < 7 or len(packet) > MAX_GROUP_COUNT or packet[0] != len(packet):
            raise ValueError("raw packet needs COUNT == its length, 7..155 bytes")
        return self._transfer(bytes(packet))

    def _transfer(self, packet: bytes) -> bytes:
        """Write one packet, poll, read the reply group and CRC-check it (re-reading if needed)."""
        opcode = packet[1]
        self._refresh_watchdog(opcode)
        self._send(packet)
        sent = self.clock.monotonic()
        # Poll from a fraction of the time at the known divider (M0 when unknown, the fast
        # common case); give up only past the worst case at the known divider, or at the
        # slowest documented one when the divider is unknown (chip §1.8, §3.1 ChipMode).
        expected = exec_time_max_s(opcode, self.chip_mode or CLOCK_M0)
        deadline = sent + exec_time_max_s(opcode, self.chip_mode) + EXEC_MARGIN_S
        if self.awake:
            deadline = min(deadline, max(self.wake_time + WATCHDOG_MAX_S, sent + POLL_INTERVAL_S))
        self.clock.sleep(expected * FIRST_POLL_FRACTION)
        # One poll exactly at the worst case at the known divider: a chip that takes all of
        # it is read then (one at a slower, unknown divider just NACKs it, and polling goes on).
        group = self._poll_group(deadline, _reply_hint(packet), sent + expected)
        if log.isEnabledFor(DEBUG):  # ``atecc -v``: one line per command
            name = Opcode(opcode).name if opcode in Opcode._value2member_map_ else hex(opcode)
            log.debug("%s: %d-byte reply", name, len(group))
        for _ in range(self.retries):
            if check_crc(group):
                return group
            # A corrupted reply: rewind the output buffer with word address 0x00 and read the
            # same bytes again (chip §1.4); the chip does not recompute anything.
            self._send_word_checked(WordAddress.RESET)
            try:
                group = self._read_group(len(group) if MIN_GROUP_COUNT <= len(group) else 4)
            except OSError as exc:
                if not _is_nack(exc):
                    raise TransportError(f"I2C read failed: {exc}") from exc
                # Nobody answers the re-read (the chip fell asleep meanwhile): the reply is
                # lost, so the caller resends the command from a wake.
                self.awake = False
                raise ResponseCrcError(
                    "chip stopped answering while its reply was re-read"
                ) from exc
        if check_crc(group):
            return group
        raise ResponseCrcError("reply CRC mismatch after re-reading")

    def _send(self, packet: bytes) -> None:
        data = bytes((WordAddress.COMMAND,)) + packet
        for attempt in range(self.retries + 1):
            try:
                self._write(data)  # ONE message: the Stop starts execution (chip §1.10)
                return
            except OSError as exc:
                if not _is_nack(exc):
                    raise TransportError(f"I2C write failed: {exc}") from exc
                if attempt == self.retries:
                    self.awake = False
                    raise BusTimeout("chip did not acknowledge the command write") from exc
                self.clock.sleep(POLL_INTERVAL_S)

    def _send_word_checked(self, word: int) -> None:
        if not self._write_word(word):
            raise BusTimeout(f"chip did not acknowledge word address 0x{word:02X}")

    def _poll_group(self, deadline: float, hint: int, done_by: float) -> bytes:
        """Read the reply, polling while the chip NACKs; one poll lands exactly on ``done_by``
        (the worst-case execution time), then polling goes on until ``deadline``."""
        while True:
            try:
                return self._read_group(hint)
            except OSError as exc:
                if not _is_nack(exc):
                    raise TransportError(f"I2C read failed: {exc}") from exc
                now = self.clock.monotonic()
                if now >= deadline:
                    # Either stuck busy or asleep (watchdog); either way volatile state is
                    # unknown and the caller must start over from a wake.
                    self.awake = False
                    timeout = BusTimeout("chip stayed busy past the command's time limit")
                    # The command was written, so it may have run: Device redoes a sequence
                    # after this only when the sequence is idempotent.
                    timeout.after_send = True  # type: ignore[attr-defined]
                    raise timeout from exc
                if now < done_by <= now + POLL_INTERVAL_S:
                    self._wait_until(done_by)
                else:
                    self.clock.sleep(min(POLL_INTERVAL_S, max(deadline - now, 0.0)))

    def _read_group(self, hint: int) -> bytes:
        """Read one reply group: ``hint`` bytes at once, then the rest if COUNT says more.

        Reading the expected length in one transfer saves a bus round trip over cryptoauthlib's
        COUNT-then-rest; a shorter (status) group is simply cut at COUNT -- bytes past the end
        of the output buffer read as 0xFF and are discarded (chip §1.6).
        """
        data = self._read(hint)
        count = data[0]
        if not MIN_GROUP_COUNT <= count <= MAX_GROUP_COUNT:
            # Not a group at all; return it so the CRC path re-reads (count is garbage).
            return data
        if count <= len(data):
            return data[:count]
        return data + self._read(count - len(data))

    # -- locking (ARCHITECTURE.md §6) ---------------------------------------------------------
    def lock(self) -> contextlib.AbstractContextManager[Any]:
        """Hold the chip for one Device transaction: ``flock(lock_path)`` (a :class:`FileLock`).

        Re-entrant within a thread; safe across ``fork()`` (the child starts with the lock free).
        """
        return self._lock

    def close(self) -> None:
        """Close the lock descriptor and the bus."""
        if isinstance(self._lock, FileLock):
            self._lock.close()
        self.bus.close()


def check_crc(group: bytes) -> bool:
    """True when ``group`` is a well-formed reply group (COUNT matches, CRC matches)."""
    return MIN_GROUP_COUNT <= len(group) == group[0] <= MAX_GROUP_COUNT and crc_check(group)


def _reply_hint(packet: bytes) -> int:
    """How many bytes to read first for the reply to ``packet`` (its likely full length)."""
    return _REPLY_HINT.get(packet[1], STATUS_GROUP_COUNT)


# Likely reply group length per opcode (output + COUNT + CRC); a status reply is shorter and is
# cut at its COUNT, a longer one is completed by a second read.
_REPLY_HINT: dict[int, int] = {
    0x02: 35,  # Read (32-byte reads are the common case)
    0x1B: 35,  # Random
    0x16: 35,  # Nonce (random mode; pass-through answers a 4-byte status)
    0x40: 67,  # GenKey
    0x41: 67,  # Sign
    0x43: 35,  # ECDH
    0x47: 35,  # SHA end (start/update answer a status)
    0x51: 19,  # AES
    0x30: 7,  # Info
    0x24: 7,  # Counter
}
