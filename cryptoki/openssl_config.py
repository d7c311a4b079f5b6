"""OpenSSL configurations that load this module: libp11's engine, or the OpenSSL 3 pkcs11-provider.

Owns: finding the engine (``pkcs11.so`` in OpenSSL's ENGINESDIR, as
``scripts/find-pkcs11-engine.sh`` does) and the provider (``pkcs11.so`` in its MODULESDIR), and
filling the two templates beside this file (``openssl-engine.cnf.in``,
``openssl-provider.cnf.in``) with them and the module's path. ``atecc openssl-config`` writes
the result; a user scopes it to one command with ``OPENSSL_CONF=file``.

Must not: change OpenSSL's global configuration.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KINDS = ("engine", "provider")


class NotFoundError(LookupError):
    """The engine or provider is not installed (the message says which package has it)."""


def _openssl_dir(key: str) -> Path | None:
    """A directory ``openssl version -a`` reports (``ENGINESDIR``, ``MODULESDIR``)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    try:
        out = subprocess.run(
            [openssl, "version", "-a"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith(f"{key}:"):
            return Path(line.split(":", 1)[1].strip().strip('"'))
    return None


def engine_path() -> str:
    """libp11's OpenSSL engine."""
    candidates = []
    enginesdir = _openssl_dir("ENGINESDIR")
    if enginesdir is not None:
        candidates.append(enginesdir / "pkcs11.so")
    candidates += sorted(Path("/usr/lib").glob("*/engines-3/pkcs11.so"))
    candidates += sorted(Path("/usr/lib").glob("*/engines-1.1/pkcs11.so"))
    for path in candidates:
        if path.is_file():
            return str(path)
    raise NotFoundError(
        "libp11's pkcs11 engine is not installed (package libengine-pkcs11-openssl)"
    )


def provider_path() -> str:
    """The OpenSSL 3 pkcs11-provider."""
    candidates = []
    modulesdir = _openssl_dir("MODULESDIR")
    if modulesdir is not None:
        candidates.append(modulesdir / "pkcs11.so")
    candidates += sorted(Path("/usr/lib").glob("*/ossl-modules/pkcs11.so"))
    candidates += sorted(Path("/usr/local/lib").glob("**/ossl-modules/pkcs11.so"))
    for path in candidates:
        if path.is_file():
            return str(path)
    raise NotFoundError(
        "pkcs11-provider is not installed (package pkcs11-provider; Debian 12 does not have it): "
        "build it, or give its path with --provider-path"
    )


def render(kind: str, *, module: str, plugin: str, pin_file: str | None = None) -> str:
    """The configuration text for ``kind`` ("engine" or "provider").

    :param plugin: the engine's or provider's shared object.
    :param pin_file: provider only: the user PIN is read from this file when a key needs it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    template = Path(__file__).with_name(f"openssl-{kind}.cnf.in").read_text(encoding="utf-8")
    text = template.replace("@MODULE_PATH@", module)
    if kind == "engine":
        if pin_file is not None:
            raise ValueError("the engine takes the PIN in the key URI or with -passin, not a file")
        return text.replace("@ENGINE_PATH@", plugin)
    pin_line = f"pkcs11-module-token-pin = file:{Path(pin_file).resolve()}\n" if pin_file else ""
    return text.replace("@PROVIDER_PATH@", plugin).replace("@PIN_LINE@", pin_line)
