"""AES-128 block modes built around the chip's single-block AES command: ECB, CBC, CBC_PAD, GCM.

Owns: the modes (NIST SP 800-38A, SP 800-38D), their parameters and the spec's errors for them,
single- and multi-part bookkeeping, and output lengths. Every AES block operation runs on the chip
(AES command, encrypt/decrypt with the key in a slot's key block), and GCM's GHASH multiplies with
the chip's GFM mode; the host only XORs, chains, counts and pads.
Must not: see key bytes (it holds a :class:`BlockCipher` bound to a chip slot by the token) or
decide when an operation ends (the session does).

Each call is computed from the current state without changing it, then committed only when the
result fits the caller's buffer: a NULL-buffer length query or CKR_BUFFER_TOO_SMALL leaves the
operation exactly where it was (the chip work is then done again by the real call).
"""

from __future__ import annotations

from typing import Protocol

from atecc.record import record, replace
from cryptoki import errors
from cryptoki.constants import CKM
from cryptoki.types import GcmParams, Mechanism, Output

BLOCK = 16
MAX_GCM_IV = 256  #: longest GCM IV accepted (bytes); PKCS#11 recommends 1..256


class BlockCipher(Protocol):
    """The chip operations a mode needs, bound to one key (slot and key block)."""

    def ecb(self, data: bytes, *, decrypt: bool) -> bytes: ...
    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes: ...
    def ghash(self, h: bytes, y: bytes, data: bytes) -> bytes: ...


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def _pad16(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


@record(frozen=True)
class _State:
    buf: bytes = b""  #: input not processed yet (less than a block, or held back)
    chain: bytes = b""  #: CBC: previous ciphertext block (the IV at first)
    counter: int = 0  #: GCM: counter of the next keystream block
    y: bytes = bytes(BLOCK)  #: GCM: GHASH state
    clen: int = 0  #: GCM: ciphertext bytes absorbed so far


class AesOperation:
    """An active C_EncryptInit / C_DecryptInit with an AES mechanism.

    :raises errors.MechanismParamInvalid: from the constructor, for a bad IV or GCM parameter.
    """

    def __init__(self, mechanism: Mechanism, *, encrypt: bool, cipher: BlockCipher) -> None:
        self.kind = "encrypt" if encrypt else "decrypt"
        self._mech = mechanism.type
        self._encrypt = encrypt
        self._cipher = cipher
        self._multipart = False
        param = mechanism.param
        if self._mech in (CKM.AES_CBC, CKM.AES_CBC_PAD):
            if not isinstance(param, bytes) or len(param) != BLOCK:
                raise errors.MechanismParamInvalid("AES-CBC needs a 16-byte IV")
            self._state = _State(chain=param)
        elif self._mech == CKM.AES_GCM:
            self._init_gcm(param)
        else:
            self._state = _State()

    # -- GCM setup --------------------------------------------------------------------------
    def _init_gcm(self, param: object) -> None:
        if not isinstance(param, GcmParams):
            raise errors.MechanismParamInvalid("AES-GCM needs CK_GCM_PARAMS")
        if not 1 <= len(param.iv) <= MAX_GCM_IV or param.iv_bits != 8 * len(param.iv):
            raise errors.MechanismParamInvalid("GCM IV must be 1..256 bytes (ulIvBits = 8*len)")
        if not 0 < param.tag_bits <= 128 or param.tag_bits % 8:
            raise errors.MechanismParamInvalid("GCM tag must be 8..128 bits, whole bytes")
        self._tag_len = param.tag_bits // 8
        self._aad_len = len(param.aad)
        c = self._cipher
        self._h = c.ecb(bytes(BLOCK), decrypt=False)  # H = E_K(0^128) on the chip
        if len(param.iv) == 12:
            j0 = param.iv + b"\x00\x00\x00\x01"
        else:
            lengths = (8 * len(param.iv)).to_bytes(16, "big")
            j0 = c.ghash(self._h, bytes(BLOCK), _pad16(param.iv) + lengths)
        self._j0 = j0
        y = c.ghash(self._h, bytes(BLOCK), _pad16(param.aad)) if param.aad else bytes(BLOCK)
        self._state = _State(counter=int.from_bytes(j0[12:], "big") + 1, y=y)

    def _keystream(self, counter: int, nblocks: int) -> bytes:
        prefix = self._j0[:12]
        blocks = b"".join(
            prefix + ((counter + i) & 0xFFFFFFFF).to_bytes(4, "big") for i in range(nblocks)
        )
        return self._cipher.ecb(blocks, decrypt=False) if blocks else b""

    def _gcm_step(self, st: _State, data: bytes, final: bool) -> tuple[bytes, _State]:
        c = self._cipher
        if not self._encrypt:
            # Decryption releases nothing before the tag is checked: collect until the end.
            st = replace(st, buf=st.buf + data)
            if not final:
                return b"", st
            if len(st.buf) < self._tag_len:
                raise errors.EncryptedDataLenRange("shorter than the GCM tag")
            body, tag = st.buf[: len(st.buf) - self._tag_len], st.buf[len(st.buf) - self._tag_len :]
            y = c.ghash(self._h, st.y, _pad16(body)) if body else st.y
            y = c.ghash(self._h, y, self._lengths(len(body)))
            expect = _xor(c.ecb(self._j0, decrypt=False), y)[: self._tag_len]
            if not _ct_equal(expect, tag):
                raise errors.EncryptedDataInvalid("GCM tag does not verify")
            nblocks = -(-len(body) // BLOCK)
            plain = _xor(body, self._keystream(st.counter, nblocks))
            return plain, _State()
        buf = st.buf + data
        full = len(buf) - len(buf) % BLOCK if not final else len(buf)
        chunk, rest = buf[:full], buf[full:]
        nblocks = -(-len(chunk) // BLOCK)
        out = _xor(chunk, self._keystream(st.counter, nblocks))
        y = c.ghash(self._h, st.y, _pad16(out)) if out else st.y
        st = _State(buf=rest, counter=st.counter + nblocks, y=y, clen=st.clen + len(out))
        if not final:
            return out, st
        y = c.ghash(self._h, st.y, self._lengths(st.clen))
        tag = _xor(c.ecb(self._j0, decrypt=False), y)[: self._tag_len]
        return out + tag, _State()

    def _lengths(self, clen: int) -> bytes:
        return (8 * self._aad_len).to_bytes(8, "big") + (8 * clen).to_bytes(8, "big")

    # -- ECB / CBC ---------------------------------------------------------------------------
    def _len_error(self, what: str) -> errors.Pkcs11Error:
        if self._encrypt:
            return errors.DataLenRange(what)
        return errors.EncryptedDataLenRange(what)

    def _blocks(self, st: _State, data: bytes) -> tuple[bytes, _State]:
        """Process whole blocks of ``data`` (a multiple of 16) and return the new chain."""
        if not data:
            return b"", st
        c = self._cipher
        if self._mech == CKM.AES_ECB:
            return c.ecb(data, decrypt=not self._encrypt), st
        if self._encrypt:
            out = c.cbc_encrypt(st.chain, data)
            return out, replace(st, chain=out[-BLOCK:])
        plain = c.ecb(data, decrypt=True)
        prev = st.chain + data[:-BLOCK]
        return _xor(plain, prev), replace(st, chain=data[-BLOCK:])

    def _step(self, st: _State, data: bytes, final: bool) -> tuple[bytes, _State]:
        if self._mech == CKM.AES_GCM:
            return self._gcm_step(st, data, final)
        buf = st.buf + data
        padded = self._mech == CKM.AES_CBC_PAD
        if not final:
            take = len(buf) - len(buf) % BLOCK
            if padded and not self._encrypt and take == len(buf):
                take -= BLOCK  # keep the last block: it carries the padding
            take = max(take, 0)
            out, st = self._blocks(st, buf[:take])
            return out, replace(st, buf=buf[take:])
        if padded and self._encrypt:
            n = BLOCK - len(buf) % BLOCK
            out, _ = self._blocks(st, buf + bytes([n]) * n)
            return out, _State()
        if len(buf) % BLOCK:
            raise self._len_error("AES-ECB/CBC data must be a multiple of 16 bytes")
        if padded:
            if not buf:
                raise errors.EncryptedDataLenRange("AES-CBC-PAD ciphertext cannot be empty")
            out, _ = self._blocks(st, buf)
            n = out[-1]
            if not 1 <= n <= BLOCK or out[-n:] != bytes([n]) * n:
                raise errors.EncryptedDataInvalid("bad CBC padding")
            return out[:-n], _State()
        out, _ = self._blocks(st, buf)
        return out, _State()

    # -- the PKCS#11 calls -------------------------------------------------------------------
    def _deliver(self, result: tuple[bytes, _State], out_len: int | None) -> Output:
        out, new_state = result
        if out_len is None:
            return len(out)
        if out_len < len(out):
            raise errors.BufferTooSmall(len(out))
        self._state = new_state
        return out

    def single(self, data: bytes, out_len: int | None) -> Output:
        """C_Encrypt / C_Decrypt."""
        if self._multipart:
            raise errors.OperationNotInitialized("a multi-part operation is in progress")
        return self._deliver(self._step(self._state, bytes(data), True), out_len)

    def update(self, data: bytes, out_len: int | None) -> Output:
        """C_EncryptUpdate / C_DecryptUpdate."""
        result = self._step(self._state, bytes(data), False)
        out = self._deliver(result, out_len)
        if not isinstance(out, int):
            self._multipart = True
        return out

    def final(self, out_len: int | None) -> Output:
        """C_EncryptFinal / C_DecryptFinal."""
        return self._deliver(self._step(self._state, b"", True), out_len)


def _ct_equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)
