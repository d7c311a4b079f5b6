"""Emulated EEPROM access commands: Read, Write and PrivWrite (chip §3.1-§3.3, §3.6, §4.8,
§4.9, §4.16).

Owns the zone/address decoding of Param1/Param2 and the read/write permission procedure of §3.6,
including the encrypted transfers: EncryptRead slots come back XORed with a TempKey made by GenDig
from the slot's ReadKey; encrypted Write (WriteConfig "Encrypt", or Zone bit 6 before the data
lock) and PrivWrite mode 0x40 carry data XORed with a GenDig TempKey (from the WriteKey after the
data lock) and a SHA-256 MAC over TempKey, the command and the plaintext (chip §3.6, §4.16;
cryptoauthlib's atcah_write_auth_mac and atcah_privwrite_auth_mac). The TempKey is used up.
Writes to the private-key slots go only through GenKey/PrivWrite.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc.constants import (
    CFG_LOCK_CONFIG,
    CFG_USER_EXTRA,
    KeyType,
    Opcode,
    slot_size,
)
from atecc.emulator._core import Exec, exec_error, parse_error, sha256, xor

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# Config bytes the Write command never touches (chip §3.1): identity 0-15, 84-87.
_CONFIG_READ_ONLY = frozenset(range(16)) | frozenset(range(CFG_USER_EXTRA, CFG_LOCK_CONFIG + 1))


def _decode(ex: Exec, zone: int, big: bool) -> tuple[int, int]:
    """Param2 → (slot or -1, byte offset in the zone/slot); out of range ⇒ 0x03 (chip §3.3)."""
    p2 = ex.p2
    if zone == 0:
        if p2 & ~0x001F:
            raise parse_error("config address out of range")
        block, word, slot = (p2 >> 3) & 0x03, p2 & 0x07, -1
    elif zone == 1:
        if p2 & ~0x000F:
            raise parse_error("OTP address out of range")
        block, word, slot = (p2 >> 3) & 0x01, p2 & 0x07, -1
    else:
        if p2 & 0xF080:
            raise parse_error("data address out of range")
        slot, block, word = (p2 >> 3) & 0x0F, (p2 >> 8) & 0x0F, p2 & 0x07
        size = slot_size(slot)
        if block * 32 >= size or (not big and block * 32 + word * 4 >= size):
            raise parse_error(f"block {block} word {word} outside slot {slot}")
    return slot, block * 32 + (0 if big else word * 4)


def _gendig_tempkey(ex: Exec, key_id: int | None, *, random: bool = False) -> bytes:
    """TempKey made by GenDig (from slot ``key_id`` when given) for an encrypted transfer."""
    vol = ex.vol
    if not (vol.tk_valid and vol.tk_gendig) or vol.tk_nomac:
        raise exec_error("encrypted transfer needs a TempKey made by GenDig")
    if key_id is not None and vol.tk_keyid != key_id:
        raise exec_error(f"TempKey was made from slot {vol.tk_keyid}, not slot {key_id}")
    if random and vol.tk_source_input:
        raise exec_error("encrypted read needs a TempKey from a random nonce")
    return bytes(vol.tempkey[:32])


def _check_mac(ex: Exec, tempkey: bytes, zeros: int, plaintext: bytes, mac: bytes) -> None:
    import hmac as _hmac

    params = bytes((ex.opcode, ex.p1, ex.p2 & 0xFF, ex.p2 >> 8))
    expected = sha256(tempkey, params, ex.cfg.sn_tail(zeros), plaintext)
    ex.vol.tk_valid = False  # used up, whatever the outcome [B]
    if not _hmac.compare_digest(expected, bytes(mac)):
        raise exec_error("input MAC does not match")


def _decrypt_write(ex: Exec, key_id: int | None) -> bytes:
    """Plaintext of an encrypted Write (32 bytes XOR TempKey, then the MAC)."""
    tempkey = _gendig_tempkey(ex, key_id)
    plaintext = xor(bytes(ex.data[:32]), tempkey)
    _check_mac(ex, tempkey, 25, plaintext, ex.data[32:64])
    return plaintext


# ------------------------------------------------------------------------------ Read §4.8 ----
def read(ex: Exec) -> bytes:
    if ex.data:
        raise parse_error("Read takes no data")
    p1 = ex.p1
    zone = p1 & 0x03
    if p1 & 0x7C or zone == 0x03:
        raise parse_error("Read: reserved zone bits")
    big = bool(p1 & 0x80)
    length = 32 if big else 4
    slot, offset = _decode(ex, zone, big)
    # Config reads are the one thing besides SelfTest that works in self-test failure (§4.14).
    ex.gate(selftest_exempt=zone == 0)
    cfg, state = ex.cfg, ex.state
    if zone == 0:
        return bytes(state.config[offset : offset + length])
    if zone == 1:
        if not cfg.data_locked:
            raise exec_error("OTP is not readable before the data zone is locked")
        return bytes(state.otp[offset : offset + length])
    if not cfg.data_locked:
        raise exec_error("data zone reads need the data zone locked")
    if cfg.private[slot]:
        raise exec_error(f"slot {slot} holds a private key")
    # IsSecret=0 with EncryptRead=1 is undefined; treated as a clear read [U] (chip §3.6).
    chunk = bytes(state.slots[slot][offset : offset + length]).ljust(length, b"\x00")
    if not cfg.is_secret[slot]:
        return chunk  # a short last block reads back zero-filled [508]
    if not cfg.encrypt_read[slot]:
        raise exec_error(f"slot {slot} is secret")
    if not big:
        raise exec_error(f"slot {slot} is read encrypted: 32-byte reads only")
    tempkey = _gendig_tempkey(ex, cfg.read_key[slot], random=True)
    ex.vol.tk_valid = False  # used up [B]
    return xor(chunk, tempkey)


# ----------------------------------------------------------------------------- Write §4.9 ----
def write(ex: Exec) -> None:
    p1, data = ex.p1, ex.data
    zone = p1 & 0x03
    if p1 & 0x3C or zone == 0x03:
        raise parse_error("Write: reserved zone bits")
    big = bool(p1 & 0x80)
    encrypted = bool(p1 & 0x40)
    length = 32 if big else 4
    if len(data) != length + (32 if encrypted else 0):
        raise parse_error("Write: data length does not match the zone byte")
    slot, offset = _decode(ex, zone, big)
    ex.gate()
    cfg, state = ex.cfg, ex.state
    value = data[:length]
    if zone == 0:
        if encrypted:
            raise exec_error("config writes are never encrypted")
        if cfg.config_locked:
            raise exec_error("config zone is locked")
        if _CONFIG_READ_ONLY.intersection(range(offset, offset + length)):
            raise exec_error("write touches read-only config bytes (0-15, 84-87)")
        state.config[offset : offset + length] = value
        ex.dirty = True
        return None
    if not cfg.config_locked:
        raise exec_error("no OTP/data writes before the config zone is locked")
    if zone == 1:
        if cfg.data_locked:
            raise exec_error("OTP is not writable after data lock on the 608")  # [B]
        if not big:
            raise exec_error("OTP writes before data lock are 32 bytes only")
        if encrypted:
            value = _decrypt_write(ex, None)
        state.otp[offset : offset + 32] = value
        ex.dirty = True
        return None
    if cfg.slot_locked(slot):
        raise exec_error(f"slot {slot} is locked")
    if cfg.private[slot]:
        raise exec_error(f"slot {slot} is a private-key slot (use GenKey/PrivWrite)")
    if not cfg.data_locked:
        if not big:
            raise exec_error("data writes before data lock are 32 bytes only")
        if encrypted:
            value = _decrypt_write(ex, None)  # any GenDig TempKey before the data lock
    else:
        wc = cfg.write_config[slot]
        if wc & 0x4:
            # "Encrypt": 32-byte writes encrypted with a GenDig TempKey from the WriteKey.
            if not (big and encrypted):
                raise exec_error(f"slot {slot} takes encrypted 32-byte writes only")
            value = _decrypt_write(ex, cfg.write_key[slot])
        elif wc & 0x8 or wc & 0x2:
            raise exec_error(f"slot {slot} WriteConfig is Never")
        elif encrypted:
            # Zone bit 6 on a slot that takes clear writes: the chip's answer is not public.
            raise ex.not_modelled("encrypted Write to a slot whose WriteConfig is not Encrypt")
        if wc == 0x1 and state.slots[slot][0] >> 4 == 0x5:
            raise exec_error(f"slot {slot} holds a validated public key (PubInvalid)")
        if not big and cfg.is_secret[slot]:
            raise exec_error(f"slot {slot} is secret: 4-byte writes prohibited")
    buf = state.slots[slot]
    end = min(offset + length, len(buf))
    buf[offset:end] = value[: end - offset]  # bytes beyond a short last block are ignored [508]
    if cfg.pub_info[slot] and slot >= 8 and cfg.key_type[slot] == KeyType.P256:
        # A write to a validated-public-key slot marks the key invalid (nibble 0xA) [508].
        buf[0] = 0xA0 | (buf[0] & 0x0F)
        state.key_valid[slot] = False
    ex.dirty = True
    return None


# -------------------------------------------------------------------------- PrivWrite §4.16 --
def priv_write(ex: Exec) -> None:
    if ex.p1 not in (0x00, 0x40):
        raise parse_error("PrivWrite mode must be 0x00 or 0x40")
    if ex.p2 > 15:
        raise parse_error("slot out of range")
    if len(ex.data) != 36 + 32:
        raise parse_error("PrivWrite takes 36 key bytes and a 32-byte MAC")
    ex.gate()
    cfg, state, slot = ex.cfg, ex.state, ex.p2
    if not cfg.config_locked:
        raise exec_error("config zone not locked")
    if not cfg.is_p256_private(slot):
        raise exec_error(f"slot {slot} is not a P-256 private-key slot")
    if cfg.slot_locked(slot):
        raise exec_error(f"slot {slot} is locked")
    key = bytes(ex.data[:36])
    if cfg.data_locked and ex.p1 != 0x40:
        raise exec_error("after the data lock PrivWrite must be encrypted")
    if ex.p1 == 0x40:
        write_key = None
        if cfg.data_locked:
            if not cfg.write_config[slot] & 0x4:
                raise exec_error(f"slot {slot} does not take PrivWrite (WriteConfig bit 14)")
            write_key = cfg.write_key[slot]
        tempkey = _gendig_tempkey(ex, write_key)
        key = xor(key[:32], tempkey) + xor(key[32:36], sha256(tempkey)[:4])
        _check_mac(ex, tempkey, 21, key, ex.data[36:68])
    scalar = int.from_bytes(key[4:], "big")
    if key[:4] != bytes(4) or not 0 < scalar < P256_ORDER:
        raise exec_error("not a valid P-256 private key")  # [B]
    state.slots[slot][:] = key
    state.key_valid[slot] = True
    ex.dirty = True


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {
    Opcode.READ: read,
    Opcode.WRITE: write,
    Opcode.PRIVWRITE: priv_write,
}
