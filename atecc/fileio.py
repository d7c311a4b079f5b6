"""Files the project keeps on disk: one atomic write, one bounded read, one inter-process lock.

Owns: how every state, metadata, registry and CA file is replaced (temporary file in the same
directory, fsync, rename, fsync of the directory, so a reader sees the old file or the new one and
a crash leaves one of them whole), how such files are read (regular files only, with a size
limit, optionally refusing symlinks, never blocking on a FIFO), the cleanup of temporary files a
crashed writer left, and the ``flock`` used around read-modify-write cycles (re-entrant per
thread, safe across ``fork()``). The driver, the emulator, the token store and the fleet code all
use these and nothing else.
Must not: know what the files contain, log their contents, or decide what a refusal means (the
callers turn :class:`FileRefusedError` into their own errors).

Crash testing: :data:`crash_hook`, when set (tests only, in a child process), is called with the
name of each step of :func:`atomic_write` before the step runs (see :data:`WRITE_STEPS`), so a test
can end the process at every step in turn and check what a reader finds afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

#: The steps of :func:`atomic_write`, in order, as passed to :data:`crash_hook`.
WRITE_STEPS = ("create-temp", "write-temp", "fsync-temp", "rename", "fsync-dir")
#: Tests only: called with each step name before that step runs.
crash_hook: Callable[[str], None] | None = None

_TEMP_SUFFIX = ".tmp"


class FileRefusedError(OSError):
    """A path that is not a regular file, is a symlink where none is allowed, or is too large."""


def _step(name: str) -> None:
    if crash_hook is not None:
        crash_hook(name)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def remove_stale_temps(path: str | os.PathLike[str]) -> int:
    """Remove temporary files of :func:`atomic_write` for ``path`` whose writer is gone.

    Temporary names carry the writer's pid (``.<name>.<pid>.<random>.tmp``); a file whose pid no
    longer runs was left by a crash. Returns how many were removed; errors are ignored (the next
    writer tries again).
    """
    target = Path(path)
    prefix = _temp_prefix(target)
    removed = 0
    try:
        names = os.listdir(target.parent if str(target.parent) else ".")
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(_TEMP_SUFFIX)):
            continue
        pid_text = name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.with_name(name))
            removed += 1
    return removed


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> Path:
    """Replace ``path`` with ``data`` so that no reader and no crash ever sees half a file.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` and mode 0600 and only then set to
    ``mode``, so a private file is never readable by others, not even for an instant. The rename
    replaces the directory entry (a symlink at ``path`` is replaced, not followed). Temporary
    files of crashed writers are removed first. Returns the path written.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    remove_stale_temps(target)
    _step("create-temp")
    tmp = directory / f"{_temp_prefix(target)}{os.getpid()}.{os.urandom(6).hex()}{_TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise _about(exc, target) from None
    try:
        try:
            _step("write-temp")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode != 0o600:
                os.fchmod(fd, mode)
            _step("fsync-temp")
            os.fsync(fd)
        finally:
            os.close(fd)
        _step("rename")
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and str(exc.filename) == str(tmp):
            raise _about(exc, target) from None
        raise
    _step("fsync-dir")
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def _about(exc: OSError, target: Path) -> OSError:
    """The same error naming the file the caller asked for, not our temporary file."""
    return type(exc)(exc.errno, exc.strerror, str(target))


def read_limited(
    path: str | os.PathLike[str], *, max_bytes: int, follow_symlinks: bool = True
) -> bytes:
    """The contents of the regular file ``path``, refusing anything else.

    Opened non-blocking, so a FIFO cannot hang the caller; a device (``/dev/zero``), a directory
    or a socket is refused, as is a file over ``max_bytes`` (checked before and while reading, so
    a file that grows is refused too) and, with ``follow_symlinks=False``, a symlink.

    :raises FileNotFoundError: no such file.
    :raises FileRefusedError: not a regular file, a symlink where none is allowed, or too large.
    :raises OSError: any other failure to open or read.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise FileRefusedError(errno.ELOOP, "is a symlink, refused", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefusedError(errno.EINVAL, "not a regular file", str(path))
        if st.st_size > max_bytes:
            raise FileRefusedError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise FileRefusedError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def ownership_problem(path: str | os.PathLike[str]) -> str | None:
    """Why another local user could change ``path``, or None when only we (or root) can.

    A file or directory is unsafe when it is writable by group or others, or owned by a user
    other than the current one and root. Callers decide whether that is a warning or a refusal.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}) or root"
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None  # sticky directory (/tmp): others cannot replace our entries
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
    return None


# ---------------------------------------------------------------------------------------------
# The inter-process lock

_LOCKS: weakref.WeakSet[FileLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock that a thread of the parent held at fork time is, in the child, held by a thread
    # that does not exist: its RLock would block forever, and its inherited descriptor would keep
    # the flock (which belongs to the shared open file description) alive after the parent
    # released it, blocking every process. The child drops both.
    for lock in list(_LOCKS):
        lock._reset_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class FileLock:
    """An exclusive ``flock`` on ``path`` (created 0600), held around a read-modify-write.

    Re-entrant within a thread (the ``flock`` is taken by the outermost holder only); other
    threads of the process wait on a thread lock first. After ``fork()`` the child starts with
    the lock free and its own descriptor (see :func:`_after_fork_in_child`). A symlink at ``path``
    is refused, so nobody can make us create or lock a file elsewhere.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        _LOCKS.add(self)

    def _reset_in_child(self) -> None:
        self._rlock = threading.RLock()
        self._depth = 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FileRefusedError(
                    errno.ELOOP, "lock file is a symlink, refused", str(self.path)
                ) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileRefusedError(errno.EINVAL, "lock file is not a regular file", str(self.path))
        return fd

    def acquire(self) -> None:
        self._rlock.acquire()
        try:
            if self._depth == 0:
                if self._fd is None:
                    self._fd = self._open()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise

    def release(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._rlock.release()

    def close(self) -> None:
        """Close the descriptor (the lock must not be held)."""
        with self._rlock:
            if self._fd is not None and self._depth == 0:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
