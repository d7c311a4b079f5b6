"""Session: one C_OpenSession, its read/write flag, active operations and find cursor.

Owns: per-session operation state (at most one active operation per kind: sign, verify, find,
encrypt, decrypt, digest),
and the rule of when an operation ends: after a call that produced its final result, or after
any error other than CKR_BUFFER_TOO_SMALL; a NULL-buffer length query keeps it going (PKCS#11
3.0 §5.2 and §5.11; python-pkcs11's sign() relies on it). Must not: check the session handle
(the library did) or talk to the chip (operations carry their own callables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cryptoki import errors, limits
from cryptoki.constants import CKF, CKS, CKU

T = TypeVar("T")

#: CK_STATE by (logged-in user type, read/write session), the spec's Table 7 (§5.6).
_STATES: dict[tuple[int | None, bool], CKS] = {
    (None, False): CKS.RO_PUBLIC_SESSION,
    (None, True): CKS.RW_PUBLIC_SESSION,
    (CKU.USER, False): CKS.RO_USER_FUNCTIONS,
    (CKU.USER, True): CKS.RW_USER_FUNCTIONS,
    (CKU.SO, True): CKS.RW_SO_FUNCTIONS,  # an SO has read/write sessions only
}

SIGN = "sign"
VERIFY = "verify"
FIND = "find"
ENCRYPT = "encrypt"
DECRYPT = "decrypt"
DIGEST = "digest"


class FindCursor:
    """A snapshot of matching handles taken at C_FindObjectsInit, handed out in order."""

    kind = FIND

    def __init__(self, handles: list[int]) -> None:
        self._handles = handles
        self._pos = 0

    def next(self, max_count: int) -> list[int]:
        batch = self._handles[self._pos : self._pos + max(max_count, 0)]
        self._pos += len(batch)
        return batch


class Session:
    """One open session.

    :ivar handle: session handle, unique in the process and never reused.
    :ivar slot_id: the slot (= token) this session belongs to.
    :ivar flags: CKF_SERIAL_SESSION, plus CKF_RW_SESSION for read/write sessions.
    """

    def __init__(self, handle: int, slot_id: int, flags: int) -> None:
        self.handle = handle
        self.slot_id = slot_id
        self.flags = int(flags)  #: fixed for the session's life, so ``rw`` is computed once
        self.rw = bool(self.flags & CKF.RW_SESSION)  #: a read/write session
        self._ops: dict[str, Any] = {}
        self._fed: dict[str, int] = {}  #: input bytes each multi-part operation took so far

    def state(self, logged_in: int | None) -> CKS:
        """CK_STATE from the token-wide login state (PKCS#11 §5.6, Table 7)."""
        return _STATES[(logged_in, self.rw)]

    # -- operations -------------------------------------------------------------------------
    def begin(self, kind: str, op: Any) -> None:
        """Make ``op`` the active operation of its kind.

        :raises errors.OperationActive: one of this kind is already running.
        """
        if kind in self._ops:
            raise errors.OperationActive(f"a {kind} operation is already active")
        self._ops[kind] = op

    def check_idle(self, kind: str) -> None:
        """Raise OperationActive if ``kind`` is running (checked before anything costly)."""
        if kind in self._ops:
            raise errors.OperationActive(f"a {kind} operation is already active")

    def active(self, kind: str) -> Any:
        op = self._ops.get(kind)
        if op is None:
            raise errors.OperationNotInitialized(f"no {kind} operation is active")
        return op

    def end(self, kind: str) -> None:
        self._ops.pop(kind, None)
        self._fed.pop(kind, None)

    def end_all(self) -> None:
        self._ops.clear()
        self._fed.clear()

    def run(
        self,
        kind: str,
        call: Callable[[Any], T],
        *,
        final: bool = True,
        fed: int = 0,
        too_long: type[errors.Pkcs11Error] = errors.DataLenRange,
    ) -> T:
        """Run ``call(op)`` on the active operation of ``kind`` and decide whether it ends.

        :param final: the call finishes the operation when it succeeds with a result (C_Sign,
            C_SignFinal, C_Verify...); False for *_Update calls.
        :param fed: input bytes this call gives the operation; an operation takes at most
            ``limits.MAX_DATA_PER_OPERATION`` in all (else ``too_long``, which ends it).

        A result that is an ``int`` is the answer to a length query (NULL buffer): the operation
        stays active. CKR_BUFFER_TOO_SMALL also keeps it; every other error ends it.
        """
        op = self.active(kind)
        total = self._fed.get(kind, 0) + fed
        try:
            if total > limits.MAX_DATA_PER_OPERATION:
                raise too_long(f"an operation takes at most {limits.MAX_DATA_PER_OPERATION} bytes")
            result = call(op)
        except errors.BufferTooSmall:
            raise
        except BaseException:
            self.end(kind)
            raise
        if isinstance(result, int):
            return result
        if final:
            self.end(kind)
        else:
            self._fed[kind] = total
        return result
