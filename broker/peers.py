"""Who is on the other end of a broker connection, and may they use the token.

Owns: reading a UNIX-socket peer's credentials from the kernel (``SO_PEERCRED``: pid, uid and
gid as of connect(); ``SO_PEERGROUPS``: its supplementary groups) and the allow list they are
checked against, before any PKCS#11 byte is read from the connection. A peer is allowed when its
uid is listed, or its gid or one of its supplementary groups is. Names are resolved once, at
start, so a typo fails the start instead of silently refusing everyone.

Must not: trust anything the client says about itself (only the kernel's answer counts), or fall
back to allowing when the credentials cannot be read.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from collections.abc import Iterable
from typing import NamedTuple

#: Linux socket option numbers Python does not name on every version.
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid
_MAX_GROUPS_BYTES = 1024  # CPython's getsockopt() limit: 256 groups


class Peer(NamedTuple):
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]

    def describe(self) -> str:
        return f"pid {self.pid}, uid {self.uid} ({_user_name(self.uid)}), gid {self.gid}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "?"


def peer_of(conn: socket.socket) -> Peer:
    """The kernel's record of the process that connected ``conn`` (raises OSError if none)."""
    pid, uid, gid = _UCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, _MAX_GROUPS_BYTES)
        groups = frozenset(struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
    except OSError:
        # Older kernel, or more groups than fit: the account's groups from the user database.
        try:
            groups = frozenset(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except KeyError:
            groups = frozenset()
    return Peer(pid, uid, gid, groups | {gid})


def _resolve(value: str, kind: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"no such {kind}: {value!r}") from None


class AllowList:
    """Users and groups that may use the broker."""

    def __init__(self, users: Iterable[int], groups: Iterable[int]) -> None:
        self.users = frozenset(users)
        self.groups = frozenset(groups)

    @classmethod
    def from_names(cls, users: Iterable[str], groups: Iterable[str]) -> AllowList:
        """From user and group names or numbers; with neither, the broker's own user only.

        :raises ValueError: a name the user database does not know.
        """
        users, groups = list(users), list(groups)
        if not users and not groups:
            return cls([os.geteuid()], [])
        return cls([_resolve(u, "user") for u in users], [_resolve(g, "group") for g in groups])

    def allows(self, peer: Peer) -> bool:
        return peer.uid in self.users or not self.groups.isdisjoint(peer.groups)

    def describe(self) -> str:
        users = ", ".join(f"{_user_name(u)} ({u})" for u in sorted(self.users)) or "none"
        names = []
        for gid in sorted(self.groups):
            try:
                names.append(f"{grp.getgrgid(gid).gr_name} ({gid})")
            except KeyError:
                names.append(str(gid))
        return f"users: {users}; groups: {', '.join(names) or 'none'}"
