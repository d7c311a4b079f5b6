"""Who may use the broker: the kernel's peer credentials against the allow list.

Clients of another uid run through `setpriv` with numeric ids that have no account (so nothing
is added to the machine's user database); that needs root. The socket and its directory are
opened to everyone here on purpose, so that the connection itself succeeds and the broker's own
check (SO_PEERCRED / SO_PEERGROUPS) is what refuses; in a real set-up the 0750 directory is a
second fence in front of it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from .conftest import require, run, running_broker

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another uid needs root"),
]

OTHER_UID = 54321
OTHER_GID = 54321
CLIENT_GROUP = 54322


def as_other_user(cmd: list, *, groups: list[int] | None = None) -> list:
    group_option = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return [
        require("setpriv"),
        f"--reuid={OTHER_UID}",
        f"--regid={OTHER_GID}",
        group_option,
        "--",
        *cmd,
    ]


@pytest.fixture
def open_sockdir():
    directory = Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def listing(client_module, broker, *, groups=None, other=True):
    env = {**broker.client_env, "HOME": str(broker.socket.parent)}
    cmd = [require("pkcs11-tool"), "--module", client_module, "-L"]
    return run(as_other_user(cmd, groups=groups) if other else cmd, env=env, check=False)


def test_a_client_of_another_uid_is_refused_before_any_pkcs11_call(
    filestore, client_module, open_sockdir
):
    with running_broker(filestore, sockdir=open_sockdir) as broker:
        broker.socket.chmod(0o666)
        refused = listing(client_module, broker)
        served = listing(client_module, broker, other=False)
        log = broker.log()
    assert "00ABC" not in refused.stdout, refused.stdout
    assert refused.returncode != 0
    assert re.search(rf"refused pid \d+, uid {OTHER_UID} .*not in the allow list", log), log
    assert not re.search(rf"accepted pid \d+, uid {OTHER_UID}", log), log
    assert "00ABC" in served.stdout, served.stdout + log


def test_a_member_of_an_allowed_group_is_served_and_dropping_the_group_is_refused(
    filestore, client_module, open_sockdir
):
    with running_broker(
        filestore, "--allow-group", str(CLIENT_GROUP), sockdir=open_sockdir
    ) as broker:
        broker.socket.chmod(0o666)
        member = listing(client_module, broker, groups=[CLIENT_GROUP])
        dropped = listing(client_module, broker)
        log = broker.log()
    assert "00ABC" in member.stdout, member.stdout + member.stderr + log
    assert "00ABC" not in dropped.stdout, dropped.stdout
    assert len(re.findall(rf"refused pid \d+, uid {OTHER_UID} .*allow list", log)) == 1, log


def test_an_allowed_user_by_number_is_served(filestore, client_module, open_sockdir):
    with running_broker(filestore, "--allow-user", str(OTHER_UID), sockdir=open_sockdir) as b:
        b.socket.chmod(0o666)
        other = listing(client_module, b)
        root = listing(client_module, b, other=False)
    assert "00ABC" in other.stdout, other.stdout + other.stderr
    # The list replaces the default (the broker's own user): root is not on it.
    assert "00ABC" not in root.stdout, root.stdout


def test_the_socket_is_not_open_to_other_users_by_default(filestore, client_module, tmp_path):
    sockdir = Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp"))
    sockdir.rmdir()  # the broker creates it
    try:
        with running_broker(filestore, "--allow-user", str(OTHER_UID), sockdir=sockdir) as b:
            assert stat.S_IMODE(sockdir.stat().st_mode) == 0o750
            assert stat.S_IMODE(os.lstat(b.socket).st_mode) == 0o660
            other = listing(client_module, b)
            log = b.log()
        # Allowed by the list, yet the directory keeps the other uid out: the file system is
        # the first fence, the credential check the second.
        assert "00ABC" not in other.stdout
        assert f"uid {OTHER_UID}" not in log
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
