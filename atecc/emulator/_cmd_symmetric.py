"""Emulated symmetric commands: SHA (SHA-256 and HMAC-SHA256 sequences) and AES (single-block
AES-128 and GFM) (chip §4.11, §4.12).

Owns the streaming hash context (:class:`~atecc.emulator.sha256.Sha256` for SHA, whose state
SHA context read and write (modes 6/7) carry; ``hmac`` for HMAC), the End-mode digest targets
(00 TempKey, 01 message digest buffer, 11 output only), and GF(2^128) multiplication with GCM's
bit order. Not modelled (0x0F, noted): the 508A "Public" mode 3, context read of an HMAC
sequence.
"""

from __future__ import annotations

from collections.abc import Callable

from atecc.constants import KeyType, Opcode
from atecc.emulator._core import Exec, exec_error, parse_error
from atecc.emulator.sha256 import Sha256

_HMAC_TEMPKEY = 0xFFFF


# ------------------------------------------------------------------------------- SHA §4.11 ---
def sha(ex: Exec) -> bytes | None:
    mode, p2, data = ex.p1, ex.p2, ex.data
    op = mode & 0x07
    target = mode >> 6
    if mode & 0x38:
        raise parse_error("SHA: reserved mode bits")
    if target and op not in (0x02, 0x05):
        raise parse_error("SHA: a digest target only goes with End")
    if target == 0x02:
        raise parse_error("SHA: digest target 10 is reserved")
    vol = ex.vol
    if op == 0x00:  # Start
        if p2 or data:
            raise parse_error("SHA start takes no parameters")
        ex.gate()
        vol.sha, vol.sha_is_hmac = Sha256(), False
        return None
    if op == 0x01:  # Update: 1-64 bytes on the 608 (508A: exactly 64)
        if p2 != len(data) or not 1 <= p2 <= 64:
            raise parse_error("SHA update: param2 must equal the 1-64 data bytes")
        ex.gate()
        if vol.sha is None:
            raise exec_error("no SHA sequence started")
        vol.sha.update(data)
        return None
    if op in (0x02, 0x05):  # End; HMAC end is mode 5 (508A) and also mode 2 on the 608
        limit = 64 if op == 0x02 else 63
        if p2 != len(data) or p2 > limit:
            raise parse_error(f"SHA end: param2 must equal the 0-{limit} data bytes")
        ex.gate()
        ctx = vol.sha
        if ctx is None or (op == 0x05 and not vol.sha_is_hmac):
            raise exec_error("no matching SHA/HMAC sequence started")
        ctx.update(data)
        digest = ctx.digest()
        vol.sha = None
        ex.load_target(target, digest)
        return digest
    if op == 0x04:  # HMAC start
        if data or (p2 > 15 and p2 != _HMAC_TEMPKEY):
            raise parse_error("HMAC start: key slot 0-15 or 0xFFFF, no data")
        ex.gate()
        key = _hmac_key(ex, p2)
        import hashlib
        import hmac

        vol.sha, vol.sha_is_hmac = hmac.new(key, digestmod=hashlib.sha256), True
        return None
    if op == 0x06:  # read context
        if p2 or data:
            raise parse_error("SHA context read takes no parameters")
        ex.gate()
        if vol.sha is None:
            raise exec_error("no SHA sequence started")
        if vol.sha_is_hmac:
            raise ex.not_modelled("SHA context read of an HMAC sequence")
        return vol.sha.context()
    if op == 0x07:  # write context
        if p2 != len(data):
            raise parse_error("SHA context write: param2 must equal the context length")
        try:
            restored = Sha256.from_context(bytes(data))
        except ValueError as exc:
            raise parse_error(f"SHA context write: {exc}") from None
        ex.gate()
        vol.sha, vol.sha_is_hmac = restored, False
        return None
    if p2 > 15 or data:
        raise parse_error("SHA public: slot 0-15, no data")
    ex.gate()
    raise ex.not_modelled("SHA mode 3 (508A public-key hash)")


def _hmac_key(ex: Exec, key_id: int) -> bytes:
    cfg, vol = ex.cfg, ex.vol
    if key_id == _HMAC_TEMPKEY:
        if not vol.tk_valid or vol.tk_is_ecc_key:
            raise exec_error("TempKey not valid")
        if vol.tk_nomac:
            raise exec_error("TempKey NoMacFlag set")
        return vol.tempkey[:32]
    slot = key_id
    if cfg.private[slot] or cfg.key_type[slot] != KeyType.SHA_OR_DATA:
        raise exec_error(f"slot {slot} is not a SHA/HMAC key slot")
    if cfg.no_mac[slot]:
        raise exec_error(f"slot {slot} has NoMac set")
    ex.require_random_tempkey(slot)
    ex.require_auth(slot)
    ex.use_key(slot)
    return bytes(ex.state.slots[slot][:32])


# ------------------------------------------------------------------------------- AES §4.12 ---
def gfm(h: bytes, x: bytes) -> bytes:
    """Multiply in GF(2^128) with GCM's reflected bit order (NIST SP 800-38D, Algorithm 1)."""
    y = int.from_bytes(h, "big")
    z = 0
    v = int.from_bytes(x, "big")
    r = 0xE1 << 120
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z.to_bytes(16, "big")


def aes(ex: Exec) -> bytes:
    mode, p2, data = ex.p1, ex.p2, ex.data
    op = mode & 0x07
    key_block = mode >> 6
    if mode & 0x38 or op not in (0x00, 0x01, 0x03):
        raise parse_error("AES: reserved mode bits")
    if op == 0x03:
        if len(data) != 32:
            raise parse_error("AES GFM takes H and the input (32 bytes)")
    else:
        if len(data) != 16:
            raise parse_error("AES takes one 16-byte block")
        if p2 > 15 and p2 != 0xFFFF:
            raise parse_error("AES key: slot 0-15 or 0xFFFF")
    ex.gate()
    cfg, vol = ex.cfg, ex.vol
    if not cfg.aes_enabled:
        raise exec_error("AES is disabled in the config zone (byte 13)")
    if op == 0x03:
        return gfm(data[:16], data[16:])
    if p2 == 0xFFFF:
        if not vol.tk_valid or vol.tk_is_ecc_key:
            raise exec_error("TempKey not valid")
        key = vol.tempkey[16 * key_block : 16 * key_block + 16]
    else:
        slot = p2
        if cfg.key_type[slot] != KeyType.AES or cfg.private[slot]:
            raise exec_error(f"slot {slot} is not an AES key slot")
        buf = ex.state.slots[slot]
        if 16 * key_block + 16 > len(buf):
            raise exec_error(f"key block {key_block} is outside slot {slot}")
        ex.require_auth(slot)
        ex.use_key(slot)
        key = bytes(buf[16 * key_block : 16 * key_block + 16])
    # Imported here: the emulator should not pay for ``cryptography`` until a command needs it.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.ECB())
    worker = cipher.decryptor() if op == 0x01 else cipher.encryptor()
    return worker.update(data) + worker.finalize()


HANDLERS: dict[int, Callable[[Exec], bytes | int | None]] = {
    Opcode.SHA: sha,
    Opcode.AES: aes,
}
