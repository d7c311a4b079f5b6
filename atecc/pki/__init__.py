"""Device PKI: the small certificate authority that issues and tracks device certificates.

Owns the vocabulary the ``atecc.pki`` modules share: :class:`PkiError` (bad input or state, which
the CLI prints as one line) and :func:`atomic_write` (every file this package writes goes through
it, so a reader never sees half a file and private keys are never world-readable, not even for an
instant). Each module owns one thing:

* :mod:`atecc.pki.ca`        -- the CA's key and certificate, everything the CA signs (server and
  device certificates, CRLs), and parsing OpenSSL-style subjects.
* :mod:`atecc.pki.csr`       -- certificate requests signed by the chip's key through the driver.
* :mod:`atecc.pki.registry`  -- the JSON record of issued device certificates (flock + atomic).
* :mod:`atecc.pki.export`    -- PEM, DER and C-array (``xxd -i``) renderings for firmware.
* :mod:`atecc.pki.cli`       -- the ``atecc ca|csr|revoke|export|serve`` subcommands.

The reference mutual-TLS server that checks certificates against the registry is
:mod:`atecc.mtls_server`. Nothing here imports ``cryptoki``; the chip is reached only through
:class:`atecc.device.Device`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class PkiError(Exception):
    """Bad input or CA state; the message is the whole story (the CLI prints it as one line)."""


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    The temporary file is created 0600 and switched to ``mode`` before the rename, so a private
    key (``mode=0o600``) is never readable by others, and an existing file's permissions never
    leak onto new contents. Returns the path written.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # Make the rename itself durable (best effort: not every filesystem allows fsync on a dir).
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return target
