"""The shared registry engine: PostgreSQL, through psycopg 3.

Owns: connecting to the URL a CA directory's ``fleet.conf`` or ``--registry`` names
(``postgresql://user@host/db`` or ``postgresql:///db?host=/run/postgresql``), so several CA
signers and servers share one registry, and what PostgreSQL needs beyond SQLite's rules: an
advisory lock while the schema is created, row locks (``FOR UPDATE``), and retrying a
transaction the server aborted for a deadlock or a serialisation failure. Messages name the URL
without its password.

Must not: hold SQL other than the dialect's (``store.py``); import psycopg at module import (it
is optional: ``pip install 'atecc-pkcs11[postgresql]'``).
"""

from __future__ import annotations

import re
from typing import Any

from fleet import FleetError
from fleet.registry.store import Dialect, Registry

#: Seconds to wait for the server when connecting.
CONNECT_TIMEOUT_S = 10
#: Key of the advisory lock held while the schema is created ("atecc" in ASCII).
_SCHEMA_LOCK_KEY = 0x6174656363


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    url = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def _dialect(psycopg: Any) -> Dialect:
    errors = psycopg.errors
    return Dialect(
        name="postgresql",
        placeholder="%s",
        begin_write="BEGIN",
        blob_type="BYTEA",
        row_lock=" FOR UPDATE",
        schema_lock=f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})",
        change_counter=None,
        integrity_error=psycopg.IntegrityError,
        transient_errors=(errors.DeadlockDetected, errors.SerializationFailure),
        database_error=psycopg.Error,
    )


def open_postgres(url: str) -> Registry:
    """The registry in the PostgreSQL database ``url`` (schema created when missing)."""
    try:
        import psycopg
    except ImportError:
        raise FleetError(
            "a PostgreSQL registry needs psycopg 3: pip install 'atecc-pkcs11[postgresql]'"
        ) from None
    where = redact(url)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split()).replace(url, where)
        raise FleetError(f"cannot connect to the registry {where}: {detail}") from None
    return Registry.with_schema(conn, _dialect(psycopg), where)
