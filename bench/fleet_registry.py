"""Benchmark of the fleet registry: issue and look-up time as the registry grows, on SQLite and
PostgreSQL, and CRL generation time with many revoked certificates.

    .venv/bin/python bench/fleet_registry.py [--sizes 1000,100000,1000000] [--crl 10000,100000]
                                             [--engines sqlite,postgresql] [--out FILE] [--quick]

For each engine, one registry grows through the sizes: synthetic records are bulk-loaded
(random serials, device IDs and key IDs; one real certificate's DER as the body, which the
queries never look into), then at each size

* issue: ``CertificateAuthority.issue_device_certificate`` on real CSRs (P-256 keys), i.e. verify
  the CSR, the keyCompromise check by key ID, pick a serial, sign, insert, commit -- one
  transaction each, durable (SQLite ``synchronous=FULL``; PostgreSQL with fsync on);
* look-up: what the server does per client certificate, ``Authority.lookup`` by serial with the
  cache off, for random registered serials.

CRL: a fresh registry with N revoked records; the time of ``CertificateAuthority.build_crl``
(read the revoked rows, build, sign, and encode as PEM).

Prints a Markdown table (medians, with the 10th-90th percentile range); ``--out`` also writes it
there. Nothing is asserted; the suite runs ``--quick`` once so that this cannot rot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from fleet.ca import CertificateAuthority, init_ca  # noqa: E402
from fleet.registry import DeviceRecord, format_serial  # noqa: E402
from fleet.registry.store import COLUMNS, device_row  # noqa: E402
from fleet.server.authority import Authority  # noqa: E402

BATCH = 50_000


def _csr(cn: str) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _synthetic(count: int, template: bytes, *, revoked: bool = False) -> Iterator[DeviceRecord]:
    for _ in range(count):
        serial = int.from_bytes(os.urandom(20), "big") >> 1 or 1
        yield DeviceRecord(
            serial=format_serial(serial),
            device_id=str(uuid.uuid4()),
            key_id=os.urandom(20).hex().upper(),
            certificate=template,
            issued="2026-01-01T00:00:00Z",
            expires="2027-01-01T00:00:00Z",
            status="revoked" if revoked else "active",
            revoked_at="2026-02-01T00:00:00Z" if revoked else None,
            reason="keyCompromise" if revoked else None,
        )


def bulk_load(
    ca: CertificateAuthority, count: int, template: bytes, *, revoked: bool = False
) -> None:
    """Add ``count`` synthetic records: COPY on PostgreSQL, executemany on SQLite."""
    registry = ca.registry
    left = count
    while left:
        n = min(BATCH, left)
        records = _synthetic(n, template, revoked=revoked)
        if registry.dialect.name == "postgresql":
            with registry.transaction(), registry._conn.cursor() as cur:
                copy_sql = f"COPY fleet_devices ({COLUMNS}) FROM STDIN"
                with cur.copy(copy_sql) as copy:
                    for r in records:
                        copy.write_row(device_row(r))
        else:
            with registry.transaction() as txn:
                txn.insert_many(records)
        left -= n
    if registry.dialect.name == "postgresql":
        registry._execute("ANALYZE fleet_devices")


def _stats(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    lo = ordered[int(0.1 * (len(ordered) - 1))]
    hi = ordered[int(0.9 * (len(ordered) - 1))]
    return statistics.median(ordered), lo, hi


def _fmt(stat: tuple[float, float, float], unit: float = 1e3, suffix: str = "ms") -> str:
    med, lo, hi = (v * unit for v in stat)
    digits = 3 if med < 1 else 2
    return f"{med:.{digits}f} {suffix} ({lo:.{digits}f}–{hi:.{digits}f})"


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _engine_url(name: str, cluster: object | None) -> str | None:
    if name == "sqlite":
        return None
    return cluster.create_database()  # type: ignore[attr-defined]


def run_sizes(
    engine: str,
    url: str | None,
    sizes: list[int],
    issues: int,
    lookups: int,
    workdir: Path,
    template: bytes,
) -> list[list[str]]:
    rows = []
    ca = init_ca(workdir / f"ca-{engine}", "/CN=Bench CA", days=3650, registry_url=url)
    authority = Authority(ca.directory, None, lambda _: None, registry_url=url, cache_ttl_s=0.0)
    loaded = 0
    try:
        for size in sizes:
            started = time.perf_counter()
            bulk_load(ca, size - loaded, template)
            load_s = time.perf_counter() - started
            loaded = size
            csrs = [_csr(f"bench-{size}-{i}") for i in range(issues)]
            issue = [_timed(lambda c=c: ca.issue_device_certificate(c, days=365)) for c in csrs]
            loaded += issues
            serials = [
                r.serial_number for r in ca.registry.records(limit=lookups, offset=size // 2)
            ]
            authority._cache.clear()
            lookup = [_timed(lambda s=s: authority.lookup(s)) for s in serials]
            rows.append(
                [
                    engine,
                    f"{size:,}",
                    _fmt(_stats(issue)),
                    _fmt(_stats(lookup), 1e6, "µs"),
                    f"{load_s:.1f} s",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    finally:
        authority.close()
        ca.close()
    return rows


def run_crl(
    engine: str,
    new_url: Callable[[], str | None],
    counts: list[int],
    workdir: Path,
    template: bytes,
) -> list[list[str]]:
    rows = []
    for count in counts:
        ca = init_ca(
            workdir / f"crl-{engine}-{count}", "/CN=Bench CA", days=3650, registry_url=new_url()
        )
        try:
            bulk_load(ca, count, template, revoked=True)
            times = []
            size = 0
            for _ in range(3):
                start = time.perf_counter()
                crl = ca.build_crl()
                size = len(crl.public_bytes(serialization.Encoding.PEM))
                times.append(time.perf_counter() - start)
            rows.append(
                [engine, f"{count:,}", f"{statistics.median(times):.2f} s", f"{size / 1e6:.1f} MB"]
            )
            print(" | ".join(rows[-1]), flush=True)
        finally:
            ca.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--crl", default="10000,100000")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--issues", type=int, default=200, help="issues measured per size")
    parser.add_argument("--lookups", type=int, default=2000, help="look-ups measured per size")
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, SQLite only (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.crl, args.engines, args.issues, args.lookups = (
            "100,300",
            "50",
            "sqlite",
            5,
            20,
        )
    sizes = [int(s) for s in args.sizes.split(",")]
    crl_counts = [int(s) for s in args.crl.split(",") if s]
    engines = args.engines.split(",")

    size_rows: list[list[str]] = []
    crl_rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        workdir = Path(tmp)
        template_ca = init_ca(workdir / "template", "/CN=Template", days=3650)
        template = template_ca.issue_device_certificate(_csr("template"), days=365).public_bytes(
            serialization.Encoding.DER
        )
        template_ca.close()
        cluster = None
        if "postgresql" in engines:
            from pgcluster import Cluster

            cluster = Cluster(durable=True).start()
        try:
            for engine in engines:
                size_rows += run_sizes(
                    engine,
                    _engine_url(engine, cluster),
                    sizes,
                    args.issues,
                    args.lookups,
                    workdir,
                    template,
                )
                crl_rows += run_crl(
                    engine, lambda e=engine: _engine_url(e, cluster), crl_counts, workdir, template
                )
        finally:
            if cluster is not None:
                cluster.stop()

    lines = [
        "| engine | registered devices | issue (CSR → certificate, committed)"
        " | server look-up by serial | bulk load |",
        "|---|---:|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in size_rows),
        "",
        "| engine | revoked certificates | CRL generation (read, build, sign, PEM) | CRL size |",
        "|---|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in crl_rows),
    ]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
