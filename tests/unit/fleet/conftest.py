"""Fixtures of the fleet tests: the registry engines (every registry test runs on SQLite and on
a throwaway PostgreSQL cluster, see tests/pgcluster.py), a CA on the engine under test, and CSRs
made with software keys (the chip's own CSRs are tested in tests/unit/atecc/test_certs_csr.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pgcluster import Cluster


@dataclass
class Engine:
    """One registry engine for one test: ``url`` is what ``--registry`` would say (None: the CA
    directory's own SQLite file)."""

    name: str
    url: str | None
    cluster: Cluster | None = None

    def reset(self, ca_dir: Path) -> None:
        """Empty the registry of ``ca_dir`` (drop its tables or file), as if never used."""
        if self.cluster is None:
            for suffix in ("", "-wal", "-shm"):
                (ca_dir / f"registry.sqlite3{suffix}").unlink(missing_ok=True)
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS fleet_devices, fleet_meta")


@pytest.fixture(scope="session")
def pg_cluster():
    with Cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Engine:
    if request.param == "sqlite":
        return Engine("sqlite", None)
    cluster = request.getfixturevalue("pg_cluster")
    return Engine("postgresql", cluster.create_database(), cluster)


@pytest.fixture
def ca(tmp_path, engine):
    from fleet.ca import init_ca

    authority = init_ca(
        tmp_path / "ca", "/O=Example/CN=Device Root CA", days=30, registry_url=engine.url
    )
    yield authority
    authority.close()
