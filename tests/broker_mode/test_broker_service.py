"""The systemd units in conf/systemd/, as far as a machine without systemd as PID 1 allows.

The units are installed into a scratch root by the project's own install script and checked by
`systemd-analyze verify`; the broker is then started exactly as the socket unit would start it:
`systemd-socket-activate` owns the listening socket, starts the unit's ExecStart command on the
first connection and hands the socket over in LISTEN_FDS.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from broker.listen import DEFAULT_SOCKET

from .conftest import BIN, REPO, require, run

pytestmark = pytest.mark.native
CONF = REPO / "conf" / "systemd"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.fixture
def installed(tmp_path) -> Path:
    root = tmp_path / "root"
    run(["bash", REPO / "scripts" / "install-broker-service.sh", "--root", root])
    return root


def test_installed_units_pass_systemd_analyze_verify(installed):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    units = installed / "etc" / "systemd" / "system"
    proc = run(
        [tool, "verify", units / "atecc-broker.service", units / "atecc-broker.socket"],
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    service = unit(units / "atecc-broker.service")
    assert shlex.split(service["Service"]["ExecStart"])[0] == str(BIN / "atecc")


def test_units_agree_on_socket_user_and_group(installed):
    units = installed / "etc" / "systemd" / "system"
    socket_unit = unit(units / "atecc-broker.socket")["Socket"]
    service = unit(units / "atecc-broker.service")["Service"]
    tmpfiles = (installed / "etc" / "tmpfiles.d" / "atecc-broker.conf").read_text()
    sysusers = (installed / "etc" / "sysusers.d" / "atecc-broker.conf").read_text()
    exec_start = shlex.split(service["ExecStart"])
    # Clients and the module file look where the socket unit listens.
    assert socket_unit["ListenStream"] == DEFAULT_SOCKET
    script = (REPO / "scripts" / "install-p11-kit-module.sh").read_text()
    assert f"socket={DEFAULT_SOCKET}" in script
    # The socket's directory: owner the broker, group the clients, 0750.
    directory = str(Path(DEFAULT_SOCKET).parent)
    line = next(x for x in tmpfiles.splitlines() if x.startswith("d "))
    assert line.split()[1:5] == [directory, "0750", "atecc-broker", "atecc-pkcs11"]
    # The group that may enter the directory is the group the broker allows, and it exists.
    assert exec_start[exec_start.index("--allow-group") + 1] == socket_unit["SocketGroup"]
    assert "g atecc-pkcs11" in sysusers and "u atecc-broker" in sysusers
    assert service["User"] == socket_unit["SocketUser"] == "atecc-broker"
    assert socket_unit["Accept"] == "no"  # one broker process takes the listening socket


def test_socket_activation_starts_the_units_command_on_first_connection(
    installed, filestore, client_module
):
    """The service's ExecStart under systemd-socket-activate: the broker takes descriptor 3
    (LISTEN_FDS) instead of binding, serves clients, and leaves systemd's socket in place."""
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate is not installed")
    service = unit(installed / "etc" / "systemd" / "system" / "atecc-broker.service")
    command = shlex.split(service["Service"]["ExecStart"])
    # The test's filestore, and the test's own group (the unit's group exists only once the
    # sysusers file has been applied).
    command[command.index("--filestore") + 1] = str(filestore)
    command[command.index("--allow-group") + 1] = "0"
    sockdir = Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp"))
    sock = sockdir / "p11.sock"
    log_path = filestore.parent / "activated.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [activate, "-l", str(sock), *command, "-v"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(500):
            if sock.exists():
                break
            time.sleep(0.01)
        env = {"P11_KIT_SERVER_ADDRESS": f"unix:path={sock}", "PATH": "/usr/bin:/bin"}
        tool = require("pkcs11-tool")
        first = run([tool, "--module", client_module, "-L"], env=env, timeout=120)
        second = run([tool, "--module", client_module, "-L"], env=env)
        assert "00ABC" in first.stdout and "00ABC" in second.stdout
        log = log_path.read_text()
        assert f"on {sock} (from systemd)" in log, log
        assert log.count("accepted pid") == 2, log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0, log_path.read_text()
    assert sock.exists()  # systemd's socket, not ours to remove
    shutil.rmtree(sockdir, ignore_errors=True)
