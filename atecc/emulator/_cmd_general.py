"""Emulated commands that manage the chip itself: Info, Random, Nonce, Counter, SelfTest,
UpdateExtra and Lock (chip §4.1-§4.3, §4.10, §4.13-§4.15, §3.7), and SecureBoot, which is
not modelled (0x0F, noted as such).

Each handler takes an :class:`~atecc.emulator._core.Exec` and returns output bytes, a one-byte
result (int) or None for plain success; errors are raised as ``CmdError``. Order inside each
handler follows chip §2: parameter parsing (0x03), ``ex.gate()`` (0x07/0xEE), state checks
(0x0F), then the effect.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc import crc
from atecc.constants import (
    CFG_LOCK_CONFIG,
    CFG_LOCK_VALUE,
    CFG_SLOT_LOCKED,
    CFG_USER_EXTRA,
    CFG_VOLATILE_KEY_PERMISSION,
    LOCK_LOCKED,
    KeyType,
    Opcode,
)
from atecc.emulator._core import Exec, exec_error, parse_error
from atecc.emulator.counters import COUNTER_MAX
from atecc.emulator.faults import SELFTEST_UNITS, same_units

#: RNG output before the config zone is locked (chip §3.7) [508].
RNG_TEST_PATTERN = b"\xff\xff\x00\x00" * 8


def _no_data(ex: Exec) -> None:
    if ex.data:
        raise parse_error("command takes no data")


# ------------------------------------------------------------------------------ Info §4.1 ----
def info(ex: Exec) -> bytes:
    _no_data(ex)
    mode, p2 = ex.p1, ex.p2
    if mode == 0x00:  # Revision
        if p2:
            raise parse_error("Info revision takes param2 = 0")
        ex.gate()
        return ex.cfg.raw[4:8]
    if mode == 0x01:  # KeyValid
        if p2 > 15:
            raise parse_error("slot out of range")
        ex.gate()
        # [U] byte position: the flag is reported in byte 0 (chip §4.1).
        return bytes((1 if key_valid(ex, p2) else 0, 0, 0, 0))
    if mode == 0x02:  # State, 508A layout [508]
        if p2:
            raise parse_error("Info state takes param2 = 0")
        ex.gate()
        vol = ex.vol
        byte1 = (
            (0x80 if vol.tk_valid else 0)
            | ((vol.auth_key_id & 0x0F) << 3)
            | (0x04 if vol.auth_valid else 0)
            | (0x02 if vol.seed_sram else 0)
            | (0x01 if vol.seed_eeprom else 0)
        )
        return bytes((vol.tempkey_flags_byte(), byte1, 0, 0))
    if mode == 0x03:  # GPIO: single-wire parts only [508]
        ex.gate()
        raise exec_error("Info GPIO mode is not available on I2C parts")
    if mode == 0x04:  # persistent latch / volatile key permit (608)
        if p2 & ~0x0003:
            raise parse_error("Info latch: only param2 bits 1:0 are defined")
        ex.gate()
        if p2 & 0x0002:
            if not ex.cfg.raw[CFG_VOLATILE_KEY_PERMISSION] & 0x80:
                raise exec_error("VolatileKeyPermission does not allow setting the latch")
            ex.chip.persistent_latch = bool(p2 & 0x0001)
        return bytes((0, 0, 0, 1 if ex.chip.persistent_latch else 0))
    raise parse_error(f"Info mode 0x{mode:02X}")


def key_valid(ex: Exec, slot: int) -> bool:
    """Private P-256 slot: a key was generated/written. Public slot with PubInfo: validated."""
    cfg = ex.cfg
    if cfg.key_type[slot] != KeyType.P256:
        return False
    if cfg.private[slot]:
        return ex.state.key_valid[slot]
    if cfg.pub_info[slot] and slot >= 8:
        return ex.state.slots[slot][0] >> 4 == 0x5
    return False


# ---------------------------------------------------------------------------- Random §4.2 ----
def rng_output(ex: Exec, n: int = 32) -> bytes:
    if not ex.cfg.config_locked:
        return RNG_TEST_PATTERN[:n]
    return ex.chip.random_bytes(n)


def random_cmd(ex: Exec) -> bytes:
    _no_data(ex)
    if ex.p1 not in (0x00, 0x01) or ex.p2:
        raise parse_error("Random mode must be 0 or 1, param2 0")
    ex.gate()
    out = rng_output(ex)
    ex.vol.seed_sram = True
    if ex.p1 == 0x00:
        ex.vol.seed_eeprom = True
    return out


# ----------------------------------------------------------------------------- Nonce §4.3 ----
def nonce(ex: Exec) -> bytes | None:
    mode, p2, data = ex.p1, ex.p2, ex.data
    vol = ex.vol
    kind = mode & 0x03
    if kind == 0x03:  # pass-through
        if mode & 0x1C or p2:
            raise parse_error("Nonce pass-through: reserved mode bits or param2 set")
        target = mode >> 6
        length = 64 if mode & 0x20 else 32
        if target == 0x03 or (target == 0x02 and length == 64):
            raise parse_error("Nonce pass-through target")
        if len(data) != length:
            raise parse_error(f"Nonce pass-through expects {length} bytes")
        ex.gate()
        if target in (0x00, 0x01):
            ex.load_target(target, data)
        else:
            vol.altkey = data
            vol.altkey_valid = True
        return None
    if kind == 0x02:
        raise parse_error("Nonce mode 2 is invalid on the 608")
    # random mode (0x00 seed update, 0x01 no seed update)
    if mode & 0xFC:
        raise parse_error("Nonce random mode: reserved mode bits set")
    if p2 & 0x7FFF:
        raise parse_error("Nonce random mode: only param2 bit 15 is defined")
    if len(data) != 20:
        raise parse_error("Nonce random mode takes a 20-byte NumIn")
    ex.gate()
    use_tempkey = bool(p2 & 0x8000)
    if use_tempkey:
        if not vol.tk_valid:
            raise exec_error("Nonce with param2 bit 15 needs a valid TempKey")
        rand_out = vol.tempkey[:32]
    else:
        rand_out = rng_output(ex)
        vol.seed_sram = True
        if kind == 0x00:
            vol.seed_eeprom = True
    import hashlib  # lazy: loads libcrypto (start-up cost: bench/results.md)

    digest = hashlib.sha256(rand_out + data + bytes((Opcode.NONCE, mode, p2 & 0xFF))).digest()
    if use_tempkey:
        # [508] flags unchanged, only the value is replaced.
        vol.tempkey = digest.ljust(64, b"\x00")
    else:
        vol.set_tempkey(digest, source_input=False)
    return rand_out


# --------------------------------------------------------------------------- Counter §4.13 ---
def counter(ex: Exec) -> bytes:
    _no_data(ex)
    if ex.p1 not in (0x00, 0x01) or ex.p2 not in (0, 1):
        raise parse_error("Counter mode must be 0/1 and counter id 0/1")
    ex.gate()
    # The value lives in config bytes 52-67 in the chip's own encoding, so a value preset there
    # before the config lock counts, and an increment shows in a config read (chip §3.1).
    value = ex.state.counters[ex.p2]
    if ex.p1 == 0x01:
        if value >= COUNTER_MAX:
            raise exec_error("counter at its maximum")
        value += 1
        ex.state.set_counter(ex.p2, value)
        ex.dirty = True
    return value.to_bytes(4, "little")


# -------------------------------------------------------------------------- SelfTest §4.14 ---
def selftest(ex: Exec) -> int:
    _no_data(ex)
    if ex.p1 & ~SELFTEST_UNITS or ex.p2:
        raise parse_error("SelfTest: reserved bits set")
    ex.gate(selftest_exempt=True)
    chip = ex.chip
    if ex.p1 == 0:
        return chip.selftest_register
    failed = ex.p1 & chip.faults.selftest_broken
    passed = same_units(ex.p1 & ~failed)  # a unit that passes clears every bit naming it
    chip.selftest_register = (chip.selftest_register & ~passed) | failed
    return failed


# ----------------------------------------------------------------------- UpdateExtra §4.15 ---
def update_extra(ex: Exec) -> None:
    _no_data(ex)
    mode, p2 = ex.p1, ex.p2
    if mode not in (0x00, 0x01, 0x02) or p2 >> 8:
        raise parse_error("UpdateExtra mode 0..2, param2 MSB 0")
    ex.gate()
    if mode == 0x02:
        raise ex.not_modelled("UpdateExtra mode 2 (508A limited-use counter decrement)")
    # Works with the config zone locked or not: cryptoauthlib's atcab_write_config_zone sends
    # it before the lock (the 508A datasheet's "config locked" precondition is not the 608's).
    offset = CFG_USER_EXTRA + mode
    config = ex.state.config
    if config[offset] != 0x00:
        raise exec_error(f"config byte {offset} already set")
    config[offset] = p2 & 0xFF
    ex.dirty = True


# ------------------------------------------------------------------------------ Lock §3.7 ----
def data_zone_summary(ex: Exec) -> int:
    """CRC of all slots except ECC private-key slots, then OTP (chip §3.7) [508]."""
    cfg, state = ex.cfg, ex.state
    parts = [bytes(state.slots[n]) for n in range(16) if not cfg.private[n]]
    return crc.crc16(b"".join(parts) + bytes(state.otp))


def lock(ex: Exec) -> None:
    _no_data(ex)
    mode, p2 = ex.p1, ex.p2
    zone = mode & 0x03
    no_check = bool(mode & 0x80)
    if zone == 0x03 or mode & 0x40:
        raise parse_error("Lock: illegal zone or bit 6 set")
    if zone != 0x02 and mode & 0x3C:
        raise parse_error("Lock: slot bits only with slot mode")
    if no_check and p2:
        raise parse_error("Lock without summary check takes param2 = 0")
    ex.gate()
    cfg, config = ex.cfg, ex.state.config
    if zone == 0x00:
        if cfg.config_locked:
            raise exec_error("config zone already locked")
        if not no_check and crc.crc16(bytes(config)) != p2:
            raise exec_error("config zone CRC summary mismatch")
        config[CFG_LOCK_CONFIG] = LOCK_LOCKED
    elif zone == 0x01:
        if not cfg.config_locked:
            raise exec_error("data zone lock needs the config zone locked")
        if cfg.data_locked:
            raise exec_error("data zone already locked")
        if not no_check and data_zone_summary(ex) != p2:
            raise exec_error("data zone CRC summary mismatch")
        config[CFG_LOCK_VALUE] = LOCK_LOCKED
    else:
        slot = (mode >> 2) & 0x0F
        if not cfg.config_locked:
            raise exec_error("slot lock needs the config zone locked")
        if not cfg.lockable[slot]:
            raise exec_error(f"slot {slot} is not Lockable")
        if cfg.slot_locked(slot):
            raise exec_error(f"slot {slot} already locked")
        bits = cfg.slot_locked_bits & ~(1 << slot)
        config[CFG_SLOT_LOCKED] = bits & 0xFF
        config[CFG_SLOT_LOCKED + 1] = bits >> 8
    ex.dirty = True


# ---------------------------------------------------------------------- SecureBoot §4.17 ---
def secure_boot(ex: Exec) -> None:
    ex.gate()
    raise ex.not_modelled(f"SecureBoot (mode 0x{ex.p1:02X})")


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {
    Opcode.INFO: info,
    Opcode.RANDOM: random_cmd,
    Opcode.NONCE: nonce,
    Opcode.COUNTER: counter,
    Opcode.SELFTEST: selftest,
    Opcode.UPDATEEXTRA: update_extra,
    Opcode.LOCK: lock,
    Opcode.SECUREBOOT: secure_boot,
}
