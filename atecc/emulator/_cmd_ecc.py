"""Emulated P-256 commands: GenKey, Sign, Verify and ECDH (chip §4.4-§4.7, §5).

Owns the mapping of those commands onto ``cryptography``: ECDSA over the 32-byte message used
as the hash value itself (``Prehashed``; chip §4.5, confirmed by the real-device vector of §5.3),
random k, ECDH x-coordinate, keys as 32-byte big-endian scalars stored in the slot after 4 zero
pad bytes (§3.8). Key objects are cached by scalar so that a Sign costs one ECDSA operation.

Also modelled: Sign internal (the 55-byte message of chip §4.5 with the byte layout cryptoauthlib's
atcah_sign_internal_msg rebuilds), Verify with a MAC for the host (IO protection key, system nonce
from the message digest buffer; atcah_verify_mac), Verify validate/invalidate of a stored public
key signed by its parent (SlotConfig.ReadKey), ECDH output encrypted with the IO protection key.
Not modelled (0x0F, noted): GenKey MAC mode (bit 5), Verify mode 1 ("validate external").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from atecc.constants import KeyType, Opcode
from atecc.emulator._core import Exec, Volatile, exec_error, parse_error, sha256

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class _Crypto:
    """``cryptography``'s EC pieces, imported on the first ECC command rather than with the
    emulator: importing them costs about 25 ms, and a process that only lists the token
    (``pkcs11-tool -L``: Info and Read commands) never needs them."""

    def __init__(self) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        self.ec = ec
        self.utils = utils
        self.InvalidSignature = InvalidSignature
        self.curve = ec.SECP256R1()
        self.ecdsa = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


_crypto: _Crypto | None = None


def _c() -> _Crypto:
    global _crypto
    if _crypto is None:
        _crypto = _Crypto()
    return _crypto


def _message(vol: Volatile, mode: int) -> bytes:
    """The 32-byte message of an external Sign or Verify: the message digest buffer when mode
    bit 5 is set (608), else TempKey; either must be valid (chip §4.5, §4.6)."""
    if mode & 0x20:
        if not vol.mdb_valid:
            raise exec_error("message digest buffer not loaded")
        return bytes(vol.mdb[:32])
    if not vol.tk_valid:
        raise exec_error("TempKey not valid")
    return bytes(vol.tempkey[:32])


# ------------------------------------------------------------------------- crypto helpers ----
@lru_cache(maxsize=256)
def private_key(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    c = _crypto or _c()
    return c.ec.derive_private_key(int.from_bytes(scalar, "big"), c.curve)


@lru_cache(maxsize=256)
def public_key_of(scalar: bytes) -> bytes:
    nums = private_key(scalar).public_key().public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


@lru_cache(maxsize=256)
def _peer_key(xy: bytes) -> ec.EllipticCurvePublicKey | None:
    c = _crypto or _c()
    try:
        return c.ec.EllipticCurvePublicNumbers(
            int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big"), c.curve
        ).public_key()
    except ValueError:
        return None  # not on the curve


def peer_key(xy: bytes) -> ec.EllipticCurvePublicKey:
    key = _peer_key(bytes(xy))
    if key is None:
        raise exec_error("public key is not a P-256 point")  # [U] error code for off-curve keys
    return key


def new_scalar(random_bytes: object) -> bytes:
    """A uniformly drawn scalar in [1, n-1] from the chip's RNG (callable taking a length)."""
    draw = random_bytes(40)  # type: ignore[operator]
    value = int.from_bytes(draw, "big") % (P256_ORDER - 1) + 1
    return value.to_bytes(32, "big")


def ecdsa_sign(scalar: bytes, message: bytes) -> bytes:
    c = _crypto or _c()
    der = private_key(scalar).sign(message, c.ecdsa)
    r, s = c.utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ecdsa_verify(xy: bytes, message: bytes, signature: bytes) -> bool:
    c = _crypto or _c()
    key = peer_key(xy)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(c.utils.encode_dss_signature(r, s), message, c.ecdsa)
    except (c.InvalidSignature, ValueError):
        return False
    return True


def _stored_scalar(ex: Exec, slot: int) -> bytes:
    return bytes(ex.state.slots[slot][4:36])


def _sn_block(ex: Exec) -> bytes:
    sn = ex.cfg.sn
    return bytes((sn[8],)) + sn[0:2] + bytes(25)


def _stored_public_key(ex: Exec, slot: int) -> bytes:
    """X‖Y from the 72-byte padded form 00000000‖X‖00000000‖Y (chip §3.8)."""
    buf = ex.state.slots[slot]
    return bytes(buf[4:36]) + bytes(buf[40:72])


# ---------------------------------------------------------------------------- GenKey §4.4 ----
def gen_key(ex: Exec) -> bytes | None:
    mode, p2, data = ex.p1, ex.p2, ex.data
    if mode & 0xC3:
        raise parse_error("GenKey: reserved mode bits")
    create, digest, stored_digest = bool(mode & 0x04), bool(mode & 0x08), bool(mode & 0x10)
    if stored_digest and (create or digest):
        raise parse_error("GenKey: mode 0x10 cannot be combined")
    if len(data) != (3 if stored_digest else 0):
        raise parse_error("GenKey: OtherData only with mode 0x10 (3 bytes)")
    ephemeral = p2 == 0xFFFF
    if ephemeral and mode != 0x04:
        raise parse_error("GenKey KeyID 0xFFFF only with mode 0x04")
    if not ephemeral and p2 > 15:
        raise parse_error("slot out of range")
    ex.gate()
    if mode & 0x20:
        raise ex.not_modelled("GenKey MAC mode (bit 5)")
    cfg, state, vol, slot = ex.cfg, ex.state, ex.vol, p2
    if not cfg.config_locked:
        raise exec_error("config zone not locked")
    if ephemeral:
        ex.ecc_point()
        scalar = new_scalar(ex.chip.random_bytes)
        vol.set_tempkey(scalar, source_input=False, genkey=True, ecc_key=True)
        vol.seed_eeprom = vol.seed_sram = True
        return public_key_of(scalar)
    if stored_digest:
        if cfg.private[slot] or cfg.key_type[slot] != KeyType.P256 or slot < 8:
            raise exec_error(f"slot {slot} does not hold a stored P-256 public key")
        if not vol.tk_valid:
            raise exec_error("TempKey not valid")
        ex.require_random_tempkey(slot)
        pub = _stored_public_key(ex, slot)
        msg = vol.tempkey[:32] + bytes((Opcode.GENKEY,)) + data + _sn_block(ex) + pub
        import hashlib  # lazy: loads libcrypto (start-up cost: bench/results.md)

        vol.set_tempkey(
            hashlib.sha256(msg).digest(), source_input=vol.tk_source_input, keyid=slot, genkey=True
        )
        return None
    if not cfg.is_p256_private(slot) or not cfg.is_secret[slot]:
        raise exec_error(f"slot {slot} is not a secret P-256 private-key slot")
    if digest:
        if not vol.tk_valid:
            raise exec_error("GenKey digest needs a valid TempKey")
        ex.require_random_tempkey(slot)
    if create:
        if cfg.slot_locked(slot):
            raise exec_error(f"slot {slot} is locked")
        # After data lock GenKey may create only where WriteConfig bit 13 is set (chip §3.4).
        if cfg.data_locked and not cfg.write_config[slot] & 0x2:
            raise exec_error(f"slot {slot} does not allow GenKey (WriteConfig bit 13)")
        ex.require_auth(slot)
        ex.ecc_point()
        scalar = new_scalar(ex.chip.random_bytes)
        state.slots[slot][:] = bytes(4) + scalar
        state.key_valid[slot] = True
        vol.seed_eeprom = vol.seed_sram = True
        ex.dirty = True
    else:
        if cfg.data_locked and not cfg.pub_info[slot]:
            raise exec_error(f"slot {slot} does not allow public-key generation (PubInfo)")
        if not state.key_valid[slot]:
            raise exec_error(f"slot {slot} holds no valid private key")
        ex.require_usable(slot)
        scalar = _stored_scalar(ex, slot)
    pub = public_key_of(scalar)
    if digest:
        msg = (
            vol.tempkey[:32]
            + bytes((Opcode.GENKEY, mode, slot & 0xFF, slot >> 8))
            + _sn_block(ex)
            + pub
        )
        import hashlib

        vol.set_tempkey(
            hashlib.sha256(msg).digest(), source_input=vol.tk_source_input, keyid=slot, genkey=True
        )
    return pub


# ------------------------------------------------------------------------------ Sign §4.5 ----
def sign(ex: Exec) -> bytes:
    mode, slot = ex.p1, ex.p2
    if mode & ~0xE1 or ex.data:
        raise parse_error("Sign: reserved mode bits or data present")
    external = bool(mode & 0x80)
    if external and mode & 0x41:
        raise parse_error("Sign: bits 6 and 0 are for internal messages only")
    if slot > 15:
        raise parse_error("slot out of range")
    ex.gate()
    cfg, state, vol, chip = ex.cfg, ex.state, ex.vol, ex.chip
    if not cfg.is_p256_private(slot) or not cfg.is_secret[slot]:
        raise exec_error(f"slot {slot} is not a secret P-256 private-key slot")
    if not state.key_valid[slot]:
        raise exec_error(f"slot {slot} holds no valid private key")
    if not cfg.read_key[slot] & (0x1 if external else 0x2):
        kind = "external" if external else "internal"
        raise exec_error(f"slot {slot} does not allow {kind} sign")
    ex.use_key(slot)
    if chip.strict and not vol.seed_eeprom:
        # [U] strict: insist on Random (seed update) first, as cryptoauthlib always does.
        raise exec_error("no RNG seed update since wake (run Random first)")
    if external:
        message = _message(vol, mode)
    else:
        message = _internal_message(ex, slot)
    ex.require_auth(slot)
    ex.ecc_point()
    return ecdsa_sign(_stored_scalar(ex, slot), message)


def _validated(ex: Exec, slot: int) -> bool:
    cfg = ex.cfg
    return (
        slot >= 8
        and not cfg.private[slot]
        and cfg.key_type[slot] == KeyType.P256
        and cfg.pub_info[slot]
        and ex.state.slots[slot][0] >> 4 == 0x5
    )


def _internal_message(ex: Exec, slot: int) -> bytes:
    """SHA-256 of the 55-byte internal-sign message (chip §4.5) [508]/[C TNG datasheet]."""
    cfg, vol = ex.cfg, ex.vol
    if not cfg.data_locked:
        raise exec_error("internal sign needs the data zone locked")
    if ex.p1 & 0x20:
        raise exec_error("internal sign takes its message from TempKey")
    if not vol.tk_valid or not (vol.tk_gendig or vol.tk_genkey) or vol.tk_is_ecc_key:
        raise exec_error("internal sign needs a TempKey from GenDig/GenKey")
    kid = vol.tk_keyid
    sn = cfg.sn
    full_sn = bool(ex.p1 & 0x40)
    msg = (
        vol.tempkey[:32]
        + bytes((Opcode.SIGN, ex.p1, slot & 0xFF, slot >> 8))
        + cfg.slot_config[kid].to_bytes(2, "little")
        + cfg.key_config[kid].to_bytes(2, "little")
        + bytes((vol.tempkey_flags_byte(), 0, 0, sn[8]))
        + (sn[4:8] if full_sn else bytes(4))
        + sn[0:2]
        + (sn[2:4] if full_sn else bytes(2))
        # The raw SlotLocked bit of TempKey's source slot (1 = unlocked), as cryptoauthlib's
        # atcah_sign_internal_msg sets it, then PubKeyValid: 1 when that slot holds a public key
        # that must be validated and is (validity nibble 0x5).
        + bytes((0 if cfg.slot_locked(kid) else 1, 1 if _validated(ex, kid) else 0, 0))
    )
    assert len(msg) == 55
    import hashlib

    return hashlib.sha256(msg).digest()


# ---------------------------------------------------------------------------- Verify §4.6 ----
def verify(ex: Exec) -> bytes | int:
    mode, p2, data = ex.p1, ex.p2, ex.data
    kind = mode & 0x07
    if mode & 0x58 or kind in (4, 5, 6):
        raise parse_error("Verify: reserved mode")
    if kind == 0x02:
        if p2 != 0x0004:
            raise parse_error("Verify external: key type must be 0x0004 (P-256)")
        if len(data) != 128:
            raise parse_error("Verify external takes R S X Y (128 bytes)")
    elif kind == 0x00:
        if p2 > 15:
            raise parse_error("slot out of range")
        if len(data) != 64:
            raise parse_error("Verify stored takes R S (64 bytes)")
    elif kind in (0x03, 0x07) and len(data) != 64 + 19:
        raise parse_error("Verify validate/invalidate takes R S OtherData")
    ex.gate()
    if kind == 0x01:
        raise ex.not_modelled("Verify mode 1 (validate external)")
    if kind in (0x03, 0x07):
        return _validate(ex, invalidate=kind == 0x07)
    cfg, vol = ex.cfg, ex.vol
    message = _message(vol, mode)
    if kind == 0x02:
        xy = data[64:128]
    else:
        slot = p2
        if cfg.private[slot] or cfg.key_type[slot] != KeyType.P256 or slot < 8:
            raise exec_error(f"slot {slot} does not hold a P-256 public key")
        if cfg.pub_info[slot] and ex.state.slots[slot][0] >> 4 != 0x5:
            raise exec_error(f"slot {slot} public key is not validated")
        if not mode & 0x20:
            ex.require_random_tempkey(slot)
        ex.require_auth(slot)
        xy = _stored_public_key(ex, slot)
    peer_key(xy)  # off-curve ⇒ 0x0F before the ECC unit runs
    io_key = ex.io_key() if mode & 0x80 else b""
    if mode & 0x80 and not vol.mdb_valid:
        raise exec_error("Verify MAC needs the system nonce in the message digest buffer")
    ex.ecc_point()
    ok = ecdsa_verify(xy, message, data[:64])
    if ok and kind == 0x00:
        vol.auth_valid, vol.auth_key_id = True, p2
    if not ok:
        return 0x01
    if mode & 0x80:
        # The MAC proves the result to a host that does not trust the bus: IO protection key,
        # the message, the system nonce (second half of the message digest buffer when the
        # message is its first half, else its first half), the signature, the command.
        nonce = bytes(vol.mdb[32:64] if mode & 0x20 else vol.mdb[0:32])
        params = bytes((Opcode.VERIFY, mode, p2 & 0xFF, p2 >> 8))
        return sha256(io_key, message, nonce, bytes(data[:64]), params)
    return 0x00


def _validate(ex: Exec, *, invalidate: bool) -> int:
    """Verify validate (mode 3) / invalidate (mode 7) of the public key in slot Param2: the
    signature (by the parent key in SlotConfig.ReadKey's slot) is over SHA-256 of TempKey and
    the 19 bytes of OtherData arranged as a Sign-internal message; TempKey must come from GenKey
    over that key [B]. Success sets the validity nibble to 0x5 or 0xA (chip §3.6)."""
    cfg, vol, state, slot = ex.cfg, ex.vol, ex.state, ex.p2
    if slot > 15 or not (cfg.key_type[slot] == KeyType.P256 and cfg.pub_info[slot]):
        raise exec_error(f"slot {slot} does not hold a public key that needs validation")
    if cfg.private[slot]:
        raise exec_error(f"slot {slot} holds a private key")
    if not (vol.tk_valid and vol.tk_genkey) or vol.tk_keyid != slot:
        raise exec_error("validation needs a TempKey made by GenKey over that public key")
    parent = cfg.read_key[slot]
    if cfg.private[parent] or cfg.key_type[parent] != KeyType.P256 or parent < 8:
        raise exec_error(f"parent slot {parent} does not hold a P-256 public key")
    other, sn = bytes(ex.data[64:83]), cfg.sn
    message = sha256(
        bytes(vol.tempkey[:32]),
        bytes((Opcode.SIGN,)),
        other[0:10],
        bytes((sn[8],)),
        other[10:14],
        sn[0:2],
        other[14:19],
    )
    xy = _stored_public_key(ex, parent)
    peer_key(xy)
    ex.ecc_point()
    if not ecdsa_verify(xy, message, ex.data[:64]):
        return 0x01
    buf = state.slots[slot]
    buf[0] = (0xA0 if invalidate else 0x50) | (buf[0] & 0x0F)
    state.key_valid[slot] = not invalidate
    ex.dirty = True
    return 0x00


# ------------------------------------------------------------------------------ ECDH §4.7 ----
def ecdh(ex: Exec) -> bytes | None:
    mode, p2, data = ex.p1, ex.p2, ex.data
    if mode & 0xF0:
        raise parse_error("ECDH: reserved mode bits")
    if len(data) != 64:
        raise parse_error("ECDH takes the peer public key X‖Y (64 bytes)")
    from_tempkey = bool(mode & 0x01)
    dest = (mode >> 2) & 0x03
    if from_tempkey and dest == 0x00:
        raise parse_error("ECDH compatibility mode needs a slot source")  # [B]
    if p2 > 15:
        raise parse_error("slot out of range")
    ex.gate()
    encrypted = bool(mode & 0x02)
    cfg, state, vol = ex.cfg, ex.state, ex.vol
    protection = (cfg.chip_options >> 8) & 0x03
    if from_tempkey:
        if not (vol.tk_valid and vol.tk_is_ecc_key):
            raise exec_error("TempKey holds no ephemeral private key")
        scalar = vol.tempkey[:32]
        vol.tk_valid = False  # the ephemeral key is consumed
        source_slot = 0
    else:
        slot = p2
        if not cfg.is_p256_private(slot):
            raise exec_error(f"slot {slot} is not a P-256 private-key slot")
        if not cfg.read_key[slot] & 0x4:
            raise exec_error(f"slot {slot} does not allow ECDH")
        if not state.key_valid[slot]:
            raise exec_error(f"slot {slot} holds no valid private key")
        ex.require_auth(slot)
        ex.use_key(slot)
        scalar = _stored_scalar(ex, slot)
        source_slot = slot
    target: int | None = None
    if dest == 0x00:  # compatibility: ReadKey bit 3 selects slot N+1 (508A behaviour)
        if cfg.read_key[source_slot] & 0x8:
            if source_slot & 1:
                raise exec_error("ECDH to slot N+1 needs an even key slot")
            target = source_slot + 1
    elif dest == 0x01:
        target = p2 if from_tempkey else source_slot + 1
        if target > 15 or cfg.private[target]:
            raise exec_error("ECDH target slot unusable")
    if target is not None and cfg.slot_locked(target):
        raise exec_error(f"ECDH target slot {target} is locked")
    to_output = dest == 0x03 or (dest == 0x00 and target is None)
    if to_output and (protection >= 2 or (protection == 1 and not encrypted)):
        # ChipOptions bits 9:8: 1 ⇒ output encrypted only, 2/3 ⇒ TempKey/slot only [U].
        raise exec_error("ChipOptions ECDH protection forbids this output")
    io_key_check = ex.io_key() if to_output and encrypted else b""
    peer = peer_key(data)
    ex.ecc_point()
    secret = private_key(scalar).exchange((_crypto or _c()).ec.ECDH(), peer)
    if to_output:
        if io_key_check:
            enc, nonce = ex.io_encrypt(secret)
            return enc + nonce
        return secret
    if dest == 0x02:
        vol.set_tempkey(secret, source_input=False, keyid=source_slot)
        return None
    assert target is not None
    state.slots[target][:32] = secret
    ex.dirty = True
    return None


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {
    Opcode.GENKEY: gen_key,
    Opcode.SIGN: sign,
    Opcode.VERIFY: verify,
    Opcode.ECDH: ecdh,
}
