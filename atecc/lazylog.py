"""Loggers for the code every process that loads the PKCS#11 module runs, which import
:mod:`logging` only when there is something to log.

Why: ``logging`` brings ``traceback``, ``linecache``, ``tokenize``, ``textwrap`` and ``string``,
about 6 ms of each process start on the reference machine (``bench/design-measurements.md``),
and a C host that loads the module (``pkcs11-tool``, ``curl``, the OpenSSL engine) normally
logs nothing.

Owns: :class:`LazyLogger`, standing in for the part of ``logging.Logger`` the module path uses
(``debug``/``info``/``warning``/``error``, ``isEnabledFor``, ``handlers``), and the hooks run
when ``logging`` is first needed (:func:`on_load`: the PKCS#11 core attaches its handler there).
The rule: while nothing in the process has imported ``logging``, records below WARNING are
dropped without importing it (nobody can have asked for them: the module's own
``ATECC_PKCS11_LOG`` configures logging at once when set); a WARNING or above, or any record
once ``logging`` is imported by anyone, goes to the real logger of the same name, after the
hooks. Must not: format or filter records itself, or hold a logger of its own configuration.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50

_hooks: list[Callable[[], object]] = []
#: Held while hooks run, so a record of another thread waits for the handler they attach.
_hooks_lock = threading.RLock()
_loaded = False  #: a LazyLogger has handed a record to ``logging`` (or fetched its logger)


def _after_fork_in_child() -> None:
    # A parent thread running the hooks at fork() would leave the lock held forever here.
    global _hooks_lock
    _hooks_lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def on_load(hook: Callable[[], object]) -> None:
    """Run ``hook`` once, when a LazyLogger first hands a record to ``logging`` (at once if one
    already has); a hook already waiting is not added twice."""
    with _hooks_lock:
        if hook not in _hooks:
            _hooks.append(hook)
        ready = _loaded
    if ready:
        _run_hooks()


def _run_hooks() -> None:
    with _hooks_lock:
        while _hooks:
            hook = _hooks.pop(0)
            try:
                hook()
            except Exception:  # logging never fails its caller; the record still goes out
                pass


def _load(name: str) -> logging.Logger:
    global _loaded
    import logging

    _loaded = True
    _run_hooks()
    return logging.getLogger(name)


class LazyLogger:
    """``logging.getLogger(name)``, fetched on the first record worth emitting."""

    __slots__ = ("_real", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    def _logger(self) -> logging.Logger:
        real = self._real
        if real is None:
            real = self._real = _load(self.name)
        return real

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's spelling)
        if level < WARNING and self._real is None and "logging" not in sys.modules:
            return False
        return self._logger().isEnabledFor(level)

    def _emit(self, level: int, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.isEnabledFor(level):
            # stacklevel: the record names our caller, not this wrapper.
            self._logger().log(level, msg, *args, stacklevel=3, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(ERROR, msg, args, kwargs)

    @property
    def handlers(self) -> list[logging.Handler]:
        """The real logger's handlers; none while ``logging`` is not needed yet."""
        if self._real is None and "logging" not in sys.modules:
            return []
        return self._logger().handlers


def get_logger(name: str) -> LazyLogger:
    """The lazy stand-in for ``logging.getLogger(name)``."""
    return LazyLogger(name)
