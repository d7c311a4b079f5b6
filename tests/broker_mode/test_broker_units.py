"""The broker's small parts on their own: the allow list, peer credentials, the socket set-up."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from broker import listen
from broker.peers import AllowList, Peer, peer_of


def test_peer_of_reports_the_kernels_credentials_of_the_connecting_process():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        peer = peer_of(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())
    assert set(os.getgroups()) | {os.getegid()} <= peer.groups


def test_allow_list_matches_uid_primary_group_or_supplementary_group():
    allow = AllowList([1000], [2000])
    assert allow.allows(Peer(1, 1000, 5, frozenset({5})))
    assert allow.allows(Peer(1, 1001, 2000, frozenset({2000})))
    assert allow.allows(Peer(1, 1001, 5, frozenset({5, 2000})))
    assert not allow.allows(Peer(1, 1001, 5, frozenset({5, 2001})))


def test_allow_list_defaults_to_the_brokers_own_user_only():
    allow = AllowList.from_names([], [])
    assert allow.users == {os.geteuid()} and not allow.groups


def test_allow_list_refuses_unknown_names_at_start():
    with pytest.raises(ValueError, match="no such group"):
        AllowList.from_names([], ["no-such-group-atecc-test"])
    with pytest.raises(ValueError, match="no such user"):
        AllowList.from_names(["no-such-user-atecc-test"], [])
    assert AllowList.from_names(["4242"], ["root"]).groups == {0}


def test_bind_makes_a_0750_directory_and_a_0660_socket(tmp_path):
    path = tmp_path / "new" / "p.sock"
    with listen.bind_socket(path):
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660


def test_bind_replaces_a_stale_socket_but_never_a_live_one(tmp_path):
    path = tmp_path / "p.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a broker that died
    with listen.bind_socket(path):
        with pytest.raises(listen.ListenError, match="already listening"):
            listen.bind_socket(path)


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_bind_never_touches_what_is_not_a_socket(tmp_path, kind):
    path = tmp_path / "p.sock"
    target = tmp_path / "precious"
    target.write_text("keep me")
    if kind == "file":
        path.write_text("keep me")
    else:
        path.symlink_to(target)
    with pytest.raises(listen.ListenError, match="not a socket"):
        listen.bind_socket(path)
    assert target.read_text() == "keep me" and os.path.lexists(path)


def test_socket_activation_variables_for_another_process_are_ignored(monkeypatch):
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert listen.inherited_socket() is None


def test_inherited_descriptor_3_must_be_a_listening_unix_socket():
    """A child whose descriptor 3 is a plain file gets a clear error, not a broker on it."""
    code = (
        "import os\n"
        "os.environ['LISTEN_PID'] = str(os.getpid()); os.environ['LISTEN_FDS'] = '1'\n"
        "from broker import listen\n"
        "try:\n    listen.inherited_socket()\nexcept listen.ListenError as e:\n    print(e)\n"
        "print('LISTEN_FDS' in os.environ)\n"
    )
    proc = subprocess.run(
        ["bash", "-c", 'exec 3</dev/null; exec "$0" -c "$1"', sys.executable, code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "the inherited descriptor 3 is not a socket" in proc.stdout, proc.stdout
    assert proc.stdout.strip().endswith("False")  # removed, so children do not inherit it
