"""ECDSA on P-256: sign on the chip (CKM_ECDSA, CKM_ECDSA_SHA256), verify on the host.

Owns: preparing the value the chip signs (the spec's truncate/pad rule for raw ECDSA, SHA-256
for the hashing variant), single- vs multi-part bookkeeping, the fixed 64-byte r||s output and
its length-query behaviour, and host-side verification with ``cryptography``.
Must not: decide when an operation ends (the session does: any error but BUFFER_TOO_SMALL, or a
completed call) or see key bytes (signing goes through a callable bound to a chip slot).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptoki import errors
from cryptoki.mechanisms import MechanismEntry
from cryptoki.types import Output

ORDER_BYTES = 32  #: the P-256 group order is exactly 256 bits
SIGNATURE_SIZE = 64  #: r || s, each 32 bytes big-endian (PKCS#11 3.0 §6.3.1)
#: The P-256 group order n; r and s must lie in [1, n-1].
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def ecdsa_input(data: bytes) -> bytes:
    """The 32 bytes raw CKM_ECDSA hands to the chip for input ``data``.

    PKCS#11 3.0 §6.3.1: input longer than the order is truncated to its leftmost bits (for
    P-256, whose order is exactly 256 bits, the leftmost 32 bytes); shorter input is padded
    with leading zeros, i.e. read as the same integer.
    """
    if len(data) >= ORDER_BYTES:
        return bytes(data[:ORDER_BYTES])
    return bytes(data).rjust(ORDER_BYTES, b"\x00")


class _Operation:
    """State shared by sign and verify: the mechanism and, for hashed ones, the running hash."""

    kind = ""

    def __init__(self, entry: MechanismEntry) -> None:
        self.entry = entry
        import hashlib  # lazy: loads libcrypto (start-up cost: bench/results.md)

        self._hash = hashlib.sha256() if entry.hashed else None
        self._multipart = False  # set by the first *_update

    def _digest_single(self, data: bytes) -> bytes:
        if self._multipart:
            # PKCS#11: C_Sign/C_Verify cannot finish a multi-part operation.
            raise errors.OperationNotInitialized("a multi-part operation is in progress")
        if self._hash is not None:
            import hashlib

            return hashlib.sha256(data).digest()
        return ecdsa_input(data)

    def update(self, data: bytes) -> None:
        if self._hash is None:
            raise errors.OperationNotInitialized(
                "raw CKM_ECDSA is single-part; use C_Sign/C_Verify"
            )
        self._multipart = True
        self._hash.update(data)

    def _digest_final(self) -> bytes:
        if self._hash is None:
            raise errors.OperationNotInitialized("raw CKM_ECDSA is single-part")
        return self._hash.copy().digest()


class SignOperation(_Operation):
    """An active C_SignInit. ``signer(digest32) -> r||s`` runs on the chip under the token lock."""

    kind = "sign"

    def __init__(self, entry: MechanismEntry, signer: Callable[[bytes], bytes]) -> None:
        super().__init__(entry)
        self._signer = signer

    @staticmethod
    def _room(out_len: int | None) -> int | None:
        """None to go ahead; the required length for a NULL-buffer query."""
        if out_len is None:
            return SIGNATURE_SIZE
        if out_len < SIGNATURE_SIZE:
            raise errors.BufferTooSmall(SIGNATURE_SIZE)
        return None

    def sign(self, data: bytes, out_len: int | None) -> Output:
        digest = self._digest_single(data)  # wrong phase is reported before a length query
        query = self._room(out_len)
        if query is not None:
            return query
        return self._signer(digest)

    def final(self, out_len: int | None) -> Output:
        if self._hash is None:
            raise errors.OperationNotInitialized("raw CKM_ECDSA is single-part")
        query = self._room(out_len)
        if query is not None:
            return query
        return self._signer(self._digest_final())


def verify_digest(public_key: bytes, digest: bytes, signature: bytes) -> None:
    """Check r||s over a 32-byte digest with P-256 public key X||Y, on the host.

    :raises errors.SignatureLenRange: the signature is not 64 bytes.
    :raises errors.SignatureInvalid: it does not verify.
    """
    if len(signature) != SIGNATURE_SIZE:
        raise errors.SignatureLenRange(f"ECDSA P-256 signatures are {SIGNATURE_SIZE} bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_N and 0 < s < P256_N):
        raise errors.SignatureInvalid("r or s out of range")
    # Imported here: `cryptography` costs tens of milliseconds to import, and most processes
    # that load this module only ever sign.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + public_key)
    try:
        key.verify(
            utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        )
    except InvalidSignature:
        raise errors.SignatureInvalid("signature does not verify") from None


class VerifyOperation(_Operation):
    """An active C_VerifyInit with a P-256 public key (X||Y)."""

    kind = "verify"

    def __init__(self, entry: MechanismEntry, public_key: bytes) -> None:
        super().__init__(entry)
        self._public_key = public_key

    def verify(self, data: bytes, signature: bytes) -> None:
        verify_digest(self._public_key, self._digest_single(data), signature)

    def final(self, signature: bytes) -> None:
        verify_digest(self._public_key, self._digest_final(), signature)
