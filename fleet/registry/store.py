"""The registry's tables and every query on them, the same on SQLite and PostgreSQL.

Owns: the schema (versioned in ``fleet_meta``), creating it, refusing a newer one, and the
operations: issue-time look-ups and insert, revocation, CRL numbers, the revoked serials a CRL
lists, and the read queries the CLI and the server use (by serial, device ID or key ID, lists).
The engines differ only in what :class:`Dialect` carries (placeholders, the statement that opens
a write transaction, row locks, the binary type); ``sqlite.py`` and ``postgres.py`` make the
connections.

Schema version 2 (version 1 was the ``registry.json`` file, see ``legacy.py``)::

    fleet_meta(name TEXT PRIMARY KEY, value BIGINT NOT NULL)
        schema_version, crl_number, json_migrated (1 once registry.json was imported)
    fleet_devices(serial TEXT PRIMARY KEY, device_id TEXT, key_id TEXT, certificate BLOB/BYTEA,
                  issued TEXT, expires TEXT, status TEXT CHECK active/revoked,
                  revoked_at TEXT, reason TEXT)
        indexes: device_id, key_id, and the revoked rows (partial index on status = 'revoked')

Concurrency: every write is one transaction. SQLite's writers are serialised by ``BEGIN
IMMEDIATE`` (WAL: readers never wait); on PostgreSQL the rows a write depends on are locked
``FOR UPDATE`` in serial order (so two writers cannot deadlock), the CRL counter is one row that
``UPDATE ... RETURNING`` locks, and a transaction the server aborts for a deadlock or a
serialisation failure is retried. So serials are unique (primary key), no record is lost, and
CRL numbers strictly increase, each CRL listing at least what every lower-numbered one listed.

Must not: sign anything, or know where the database lives (the callers pass a connection).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet import FleetError
from fleet.registry.records import ACTIVE, REVOKED, DeviceRecord, format_serial, format_time

SCHEMA_VERSION = 2
#: The columns of fleet_devices, in the order of :func:`device_row`.
COLUMNS = "serial, device_id, key_id, certificate, issued, expires, status, revoked_at, reason"
#: Longest device ID (the CN; RFC 5280's ub-common-name is 64 characters, UTF-8 up to 4 bytes).
MAX_DEVICE_ID = 256


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines."""

    name: str
    placeholder: str
    begin_write: str
    blob_type: str
    row_lock: str  # appended to SELECTs whose rows the transaction will change
    schema_lock: str | None  # run first in the schema transaction (PostgreSQL advisory lock)
    change_counter: str | None  # a cheap query whose answer changes when another writer commits
    integrity_error: type[BaseException]
    transient_errors: tuple[type[BaseException], ...]
    database_error: type[BaseException]


def _schema(dialect: Dialect) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS fleet_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS fleet_devices ("
        " serial TEXT PRIMARY KEY,"
        " device_id TEXT NOT NULL,"
        " key_id TEXT NOT NULL,"
        f" certificate {dialect.blob_type} NOT NULL,"
        " issued TEXT NOT NULL,"
        " expires TEXT NOT NULL,"
        " status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),"
        " revoked_at TEXT,"
        " reason TEXT)",
        "CREATE INDEX IF NOT EXISTS fleet_devices_device_id ON fleet_devices (device_id)",
        "CREATE INDEX IF NOT EXISTS fleet_devices_key_id ON fleet_devices (key_id)",
        # `ca list` pages in issue order: without it every page sorts the whole table.
        "CREATE INDEX IF NOT EXISTS fleet_devices_issued ON fleet_devices (issued, serial)",
        "CREATE INDEX IF NOT EXISTS fleet_devices_revoked ON fleet_devices (serial)"
        " WHERE status = 'revoked'",
    ]


def _record(row: tuple[Any, ...]) -> DeviceRecord:
    serial, device_id, key_id, cert, issued, expires, status, revoked_at, reason = row
    return DeviceRecord(
        serial=serial,
        device_id=device_id,
        key_id=key_id,
        certificate=bytes(cert),
        issued=issued,
        expires=expires,
        status=status,
        revoked_at=revoked_at,
        reason=reason,
    )


class Transaction:
    """The operations of one write transaction (see :meth:`Registry.transaction`)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._registry._fetch(sql, params)

    def get(self, serial: int) -> DeviceRecord | None:
        rows = self._rows(
            f"SELECT {COLUMNS} FROM fleet_devices WHERE serial = ?", (format_serial(serial),)
        )
        return _record(rows[0]) if rows else None

    def for_key(self, key_id: str) -> list[DeviceRecord]:
        """Every certificate of a key, locked until the end of the transaction."""
        lock = self._registry.dialect.row_lock
        return [
            _record(r)
            for r in self._rows(
                f"SELECT {COLUMNS} FROM fleet_devices WHERE key_id = ? ORDER BY serial{lock}",
                (key_id,),
            )
        ]

    def for_update(self, *, serial: int | None, device_id: str | None) -> list[DeviceRecord]:
        lock = self._registry.dialect.row_lock
        if serial is not None:
            where, param = "serial = ?", format_serial(serial)
        else:
            where, param = "device_id = ?", str(device_id)
        rows = self._rows(
            f"SELECT {COLUMNS} FROM fleet_devices WHERE {where} ORDER BY serial{lock}", (param,)
        )
        return [_record(r) for r in rows]

    def serial_taken(self, serial: int) -> bool:
        return bool(
            self._rows("SELECT 1 FROM fleet_devices WHERE serial = ?", (format_serial(serial),))
        )

    def insert(self, record: DeviceRecord) -> None:
        if not record.device_id or len(record.device_id) > MAX_DEVICE_ID:
            raise FleetError(f"a device ID must have 1..{MAX_DEVICE_ID} characters")
        self._registry._execute(
            f"INSERT INTO fleet_devices ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            device_row(record),
        )

    def insert_many(self, records: Iterable[DeviceRecord]) -> None:
        self._registry._execute_many(
            f"INSERT INTO fleet_devices ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device_row(r) for r in records),
        )

    def mark_revoked(self, serial: str, revoked_at: str, reason: str) -> None:
        self._registry._execute(
            "UPDATE fleet_devices SET status = ?, revoked_at = ?, reason = ?"
            " WHERE serial = ? AND status = ?",
            (REVOKED, revoked_at, reason, serial, ACTIVE),
        )

    def next_crl_number(self) -> int:
        rows = self._rows(
            "UPDATE fleet_meta SET value = value + 1 WHERE name = 'crl_number' RETURNING value"
        )
        return int(rows[0][0])

    def set_meta(self, name: str, value: int) -> None:
        self._registry._execute(
            "INSERT INTO fleet_meta (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def meta(self, name: str) -> int | None:
        rows = self._rows("SELECT value FROM fleet_meta WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else None

    def revoked(self) -> Iterator[tuple[str, str, str | None]]:
        """``(serial, revoked_at, reason)`` of every revoked certificate (for the CRL)."""
        rows = self._rows(
            "SELECT serial, revoked_at, reason FROM fleet_devices WHERE status = 'revoked'"
        )
        for serial, revoked_at, reason in rows:
            yield str(serial), str(revoked_at), reason


def device_row(r: DeviceRecord) -> tuple[Any, ...]:
    """``r``'s values in the order of :data:`COLUMNS` (also for bulk loads, e.g. COPY)."""
    return (
        r.serial,
        r.device_id,
        r.key_id,
        r.certificate,
        r.issued,
        r.expires,
        r.status,
        r.revoked_at,
        r.reason,
    )


class Registry:
    """A registry database: one connection, used by one thread at a time."""

    #: Attempts of a transaction the engine aborted for a deadlock or serialisation failure.
    RETRIES = 5

    def __init__(self, connection: Any, dialect: Dialect, where: str) -> None:
        self._conn = connection
        self.dialect = dialect
        self.where = where  # for messages: a file path or a URL without its password
        self._in_transaction = False

    @classmethod
    def with_schema(cls, connection: Any, dialect: Dialect, where: str) -> Registry:
        """A registry on a new connection, its schema created or checked (closed on failure)."""
        registry = cls(connection, dialect, where)
        try:
            registry.ensure_schema()
        except BaseException:
            registry.close()
            raise
        return registry

    # -- plumbing ----------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.dialect.placeholder == "?" else sql.replace("?", "%s")

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(self._sql(sql), params)

    def _execute_many(self, sql: str, params: Iterable[tuple[Any, ...]]) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(self._sql(sql), params)
        finally:
            cursor.close()

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(self._sql(sql), params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._fetch(sql, params)
        except self.dialect.database_error as exc:
            raise FleetError(f"registry {self.where}: {_one_line(exc)}") from None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: committed on normal exit, rolled back on any exception."""
        if self._in_transaction:
            raise RuntimeError("registry transactions do not nest")
        self._in_transaction = True
        try:
            self._execute(self.dialect.begin_write)
        except self.dialect.database_error as exc:
            self._in_transaction = False
            raise FleetError(f"registry {self.where}: {_one_line(exc)}") from None
        try:
            yield Transaction(self)
            self._execute("COMMIT")
        except BaseException:
            try:
                self._execute("ROLLBACK")
            except self.dialect.database_error:
                pass
            raise
        finally:
            self._in_transaction = False

    def run(self, work: Callable[[Transaction], Any]) -> Any:
        """``work(txn)`` in one transaction, retried when the engine aborted it for a deadlock or
        a serialisation failure; database errors become :class:`FleetError`."""
        for attempt in range(self.RETRIES):
            try:
                with self.transaction() as txn:
                    return work(txn)
            except self.dialect.transient_errors:
                if attempt == self.RETRIES - 1:
                    raise FleetError(
                        f"registry {self.where}: too much contention, try again"
                    ) from None
                time.sleep(0.01 * (attempt + 1))
            except self.dialect.integrity_error as exc:
                raise FleetError(f"registry {self.where}: refused: {_one_line(exc)}") from None
            except self.dialect.database_error as exc:
                raise FleetError(f"registry {self.where}: {_one_line(exc)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables if missing; refuse a schema newer than this code (fail closed)."""

        def create(txn: Transaction) -> None:
            if self.dialect.schema_lock:
                self._execute(self.dialect.schema_lock)
            for statement in _schema(self.dialect):
                self._execute(statement)
            version = txn.meta("schema_version")
            if version is None:
                for name, value in (("schema_version", SCHEMA_VERSION), ("crl_number", 0)):
                    self._execute(
                        "INSERT INTO fleet_meta (name, value) VALUES (?, ?)", (name, value)
                    )
            elif version > SCHEMA_VERSION:
                raise FleetError(
                    f"registry {self.where} has schema version {version}; this atecc knows "
                    f"version {SCHEMA_VERSION} at most: upgrade atecc, never downgrade a registry"
                )

        if self._schema_version() != SCHEMA_VERSION:
            self.run(create)  # creates the tables, or refuses a newer schema

    def _schema_version(self) -> int | None:
        try:
            rows = self._fetch("SELECT value FROM fleet_meta WHERE name = 'schema_version'")
        except self.dialect.database_error:
            self._rollback_failed_read()
            return None
        return int(rows[0][0]) if rows else None

    def _rollback_failed_read(self) -> None:
        # PostgreSQL leaves a failed statement's implicit transaction aborted; SQLite has none.
        try:
            self._execute("ROLLBACK")
        except self.dialect.database_error:
            pass

    # -- reads -------------------------------------------------------------------------------

    def get(self, serial: int) -> DeviceRecord | None:
        """The record of one serial number (an indexed look-up)."""
        rows = self._read(
            f"SELECT {COLUMNS} FROM fleet_devices WHERE serial = ?", (format_serial(serial),)
        )
        return _record(rows[0]) if rows else None

    def find(
        self, *, device_id: str | None = None, key_id: str | None = None
    ) -> list[DeviceRecord]:
        """Every certificate of a device ID or of a key, oldest first."""
        if (device_id is None) == (key_id is None):
            raise ValueError("give exactly one of device_id or key_id")
        column, value = ("device_id", device_id) if device_id is not None else ("key_id", key_id)
        rows = self._read(
            f"SELECT {COLUMNS} FROM fleet_devices WHERE {column} = ? ORDER BY issued, serial",
            (value,),
        )
        return [_record(r) for r in rows]

    def records(
        self, *, status: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DeviceRecord]:
        """Records in issue order, optionally only ``active``/``revoked`` ones, a page at a time."""
        where, params = "", tuple[str, ...]()
        if status is not None:
            where, params = " WHERE status = ?", (status,)
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        rows = self._read(
            f"SELECT {COLUMNS} FROM fleet_devices{where} ORDER BY issued, serial{page}", params
        )
        return [_record(r) for r in rows]

    def count(self, status: str | None = None) -> int:
        if status is None:
            rows = self._read("SELECT COUNT(*) FROM fleet_devices")
        else:
            rows = self._read("SELECT COUNT(*) FROM fleet_devices WHERE status = ?", (status,))
        return int(rows[0][0])

    def change_stamp(self) -> int | None:
        """A value that changes when another connection commits (None: the engine has none)."""
        if self.dialect.change_counter is None:
            return None
        return int(self._read(self.dialect.change_counter)[0][0])

    def crl_number(self) -> int:
        """The number of the last CRL issued (0: none yet)."""
        rows = self._read("SELECT value FROM fleet_meta WHERE name = 'crl_number'")
        return int(rows[0][0]) if rows else 0

    # -- writes ------------------------------------------------------------------------------

    def revoke(
        self,
        *,
        serial: int | None = None,
        device_id: str | None = None,
        reason: str = "unspecified",
        when: datetime | None = None,
    ) -> list[DeviceRecord]:
        """Mark the certificate with ``serial``, or every active one of ``device_id``, revoked.

        Returns the records revoked by this call. Revoking an already revoked certificate is an
        error (its original time and reason stay, as the CRL must keep them).
        """
        if (serial is None) == (device_id is None):
            raise FleetError("give exactly one of a serial number or a device ID")
        moment = format_time(when or datetime.now(UTC))

        def work(txn: Transaction) -> list[DeviceRecord]:
            targets = txn.for_update(serial=serial, device_id=device_id)
            if not targets:
                which = (
                    f"with serial {format_serial(serial)}"
                    if serial is not None
                    else f"for device {device_id!r}"
                )
                raise FleetError(f"no certificate {which} in the registry {self.where}")
            active = [r for r in targets if r.status == ACTIVE]
            if not active:
                name = targets[0].serial if serial is not None else str(device_id)
                raise FleetError(f"{name} is already revoked")
            for record in active:
                txn.mark_revoked(record.serial, moment, reason)
            return [
                dataclasses.replace(record, status=REVOKED, revoked_at=moment, reason=reason)
                for record in active
            ]

        result: list[DeviceRecord] = self.run(work)
        return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
