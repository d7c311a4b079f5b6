"""cryptoki.access: the spec's session/login table, cell by cell."""

from __future__ import annotations

import itertools

import pytest

from cryptoki import access, errors
from cryptoki.constants import CKS

RO_PUB, RW_PUB = CKS.RO_PUBLIC_SESSION, CKS.RW_PUBLIC_SESSION
RO_USER, RW_USER, RW_SO = CKS.RO_USER_FUNCTIONS, CKS.RW_USER_FUNCTIONS, CKS.RW_SO_FUNCTIONS
RO, NL = errors.SessionReadOnly, errors.UserNotLoggedIn

#: (state, token object, private object) -> expected error for a write (None: allowed); the
#: table of access.py written out independently.
EXPECTED_WRITE = {
    (RO_PUB, False, False): None, (RO_PUB, False, True): NL,
    (RO_PUB, True, False): RO, (RO_PUB, True, True): RO,
    (RW_PUB, False, False): None, (RW_PUB, False, True): NL,
    (RW_PUB, True, False): None, (RW_PUB, True, True): NL,
    (RO_USER, False, False): None, (RO_USER, False, True): None,
    (RO_USER, True, False): RO, (RO_USER, True, True): RO,
    (RW_USER, False, False): None, (RW_USER, False, True): None,
    (RW_USER, True, False): None, (RW_USER, True, True): None,
    (RW_SO, False, False): None, (RW_SO, False, True): NL,
    (RW_SO, True, False): None, (RW_SO, True, True): NL,
}  # fmt: skip


@pytest.mark.parametrize(("state", "token", "private"), sorted(EXPECTED_WRITE))
def test_write_access_table(state: int, token: bool, private: bool) -> None:
    expected = EXPECTED_WRITE[(state, token, private)]
    if expected is None:
        access.check_write(state, token_object=token, private=private)
    else:
        with pytest.raises(expected):
            access.check_write(state, token_object=token, private=private)


def test_only_user_sessions_see_private_objects() -> None:
    for state, private in itertools.product((RO_PUB, RW_PUB, RO_USER, RW_USER, RW_SO), (0, 1)):
        seen = access.can_read(state, private=bool(private))
        assert seen == (not private or state in (RO_USER, RW_USER)), (state, private)


def test_so_and_rw_functions() -> None:
    access.check_so(RW_SO, "C_InitPIN")
    for state in (RO_PUB, RW_PUB, RO_USER, RW_USER):
        with pytest.raises(NL):
            access.check_so(state, "C_InitPIN")
    for state in (RO_PUB, RO_USER):
        with pytest.raises(RO):
            access.check_rw(state, "C_SetPIN")
    for state in (RW_PUB, RW_USER, RW_SO):
        access.check_rw(state, "C_SetPIN")
