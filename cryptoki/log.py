"""Logging for the Cryptoki core: one logger named ``cryptoki``, configured once per process.

Owns: reading ``ATECC_PKCS11_LOG`` and attaching exactly one handler to the ``cryptoki`` logger
(when: :mod:`cryptoki.log_start`), and to the driver's ``atecc`` logger unless the host has
configured logging itself (in a C host the driver's warnings would otherwise reach the host's
stderr bare, through Python's last-resort handler, whatever ``ATECC_PKCS11_LOG`` says).
Must not: write to stdout (a PKCS#11 module lives inside someone else's program, whose stdout may
be a protocol stream), log PINs or key bytes (callers pass lengths, never values), or touch the
root logger (the host application owns that).

``ATECC_PKCS11_LOG`` forms::

    stderr              WARNING and above to stderr (the default when unset)
    stderr:DEBUG        any level name logging knows
    /var/log/p11.log    append to a file, WARNING
    /tmp/p11.log:INFO   append to a file at INFO

A file that cannot be opened falls back to stderr, with one warning saying why.

Every record above DEBUG is one line: a traceback attached to it is left out (the type and
message of its exception are appended instead), and newlines in the message are escaped, so an
unexpected exception shows on the host's stderr as one ERROR line. Tracebacks are written only
for DEBUG records, which callers log next to the ERROR line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

from atecc.environment import secure_getenv
from cryptoki.log_start import ENV_VAR

LOGGER_NAME = "cryptoki"

#: The driver's logger (``atecc.slotfile``, ``atecc.device``...): its records are the module's too.
DRIVER_LOGGER_NAME = "atecc"

_configured = False
_handler: logging.Handler | None = None  #: the one handler this module attached
_driver_attached = False  #: whether _handler also serves the driver's logger
_config_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A parent thread inside configure() at fork() would leave the lock held forever here.
    global _config_lock
    _config_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _FlushingFileHandler(logging.FileHandler):
    """A FileHandler that flushes after every record: the host may exit without our help."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a Python host, or a test,
    may replace it after the handler was made), as logging's own last-resort handler does."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _Formatter(logging.Formatter):
    """One line per record above DEBUG (no traceback, newlines escaped); DEBUG in full."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno <= logging.DEBUG:
            return super().format(record)
        exc = record.exc_info[1] if record.exc_info else None
        short = logging.makeLogRecord(record.__dict__)
        short.exc_info = short.exc_text = short.stack_info = None
        text = super().format(short)
        if exc is not None:
            text += f" ({type(exc).__name__}: {exc})"
        return text.replace("\r", "\\r").replace("\n", "\\n")


def _parse(spec: str) -> tuple[str, int]:
    """Split ``target[:LEVEL]`` into (target, level); an unknown level name keeps the target whole.

    A Windows-style drive letter cannot occur on the platforms we support, so the last colon is the
    only candidate separator; ``/tmp/a:b`` with ``b`` not a level name is taken as a file name.
    """
    target, sep, level_name = spec.rpartition(":")
    if sep:
        level = logging.getLevelName(level_name.strip().upper())
        if isinstance(level, int):
            return target.strip() or "stderr", level
    return spec.strip() or "stderr", logging.WARNING


def configure(force: bool = False) -> logging.Logger:
    """Attach the handler named by ``ATECC_PKCS11_LOG`` to the ``cryptoki`` logger, once.

    :param force: re-read the environment and replace our handler (tests use this).
    :returns: the ``cryptoki`` logger.
    """
    global _configured, _handler, _driver_attached
    logger = logging.getLogger(LOGGER_NAME)
    driver = logging.getLogger(DRIVER_LOGGER_NAME)
    with _config_lock:
        if _configured and not force:
            return logger
        if _handler is not None:  # only ever remove our own handler, never the host's
            logger.removeHandler(_handler)
            if _driver_attached:
                driver.removeHandler(_handler)
                _driver_attached = False
            _handler.close()
            _handler = None
        # The log target is a path: a setuid/setgid host never takes it from its caller.
        target, level = _parse(secure_getenv(ENV_VAR) or "stderr")
        handler: logging.Handler = _StderrHandler()
        problem = None
        if target.lower() != "stderr":
            try:
                handler = _FlushingFileHandler(target, mode="a", encoding="utf-8")
            except OSError as exc:
                problem = f"cannot open log file {target!r} ({exc.strerror}); logging to stderr"
        handler.setFormatter(
            _Formatter("%(asctime)s atecc-pkcs11[%(process)d] %(levelname)s %(message)s")
        )
        _handler = handler
        logger.addHandler(handler)
        logger.setLevel(level)
        # Records stop here: a host that configured the root logger would otherwise print them
        # twice, and one that did not would get Python's last-resort handler.
        logger.propagate = False
        # The driver's records (a slot file's repeated key, a chip that does not answer) go the
        # same way, unless the host configured logging itself (the `atecc` CLI, a Python program
        # with handlers): then they are the host's, as any library's records are.
        if not driver.handlers and not logging.getLogger().handlers:
            driver.addHandler(handler)
            driver.setLevel(level)
            driver.propagate = False
            _driver_attached = True
        _configured = True
    if problem:
        logger.warning("%s", problem)
    return logger


def get_logger(name: str = "") -> logging.Logger:
    """The ``cryptoki`` logger (or a child such as ``cryptoki.token``), configured on first use."""
    configure()
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """For in-process tools (``atecc`` commands, ``atecc doctor``) that report the module's
    problems in their own words: the module's log lines are dropped meanwhile, unless the user
    asked for them with ``ATECC_PKCS11_LOG``."""
    logger = configure()
    if secure_getenv(ENV_VAR):
        yield
        return
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
