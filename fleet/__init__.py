"""The operator's side of a device fleet: CA, device registry, CRLs, exports, reference server.

Owns the vocabulary the ``fleet`` modules share: :class:`FleetError` (bad input or state, which
the CLI prints as one line). Each module owns one thing:

* :mod:`fleet.subjects`  -- OpenSSL-style subjects, CNs and revocation reasons.
* :mod:`fleet.ca`        -- the CA's key and certificate (created recoverably), and everything the
  CA signs: server and device certificates, CRLs.
* :mod:`fleet.registry`  -- the record of issued device certificates.
* :mod:`fleet.export`    -- PEM, DER and C-array (``xxd -i``) renderings for firmware.
* :mod:`fleet.server`    -- the reference mutual-TLS server.
* :mod:`fleet.cli`       -- the fleet subcommands of ``atecc`` (registered through the
  ``atecc.commands`` entry-point group, see :mod:`atecc.cli`).

Layering: ``fleet`` may import ``atecc`` (the chip: CSRs signed by the chip, device IDs, file
helpers) and ``cryptoki`` (the token: ``cert-store``); neither of them imports ``fleet``. Every
file this package writes goes through :func:`atecc.fileio.atomic_write`.

Must not: talk to the chip except through :class:`atecc.device.Device`, or to the token except
through ``cryptoki.provision``.
"""

from __future__ import annotations


class FleetError(Exception):
    """Bad input or CA state; the message is the whole story (the CLI prints it as one line)."""
