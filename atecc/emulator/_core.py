"""Shared vocabulary of the emulator's command modules: errors, volatile SRAM, decoded config.

Owns: :class:`CmdError` (a command ends with a status byte), :class:`Volatile` (TempKey and its
flags, message digest buffer, alternate key buffer, SHA context, RNG seed flags, auth state;
chip §4.18), :class:`Cfg` (the config zone decoded once per change; chip §3.1, §3.4, §3.5) and
:class:`Exec` (what one command execution sees). It must not import the driver's decoders
(``atecc.config_zone``, ``atecc.packet``): the emulator is an independent peer of the driver, so a
misreading of the datasheet cannot hide by being shared by both ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atecc.constants import (
    CFG_CHIP_OPTIONS,
    CFG_KEY_CONFIG,
    CFG_LOCK_CONFIG,
    CFG_LOCK_VALUE,
    CFG_SLOT_CONFIG,
    CFG_SLOT_LOCKED,
    LOCK_UNLOCKED,
    SLOT_COUNT,
    KeyType,
    Status,
)
from atecc.record import record

if TYPE_CHECKING:
    from atecc.emulator.chip import Chip
    from atecc.emulator.state import ChipState

PARSE = int(Status.PARSE_ERROR)
EXEC = int(Status.EXECUTION_ERROR)
ECC = int(Status.ECC_FAULT)


class CmdError(Exception):
    """A command finished with a non-success status byte (chip §2).

    ``why`` is for humans reading test failures; the wire carries only the status.
    """

    def __init__(self, status: int, why: str = "") -> None:
        super().__init__(f"status 0x{status:02X}: {why}")
        self.status = status
        self.why = why


def parse_error(why: str) -> CmdError:
    return CmdError(PARSE, why)


def exec_error(why: str) -> CmdError:
    return CmdError(EXEC, why)


def sha256(*parts: bytes) -> bytes:
    import hashlib  # lazy: libcrypto via _hashlib, ~2 ms of every start

    return hashlib.sha256(b"".join(parts)).digest()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@record(slots=True)
class Volatile:
    """SRAM contents; a fresh instance is what sleep, watchdog expiry and power-up leave behind."""

    tempkey: bytes = bytes(64)
    tk_valid: bool = False
    tk_source_input: bool = False  #: SourceFlag: False = random (Nonce random mode), True = input
    tk_gendig: bool = False
    tk_genkey: bool = False
    tk_nomac: bool = False
    tk_keyid: int = 0
    #: TempKey holds an ephemeral P-256 private scalar (GenKey KeyID 0xFFFF), usable by ECDH only
    tk_is_ecc_key: bool = False
    mdb: bytes = bytes(64)
    mdb_valid: bool = False
    altkey: bytes = bytes(32)
    altkey_valid: bool = False
    sha: Any = None  #: Sha256 / hmac object while a SHA or HMAC sequence is open
    sha_is_hmac: bool = False
    seed_eeprom: bool = False  #: "EEPROM RNG seed updated" since power-up/sleep
    seed_sram: bool = False
    auth_valid: bool = False
    auth_key_id: int = 0

    def set_tempkey(
        self,
        value: bytes,
        *,
        source_input: bool,
        keyid: int = 0,
        gendig: bool = False,
        genkey: bool = False,
        nomac: bool = False,
        ecc_key: bool = False,
    ) -> None:
        self.tempkey = value.ljust(64, b"\x00")
        self.tk_valid = True
        self.tk_source_input = source_input
        self.tk_keyid = keyid
        self.tk_gendig = gendig
        self.tk_genkey = genkey
        self.tk_nomac = nomac
        self.tk_is_ecc_key = ecc_key

    def tempkey_flags_byte(self) -> int:
        """Info State byte 0 layout (chip §4.1, 508A layout [508])."""
        return (
            (0x80 if self.tk_nomac else 0)
            | (0x40 if self.tk_genkey else 0)
            | (0x20 if self.tk_gendig else 0)
            | (0x10 if self.tk_source_input else 0)
            | (self.tk_keyid & 0x0F)
        )


def _le16(buf: bytes, offset: int) -> int:
    return buf[offset] | (buf[offset + 1] << 8)


class Cfg:
    """The 128-byte config zone decoded into per-slot facts (chip §3.4, §3.5).

    Built once per distinct config image (the chip caches it keyed by the raw bytes), so command
    handlers read plain attributes instead of re-shifting bits on every call.
    """

    __slots__ = (
        "aes_enabled",
        "auth_key",
        "chip_options",
        "config_locked",
        "data_locked",
        "encrypt_read",
        "is_secret",
        "key_config",
        "key_type",
        "limited_use",
        "lockable",
        "no_mac",
        "persistent_disable",
        "private",
        "pub_info",
        "raw",
        "read_key",
        "req_auth",
        "req_random",
        "slot_config",
        "slot_locked_bits",
        "sn",
        "write_config",
        "write_key",
    )

    def __init__(self, config: bytes | bytearray) -> None:
        raw = bytes(config)
        self.raw = raw
        self.slot_config = [_le16(raw, CFG_SLOT_CONFIG + 2 * n) for n in range(SLOT_COUNT)]
        self.key_config = [_le16(raw, CFG_KEY_CONFIG + 2 * n) for n in range(SLOT_COUNT)]
        sc, kc = self.slot_config, self.key_config
        # SlotConfig (chip §3.4)
        self.read_key = [v & 0x0F for v in sc]
        self.no_mac = [bool(v & 0x0010) for v in sc]
        self.limited_use = [bool(v & 0x0020) for v in sc]
        self.encrypt_read = [bool(v & 0x0040) for v in sc]
        self.is_secret = [bool(v & 0x0080) for v in sc]
        self.write_key = [(v >> 8) & 0x0F for v in sc]
        self.write_config = [(v >> 12) & 0x0F for v in sc]
        # KeyConfig, 608 layout (chip §3.5)
        self.private = [bool(v & 0x0001) for v in kc]
        self.pub_info = [bool(v & 0x0002) for v in kc]
        self.key_type = [(v >> 2) & 0x07 for v in kc]
        self.lockable = [bool(v & 0x0020) for v in kc]
        self.req_random = [bool(v & 0x0040) for v in kc]
        self.req_auth = [bool(v & 0x0080) for v in kc]
        self.auth_key = [(v >> 8) & 0x0F for v in kc]
        self.persistent_disable = [bool(v & 0x1000) for v in kc]
        self.config_locked = raw[CFG_LOCK_CONFIG] != LOCK_UNLOCKED
        self.data_locked = raw[CFG_LOCK_VALUE] != LOCK_UNLOCKED
        self.slot_locked_bits = _le16(raw, CFG_SLOT_LOCKED)
        self.chip_options = _le16(raw, CFG_CHIP_OPTIONS)
        self.aes_enabled = bool(raw[13] & 0x01)
        self.sn = raw[0:4] + raw[8:13]

    def sn_tail(self, zeros: int = 25) -> bytes:
        """SN[8] ‖ SN[0:1] ‖ zeros: the part every SHA-256 message of chip §4.17 shares."""
        sn = self.sn
        return bytes((sn[8], sn[0], sn[1])) + bytes(zeros)

    def slot_locked(self, slot: int) -> bool:
        """SlotLocked bit n = 0 means locked (chip §3.1 bytes 88-89)."""
        return not (self.slot_locked_bits >> slot) & 1

    def is_p256_private(self, slot: int) -> bool:
        return self.private[slot] and self.key_type[slot] == KeyType.P256


class Exec:
    """One command execution: parameters, the EEPROM image, and the chip's volatile state.

    Handlers validate parameters first (raising 0x03), then call :meth:`gate` (self-test failure
    0x07 and watchdog 0xEE, chip §2 precedence), then check state and permissions (0x0F), then
    call :meth:`ecc_point` right before any ECC computation (injected 0x05), then act. They set
    ``dirty`` when they changed the EEPROM.
    """

    __slots__ = (
        "cfg",
        "chip",
        "data",
        "dirty",
        "gated",
        "opcode",
        "p1",
        "p2",
        "state",
        "vol",
    )

    def __init__(
        self, chip: Chip, state: ChipState, cfg: Cfg, opcode: int, p1: int, p2: int, data: bytes
    ) -> None:
        self.chip = chip
        self.state = state
        self.cfg = cfg
        self.vol = chip.vol
        self.opcode = opcode
        self.p1 = p1
        self.p2 = p2
        self.data = data
        self.dirty = False
        self.gated = False

    def load_target(self, target: int, value: bytes) -> None:
        """Put a Nonce pass-through input or a SHA End digest where param1 bits 7:6 say:
        0 = TempKey (flags: input source), 1 = message digest buffer (chip §4.3, §4.11).
        Other targets are the caller's business (alternate key buffer, output only)."""
        if target == 0x00:
            self.vol.set_tempkey(value, source_input=True)
        elif target == 0x01:
            self.vol.mdb = value.ljust(64, b"\x00")
            self.vol.mdb_valid = True

    def gate(self, *, selftest_exempt: bool = False) -> None:
        """Checks that come after parsing and before state checks: 0x07, then 0xEE."""
        self.gated = True
        self.chip.check_gate(self.opcode, selftest_exempt)

    def ecc_point(self) -> None:
        """Injected ECC fault (chip §7.2): 0x05 without executing."""
        if self.chip.faults.take_ecc_fault():
            raise CmdError(ECC, "injected ECC fault")

    def require_auth(self, slot: int) -> None:
        """ReqAuth (chip §3.5): no prior authorization with AuthKey ⇒ 0x0F."""
        cfg, vol = self.cfg, self.vol
        if cfg.req_auth[slot]:
            if not (vol.auth_valid and vol.auth_key_id == cfg.auth_key[slot]):
                raise exec_error(f"slot {slot} requires authorization (ReqAuth)")
            # [508] AuthValid is consumed by the use of a ReqAuth key.
            vol.auth_valid = False

    def require_usable(self, slot: int) -> None:
        """PersistentDisable (KeyConfig bit 12): usable only while the persistent latch is set."""
        if self.cfg.persistent_disable[slot] and not self.chip.persistent_latch:
            raise exec_error(f"slot {slot} needs the persistent latch")

    def use_key(self, slot: int) -> None:
        """A command is about to use the key in ``slot``: the persistent latch rule, then
        LimitedUse (SlotConfig bit 5): on the 608 each use counts on monotonic counter 0 and the
        key is refused once the counter is at its limit -- the CountMatch value when CountMatch
        is enabled (config byte 18 bit 0; the value is bytes 0-3, little-endian, of the
        CountMatchKey slot named by bits 7:4, as cryptoauthlib's atcah_encode_counter_match
        writes it), else the counter's maximum [U: the public 608 documents name the feature,
        not every detail]."""
        self.require_usable(slot)
        if not self.cfg.limited_use[slot]:
            return
        from atecc.emulator.counters import COUNTER_MAX

        state, count_match = self.state, self.cfg.raw[18]
        limit = COUNTER_MAX
        if count_match & 0x01:
            limit = int.from_bytes(state.slots[count_match >> 4][0:4], "little")
        used = state.counters[0]
        if used >= limit:
            raise exec_error(f"slot {slot} is a limited-use key and counter 0 is at its limit")
        state.set_counter(0, used + 1)
        self.dirty = True

    def not_modelled(self, what: str) -> CmdError:
        """0x0F for something the emulator does not model, recorded and logged as such."""
        self.chip.note_not_modelled(what)
        return exec_error(f"not modelled: {what}")

    def io_key(self) -> bytes:
        """The IO protection key (ChipOptions bit 1 enables it, bits 15:12 name its slot)."""
        options = self.cfg.chip_options
        if not options & 0x0002:
            raise exec_error("IO protection key is not enabled (ChipOptions bit 1)")
        return bytes(self.state.slots[(options >> 12) & 0x0F][:32])

    def io_encrypt(self, data: bytes) -> tuple[bytes, bytes]:
        """Encrypt output for the host with the IO protection key: each 32-byte block is XORed
        with SHA-256(IO key ‖ 16 bytes of a fresh 32-byte nonce); returns (data, nonce)
        (cryptoauthlib's atcah_io_decrypt undoes it)."""
        key = self.io_key()
        nonce = self.chip.random_bytes(32)
        out = b"".join(
            xor(data[i : i + 32], sha256(key, nonce[i // 2 : i // 2 + 16]))
            for i in range(0, len(data), 32)
        )
        return out, nonce

    def require_random_tempkey(self, slot: int) -> None:
        """ReqRandom (chip §3.5): TempKey must come from the RNG (Nonce random mode)."""
        if self.cfg.req_random[slot] and (not self.vol.tk_valid or self.vol.tk_source_input):
            raise exec_error(f"slot {slot} requires a random TempKey (ReqRandom)")
