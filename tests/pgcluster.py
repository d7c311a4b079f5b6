"""A throwaway PostgreSQL cluster for tests and benchmarks: UNIX socket in a temporary directory,
no TCP port, started with Debian's ``initdb``/``pg_ctl`` as an unprivileged user.

PostgreSQL refuses to run as root. When the tests run as root (CI does), the cluster runs as the
system user ``atecc-pg`` (``scripts/setup.sh`` creates it) through ``runuser``; otherwise as the
current user. Durability settings are off (a test cluster is thrown away), which changes timing,
not behaviour (``Cluster(durable=True)`` keeps them on, for benchmarks).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_USER = "atecc-pg"


def _bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL's initdb is not installed (scripts/setup.sh installs postgresql)"
    )


class Cluster:
    """``with Cluster() as pg:`` -- ``pg.url(dbname)``, ``pg.create_database()``, ``pg.sql()``."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bindir = _bindir()
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="atecc-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._counter = 0
        if self.as_root:
            try:
                entry = pwd.getpwnam(PG_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root needs the system user {PG_USER!r} "
                    "(scripts/setup.sh creates it)"
                ) from None
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.as_root:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}{log}")
        return proc

    def start(self) -> Cluster:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--no-sync",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = f"-k {self.root} -c listen_addresses='' -c max_connections=50"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}"

    def sql(self, statement: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        self._counter += 1
        name = f"t{self._counter}_{uuid.uuid4().hex[:8]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)
