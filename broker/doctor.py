"""The broker's check for ``atecc doctor`` (entry-point group ``atecc.doctor``).

Owns: finding a configured broker -- a p11-kit module file whose ``remote:`` names a UNIX socket
(``scripts/install-p11-kit-module.sh --broker``), or the systemd socket at the default path --
and whether a broker answers there. Nothing configured: no finding. ``atecc broker --check``
goes further (who may read the filestore, the client module, the allow list).

Must not: change anything.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from atecc.doctor import FAIL, OK, Finding


def _configured_sockets(dirs: Iterable[Path], default: Path) -> list[tuple[str, Path]]:
    from cryptoki.doctor import p11_kit_module_settings

    found = [
        (f"{path} names it", Path(remote.removeprefix("unix:path=")))
        for path, remote in p11_kit_module_settings(dirs, "remote")
        if remote.startswith("unix:path=")
    ]
    if not found and default.exists():
        found.append(("the service's socket", default))
    return found


def checks(filestore: Path) -> list[Finding]:
    """The ``atecc.doctor`` entry point: :func:`findings` for this machine's p11-kit module
    directories and the service's default socket."""
    from broker.listen import DEFAULT_SOCKET
    from cryptoki.doctor import p11_kit_dirs

    return findings(p11_kit_dirs(), Path(DEFAULT_SOCKET))


def findings(dirs: Iterable[Path], default: Path) -> list[Finding]:
    """One finding per configured broker socket: a broker answers there, or why not."""
    found = []
    for why, path in _configured_sockets(dirs, default):
        name = f"broker {path}"
        if not path.exists():
            found.append(
                Finding(
                    name,
                    FAIL,
                    f"no socket ({why}): clients through p11-kit get no token",
                    "start the broker (sudo systemctl start atecc-broker.socket, or atecc "
                    f"broker --socket {path}); 'atecc broker --check' diagnoses it",
                )
            )
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2.0)
            try:
                probe.connect(str(path))
            except OSError as exc:
                found.append(
                    Finding(
                        name,
                        FAIL,
                        f"nothing answers ({exc.strerror or exc}; {why})",
                        "restart the broker; 'atecc broker --check' diagnoses it",
                    )
                )
                continue
        found.append(Finding(name, OK, f"a broker listens ({why})"))
    return found
