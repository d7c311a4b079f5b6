"""The OpenSSL pkcs11-provider's key cache, replayed call for call against the core.

With its default ``pkcs11-module-cache-keys``, pkcs11-provider (read in its 1.2.0 source,
``src/obj/object.c`` ``cache_key`` / ``destroy_key_cache``, and watched with its debug log) does
this the first time it uses a token key (CKA_TOKEN and CKA_COPYABLE true):

1. takes a session and logs in as CKU_USER, whatever CKF_LOGIN_REQUIRED says. The PIN comes from
   its configuration or the key URI; failing those it passes NULL_PTR only when the token sets
   CKF_PROTECTED_AUTHENTICATION_PATH, and otherwise asks the user for a PIN (a failed prompt leaves
   an OpenSSL error behind, which then fails `openssl s_client` and `s_server`);
2. ``C_CopyObject(key, {CKA_TOKEN = FALSE})``: the copy keeps the key's label and ID;
3. signs with the copy, also from other sessions, as often as the process needs
   (CKM_ECDSA_SHA256 multi-part; a C_GetOperationState attempt in the middle);
4. destroys the copy with ``C_DestroyObject`` when it frees the key (at exit at the latest).

The provider's tests with the real provider are in tests/integration/test_openssl_provider.py.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from p11util import attr

from cryptoki import errors
from cryptoki.constants import CKA, CKF, CKM, CKU
from cryptoki.library import Library
from cryptoki.types import Mechanism

FALSE = b"\x00"


def _verify(lib: Library, session: int, public_key: int, message: bytes, sig: bytes) -> None:
    point = attr(lib, session, public_key, CKA.EC_POINT)[2:]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, message, ec.ECDSA(hashes.SHA256()))


def _provider_login(lib: Library, session: int) -> None:
    """What the provider does to log in when it holds no PIN (no URI pin-value, no token-pin)."""
    flags = lib.get_token_info(0).flags
    if not flags & CKF.PROTECTED_AUTHENTICATION_PATH:
        pytest.fail(
            "the token does not announce a protected authentication path: the provider would "
            "prompt the user for a PIN the token does not have"
        )
    lib.login(session, CKU.USER, None)


def test_provider_key_cache_on_a_token_without_pin_logs_in_without_a_pin_and_signs_with_the_copy(
    lib, device_key, device_pub
):
    assert not lib.get_token_info(0).flags & CKF.LOGIN_REQUIRED
    login_session = lib.open_session(0, CKF.SERIAL_SESSION)
    _provider_login(lib, login_session)
    cached = lib.copy_object(login_session, device_key, [(CKA.TOKEN, FALSE)])
    assert attr(lib, login_session, cached, CKA.ID) == attr(lib, login_session, device_key, CKA.ID)
    operation_session = lib.open_session(0, CKF.SERIAL_SESSION)
    for message in (b"first use", b"second use"):  # one process, the cached key used twice
        lib.sign_init(operation_session, Mechanism(CKM.ECDSA_SHA256), cached)
        lib.sign_update(operation_session, message)
        with pytest.raises(errors.FunctionNotSupported):
            lib.get_operation_state(operation_session, None)
        sig = lib.sign_final(operation_session, 75)  # the provider offers a DER-sized buffer
        _verify(lib, operation_session, device_pub, message, sig)
    lib.destroy_object(login_session, cached)
    with pytest.raises(errors.ObjectHandleInvalid):
        lib.get_attribute_value(login_session, cached, [CKA.LABEL])
    lib.sign_init(operation_session, Mechanism(CKM.ECDSA_SHA256), device_key)  # the original stays
    _verify(lib, operation_session, device_pub, b"m", lib.sign(operation_session, b"m", 64))


def test_token_with_pin_does_not_announce_a_protected_authentication_path(pin_filestore):
    lib = Library()
    lib.initialize(None)
    try:
        flags = lib.get_token_info(0).flags
        assert flags & CKF.LOGIN_REQUIRED and not flags & CKF.PROTECTED_AUTHENTICATION_PATH
        session = lib.open_session(0, CKF.SERIAL_SESSION)
        with pytest.raises(errors.ArgumentsBad):  # no PIN pad: a NULL PIN is refused
            lib.login(session, CKU.USER, None)
    finally:
        lib.finalize()
