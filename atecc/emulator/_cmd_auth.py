"""Emulated symmetric authentication commands: GenDig, MAC, CheckMac and DeriveKey (chip §4.17).

Owns the SHA-256 message each command hashes. The layouts are the 508A datasheet's (chip §4.17)
as cryptoauthlib's host-side helpers rebuild them for the 608 (``atcah_gen_dig``, ``atcah_mac``,
``atcah_check_mac``, ``atcah_derive_key``, ``atcah_derive_key_mac`` in ``lib/host/atca_host.c``):
a 32-byte key or stored value, the opcode and parameters, SN[8] ‖ SN[0:1], zeros or
command-specific fields, then TempKey or a challenge. Mode bit 2 of MAC, CheckMac and DeriveKey
must equal TempKey.SourceFlag (1 = input) whenever TempKey is used.

Not modelled (answered 0x0F and noted): GenDig of hardware transport keys (KeyID above 15), the
CheckMac copy of a slot into TempKey.

Must not: import the driver's decoders.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc.constants import KeyType, Opcode
from atecc.emulator import counters
from atecc.emulator._core import Exec, exec_error, parse_error, sha256

GENDIG_CONFIG, GENDIG_OTP, GENDIG_DATA, GENDIG_SHARED_NONCE = 0, 1, 2, 3
GENDIG_COUNTER, GENDIG_KEY_CONFIG = 4, 5
_USE_TEMPKEY = 0x8000


def _tempkey(ex: Exec, *, source_bit: int | None = None) -> bytes:
    """TempKey's first 32 bytes; it must be valid, not an ECC key, and (when ``source_bit`` is
    given) its SourceFlag must equal that mode bit."""
    vol = ex.vol
    if not vol.tk_valid or vol.tk_is_ecc_key:
        raise exec_error("TempKey not valid")
    if source_bit is not None and bool(source_bit) != vol.tk_source_input:
        raise exec_error("mode bit 2 does not match TempKey.SourceFlag")
    return bytes(vol.tempkey[:32])


def _symmetric_key(ex: Exec, slot: int, *, with_tempkey: bool) -> bytes:
    """The 32-byte key of ``slot`` for a SHA-based command: not an ECC private key, NoMac clear,
    ReqRandom honoured when the key meets TempKey, ReqAuth honoured, one use counted."""
    cfg = ex.cfg
    if cfg.private[slot] and cfg.key_type[slot] == KeyType.P256:
        raise exec_error(f"slot {slot} holds an ECC private key")
    if cfg.no_mac[slot]:
        raise exec_error(f"slot {slot} has NoMac set")
    if with_tempkey:
        ex.require_random_tempkey(slot)
    ex.require_auth(slot)
    ex.use_key(slot)
    return bytes(ex.state.slots[slot][:32])


def _include_data(ex: Exec, mode: int) -> bytes:
    """MAC's tail (chip §4.17; atcah_include_data): OTP[0:10] (bit 4) or OTP[0:7] and zeros
    (bit 5) or zeros, then SN[8], SN[4:7] or zeros (bit 6), SN[0:1], SN[2:3] or zeros."""
    otp, sn, full_sn = bytes(ex.state.otp), ex.cfg.sn, bool(mode & 0x40)
    if mode & 0x10:
        head = otp[:11]
    else:
        head = (otp[:8] if mode & 0x20 else bytes(8)) + bytes(3)
    return (
        head
        + bytes((sn[8],))
        + (sn[4:8] if full_sn else bytes(4))
        + sn[0:2]
        + (sn[2:4] if full_sn else bytes(2))
    )


# ---------------------------------------------------------------------------------- GenDig ---
def gen_dig(ex: Exec) -> None:
    zone, key_id, data = ex.p1, ex.p2, ex.data
    limits = {GENDIG_CONFIG: 3, GENDIG_OTP: 1, GENDIG_COUNTER: 1, GENDIG_KEY_CONFIG: 15}
    if zone > GENDIG_KEY_CONFIG:
        raise parse_error("GenDig zone 0-5")
    if zone in limits and (key_id > limits[zone] or data):
        raise parse_error("GenDig KeyID out of range, or data where none is taken")
    if zone == GENDIG_DATA and len(data) not in (0, 4):
        raise parse_error("GenDig data zone takes no data or 4 bytes of OtherData")
    if zone == GENDIG_SHARED_NONCE and (len(data) != 32 or key_id & 0x7FFF):
        raise parse_error("GenDig shared nonce takes 32 bytes; KeyID bit 15 only")
    ex.gate()
    cfg, state = ex.cfg, ex.state
    if not cfg.config_locked:
        raise exec_error("config zone not locked")
    if zone == GENDIG_DATA and key_id > 15:
        raise ex.not_modelled(f"GenDig of hardware transport key 0x{key_id:04X}")
    if zone in (GENDIG_OTP, GENDIG_DATA) and not cfg.data_locked:
        raise exec_error("GenDig of OTP or data needs the data zone locked")  # [B]
    tempkey = _tempkey(ex)
    nomac = False
    params = bytes((Opcode.GENDIG, zone, key_id & 0xFF, key_id >> 8))
    middle = cfg.sn_tail()
    last = tempkey
    if zone == GENDIG_CONFIG:
        value = bytes(state.config[32 * key_id : 32 * key_id + 32])
    elif zone == GENDIG_OTP:
        value = bytes(state.otp[32 * key_id : 32 * key_id + 32])
    elif zone == GENDIG_DATA:
        nomac = cfg.no_mac[key_id]
        if nomac and len(data) != 4:
            raise exec_error("GenDig of a NoMac key needs 4 bytes of OtherData")
        # cryptoauthlib sends OtherData (equal to the opcode and parameters) for every key;
        # for a key without NoMac it plays no part [B].
        if cfg.private[key_id] and cfg.key_type[key_id] == KeyType.P256:
            raise exec_error(f"slot {key_id} holds an ECC private key")
        ex.require_random_tempkey(key_id)
        ex.use_key(key_id)
        value = bytes(state.slots[key_id][:32])
        if nomac:
            params = bytes(data)  # a NoMac key's opcode and parameters come from OtherData
    elif zone == GENDIG_SHARED_NONCE:
        params = params[:3] + b"\x00"
        value, last = (tempkey, bytes(data)) if key_id & _USE_TEMPKEY else (bytes(data), tempkey)
    elif zone == GENDIG_COUNTER:
        value = bytes(32)
        count = counters.read(state.config, key_id).to_bytes(4, "little")
        middle = cfg.sn_tail(0) + b"\x00" + count + bytes(20)
    else:  # key config
        value = bytes(32)
        unlocked_bit = 0 if cfg.slot_locked(key_id) else 1  # the raw SlotLocked bit
        middle = (
            cfg.sn_tail(0)
            + b"\x00"
            + cfg.slot_config[key_id].to_bytes(2, "little")
            + cfg.key_config[key_id].to_bytes(2, "little")
            + bytes((unlocked_bit,))
            + bytes(19)
        )
    digest = sha256(value, params, middle, last)
    data_slot = zone == GENDIG_DATA
    ex.vol.set_tempkey(
        digest,
        source_input=ex.vol.tk_source_input,
        keyid=key_id if data_slot else 0,
        gendig=data_slot,
        nomac=nomac,
    )


# ------------------------------------------------------------------------------------- MAC ---
def mac(ex: Exec) -> bytes:
    mode, slot, data = ex.p1, ex.p2, ex.data
    if mode & ~0x77:
        raise parse_error("MAC: mode bits 3 and 7 are reserved")
    if len(data) != (0 if mode & 0x01 else 32):
        raise parse_error("MAC takes a 32-byte challenge unless TempKey is block 2")
    if slot > 15 and not mode & 0x02:
        raise parse_error("slot out of range")
    ex.gate()
    cfg = ex.cfg
    if mode & 0x30 and not cfg.data_locked:
        raise exec_error("MAC with OTP bits needs the data zone locked")
    uses_tempkey = bool(mode & 0x03)
    tempkey = _tempkey(ex, source_bit=mode & 0x04) if uses_tempkey else b""
    if uses_tempkey and ex.vol.tk_nomac:
        raise exec_error("TempKey carries NoMacFlag")
    block1 = tempkey if mode & 0x02 else _symmetric_key(ex, slot, with_tempkey=uses_tempkey)
    block2 = tempkey if mode & 0x01 else bytes(data)
    params = bytes((Opcode.MAC, mode, slot & 0xFF, slot >> 8))
    out = sha256(block1, block2, params, _include_data(ex, mode))
    if uses_tempkey:
        ex.vol.tk_valid = False  # consumed, as the host library models it [B]
    return out


# -------------------------------------------------------------------------------- CheckMac ---
def check_mac(ex: Exec) -> int:
    mode, slot, data = ex.p1, ex.p2, ex.data
    if mode & ~0x27:
        raise parse_error("CheckMac: mode bits 3, 4, 6, 7 are reserved")
    if len(data) != 32 + 32 + 13:
        raise parse_error("CheckMac takes ClientChal, ClientResp and 13 bytes of OtherData")
    if slot > 15:
        raise parse_error("slot out of range")
    ex.gate()
    chal, resp, other = bytes(data[:32]), bytes(data[32:64]), bytes(data[64:])
    uses_tempkey = bool(mode & 0x03)
    tempkey = _tempkey(ex, source_bit=mode & 0x04) if uses_tempkey else b""
    if mode & 0x20 and not ex.cfg.data_locked:
        raise exec_error("CheckMac with OTP needs the data zone locked")
    block1 = tempkey if mode & 0x02 else _symmetric_key(ex, slot, with_tempkey=uses_tempkey)
    block2 = tempkey if mode & 0x01 else chal
    sn = ex.cfg.sn
    otp = bytes(ex.state.otp[:8]) if mode & 0x20 else bytes(8)
    msg = (
        block1
        + block2
        + other[0:4]
        + otp
        + other[4:7]
        + bytes((sn[8],))
        + other[7:11]
        + sn[0:2]
        + other[11:13]
    )
    import hmac as _hmac  # constant-time compare

    match = _hmac.compare_digest(sha256(msg), resp)
    if uses_tempkey:
        ex.vol.tk_valid = False
    if match and mode & 0x03 == 0x01 and ex.cfg.read_key[slot] == 0:
        raise ex.not_modelled("CheckMac copy of a slot into TempKey")
    if match:
        ex.vol.auth_valid, ex.vol.auth_key_id = True, slot  # [508]
    return 0x00 if match else 0x01


# ------------------------------------------------------------------------------- DeriveKey ---
def derive_key(ex: Exec) -> None:
    mode, target, data = ex.p1, ex.p2, ex.data
    if mode & ~0x04:
        raise parse_error("DeriveKey: only mode bit 2 is defined")
    if target > 15:
        raise parse_error("target slot out of range")
    if len(data) not in (0, 32):
        raise parse_error("DeriveKey takes no data or a 32-byte MAC")
    ex.gate()
    cfg, state = ex.cfg, ex.state
    if not cfg.config_locked:
        raise exec_error("config zone not locked")
    write_config = cfg.write_config[target]
    if cfg.private[target] or not write_config & 0x2:
        raise exec_error(f"slot {target} is not a DeriveKey target (WriteConfig bit 13)")
    if cfg.slot_locked(target):
        raise exec_error(f"slot {target} is locked")
    parent_slot = cfg.write_key[target] if write_config & 0x1 else target  # create / roll
    parent = bytes(state.slots[parent_slot][:32])
    params = bytes((Opcode.DERIVEKEY, mode, target & 0xFF, target >> 8))
    if write_config & 0x8:  # an authorizing MAC is required
        import hmac as _hmac

        if len(data) != 32 or not _hmac.compare_digest(
            sha256(parent, params, cfg.sn_tail(0)), bytes(data)
        ):
            raise exec_error("DeriveKey authorizing MAC missing or wrong")
    tempkey = _tempkey(ex, source_bit=mode & 0x04)
    if ex.vol.tk_nomac:
        raise exec_error("TempKey carries NoMacFlag")
    ex.use_key(parent_slot)
    state.slots[target][:32] = sha256(parent, params, cfg.sn_tail(), tempkey)
    ex.vol.tk_valid = False
    ex.dirty = True


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {
    Opcode.GENDIG: gen_dig,
    Opcode.MAC: mac,
    Opcode.CHECKMAC: check_mac,
    Opcode.DERIVEKEY: derive_key,
}
