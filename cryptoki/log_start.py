"""When the Cryptoki core's logging is set up, decided at C_Initialize without importing
``logging``.

Owns: the name of the environment variable (``ATECC_PKCS11_LOG``; its forms: :mod:`cryptoki.log`)
and :func:`start`. Set up at once if the operator asked for a log (the variable is set) or the
host already uses ``logging`` (a Python host); otherwise when the first WARNING or ERROR is
logged (:mod:`atecc.lazylog`), so a short-lived C host that logs nothing never imports it.
Must not: import ``logging`` or :mod:`cryptoki.log` itself at import.
"""

from __future__ import annotations

import sys

from atecc.environment import secure_getenv
from atecc.lazylog import on_load

ENV_VAR = "ATECC_PKCS11_LOG"


def _configure() -> None:
    from cryptoki.log import configure

    configure()


def start() -> None:
    """Called by every C_Initialize; :func:`cryptoki.log.configure` runs once per process."""
    if secure_getenv(ENV_VAR) or "logging" in sys.modules:
        _configure()
    else:
        on_load(_configure)
