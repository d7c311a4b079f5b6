"""The spec's session and login rules in one table (PKCS#11 3.0 §5.6 and §4.4, SoftHSM2's
``access.cpp`` keeps the same table).

Owns: what a session in each state (CK_STATE) may do with an object, by the object's two access
facts (token or session object; private or public), for reading (seeing it at all) and for
writing (creating, copying, changing or destroying it); who may call the functions that need a
particular user (C_InitPIN, C_SetPIN, C_Login as SO); and which error wins when two rules fail.
Every ``Library`` method that needs one of these rules asks here, and nowhere else.
Must not: look up sessions or objects, decide what an object's flags are, or know about the chip.

Reading (visibility): a private object exists only for a session whose user is logged in; to
everyone else (the SO included) its handle is invalid, as the spec's table says.

Writing, per session state, for (token object?, private object?) — None means allowed::

                     (session, public) (session, private) (token, public)    (token, private)
    RO public        -                 USER_NOT_LOGGED_IN SESSION_READ_ONLY  SESSION_READ_ONLY
    RW public        -                 USER_NOT_LOGGED_IN -                  USER_NOT_LOGGED_IN
    RO user          -                 -                  SESSION_READ_ONLY  SESSION_READ_ONLY
    RW user          -                 -                  -                  -
    RW SO            -                 USER_NOT_LOGGED_IN -                  USER_NOT_LOGGED_IN

When both rules fail (a private token object from a read-only public session), the read-only
session wins: CKR_SESSION_READ_ONLY is about the call (no session state would change the
answer), CKR_USER_NOT_LOGGED_IN about the caller. (SoftHSM2 answers USER_NOT_LOGGED_IN there;
the spec orders neither.)
"""

from __future__ import annotations

from cryptoki import errors
from cryptoki.constants import CKS

_RO = errors.SessionReadOnly
_NL = errors.UserNotLoggedIn

#: state -> {(token object, private object): error class or None}, the table above.
# fmt: off
_WRITE: dict[int, dict[tuple[bool, bool], type[errors.Pkcs11Error] | None]] = {
    CKS.RO_PUBLIC_SESSION: {(False, False): None, (False, True): _NL, (True, False): _RO,
                            (True, True): _RO},
    CKS.RW_PUBLIC_SESSION: {(False, False): None, (False, True): _NL, (True, False): None,
                            (True, True): _NL},
    CKS.RO_USER_FUNCTIONS: {(False, False): None, (False, True): None, (True, False): _RO,
                            (True, True): _RO},
    CKS.RW_USER_FUNCTIONS: {(False, False): None, (False, True): None, (True, False): None,
                            (True, True): None},
    CKS.RW_SO_FUNCTIONS: {(False, False): None, (False, True): _NL, (True, False): None,
                          (True, True): _NL},
}
# fmt: on

#: States whose sessions see private objects.
_USER_STATES = frozenset({CKS.RO_USER_FUNCTIONS, CKS.RW_USER_FUNCTIONS})
_RW_STATES = frozenset({CKS.RW_PUBLIC_SESSION, CKS.RW_USER_FUNCTIONS, CKS.RW_SO_FUNCTIONS})


def can_read(state: int, *, private: bool) -> bool:
    """Whether a session in ``state`` sees an object (PKCS#11 §4.4: private needs the user)."""
    return not private or state in _USER_STATES


def check_write(state: int, *, token_object: bool, private: bool, what: str = "object") -> None:
    """Whether a session in ``state`` may create, copy, change or destroy such an object.

    :raises errors.SessionReadOnly: a token object from a read-only session.
    :raises errors.UserNotLoggedIn: a private object without the user logged in.
    """
    error = _WRITE[state][(token_object, private)]
    if error is _RO:
        raise _RO(f"a token {what} needs a read/write session")
    if error is _NL:
        raise _NL(f"a private {what} needs the user logged in")


def check_rw(state: int, what: str) -> None:
    """Functions that change the token itself (C_SetPIN) need a read/write session."""
    if state not in _RW_STATES:
        raise errors.SessionReadOnly(f"{what} needs a read/write session")


def check_so(state: int, what: str) -> None:
    """Functions of the security officer (C_InitPIN): the SO logged in (in a R/W session,
    the only kind an SO can have)."""
    if state != CKS.RW_SO_FUNCTIONS:
        raise errors.UserNotLoggedIn(f"{what} needs the SO logged in")


def check_user(state: int, what: str) -> None:
    """Anything that uses a private key on behalf of the user needs the user logged in."""
    if state not in _USER_STATES:
        raise errors.UserNotLoggedIn(f"{what} needs the user logged in")
