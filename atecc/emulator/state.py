"""The emulated chip's EEPROM, persisted in one JSON file per chip, shared safely between processes.

Owns: the on-disk format, atomic writes, and the inter-process lock. It holds only what the real
chip keeps without power (config, OTP, data slots, private-key validity, counters); volatile state
(TempKey, message digest buffer, SHA context, RNG seed flags) lives in ``chip.py`` and is never
written here.

Concurrency: :meth:`StateFile.transaction` takes an exclusive ``flock`` on ``<state>.lock`` for the
duration of one chip command, re-reads the file if another process replaced it since we last
looked, and, if the command changed anything, writes a temp file, fsyncs it, renames it over the
state file and fsyncs the directory. A process killed at any point leaves either the old or the
new file, never a mixture. Mode is 0600: the file holds private keys.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from atecc.constants import CONFIG_ZONE_SIZE, OTP_ZONE_SIZE, SLOT_COUNT, slot_size
from atecc.emulator import counters as counter_encoding
from atecc.fileio import FileLock, atomic_write, read_limited
from atecc.record import field, record

FORMAT_VERSION = 1


class StateFileError(OSError):
    """The state file is missing, unreadable or not a chip state of a version we understand."""


@record
class ChipState:
    """Non-volatile contents of one chip.

    ``slots[n]`` has exactly ``slot_size(n)`` bytes. Private keys are stored in slots 0-7 as the
    chip does (4 zero pad bytes followed by the 32-byte big-endian scalar); ``key_valid[n]`` says
    whether slot ``n`` holds a valid private key (for P-256 private slots) or a validated public
    key (public slots with PubInfo = 1). The two monotonic counters live where the chip keeps
    them, in config bytes 52-67 (:mod:`atecc.emulator.counters`); :attr:`counters` decodes them.
    """

    profile: str
    config: bytearray
    otp: bytearray = field(default_factory=lambda: bytearray(OTP_ZONE_SIZE))
    slots: list[bytearray] = field(
        default_factory=lambda: [bytearray(slot_size(n)) for n in range(SLOT_COUNT)]
    )
    key_valid: list[bool] = field(default_factory=lambda: [False] * SLOT_COUNT)

    def __post_init__(self) -> None:
        if len(self.config) != CONFIG_ZONE_SIZE or len(self.otp) != OTP_ZONE_SIZE:
            raise StateFileError("config zone must be 128 bytes and OTP zone 64 bytes")
        if len(self.slots) != SLOT_COUNT or any(
            len(s) != slot_size(n) for n, s in enumerate(self.slots)
        ):
            raise StateFileError("data zone slots have the wrong sizes")
        if len(self.key_valid) != SLOT_COUNT:
            raise StateFileError("key_valid needs 16 entries")

    @property
    def counters(self) -> list[int]:
        """The two monotonic counters' values (decoded from the config zone)."""
        return [counter_encoding.read(self.config, n) for n in (0, 1)]

    def set_counter(self, counter_id: int, value: int) -> None:
        counter_encoding.write(self.config, counter_id, value)

    def to_json(self) -> dict[str, object]:
        return {
            "format": "atecc608-emulator-state",
            "version": FORMAT_VERSION,
            "profile": self.profile,
            "config": self.config.hex(),
            "otp": self.otp.hex(),
            "slots": [s.hex() for s in self.slots],
            "key_valid": list(self.key_valid),
            "counters": self.counters,  # informative: the config zone holds them
        }

    @classmethod
    def from_json(cls, doc: object) -> ChipState:
        if not isinstance(doc, dict) or doc.get("format") != "atecc608-emulator-state":
            raise StateFileError("not an ATECC608 emulator state file")
        if doc.get("version") != FORMAT_VERSION:
            raise StateFileError(f"unsupported state file version {doc.get('version')!r}")
        try:
            state = cls(
                profile=str(doc["profile"]),
                config=bytearray.fromhex(doc["config"]),
                otp=bytearray.fromhex(doc["otp"]),
                slots=[bytearray.fromhex(s) for s in doc["slots"]],
                key_valid=[bool(v) for v in doc["key_valid"]],
            )
            stored = [int(c) for c in doc.get("counters", [0, 0])]
            if len(stored) != 2:
                raise ValueError("counters needs 2 entries")
            # Files written before the counters moved into the config zone kept them only here.
            for n, value in enumerate(stored):
                if value > state.counters[n]:
                    state.set_counter(n, value)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"corrupt state file: {exc}") from exc
        return state

    def copy(self) -> ChipState:
        return ChipState.from_json(self.to_json())


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    # Every save renames a new file into place, so the inode changes on every commit; mtime and
    # size are belt and braces for filesystems that recycle inode numbers quickly.
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)


class StateFile:
    """One chip's state file plus its lock file ``<path>.lock``.

    Use :meth:`transaction` around every command: it yields the current :class:`ChipState`,
    and writes it back if the caller marks it dirty via the yielded handle's ``dirty`` flag.
    Thread-safe within a process; exclusive across processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._path_str = str(self.path)  # os.stat(str) skips pathlib's per-call overhead
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._state: ChipState | None = None
        self._seen: tuple[int, int, int, int] | None = None
        #: Held around each command (re-entrant, fork-safe), across processes.
        self._lock = FileLock(self.lock_path)

    # -- creation -----------------------------------------------------------------------------
    @staticmethod
    def create(path: str | os.PathLike[str], state: ChipState, *, overwrite: bool = False) -> None:
        """Write a new state file (used by the factory). Refuses to replace one unless asked."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise StateFileError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, state)

    # -- access -------------------------------------------------------------------------------
    def load(self) -> ChipState:
        """Read the file now (no lock); for tools that only look."""
        return _read(self.path)

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """Hold the chip for one command: lock, refresh, yield, save if dirty, unlock.

        A plain class rather than a generator context manager: the emulator opens one per chip
        command, and the generator machinery cost more than the lock and the ``stat`` together.
        """
        return _TransactionCM(self)

    def _begin(self) -> Transaction:
        self._lock.acquire()
        try:
            return Transaction(self._refresh())
        except BaseException:
            self._lock.release()
            raise

    def _finish(self, txn: Transaction, failed: bool) -> None:
        try:
            if failed:
                # A failed command must not leave half-applied changes behind in memory.
                self._state = None
                self._seen = None
            elif txn.dirty:
                _atomic_write(self.path, txn.state)
                self._seen = _fingerprint(os.stat(self._path_str))
        finally:
            self._lock.release()

    def close(self) -> None:
        self._lock.close()

    # -- internals ----------------------------------------------------------------------------
    def _refresh(self) -> ChipState:
        try:
            seen = _fingerprint(os.stat(self._path_str))
        except OSError as exc:
            raise StateFileError(f"cannot read chip state {self.path}: {exc.strerror}") from exc
        if self._state is None or seen != self._seen:
            self._state = _read(self.path)
            self._seen = seen
        return self._state


class _TransactionCM:
    __slots__ = ("_file", "_txn")

    def __init__(self, state_file: StateFile) -> None:
        self._file = state_file

    def __enter__(self) -> Transaction:
        self._txn = self._file._begin()
        return self._txn

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._file._finish(self._txn, exc_type is not None)


@record
class Transaction:
    """What :meth:`StateFile.transaction` yields: the state and a flag to request a save."""

    state: ChipState
    dirty: bool = False


#: Largest state file read (a chip's state is a few kilobytes of JSON).
MAX_STATE_BYTES = 1024 * 1024


def _read(path: Path) -> ChipState:
    try:
        raw = read_limited(path, max_bytes=MAX_STATE_BYTES)
    except FileNotFoundError as exc:
        raise StateFileError(f"no chip state at {path}") from exc
    except PermissionError as exc:
        raise StateFileError(f"cannot read chip state {path}: permission denied") from exc
    except OSError as exc:  # FileRefusedError (FIFO, device, too large) included
        raise StateFileError(f"cannot read chip state {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StateFileError(f"cannot read chip state {path}: {exc}") from exc
    return ChipState.from_json(doc)


def _atomic_write(path: Path, state: ChipState) -> None:
    atomic_write(path, json.dumps(state.to_json(), indent=1).encode())
