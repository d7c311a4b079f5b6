"""Environment variables that choose files, read the way a setuid program must read them.

Owns: :func:`secure_mode` (the process runs with privileges its caller does not have: setuid,
setgid or file capabilities, what glibc calls AT_SECURE) and :func:`secure_getenv`, which
answers None in secure mode. Every setting that chooses a path (the filestore, the log file) is
read through it, so a user who runs a privileged program that loads the module cannot point it
at their own slot files, state files or log target.
Must not: read settings that do not choose files or code (those may use ``os.environ``).
"""

from __future__ import annotations

import os
import struct

_AT_SECURE = 23  #: the auxiliary-vector entry the kernel sets for setuid/setgid/capabilities
_secure: bool | None = None


def _auxv_secure() -> bool | None:
    """AT_SECURE from ``/proc/self/auxv`` (pairs of native unsigned longs), None if unreadable."""
    try:
        with open("/proc/self/auxv", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    width = struct.calcsize("@L")
    for offset in range(0, len(data) - 2 * width + 1, 2 * width):
        key, value = struct.unpack_from("@LL", data, offset)
        if key == _AT_SECURE:
            return bool(value)
        if key == 0:  # AT_NULL ends the vector
            break
    return None


def secure_mode() -> bool:
    """True in a process the kernel marked AT_SECURE (else: real and effective ids differ)."""
    global _secure
    if _secure is None:
        secure = _auxv_secure()
        if secure is None:
            secure = os.getuid() != os.geteuid() or os.getgid() != os.getegid()
        _secure = secure
    return _secure


def secure_getenv(name: str) -> str | None:
    """``os.environ.get(name)``, except None in secure mode (glibc's ``secure_getenv``)."""
    if secure_mode():
        return None
    return os.environ.get(name)
