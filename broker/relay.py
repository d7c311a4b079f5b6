"""The broker's view of p11-kit: managed module instances and one relayed connection.

Owns: the Python face of the C extension ``broker._relay`` (built from ``native/broker_relay.c``):
:class:`ManagedModule` (one ``p11_kit_module_load`` instance: p11-kit counts C_Initialize across
instances and remembers each instance's sessions, so finalizing one closes that client's sessions
and nothing else), :class:`Limits` and :func:`serve` (one client connection, served by p11-kit's
RPC server behind the C relay, with the GIL released for the whole conversation).

Must not: parse PKCS#11 or the RPC protocol (p11-kit and the relay do), decide who may connect
(:mod:`broker.peers`), or own sockets (:mod:`broker.server` does; ``serve`` neither closes nor
shuts down the connection it is given).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from broker import _relay  # type: ignore[attr-defined]

ffi: Any = _relay.ffi
_lib: Any = _relay.lib

CKR_OK = 0
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190


class BrokerError(Exception):
    """The broker cannot do what it was asked; the message says why, in one line."""


class End(enum.IntEnum):
    """Why a relayed connection ended (``enum relay_end`` in ``native/broker_relay.c``)."""

    CLOSED = 0
    HANDSHAKE_TIMEOUT = 1
    MESSAGE_TIMEOUT = 2
    IDLE_TIMEOUT = 3
    TOO_LARGE = 4
    CLIENT_LOST = 5
    SERVER_CLOSED = 6
    STOPPED = 7
    SYSTEM_ERROR = 8


class Limits(NamedTuple):
    """What one connection may do before the relay closes it."""

    max_options: int
    max_body: int
    handshake_s: float
    message_s: float
    idle_s: float  #: 0: no limit between requests


class Result(NamedTuple):
    end: End
    errno: int
    requests: int


def p11kit_problem() -> str | None:
    """None when libp11-kit is usable, else why not (one line)."""
    err = _lib.relay_p11kit_error()
    return None if err == ffi.NULL else ffi.string(err).decode(errors="replace")


def _message() -> str:
    return ffi.string(_lib.relay_p11kit_message()).decode(errors="replace").strip()


class ManagedModule:
    """One managed instance of a PKCS#11 module, loaded through p11-kit."""

    def __init__(self, path: str) -> None:
        problem = p11kit_problem()
        if problem:
            raise BrokerError(f"libp11-kit is not usable: {problem}")
        self.path = path
        self._ptr = _lib.relay_module_load(path.encode())
        if self._ptr == ffi.NULL:
            raise BrokerError(f"p11-kit could not load {path}: {_message() or 'no reason given'}")

    @property
    def function_list(self) -> Any:
        """The instance's ``CK_FUNCTION_LIST *`` (for the broker's own calls, e.g. --check)."""
        return ffi.cast("CK_FUNCTION_LIST *", self._ptr)

    def initialize(self) -> None:
        rv = _lib.relay_module_initialize(self._ptr)
        if rv != CKR_OK:
            raise BrokerError(f"C_Initialize of {self.path} failed: CK_RV 0x{rv:X} {_message()}")

    def finalize(self) -> int:
        """C_Finalize this instance (closes the sessions it opened); returns the CK_RV."""
        return int(_lib.relay_module_finalize(self._ptr))

    def release(self) -> None:
        if self._ptr != ffi.NULL:
            _lib.relay_module_release(self._ptr)
            self._ptr = ffi.NULL

    @property
    def pointer(self) -> Any:
        return self._ptr


def serve(module: ManagedModule, fd: int, limits: Limits, stop_fd: int) -> Result:
    """Serve one client connection on ``fd`` until it ends; blocks (without the GIL)."""
    lim = ffi.new(
        "struct relay_limits *",
        {
            "max_options": limits.max_options,
            "max_body": limits.max_body,
            "handshake_ms": max(1, int(limits.handshake_s * 1000)),
            "message_ms": max(1, int(limits.message_s * 1000)),
            "idle_ms": int(limits.idle_s * 1000),
        },
    )
    stats = ffi.new("struct relay_stats *")
    _lib.relay_serve(module.pointer, fd, lim, stop_fd, stats)
    return Result(End(stats.end), int(stats.sys_errno), int(stats.requests))
