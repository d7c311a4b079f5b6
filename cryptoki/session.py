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

from cryptoki import errors
from cryptoki.constants import CKF, CKS, CKU

T = TypeVar("T")

#: Plain int: ``flags & CKF.RW_SESSION`` on an IntFlag costs ~0.6 µs per call (Flag.__and__),
#: a plain int ~15 ns; sessions answer ``rw`` on most calls.
_RW_SESSION = int(CKF.RW_SESSION)
# Enum members as globals for state() (every C_GetSessionInfo): ``CKS.X`` is a lookup through
# the enum metaclass, ~70-120 ns each on the benchmark machine, a global ~20 ns.
_SO, _USER = CKU.SO, CKU.USER
_RW_SO_FUNCTIONS, _RW_USER_FUNCTIONS, _RO_USER_FUNCTIONS = (
    CKS.RW_SO_FUNCTIONS,
    CKS.RW_USER_FUNCTIONS,
    CKS.RO_USER_FUNCTIONS,
)
_RW_PUBLIC_SESSION, _RO_PUBLIC_SESSION = CKS.RW_PUBLIC_SESSION, CKS.RO_PUBLIC_SESSION

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
        self.rw = bool(self.flags & _RW_SESSION)  #: a read/write session
        self._ops: dict[str, Any] = {}

    def state(self, logged_in: int | None) -> CKS:
        """CK_STATE from the token-wide login state (spec §5.6, Table 7)."""
        if logged_in is None:
            return _RW_PUBLIC_SESSION if self.rw else _RO_PUBLIC_SESSION
        if logged_in == _SO:
            return _RW_SO_FUNCTIONS
        if logged_in == _USER:
            return _RW_USER_FUNCTIONS if self.rw else _RO_USER_FUNCTIONS
        return _RW_PUBLIC_SESSION if self.rw else _RO_PUBLIC_SESSION

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

    def end_all(self) -> None:
        self._ops.clear()

    def run(self, kind: str, call: Callable[[Any], T], *, final: bool = True) -> T:
        """Run ``call(op)`` on the active operation of ``kind`` and decide whether it ends.

        :param final: the call finishes the operation when it succeeds with a result (C_Sign,
            C_SignFinal, C_Verify...); False for *_Update calls.

        A result that is an ``int`` is the answer to a length query (NULL buffer): the operation
        stays active. CKR_BUFFER_TOO_SMALL also keeps it; every other error ends it.
        """
        op = self.active(kind)
        try:
            result = call(op)
        except errors.BufferTooSmall:
            raise
        except BaseException:
            self.end(kind)
            raise
        if final and not isinstance(result, int):
            self.end(kind)
        return result
