"""The reference mutual-TLS server of a device fleet (``atecc serve``).

A client is accepted only when its certificate chains to the CA, is within its dates, is not in
the CRL (when the server has one), and is the certificate the registry holds for its serial and
device ID, active there. Every one of those checks runs *during* the TLS handshake, so a refused
device never gets a connection (see :mod:`fleet.server.tls` for why this needs pyOpenSSL rather
than Python's ``ssl``). Each connection is logged on one line with the device ID, serial and
verdict (:mod:`fleet.server.logline`); connections cost no thread, have whole-phase deadlines,
and the oldest pending handshake makes room when the server is full (:mod:`fleet.server.loop`).
Registry look-ups are by serial, indexed, with a short cache (:mod:`fleet.server.authority`).

Refusal reasons: ``unknown authority``, ``expired``, ``not yet valid``, ``revoked``,
``unregistered``, ``no certificate``, ``bad certificate``, ``CRL expired``, ``registry
unavailable``, ``handshake error (...)`` (timeout, evicted, connection lost, TLS errors).

Must not: sign or issue anything (``fleet.ca``), or write the registry.
"""

from __future__ import annotations

from fleet.server.loop import MtlsServer, ServerConfig, run

__all__ = ["MtlsServer", "ServerConfig", "run"]
