"""The broker's listening socket: inherited from systemd (``LISTEN_FDS``) or made here.

Owns: the socket-activation hand-over (``LISTEN_PID``/``LISTEN_FDS``, first descriptor 3; the
variables are removed so that nothing the broker starts inherits them) and, without it, binding
the UNIX socket: its directory is created owner-only-plus-group (0750) when missing, the socket
file is 0660, a stale socket left by a dead broker is replaced, a live one or anything that is
not a socket is never touched.

Must not: decide who may use the broker (file modes are a second fence; :mod:`broker.peers` is
the gate), or follow a symlink planted where the socket should be (``os.lstat`` checks, and a
symlink is refused like any other non-socket).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

#: Where the service files put the socket; also the `atecc broker` default.
DEFAULT_SOCKET = "/run/atecc-broker/pkcs11.sock"
SD_LISTEN_FDS_START = 3
BACKLOG = 64


class ListenError(Exception):
    """The socket cannot be set up; the message says why."""


def inherited_socket() -> socket.socket | None:
    """The listening socket systemd passed us, or None when not socket-activated."""
    pid, fds = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if not pid or not fds or pid != str(os.getpid()):
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    try:
        count = int(fds)
    except ValueError:
        raise ListenError(f"LISTEN_FDS={fds!r} is not a number") from None
    if count < 1:
        return None
    try:
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    except OSError as exc:
        raise ListenError(f"the inherited descriptor 3 is not a socket ({exc.strerror})") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ListenError("the inherited descriptor 3 is not a UNIX stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise ListenError("the inherited descriptor 3 is not listening (use Accept=no)")
    os.set_inheritable(sock.fileno(), False)
    return sock


def _is_live(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise
    return True


def bind_socket(path: str | os.PathLike[str]) -> socket.socket:
    """A listening UNIX socket at ``path`` (0660, in a 0750 directory if we create it)."""
    path = Path(path)
    if len(os.fsencode(path)) >= 108:
        raise ListenError(f"socket path too long for AF_UNIX (108 bytes): {path}")
    if not path.parent.is_dir():
        try:
            path.parent.mkdir(mode=0o750, parents=True)
        except OSError as exc:
            raise ListenError(f"cannot create {path.parent}: {exc.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISSOCK(mode):
            raise ListenError(f"{path} exists and is not a socket; not touching it")
        if _is_live(str(path)):
            raise ListenError(f"a broker is already listening on {path}")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    sock.listen(BACKLOG)
    return sock


def listening_socket(path: str | os.PathLike[str]) -> tuple[socket.socket, str]:
    """(socket, description): the inherited one if socket-activated, else one bound at ``path``."""
    sock = inherited_socket()
    if sock is not None:
        name = sock.getsockname()
        where = name if isinstance(name, str) and name else "an abstract or unnamed address"
        return sock, f"{where} (from systemd)"
    return bind_socket(path), str(path)
