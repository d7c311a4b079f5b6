"""High-level ATECC608 operations: one public method = one locked chip transaction.

Owns: sequencing commands (``commands.py``) over a :class:`~atecc.transport.Transport` into the
operations the PKCS#11 backend, the CLI and the certificate code need (ARCHITECTURE.md §3), and
the recovery rules around them.

Every public method:

1. holds ``transport.lock()`` (thread RLock + inter-process ``flock``) for its whole duration, so
   a Random → Nonce → Sign sequence is never interleaved with another process's commands;
2. wakes the chip, runs its commands, and idles it afterwards -- also after a status error, since
   the chip's state is then known. After a failure that leaves the bus state unknown (no ACK,
   corrupted replies, a Python exception mid-sequence) it sends sleep instead, so that no half-set
   TempKey or SHA context survives into the next transaction (chip §1.9);
3. keeps the work inside one watchdog period: the transport refreshes the watchdog with idle+wake
   when a command might not fit, and if the chip still reports ``WatchdogAboutToExpire`` (0xEE) or
   turns out asleep (no ACK), the whole sequence is redone once from a fresh wake -- only when the
   failed command cannot have executed, so non-idempotent commands are never run twice;
4. retries an ECC fault (0x05, "retry usually succeeds", chip §2) a bounded number of times for
   Sign, GenKey, ECDH and Verify.

Must not: build packets by hand (``commands.py``), touch the bus (``transport.py``), or import
``cryptoki``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from atecc import commands as cmd
from atecc.config_zone import ConfigZone
from atecc.constants import (
    BLOCK_SIZE,
    CFG_CHIP_MODE,
    CONFIG_ZONE_SIZE,
    DIGEST_SIZE,
    OTP_ZONE_SIZE,
    PUBLIC_KEY_SIZE,
    WORD_SIZE,
    Zone,
    slot_size,
)
from atecc.crc import crc16
from atecc.errors import (
    AteccError,
    BusTimeout,
    EccFault,
    ExecutionError,
    ParseError,
    StatusError,
    VerifyMiscompare,
    WatchdogAboutToExpire,
)
from atecc.lazylog import get_logger
from atecc.packet import Command
from atecc.transport import Transport

log = get_logger(__name__)

if TYPE_CHECKING:
    import hashlib

T = TypeVar("T")

#: Extra attempts after an ECC fault (0x05) for Sign/GenKey/ECDH/Verify.
ECC_FAULT_RETRIES = 2

#: Config-zone words written one by one in ``write_config_zone`` (chip §3.1): block 0 words 4-7
#: (bytes 16-31; bytes 0-15 are factory-set) and block 2 except word 5 (bytes 84-87: UserExtra,
#: UserExtraAdd and the lock bytes, which only UpdateExtra/Lock change). Blocks 1 and 3 are
#: written whole.
_CONFIG_WORDS_BLOCK0 = (4, 5, 6, 7)
_CONFIG_WORDS_BLOCK2 = (0, 1, 2, 3, 4, 6, 7)


#: Nonce pass-through of 32 bytes into the message digest buffer, as ``cmd.nonce_load`` builds it
#: (checked at import so the shortcut in :meth:`Device.sign_digest` cannot drift from it).
_NONCE_LOAD_MDB, _NONCE_LOAD_MDB_MODE = (lambda c: (int(c.opcode), int(c.param1)))(
    cmd.nonce_load(bytes(32), target=cmd.NonceTarget.MSG_DIGEST_BUFFER)[0]
)


class Device:
    """An ATECC608 reached through ``transport``.

    :param transport: an :class:`~atecc.transport.I2CTransport` (or anything with its methods).
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: None = not probed yet; whether SHA context read/write (modes 6/7) works on this chip.
        self._sha_context_supported: bool | None = None
        #: slot -> (Random, Sign) commands of :meth:`sign_digest`, which never change.
        self._sign_plans: dict[int, tuple[tuple[Command, int | None], ...]] = {}

    # -- transaction machinery -------------------------------------------------------------------
    def _run(self, body: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``body`` (which issues commands via :meth:`_exec`) as one locked transaction."""
        tr = self.transport
        with tr.lock():
            for attempt in (0, 1):
                try:
                    tr.wake()
                    result = body()
                except (WatchdogAboutToExpire, BusTimeout) as exc:
                    self._quiet(tr.sleep)
                    # 0xEE means "not executed"; a NACKed command write never reached the chip.
                    # A poll timeout after the write is ambiguous, so only idempotent work redoes.
                    not_executed = isinstance(exc, WatchdogAboutToExpire) or not getattr(
                        exc, "after_send", False
                    )
                    if attempt == 0 and (idempotent or not_executed):
                        log.info("chip asleep or out of watchdog time (%s); redoing once", exc)
                        continue
                    raise
                except StatusError:
                    self._quiet(tr.idle)
                    raise
                except BaseException:
                    self._quiet(tr.sleep)
                    raise
                self._quiet(tr.idle)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _quiet(action: Callable[[], None]) -> None:
        # Idle/sleep after the work is done is best effort: the result is already in hand, and a
        # chip that does not ACK idle will fall asleep on its watchdog anyway.
        try:
            action()
        except (AteccError, OSError) as exc:
            log.debug("ignoring failure of %s: %s", getattr(action, "__name__", action), exc)

    def _exec(self, built: tuple[Command, int | None]) -> bytes:
        command, expected = built
        return self.transport.execute(command, expected_len=expected)

    def _ecc_retry(self, body: Callable[[], T]) -> T:
        for attempt in range(ECC_FAULT_RETRIES + 1):
            try:
                return body()
            except EccFault:
                if attempt == ECC_FAULT_RETRIES:
                    raise
                log.info("ECC fault (0x05); retrying (%d)", attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- identity and configuration ----------------------------------------------------------------
    def revision(self) -> bytes:
        """Info revision: 4 bytes, ``00 00 60 02`` on a 608A, ``00 00 60 03``+ on a 608B."""
        return self._run(lambda: self._exec(cmd.info(cmd.InfoMode.REVISION)))

    def serial_number(self) -> bytes:
        """9-byte serial number: config bytes 0-3 || 8-12."""
        block = self._run(lambda: self._exec(cmd.read(Zone.CONFIG, block=0)))
        return block[0:4] + block[8:13]

    def read_config_zone(self) -> bytes:
        """All 128 config bytes (four 32-byte reads; always allowed)."""
        return self._run(self._read_config)

    def _read_config(self) -> bytes:
        config = b"".join(self._exec(cmd.read(Zone.CONFIG, block=b)) for b in range(4))
        self._learn_chip_mode(config)
        return config

    def _learn_chip_mode(self, config: bytes) -> None:
        # ChipMode's clock divider sets how long commands take; the transport times its polls by
        # it (chip §3.1 byte 19). Any config read teaches it; there is no extra command for this.
        if len(config) == CONFIG_ZONE_SIZE and hasattr(self.transport, "chip_mode"):
            self.transport.chip_mode = config[CFG_CHIP_MODE]

    def config_zone(self) -> ConfigZone:
        return ConfigZone(self.read_config_zone())

    def key_valid(self, slot: int) -> bool:
        """Info KeyValid. Which output byte carries the flag is unconfirmed (chip §4.1 [U]), so
        any non-zero byte counts as valid."""
        out = self._run(lambda: self._exec(cmd.info(cmd.InfoMode.KEY_VALID, slot)))
        return any(out)

    def info_state(self) -> bytes:
        """Info State, raw 4 bytes (508A layout assumed, chip §4.1)."""
        return self._run(lambda: self._exec(cmd.info(cmd.InfoMode.STATE)))

    # -- random and keys ------------------------------------------------------------------------
    def random(self) -> bytes:
        """32 random bytes (Random mode 0x00, which also refreshes the EEPROM seed)."""
        return self._run(lambda: self._exec(cmd.random()))

    def gen_key(self, slot: int) -> bytes:
        """Create a new private key in ``slot`` (GenKey 0x04) and return its public key X||Y."""
        built = cmd.gen_key(slot, cmd.GENKEY_MODE_CREATE)
        return self._run(lambda: self._ecc_retry(lambda: self._exec(built)), idempotent=False)

    def get_public_key(self, slot: int) -> bytes:
        """Public key X||Y of the private key in ``slot`` (GenKey 0x00; needs PubInfo)."""
        built = cmd.gen_key(slot, cmd.GENKEY_MODE_PUBLIC)
        return self._run(lambda: self._ecc_retry(lambda: self._exec(built)))

    def priv_write_clear(self, slot: int, scalar: bytes) -> None:
        """Write a private key in plaintext (PrivWrite 0x00; only while the data zone is open)."""
        built = cmd.priv_write(slot, scalar)
        self._run(lambda: self._exec(built))

    def sign_digest(self, slot: int, digest: bytes) -> bytes:
        """ECDSA-sign a 32-byte digest with the key in ``slot``; returns R||S (64 bytes).

        Random(0x00) → Nonce pass-through to the message digest buffer (0x43) → Sign(0xA0),
        all in one wake period, as cryptoauthlib does on a 608 (chip §4.5). The chip signs the
        32 bytes as the hash value itself (no further hashing).
        """
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
        # Random and Sign do not depend on the digest: built once per slot and reused (the
        # builders' enum arithmetic cost as much as the emulated bus transfer of a command).
        fixed = self._sign_plans.get(slot)
        if fixed is None:
            fixed = self._sign_plans[slot] = (
                cmd.random(),
                cmd.sign(slot, source=cmd.MessageSource.MSG_DIGEST_BUFFER),
            )
        rand, sign = fixed
        load = (Command(_NONCE_LOAD_MDB, _NONCE_LOAD_MDB_MODE, 0, bytes(digest)), 0)

        def body() -> bytes:
            # The whole sequence is retried on an ECC fault: whether the MDB survives a failed
            # Sign is not documented (chip §8), so reload it.
            self._exec(rand)
            self._exec(load)
            return self._exec(sign)

        return self._run(lambda: self._ecc_retry(body))

    def verify_external(self, digest: bytes, signature: bytes, public_key: bytes) -> bool:
        """Verify R||S over ``digest`` with the public key X||Y on the chip.

        Nonce(0x43) → Verify(0x22, 0x0004). Returns False on status 0x01 (miscompare).
        """
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
        load = cmd.nonce_load(digest, target=cmd.NonceTarget.MSG_DIGEST_BUFFER)
        verify = cmd.verify_external(signature, public_key)

        def body() -> bool:
            self._exec(load)
            try:
                self._exec(verify)
            except VerifyMiscompare:
                return False
            return True

        return self._run(lambda: self._ecc_retry(body))

    def ecdh(self, slot: int, peer_public_key: bytes) -> bytes:
        """ECDH (mode 0x0C: slot key, clear output) → 32-byte shared x-coordinate."""
        built = cmd.ecdh(slot, peer_public_key, cmd.ECDH_MODE_OUTPUT)
        return self._run(lambda: self._ecc_retry(lambda: self._exec(built)))

    # -- memory ------------------------------------------------------------------------------------
    @staticmethod
    def _zone_size(zone: Zone, slot: int) -> int:
        zone = Zone(zone)
        if zone == Zone.CONFIG:
            return CONFIG_ZONE_SIZE
        if zone == Zone.OTP:
            return OTP_ZONE_SIZE
        return slot_size(slot)

    def read_bytes(self, zone: Zone, slot: int, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` of a zone (``slot`` only matters for data).

        Whole 32-byte blocks are read and sliced; a short last block (slots 0-7 block 1, slots
        9-15 block 2) is read with a 32-byte read too (the chip pads with zeros, chip §3.3), with
        a fallback to 4-byte reads if the chip refuses that.
        """
        zone = Zone(zone)
        size = self._zone_size(zone, slot)
        if offset < 0 or length < 0 or offset + length > size:
            raise ValueError(f"bytes {offset}..{offset + length} outside the zone's {size} bytes")
        if length == 0:
            return b""
        first, last = offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE

        def body() -> bytes:
            blocks = [self._read_block(zone, slot, b, size) for b in range(first, last + 1)]
            data = b"".join(blocks)
            start = offset - first * BLOCK_SIZE
            return data[start : start + length]

        return self._run(body)

    def _read_block(self, zone: Zone, slot: int, block: int, size: int) -> bytes:
        try:
            return self._exec(cmd.read(zone, slot=slot, block=block))
        except ParseError:
            if (block + 1) * BLOCK_SIZE <= size:
                raise
        # Short last block refused as a 32-byte read: read its words (cryptoauthlib's way).
        words = (size - block * BLOCK_SIZE) // WORD_SIZE
        data = b"".join(
            self._exec(cmd.read(zone, slot=slot, block=block, word=w, size=WORD_SIZE))
            for w in range(words)
        )
        return data.ljust(BLOCK_SIZE, b"\x00")

    def write_bytes(self, zone: Zone, slot: int, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (both multiples of 4 bytes).

        A block wholly covered (or, for a short last block, covered up to the slot's end) is
        written with one 32-byte write, zero-padded -- the chip ignores bytes past the slot's
        end (chip §3.3); partially covered blocks are written word by word, which the chip allows
        only where 4-byte writes are (not on secret slots or before the data lock).
        """
        zone = Zone(zone)
        size = self._zone_size(zone, slot)
        if offset % WORD_SIZE or len(data) % WORD_SIZE:
            raise ValueError("offset and length must be multiples of 4 bytes (one word)")
        if offset < 0 or offset + len(data) > size:
            raise ValueError(
                f"bytes {offset}..{offset + len(data)} outside the zone's {size} bytes"
            )
        if not data:
            return
        plan = _write_plan(zone, slot, offset, bytes(data), size)
        self._run(lambda: self._exec_all(plan), idempotent=True)

    def _exec_all(self, plan: list[tuple[Command, int | None]]) -> None:
        for built in plan:
            self._exec(built)

    def read_public_key(self, slot: int) -> bytes:
        """Public key X||Y stored in a 72-byte slot in padded form (chip §3.8)."""
        if slot_size(slot) < 72:
            raise ValueError(f"slot {slot} is too small to hold a public key")
        padded = self.read_bytes(Zone.DATA, slot, 0, 72)
        return padded[4:36] + padded[40:72]

    def write_public_key(self, slot: int, public_key: bytes) -> None:
        """Store X||Y in ``slot`` as ``00000000 X 00000000 Y`` (72 bytes, chip §3.8)."""
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"public key must be 64 bytes, got {len(public_key)}")
        if slot_size(slot) < 72:
            raise ValueError(f"slot {slot} is too small to hold a public key")
        padded = bytes(4) + public_key[:32] + bytes(4) + public_key[32:]
        self.write_bytes(Zone.DATA, slot, 0, padded)

    def write_config_zone(self, config: bytes) -> None:
        """Write config bytes 16..127 from a 128-byte image, as the chip allows (chip §3.1).

        Bytes 0-15 (factory), 84-85 (UpdateExtra only) and 86-87 (Lock only) are not written.
        """
        plan = config_write_plan(config)
        self._run(lambda: self._exec_all(plan))

    # -- locking -----------------------------------------------------------------------------------
    def lock_config(self, crc: int | None = None) -> None:
        """Lock the config zone. With ``crc=None`` the config is read and its CRC sent, so the
        chip refuses if the zone is not what was just read (chip §3.7)."""

        def body() -> None:
            value = crc if crc is not None else crc16(self._read_config())
            self._exec(cmd.lock("config", crc=value))

        self._run(body, idempotent=False)

    def lock_data(self, crc: int | None = None) -> None:
        """Lock the data and OTP zones.

        The summary CRC covers every non-private slot plus the OTP zone (chip §3.7), but before
        the data lock the chip refuses every data/OTP read, so the driver cannot compute it from
        the chip. With ``crc=None`` the no-check mode (param1 bit 7) is used; callers who know
        what they wrote can pass :func:`data_zone_crc` of it.
        """
        self._run(lambda: self._exec(cmd.lock("data", crc=crc)), idempotent=False)

    def lock_slot(self, slot: int) -> None:
        """Lock one slot (KeyConfig.Lockable must be set); irreversible."""
        self._run(lambda: self._exec(cmd.lock("slot", slot=slot)), idempotent=False)

    def update_extra(self, mode: int, value: int) -> None:
        """UpdateExtra: set config byte 84 (mode 0) or 85 (mode 1) once, or mode 2 decrement."""
        self._run(lambda: self._exec(cmd.update_extra(mode, value)), idempotent=False)

    # -- SHA, HMAC, AES ----------------------------------------------------------------------------
    def sha256(self, data: bytes) -> bytes:
        """SHA-256 on the chip: start, 64-byte updates, end (0xC2, output only)."""
        data = bytes(data)
        return self._run(lambda: self._sha_all(cmd.sha_start(), data))

    def hmac_sha256(self, slot: int, data: bytes, *, random_nonce: bool = False) -> bytes:
        """HMAC-SHA256 of ``data`` with the 32-byte key in ``slot`` (SHA HMAC start/update/end).

        ``random_nonce``: first make TempKey random (Nonce random mode, in the same wake), as a
        slot whose KeyConfig has ReqRandom demands before HMAC start (chip §3.5, §4.11).
        """
        data = bytes(data)

        def body() -> bytes:
            if random_nonce:
                self._exec(cmd.nonce_random(os.urandom(20)))
            return self._sha_all(cmd.sha_hmac_start(slot), data)

        return self._run(body)

    def _sha_all(self, start: tuple[Command, int | None], data: bytes) -> bytes:
        self._exec(start)
        tail = self._sha_blocks(data)
        return self._exec(cmd.sha_end(tail))

    def _sha_blocks(self, data: bytes) -> bytes:
        """Send every whole 64-byte block as an update; return the 0..63-byte remainder.

        The remainder goes with End; keeping it below 64 suits both the 608 (End takes 0..64)
        and the 508A rule (0..63), chip §4.11.
        """
        full = len(data) - len(data) % 64
        view = memoryview(data)
        for i in range(0, full, 64):
            self._exec(cmd.sha_update(view[i : i + 64]))
        return data[full:]

    def sha256_stream(self) -> Sha256Stream:
        """A streaming SHA-256 whose state survives between transactions (see the class)."""
        return Sha256Stream(self)

    def aes_encrypt(self, slot: int, block: bytes, key_block: int = 0) -> bytes:
        """AES-128-ECB encrypt one 16-byte block with key ``key_block`` of ``slot``."""
        built = cmd.aes(slot, block, key_block=key_block)
        return self._run(lambda: self._exec(built))

    def aes_decrypt(self, slot: int, block: bytes, key_block: int = 0) -> bytes:
        """AES-128-ECB decrypt one 16-byte block with key ``key_block`` of ``slot``."""
        built = cmd.aes(slot, block, decrypt=True, key_block=key_block)
        return self._run(lambda: self._exec(built))

    def aes_gfm(self, h: bytes, x: bytes) -> bytes:
        """GCM field multiply ``x`` · ``h`` (the GHASH step)."""
        built = cmd.aes_gfm(h, x)
        return self._run(lambda: self._exec(built))

    def aes_ecb_blocks(
        self, slot: int, data: bytes, *, decrypt: bool = False, key_block: int = 0
    ) -> bytes:
        """AES-128-ECB over ``data`` (a multiple of 16 bytes): one AES command per block, all
        in one transaction."""
        data = bytes(data)
        if len(data) % 16:
            raise ValueError("AES-ECB data must be a multiple of 16 bytes")
        plan = [
            cmd.aes(slot, data[i : i + 16], decrypt=decrypt, key_block=key_block)
            for i in range(0, len(data), 16)
        ]
        return self._run(lambda: b"".join(self._exec(built) for built in plan))

    def aes_cbc_encrypt(self, slot: int, iv: bytes, data: bytes, key_block: int = 0) -> bytes:
        """AES-128-CBC encryption of ``data`` (a multiple of 16 bytes) from ``iv``: the chip
        encrypts each block, the host XORs in the chaining value; one transaction."""
        data = bytes(data)
        if len(iv) != 16 or len(data) % 16:
            raise ValueError("AES-CBC takes a 16-byte IV and a multiple of 16 bytes")

        def body() -> bytes:
            chain = bytes(iv)
            out = bytearray()
            for i in range(0, len(data), 16):
                block = bytes(a ^ b for a, b in zip(data[i : i + 16], chain, strict=False))
                chain = self._exec(cmd.aes(slot, block, key_block=key_block))
                out += chain
            return bytes(out)

        return self._run(body)

    def aes_ghash(self, h: bytes, y: bytes, data: bytes) -> bytes:
        """GHASH step over ``data`` (a multiple of 16 bytes) from state ``y``:
        ``y = (y xor X_i) · H`` per block, each multiply by the chip's GFM; one transaction."""
        data = bytes(data)
        if len(h) != 16 or len(y) != 16 or len(data) % 16:
            raise ValueError("GHASH takes a 16-byte H and state and whole 16-byte blocks")

        def body() -> bytes:
            state = bytes(y)
            for i in range(0, len(data), 16):
                x = bytes(a ^ b for a, b in zip(state, data[i : i + 16], strict=False))
                state = self._exec(cmd.aes_gfm(h, x))
            return state

        return self._run(body)

    # -- counters, self test, raw ----------------------------------------------------------------
    def counter_read(self, counter_id: int) -> int:
        out = self._run(lambda: self._exec(cmd.counter(counter_id)))
        return int.from_bytes(out, "little")

    def counter_increment(self, counter_id: int) -> int:
        """Increment a monotonic counter; returns the new value."""
        built = cmd.counter(counter_id, increment=True)
        out = self._run(lambda: self._exec(built), idempotent=False)
        return int.from_bytes(out, "little")

    def selftest(self, tests: int = cmd.SELFTEST_ALL) -> int:
        """Run the self tests in bitmap ``tests``; returns the bitmap of failed tests (0 = ok)."""
        out = self._run(lambda: self._exec(cmd.selftest(tests)))
        return out[0]

    def execute(self, built: tuple[Command, int | None], *, idempotent: bool) -> bytes:
        """One command from :mod:`atecc.commands`, in its own transaction (provisioning sends
        its plan this way, one command at a time); ``idempotent`` allows the redo after a
        watchdog expiry (chip §1.9) that a Write may take and a Lock or GenKey may not."""
        return self._run(lambda: self._exec(built), idempotent=idempotent)

    def raw(self, packet: bytes) -> bytes:
        """Send an encoded packet (COUNT..CRC) in its own transaction; return the reply group."""
        packet = bytes(packet)
        return self._run(lambda: self.transport.transfer_raw(packet), idempotent=False)

    def close(self) -> None:
        self.transport.close()


def config_write_units(config: bytes) -> list[tuple[int, int, int, bytes]]:
    """The pieces of a 128-byte config image the Write command can set, as
    ``(first byte, block, word, data)``: block 0 words 4-7 and block 2 words 0-4, 6, 7 one word at
    a time, blocks 1 and 3 whole (chip §3.1; bytes 0-15, 84-85 and 86-87 are never written)."""
    if len(config) != CONFIG_ZONE_SIZE:
        raise ValueError(f"config image must be 128 bytes, got {len(config)}")
    units = [(w * 4, 0, w, config[w * 4 : w * 4 + 4]) for w in _CONFIG_WORDS_BLOCK0]
    units.append((32, 1, 0, config[32:64]))
    units += [(64 + w * 4, 2, w, config[64 + w * 4 : 68 + w * 4]) for w in _CONFIG_WORDS_BLOCK2]
    units.append((96, 3, 0, config[96:128]))
    return units


def config_write_plan(
    config: bytes, current: bytes | None = None
) -> list[tuple[Command, int | None]]:
    """Write commands that make the chip's config ``config`` (only the units that differ from
    ``current``, when given: rewriting what is already there is idempotent but wears EEPROM)."""
    plan = []
    for start, block, word, data in config_write_units(config):
        if current is not None and current[start : start + len(data)] == data:
            continue
        plan.append(cmd.write(Zone.CONFIG, data, block=block, word=word))
    return plan


def data_zone_crc(config: bytes, slots: list[bytes], otp: bytes) -> int:
    """The summary CRC Lock(data) expects (chip §3.7, [508]): every slot in order, skipping
    slots whose KeyConfig marks an ECC private key, followed by the 64 OTP bytes."""
    zone = ConfigZone(config)
    parts = [
        bytes(s).ljust(slot_size(n), b"\x00")
        for n, s in enumerate(slots)
        if not zone.is_private_key_slot(n)
    ]
    return crc16(b"".join(parts) + bytes(otp))


def _write_plan(
    zone: Zone, slot: int, offset: int, data: bytes, size: int
) -> list[tuple[Command, int | None]]:
    plan: list[tuple[Command, int | None]] = []
    end = offset + len(data)
    for block in range(offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1):
        b_start = block * BLOCK_SIZE
        b_end = min(b_start + BLOCK_SIZE, size)
        lo, hi = max(offset, b_start), min(end, b_end)
        chunk = data[lo - offset : hi - offset]
        if lo == b_start and hi == b_end:
            plan.append(cmd.write(zone, chunk.ljust(BLOCK_SIZE, b"\x00"), slot=slot, block=block))
            continue
        for pos in range(lo, hi, WORD_SIZE):
            word = (pos - b_start) // WORD_SIZE
            piece = data[pos - offset : pos - offset + WORD_SIZE]
            plan.append(cmd.write(zone, piece, slot=slot, block=block, word=word))
    return plan


class Sha256Stream:
    """Streaming SHA-256 across several Device transactions (for PKCS#11 C_DigestUpdate).

    Data is buffered into 64-byte blocks; each :meth:`update` that completes blocks sends them in
    one transaction, and :meth:`digest` sends the remainder with End.

    Between transactions the chip's SHA context would survive an idle (chip §1.9), but on real
    hardware another host process may take the bus in between and run its own SHA start, which
    silently replaces our context -- and holding the bus lock for the whole stream would block
    every other user for as long as the application likes. So the stream never relies on the
    chip keeping it:

    * if the chip supports SHA context read/write (modes 6/7), each transaction restores our saved
      context (or starts), sends the blocks, and saves the context again. Another process's SHA
      in between cannot clobber it;
    * otherwise (the emulator may answer 0x03/0x0F to modes 6/7, chip §7.2) the stream falls
      back to ``hashlib.sha256`` on the host. A plain SHA-256 involves no key, so the result is
      identical; the fallback is restart-safe because no chip state is kept between calls.

    Whether context save/restore works is probed once per :class:`Device`, before any of the
    stream's data has gone to the chip, so switching to the fallback never loses data.
    """

    def __init__(self, device: Device) -> None:
        self._device = device
        self._buffer = bytearray()
        self._context: bytes | None = None
        self._host: hashlib._Hash | None = None
        self._done = False

    def update(self, data: bytes) -> None:
        if self._done:
            raise ValueError("digest() was already called on this stream")
        if self._host is not None:
            self._host.update(data)
            return
        self._buffer += data
        if len(self._buffer) < 64:
            return
        supported = self._device._sha_context_supported
        if supported is None:
            supported = self._probe()
        if not supported:  # known for this device: every stream hashes on the host
            self._switch_to_host()
            return
        # Keep the remainder (< 64 bytes) and also one full block back if nothing would remain,
        # so End always has the tail: simpler, and End with 0 bytes is valid anyway.
        full = len(self._buffer) - len(self._buffer) % 64
        blocks = bytes(self._buffer[:full])
        del self._buffer[:full]
        self._context = self._device._run(lambda: self._chip_update(blocks))

    def _chip_update(self, blocks: bytes) -> bytes:
        dev = self._device
        if self._context is None:
            dev._exec(cmd.sha_start())
        else:
            dev._exec(cmd.sha_context_write(self._context))
        dev._sha_blocks(blocks)
        return dev._exec(cmd.sha_context_read())

    def _probe(self) -> bool:
        dev = self._device

        def body() -> bool:
            dev._exec(cmd.sha_start())
            try:
                context = dev._exec(cmd.sha_context_read())
                dev._exec(cmd.sha_context_write(context))
            except (ParseError, ExecutionError):
                return False
            return True

        supported: bool = dev._run(body)
        dev._sha_context_supported = supported
        return supported

    def _switch_to_host(self) -> None:
        import hashlib  # lazy: loads libcrypto (start-up cost: bench/results.md)

        self._host = hashlib.sha256(self._buffer)
        self._buffer.clear()

    def digest(self) -> bytes:
        """Finish and return the 32-byte digest; the stream cannot be updated afterwards."""
        if self._done:
            raise ValueError("digest() was already called on this stream")
        self._done = True
        if self._host is not None:
            return self._host.digest()
        tail = bytes(self._buffer)
        self._buffer.clear()
        if self._context is None:
            return self._device.sha256(tail)
        context = self._context

        def body() -> bytes:
            dev = self._device
            dev._exec(cmd.sha_context_write(context))
            return dev._exec(cmd.sha_end(tail))

        return self._device._run(body)


__all__ = [
    "ECC_FAULT_RETRIES",
    "Device",
    "Sha256Stream",
    "config_write_plan",
    "config_write_units",
    "data_zone_crc",
]
