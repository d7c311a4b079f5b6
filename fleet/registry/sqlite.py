"""The default registry engine: one SQLite file in the CA directory.

Owns: opening ``<ca dir>/registry.sqlite3`` safely (a regular file, never through a symlink,
created 0644 when missing), the connection settings (WAL, so the server's reads never wait for
an issuer; ``synchronous=FULL``, so a committed issue survives a power cut; a busy timeout, so
concurrent issuers queue instead of failing), and refusing a file that is not a registry
(fail closed: an unreadable registry is an error, never an empty one).

Must not: hold SQL other than the connection settings (``store.py``).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path

from fleet import FleetError
from fleet.registry.store import Dialect, Registry

FILE_NAME = "registry.sqlite3"
BUSY_TIMEOUT_MS = 60_000

DIALECT = Dialect(
    name="sqlite",
    placeholder="?",
    begin_write="BEGIN IMMEDIATE",
    blob_type="BLOB",
    row_lock="",  # BEGIN IMMEDIATE already holds the one write lock
    schema_lock=None,
    change_counter="PRAGMA data_version",
    integrity_error=sqlite3.IntegrityError,
    transient_errors=(),
    database_error=sqlite3.Error,
)


def _prepare_file(path: Path) -> None:
    """Create the file if missing; refuse a symlink, FIFO, device or directory."""
    try:
        fd = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FleetError(f"{path} is a symlink; a registry must be a regular file") from None
        raise FleetError(f"cannot open the registry {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FleetError(f"{path} is not a regular file")
    finally:
        os.close(fd)


def open_sqlite(path: str | os.PathLike[str]) -> Registry:
    """The registry in the SQLite file ``path`` (created with its schema when missing)."""
    target = Path(path)
    _prepare_file(target)
    try:
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise FleetError(f"{target} is not a usable registry database ({exc})") from None
    if str(mode).lower() != "wal":
        conn.close()
        raise FleetError(f"{target}: cannot switch the registry to WAL mode (got {mode})")
    return Registry.with_schema(conn, DIALECT, str(target))
