"""The registry of issued device certificates: which one a CA directory uses, and opening it.

Owns: choosing the engine -- ``--registry URL`` if given, else the ``registry = URL`` line of
``<ca dir>/fleet.conf``, else the SQLite file ``<ca dir>/registry.sqlite3`` -- opening it with
its schema, and importing a ``registry.json`` of earlier versions on first open (``legacy.py``).
URLs: ``sqlite:///path/to/file`` (or ``sqlite:`` for the CA directory's file) and
``postgresql://...`` (``postgres://`` too).

``fleet.conf`` (written by ``atecc ca init --registry URL``, mode 0600 because a URL may hold a
password)::

    # atecc fleet configuration
    registry = postgresql://fleet@db.example/fleet

Must not: hold SQL (``store.py``) or sign anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from atecc.fileio import read_limited
from fleet import FleetError
from fleet.registry.records import (
    ACTIVE,
    KEY_COMPROMISE,
    REVOKED,
    DeviceRecord,
    format_serial,
    format_time,
    key_id_of,
    parse_serial,
    parse_time,
)
from fleet.registry.store import Registry, Transaction

__all__ = [
    "ACTIVE",
    "KEY_COMPROMISE",
    "REVOKED",
    "DeviceRecord",
    "Registry",
    "Transaction",
    "config_text",
    "configured_url",
    "format_serial",
    "format_time",
    "key_id_of",
    "open_registry",
    "parse_serial",
    "parse_time",
]

CONFIG_NAME = "fleet.conf"
MAX_CONFIG_BYTES = 64 * 1024
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def configured_url(ca_dir: str | os.PathLike[str]) -> str | None:
    """The ``registry`` setting of ``<ca_dir>/fleet.conf``, or None (no file or no setting)."""
    path = Path(ca_dir) / CONFIG_NAME
    try:
        text = read_limited(path, max_bytes=MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError) as exc:
        raise FleetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    url = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or key.strip() != "registry" or not value.strip():
            raise FleetError(f"{path}:{number}: expected 'registry = URL'")
        url = value.strip()
    return url


def config_text(url: str) -> bytes:
    """The contents of a ``fleet.conf`` that names ``url`` as the registry."""
    _check_url(url)
    if "\n" in url or "\r" in url:
        raise FleetError("a registry URL is one line")
    return f"# atecc fleet configuration\nregistry = {url}\n".encode()


def _check_url(url: str) -> None:
    if not (url.startswith(_POSTGRES_SCHEMES) or url.startswith("sqlite:")):
        raise FleetError(f"unknown registry URL {url[:40]!r}: use postgresql://... or sqlite:")


def open_registry(ca_dir: str | os.PathLike[str], url: str | None = None) -> Registry:
    """The registry of the CA in ``ca_dir`` (``url`` overrides the directory's configuration)."""
    from fleet.registry import sqlite
    from fleet.registry.legacy import migrate_json

    chosen = url or configured_url(ca_dir) or "sqlite:"
    _check_url(chosen)
    if chosen.startswith(_POSTGRES_SCHEMES):
        from fleet.registry.postgres import open_postgres

        registry = open_postgres(chosen)
    else:
        file = chosen[len("sqlite:") :].removeprefix("//")
        registry = sqlite.open_sqlite(file or Path(ca_dir) / sqlite.FILE_NAME)
    try:
        migrate_json(ca_dir, registry)
    except BaseException:
        registry.close()
        raise
    return registry
