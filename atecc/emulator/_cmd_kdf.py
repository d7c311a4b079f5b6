"""Emulated KDF command (0x56): PRF, AES and HKDF (chip §4.17; cryptoauthlib ``calib_kdf``).

Owns the three algorithms, where their key comes from and where their result goes. Param1:
bits 1:0 source (TempKey, upper TempKey, slot, alternate key buffer), bits 4:2 target (TempKey,
upper TempKey, slot, alternate key buffer, output, output encrypted with the IO protection key),
bits 6:5 algorithm. Data: a 4-byte little-endian "details" word, then the message (its length in
details bits 31:24; AES always 16 bytes). Param2: source slot in bits 7:0, target slot in bits
15:8 [B: the vendor's own tests write target slot 5 with KeyID 0x0500].

* PRF: the TLS 1.2 PRF P_SHA256(key, message), 32 or 64 bytes (details bit 8), key length 16,
  32, 48 or 64 (bits 1:0). cryptoauthlib's ``kdf_prf_output`` known answer holds.
* AES: AES-128-ECB of the 16-byte message under 16 key bytes (details bits 1:0 pick which 16 of
  the source); the result is 16 bytes followed by 16 zeros, as that test's known answer shows.
* HKDF: one HMAC-SHA256 with the source key (or 32 zero bytes, details bit 2) over the message,
  the step both HKDF-Extract and HKDF-Expand are made of [U: no public known answer].

Not modelled (0x0F, noted): HKDF message from a slot or the "special IV" function (details
bits 1:0 = 0 or 3), PRF AEAD processing other than mode 1.

Must not: import the driver's decoders.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc.constants import KeyType, Opcode
from atecc.emulator._core import Exec, exec_error, parse_error

SRC_TEMPKEY, SRC_TEMPKEY_UP, SRC_SLOT, SRC_ALTKEY = 0, 1, 2, 3
TGT_TEMPKEY, TGT_TEMPKEY_UP, TGT_SLOT, TGT_ALTKEY, TGT_OUT, TGT_OUT_ENC = 0, 1, 2, 3, 4, 5
ALG_PRF, ALG_AES, ALG_HKDF = 0x00, 0x20, 0x40


def tls12_prf(key: bytes, seed: bytes, length: int) -> bytes:
    """P_SHA256 of RFC 5246 §5 (the label is part of ``seed``)."""
    import hashlib
    import hmac

    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(key, a, hashlib.sha256).digest()
        out += hmac.new(key, a + seed, hashlib.sha256).digest()
    return out[:length]


def _source_key(ex: Exec, source: int, slot: int, length: int) -> bytes:
    vol, cfg = ex.vol, ex.cfg
    if source in (SRC_TEMPKEY, SRC_TEMPKEY_UP):
        if not vol.tk_valid or vol.tk_is_ecc_key:
            raise exec_error("TempKey not valid")
        start = 32 * source
        if start + length > 64:
            raise exec_error("key longer than the part of TempKey it starts in")
        return bytes(vol.tempkey[start : start + length])
    if source == SRC_ALTKEY:
        if not vol.altkey_valid or length > 32:
            raise exec_error("alternate key buffer not loaded, or key longer than 32 bytes")
        return bytes(vol.altkey[:length])
    if slot > 15:
        raise exec_error("source slot out of range")
    if cfg.private[slot] and cfg.key_type[slot] == KeyType.P256:
        raise exec_error(f"slot {slot} holds an ECC private key")
    buf = ex.state.slots[slot]
    if length > len(buf):
        raise exec_error(f"key longer than slot {slot}")
    ex.require_auth(slot)
    ex.use_key(slot)
    return bytes(buf[:length])


def kdf(ex: Exec) -> bytes | None:
    mode, key_id, data = ex.p1, ex.p2, ex.data
    source, target, alg = mode & 0x03, (mode >> 2) & 0x07, mode & 0x60
    if mode & 0x80 or target > TGT_OUT_ENC or alg == 0x60:
        raise parse_error("KDF: reserved mode bits")
    if len(data) < 4:
        raise parse_error("KDF takes a 4-byte details word")
    details = int.from_bytes(data[:4], "little")
    message = bytes(data[4:])
    if len(message) != (16 if alg == ALG_AES else details >> 24):
        raise parse_error("KDF message length does not match the details word")
    ex.gate()
    cfg, vol = ex.cfg, ex.vol
    if not cfg.config_locked:
        raise exec_error("config zone not locked")
    protection = (cfg.chip_options >> 10) & 0x03
    if (protection == 1 and target == TGT_OUT) or (protection >= 2 and target >= TGT_OUT):
        # ChipOptions bits 11:10 restrict KDF output (1: encrypted only, 2/3: internal only [U])
        raise exec_error("ChipOptions KDF protection forbids this target")
    if alg == ALG_PRF:
        if details & 0x600 not in (0x000, 0x200) or details & 0x00FF_F8FC:
            raise ex.not_modelled(f"KDF PRF details 0x{details:08X}")
        out_len = 64 if details & 0x100 else 32
        if details & 0x200 and out_len != 64:
            raise exec_error("PRF AEAD mode 1 needs a 64-byte result")
        key = _source_key(ex, source, key_id & 0xFF, 16 * ((details & 0x03) + 1))
        result = tls12_prf(key, message, out_len)
    elif alg == ALG_AES:
        if not cfg.chip_options & 0x0004:
            raise exec_error("KDF-AES is disabled (ChipOptions bit 2)")
        block = details & 0x03
        key = _source_key(ex, source, key_id & 0xFF, 16 * (block + 1))[16 * block :]
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        result = enc.update(message) + enc.finalize() + bytes(16)
    else:
        location = details & 0x03
        if location in (0, 3) or details & 0x00FF_FFF8:
            raise ex.not_modelled(f"KDF HKDF details 0x{details:08X}")
        if location == 1:
            message = bytes(vol.tempkey[:32])  # [U] the message is TempKey's first 32 bytes
        key = bytes(32) if details & 0x04 else _source_key(ex, source, key_id & 0xFF, 32)
        import hashlib
        import hmac

        result = hmac.new(key, message, hashlib.sha256).digest()
    return _deliver(ex, target, key_id >> 8, result, aead=alg == ALG_PRF and bool(details & 0x200))


def _deliver(ex: Exec, target: int, slot: int, result: bytes, *, aead: bool) -> bytes | None:
    """Put the result where Param1 says; AEAD mode 1 sends the second 32 bytes out."""
    vol, cfg = ex.vol, ex.cfg
    kept, out = (result[:32], result[32:]) if aead else (result, b"")
    if target == TGT_OUT:
        return result
    if target == TGT_OUT_ENC:
        enc, nonce = ex.io_encrypt(result)
        return enc + nonce
    if target == TGT_TEMPKEY:
        vol.set_tempkey(kept, source_input=vol.tk_source_input)
    elif target == TGT_TEMPKEY_UP:
        if not vol.tk_valid:
            raise exec_error("upper TempKey needs a valid TempKey")
        vol.tempkey = vol.tempkey[:32] + kept[:32]
    elif target == TGT_ALTKEY:
        vol.altkey, vol.altkey_valid = kept[:32], True
    else:
        if slot > 15 or cfg.private[slot] or not cfg.pub_info[slot]:
            raise exec_error(f"slot {slot} does not take KDF results (KeyConfig.PubInfo)")
        if cfg.slot_locked(slot):
            raise exec_error(f"slot {slot} is locked")
        buf = ex.state.slots[slot]
        buf[: min(len(kept), len(buf))] = kept[: len(buf)]
        ex.dirty = True
    return out or None


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {Opcode.KDF: kdf}
