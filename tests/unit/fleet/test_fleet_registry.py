"""fleet.registry: the same suite on every engine (the ``engine`` fixture, see conftest.py):
records, look-ups, revocation, CRL numbers, schema versions, concurrent issuers in several
processes, and the migration from registry.json."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fleet_helpers import software_csr

from fleet import FleetError
from fleet.ca import CertificateAuthority, init_ca
from fleet.registry import (
    REVOKED,
    format_serial,
    key_id_of,
    open_registry,
    parse_serial,
)


def _issue_and_revoke(ca_dir: str, url: str | None, prefix: str, count: int) -> None:
    """Worker: issue ``count`` certificates, revoking every third one, then publish a CRL."""
    with CertificateAuthority.load(ca_dir, registry_url=url) as ca:
        for i in range(count):
            cert = ca.issue_device_certificate(software_csr(f"{prefix}-{i}"), days=1)
            if i % 3 == 0:
                ca.registry.revoke(serial=cert.serial_number, reason="superseded")


def _build_crls(ca_dir: str, url: str | None, count: int, out) -> None:
    with CertificateAuthority.load(ca_dir, registry_url=url) as ca:
        for _ in range(count):
            crl = ca.build_crl(days=1)
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            out.put((number, sorted(e.serial_number for e in crl)))


def test_serial_notation():
    assert format_serial(0x1) == "01"
    assert format_serial(0xABC) == "0ABC"
    assert parse_serial("0x0abc") == 0xABC
    assert parse_serial("0a:bc") == 0xABC
    assert parse_serial(" 0A BC ") == 0xABC
    for bad in ("xyz", "0", "", "1" * 43, "F" * 42):
        with pytest.raises(FleetError):
            parse_serial(bad)


def test_a_record_holds_everything_about_one_certificate(engine, ca):
    csr = software_csr("dev-1")
    cert = ca.issue_device_certificate(csr, days=3)
    record = ca.registry.get(cert.serial_number)
    assert record.serial == format_serial(cert.serial_number)
    assert record.device_id == "dev-1"
    assert record.key_id == key_id_of(csr.public_key())
    assert x509.load_der_x509_certificate(record.certificate) == cert
    assert (record.status, record.revoked_at, record.reason) == ("active", None, None)
    assert record.issued.endswith("Z") and record.expires.endswith("Z")
    assert ca.registry.get(cert.serial_number + 1) is None
    assert ca.registry.find(device_id="dev-1") == [record]
    assert ca.registry.find(key_id=record.key_id) == [record]
    assert ca.registry.count() == 1 and ca.registry.count("revoked") == 0


def test_lists_page_in_issue_order(engine, ca):
    serials = [
        ca.issue_device_certificate(software_csr(f"d{i}"), days=1).serial_number for i in range(5)
    ]
    ca.registry.revoke(serial=serials[1])
    everything = ca.registry.records()
    assert {r.serial_number for r in everything} == set(serials)
    pages = ca.registry.records(limit=2) + ca.registry.records(limit=2, offset=2)
    pages += ca.registry.records(limit=2, offset=4)
    assert pages == everything
    assert [r.serial_number for r in ca.registry.records(status=REVOKED)] == [serials[1]]


def test_a_page_in_issue_order_is_read_from_an_index_not_sorted(engine, ca):
    registry = ca.registry
    query = "SELECT serial FROM fleet_devices ORDER BY issued, serial LIMIT 50 OFFSET 100"
    if engine.name == "sqlite":
        plan = " ".join(str(row) for row in registry._read("EXPLAIN QUERY PLAN " + query))
        assert "fleet_devices_issued" in plan and "TEMP B-TREE" not in plan, plan
    else:
        # A near-empty table is cheaper to sort, so ask whether the index can serve the order.
        with registry.transaction():
            registry._execute("SET LOCAL enable_seqscan = off")
            registry._execute("SET LOCAL enable_sort = off")
            plan = " ".join(str(row) for row in registry._read("EXPLAIN " + query))
        assert "fleet_devices_issued" in plan and "Sort" not in plan, plan


def test_revocation_keeps_the_first_time_and_reason(engine, ca):
    cert = ca.issue_device_certificate(software_csr("once"), days=5)
    registry = ca.registry
    with pytest.raises(FleetError, match="no certificate"):
        registry.revoke(serial=cert.serial_number + 1)
    with pytest.raises(FleetError, match="no certificate"):
        registry.revoke(device_id="nobody")
    with pytest.raises(FleetError, match="exactly one"):
        registry.revoke()
    (revoked,) = registry.revoke(serial=cert.serial_number, reason="superseded")
    assert revoked.status == "revoked" and revoked.reason == "superseded"
    with pytest.raises(FleetError, match="already revoked"):
        registry.revoke(serial=cert.serial_number, reason="keyCompromise")
    assert registry.get(cert.serial_number) == revoked


def test_a_failed_transaction_changes_nothing(engine, ca):
    ca.issue_device_certificate(software_csr("keep"), days=1)
    with pytest.raises(RuntimeError), ca.registry.transaction() as txn:
        txn.next_crl_number()
        raise RuntimeError("boom")
    assert ca.registry.crl_number() == 0
    assert ca.registry.count() == 1


def test_crl_numbers_increase_and_the_crl_lists_the_revoked(engine, ca):
    keep = ca.issue_device_certificate(software_csr("keep"), days=5)
    gone = ca.issue_device_certificate(software_csr("gone"), days=5)
    ca.registry.revoke(serial=gone.serial_number, reason="keyCompromise")
    first = ca.build_crl(days=2)
    second = ca.build_crl(days=2)
    numbers = [
        c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        for c in (first, second)
    ]
    assert numbers == [1, 2]
    assert [e.serial_number for e in second] == [gone.serial_number]
    assert second.get_revoked_certificate_by_serial_number(keep.serial_number) is None


def test_a_newer_schema_is_refused_and_left_alone(engine, ca):
    with ca.registry.transaction() as txn:
        txn.set_meta("schema_version", 99)
    ca.close()
    with pytest.raises(FleetError, match="schema version 99"):
        open_registry(ca.directory, engine.url)
    with pytest.raises(FleetError, match="schema version 99"):
        open_registry(ca.directory, engine.url)  # still refused: nothing was rewritten


def test_processes_issuing_and_revoking_at_once_lose_nothing(engine, ca):
    """Two processes (and a thread here) issue and revoke concurrently: every record is kept,
    every serial is unique, every revocation is recorded."""
    ctx = multiprocessing.get_context("spawn")
    per_worker = 12
    procs = [
        ctx.Process(
            target=_issue_and_revoke, args=(str(ca.directory), engine.url, f"p{n}", per_worker)
        )
        for n in range(2)
    ]
    thread = threading.Thread(
        target=_issue_and_revoke, args=(str(ca.directory), engine.url, "t0", per_worker)
    )
    for worker in (*procs, thread):
        worker.start()
    thread.join(timeout=300)
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    records = ca.registry.records()
    assert len(records) == 3 * per_worker
    assert len({r.serial for r in records}) == len(records)
    assert {r.device_id for r in records} == {
        f"{w}-{i}" for w in ("p0", "p1", "t0") for i in range(per_worker)
    }
    revoked = {r.device_id for r in records if r.status == REVOKED}
    assert revoked == {f"{w}-{i}" for w in ("p0", "p1", "t0") for i in range(0, per_worker, 3)}


def test_crl_numbers_strictly_increase_under_concurrent_writers(engine, ca):
    """Two processes publishing CRLs while a third revokes: every number is used once, and a
    higher-numbered CRL lists at least what every lower-numbered one listed."""
    for i in range(6):
        ca.issue_device_certificate(software_csr(f"c{i}"), days=1)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    builders = [
        ctx.Process(target=_build_crls, args=(str(ca.directory), engine.url, 6, out))
        for _ in range(2)
    ]
    for proc in builders:
        proc.start()
    for record in ca.registry.records():
        ca.registry.revoke(serial=record.serial_number)
    results = [out.get(timeout=120) for _ in range(12)]
    for proc in builders:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    results.sort()
    numbers = [n for n, _ in results]
    assert numbers == list(range(1, 13))
    for (_, earlier), (_, later) in itertools.pairwise(results):
        assert set(earlier) <= set(later)


def test_registry_json_is_migrated_once_and_kept(engine, tmp_path):
    """A CA directory of an earlier version: its registry.json is imported on first open (records,
    statuses, CRL counter), renamed registry.json.migrated, and never imported twice."""
    ca_dir = tmp_path / "old-ca"
    with init_ca(ca_dir, "/CN=Old CA", days=5, registry_url=engine.url) as ca:
        kept = ca.issue_device_certificate(software_csr("kept"), days=5)
        gone = ca.issue_device_certificate(software_csr("gone"), days=5)
    engine.reset(ca_dir)  # the database starts empty, as for a CA that only had the JSON file

    def entry(cert, device_id, **extra):
        return {
            "serial": format_serial(cert.serial_number),
            "device_id": device_id,
            "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "issued": "2026-01-01T00:00:00Z",
            "expires": "2027-01-01T00:00:00Z",
            "status": "active",
            "revoked_at": None,
            "reason": None,
            **extra,
        }

    doc = {
        "version": 1,
        "crl_number": 7,
        "devices": [
            entry(kept, "kept"),
            entry(
                gone,
                "gone",
                status="revoked",
                revoked_at="2026-02-01T00:00:00Z",
                reason="keyCompromise",
            ),
        ],
    }
    (ca_dir / "registry.json").write_text(json.dumps(doc))
    with CertificateAuthority.load(ca_dir, registry_url=engine.url) as ca:
        assert ca.registry.count() == 2
        old = ca.registry.get(gone.serial_number)
        assert (old.status, old.revoked_at, old.reason) == (
            "revoked",
            "2026-02-01T00:00:00Z",
            "keyCompromise",
        )
        assert old.key_id == key_id_of(gone.public_key())
        crl = ca.build_crl()
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 8
        assert [e.serial_number for e in crl] == [gone.serial_number]
    assert not (ca_dir / "registry.json").exists()
    assert json.loads((ca_dir / "registry.json.migrated").read_text()) == doc
    # The same file put back is not imported twice; it is refused and left where it is.
    (ca_dir / "registry.json").write_text(json.dumps(doc))
    with pytest.raises(FleetError, match="imported one before"):
        open_registry(ca_dir, engine.url)
    assert (ca_dir / "registry.json").exists()


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"version": 7}', b'{"version": 1, "devices": [{"serial": "01"}]}'],
)
def test_a_malformed_registry_json_is_refused_and_untouched(engine, tmp_path, content):
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=CA", days=1, registry_url=engine.url).close()
    (ca_dir / "registry.json").write_bytes(content)
    with pytest.raises(FleetError):
        open_registry(ca_dir, engine.url)
    assert (ca_dir / "registry.json").read_bytes() == content


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=CA", days=1).close()
    (ca_dir / "registry.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(FleetError, match=r"not a usable registry|file is not a database"):
        open_registry(ca_dir)
    assert (ca_dir / "registry.sqlite3").read_bytes() == b"not a database" * 100


def test_a_symlinked_registry_file_is_refused(tmp_path):
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=CA", days=1).close()
    (tmp_path / "elsewhere").write_bytes(b"")
    (ca_dir / "registry.sqlite3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FleetError, match="symlink"):
        open_registry(ca_dir)


def test_the_sqlite_registry_uses_wal(tmp_path):
    ca_dir = tmp_path / "ca"
    with init_ca(ca_dir, "/CN=CA", days=1) as ca:
        mode = ca.registry._fetch("PRAGMA journal_mode")[0][0]
        assert mode == "wal"
        assert (ca_dir / "registry.sqlite3").is_file()


def test_the_ca_directory_remembers_its_registry(engine, ca):
    """`ca init --registry URL` writes fleet.conf (0600); later commands need no --registry."""
    ca.issue_device_certificate(software_csr("remembered"), days=1)
    conf = ca.directory / "fleet.conf"
    if engine.url is None:
        assert not conf.exists()
    else:
        assert (conf.stat().st_mode & 0o777) == 0o600
        assert f"registry = {engine.url}" in conf.read_text()
    with open_registry(ca.directory) as registry:
        assert registry.dialect.name == engine.name
        assert [r.device_id for r in registry.records()] == ["remembered"]


def test_a_bad_registry_setting_is_a_clean_error(tmp_path):
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir, "/CN=CA", days=1).close()
    (ca_dir / "fleet.conf").write_text("registry = mysql://nope\n")
    with pytest.raises(FleetError, match="unknown registry URL"):
        open_registry(ca_dir)
    (ca_dir / "fleet.conf").write_text("registry postgresql://x\n")
    with pytest.raises(FleetError, match="expected 'registry = URL'"):
        open_registry(ca_dir)
    with pytest.raises(FleetError, match="cannot connect to the registry") as info:
        open_registry(ca_dir, "postgresql://u:secret@/none?host=/nonexistent&connect_timeout=1")
    assert "secret" not in str(info.value) and "postgresql://u:***@" in str(info.value)
