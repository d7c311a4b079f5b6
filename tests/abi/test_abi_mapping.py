"""cryptoki._abi's decoding, encoding and error mapping, through the real C entry points.

The built library is loaded into this test process (a same-X.Y Python host, so it reuses this
interpreter) and called through its 3.0 function list with cffi buffers, as a C host would. The
core behind the ABI is a scripted stand-in installed with ``_abi._set_core``: these tests pin the
ABI's side of the contract in cryptoki/types.py (what the core receives, what the caller gets
back), independently of the real core, whose behaviour the harness tests cover. The lazy core is
restored after each test.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cffi
import pytest

from cryptoki import _abi, limits
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKA, CKM, CKR
from cryptoki.errors import BufferTooSmall, Pkcs11Error, SessionHandleInvalid
from cryptoki.types import (
    AttributeFailure,
    Ecdh1DeriveParams,
    GcmParams,
    InitArgs,
    LibraryInfo,
    Mechanism,
    SessionInfo,
    Version,
)

from ._support import native_cdefs

ULONG = struct.Struct("@L")  # native unsigned long, as CK_ULONG attribute values are


class ScriptedCore:
    """Answers each core method from ``script`` (a value, an exception, or a callable taking the
    call's arguments) and records every call as ``(method, args)``."""

    def __init__(self) -> None:
        self.script: dict[str, Any] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__"):
            raise AttributeError(method)

        def call(*args: Any) -> Any:
            self.calls.append((method, args))
            answer = self.script.get(method)
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return answer(*args)
            return answer

        return call

    def last(self, method: str) -> tuple[Any, ...]:
        return next(args for name, args in reversed(self.calls) if name == method)


@pytest.fixture(scope="module")
def p11(module_path: Path) -> tuple[cffi.FFI, Any]:
    ffi = cffi.FFI()
    ffi.cdef(
        native_cdefs().TYPES + "CK_RV C_GetInterface(CK_UTF8CHAR_PTR, CK_VERSION_PTR, "
        "CK_INTERFACE_PTR_PTR, CK_FLAGS);"
    )
    lib = ffi.dlopen(str(module_path))
    itf = ffi.new("CK_INTERFACE_PTR *")
    assert lib.C_GetInterface(ffi.NULL, ffi.NULL, itf, 0) == CKR.OK
    fl = ffi.cast("CK_FUNCTION_LIST_3_0 *", itf[0].pFunctionList)
    return ffi, fl


@pytest.fixture
def ffi(p11: tuple[cffi.FFI, Any]) -> cffi.FFI:
    return p11[0]


@pytest.fixture
def fl(p11: tuple[cffi.FFI, Any], core: ScriptedCore) -> Any:
    return p11[1]


@pytest.fixture
def core() -> Iterator[ScriptedCore]:
    fake = ScriptedCore()
    _abi._set_core(fake)
    try:
        yield fake
    finally:
        _abi._set_core(None)


# ---- error mapping ------------------------------------------------------------------------


def test_pkcs11_error_becomes_its_rv(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["get_session_info"] = SessionHandleInvalid()
    assert fl.C_GetSessionInfo(7, ffi.new("CK_SESSION_INFO *")) == CKR.SESSION_HANDLE_INVALID


def test_unexpected_exception_is_one_error_line_and_a_debug_traceback(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore, caplog: pytest.LogCaptureFixture
) -> None:
    core.script["logout"] = RuntimeError("boom\nforged line")
    logger = logging.getLogger("cryptoki")  # the core may stop propagation to the root logger
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="cryptoki")
    try:
        assert fl.C_Logout(3) == CKR.GENERAL_ERROR
    finally:
        logger.removeHandler(caplog.handler)
    records = list({id(r): r for r in caplog.records}.values())  # seen once or twice
    errors = [r for r in records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        "C_Logout failed: unexpected RuntimeError: boom\\nforged line"
    ]
    assert not errors[0].exc_info  # no traceback above DEBUG
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in records)


def test_bad_core_answer_is_general_error(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["open_session"] = None  # not an int: cannot be stored in phSession
    handle = ffi.new("CK_SESSION_HANDLE *")
    assert fl.C_OpenSession(0, 6, ffi.NULL, ffi.NULL, handle) == CKR.GENERAL_ERROR


def test_memory_error_is_host_memory(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["close_session"] = MemoryError()
    assert fl.C_CloseSession(1) == CKR.HOST_MEMORY


def test_error_carrying_ckr_ok_still_fails(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    class BrokenError(Pkcs11Error):
        rv = CKR.OK

    core.script["logout"] = BrokenError()
    assert fl.C_Logout(1) == CKR.GENERAL_ERROR


def test_missing_core_is_general_error(ffi: cffi.FFI, fl: Any, monkeypatch) -> None:
    # The lazy placeholder raises GeneralError when cryptoki.library cannot be imported.
    _abi._set_core(None)
    monkeypatch.setitem(__import__("sys").modules, "cryptoki.library", None)
    assert fl.C_Logout(1) == CKR.GENERAL_ERROR


# ---- output lengths ---------------------------------------------------------------------


def test_sign_two_call_convention(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    signature = bytes(range(64))

    def sign(session: int, data: bytes, out_len: int | None) -> bytes | int:
        if out_len is None:
            return 64
        if out_len < 64:
            raise BufferTooSmall(64)
        return signature

    core.script["sign"] = sign
    data = ffi.new("CK_BYTE[]", b"x" * 32)
    length = ffi.new("CK_ULONG *", 0)
    assert fl.C_Sign(1, data, 32, ffi.NULL, length) == CKR.OK
    assert length[0] == 64
    assert core.last("sign") == (1, b"x" * 32, None)

    out = ffi.new("CK_BYTE[80]", b"\xaa" * 80)
    length[0] = 10
    assert fl.C_Sign(1, data, 32, out, length) == CKR.BUFFER_TOO_SMALL
    assert length[0] == 64
    assert bytes(out) == b"\xaa" * 80

    length[0] = 80
    assert fl.C_Sign(1, data, 32, out, length) == CKR.OK
    assert length[0] == 64
    assert bytes(out)[:64] == signature and bytes(out)[64:] == b"\xaa" * 16


def test_oversized_core_answer_never_overflows(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["digest_final"] = b"D" * 48  # ignores out_len
    out = ffi.new("CK_BYTE[40]", b"\x00" * 40)
    length = ffi.new("CK_ULONG *", 32)
    assert fl.C_DigestFinal(1, out, length) == CKR.BUFFER_TOO_SMALL
    assert length[0] == 48
    assert bytes(out) == b"\x00" * 40


def test_slot_list_two_call(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["get_slot_list"] = [0, 5, 9]
    count = ffi.new("CK_ULONG *", 0)
    assert fl.C_GetSlotList(1, ffi.NULL, count) == CKR.OK and count[0] == 3
    assert core.last("get_slot_list") == (True,)
    slots = ffi.new("CK_SLOT_ID[3]")
    count[0] = 2
    assert fl.C_GetSlotList(0, slots, count) == CKR.BUFFER_TOO_SMALL and count[0] == 3
    assert fl.C_GetSlotList(0, slots, count) == CKR.OK and list(slots) == [0, 5, 9]


def test_find_objects_bounds(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    handles = ffi.new("CK_OBJECT_HANDLE[4]", [0, 0, 0, 0x77])
    count = ffi.new("CK_ULONG *")
    core.script["find_objects"] = [11, 12, 13]
    assert fl.C_FindObjects(1, handles, 3, count) == CKR.OK
    assert count[0] == 3 and list(handles) == [11, 12, 13, 0x77]
    assert core.last("find_objects") == (1, 3)
    core.script["find_objects"] = [1, 2, 3, 4]  # more than asked: a core bug, not an overflow
    assert fl.C_FindObjects(1, handles, 3, count) == CKR.GENERAL_ERROR
    assert handles[3] == 0x77


def test_generate_random_wrong_length(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    buf = ffi.new("CK_BYTE[16]")
    core.script["generate_random"] = b"r" * 15
    assert fl.C_GenerateRandom(1, buf, 16) == CKR.GENERAL_ERROR
    core.script["generate_random"] = b"r" * 16
    assert fl.C_GenerateRandom(1, buf, 16) == CKR.OK and bytes(buf) == b"r" * 16


# ---- attributes and templates --------------------------------------------------------------


def test_get_attribute_value_conventions(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["get_attribute_value"] = [
        ULONG.pack(3),  # buffer large enough
        AttributeFailure(CKR.ATTRIBUTE_TYPE_INVALID),  # not on this object
        b"label",  # NULL pValue: length only
        b"0123456789",  # buffer too small
        AttributeFailure(CKR.ATTRIBUTE_SENSITIVE),
    ]
    template = ffi.new("CK_ATTRIBUTE[5]")
    cls = ffi.new("CK_BYTE[8]")
    small = ffi.new("CK_BYTE[4]")
    other = ffi.new("CK_BYTE[8]")
    types = [CKA.CLASS, 0x7FFF0000, CKA.LABEL, CKA.ID, CKA.VALUE]
    buffers = [(cls, 8), (other, 8), (ffi.NULL, 0), (small, 4), (other, 8)]
    for attr, t, (buf, n) in zip(template, types, buffers, strict=False):
        attr.type, attr.pValue, attr.ulValueLen = t, buf, n
    rv = fl.C_GetAttributeValue(1, 2, template, 5)
    assert rv == CKR.ATTRIBUTE_TYPE_INVALID  # the first error in template order
    assert core.last("get_attribute_value") == (1, 2, [int(t) for t in types])
    assert template[0].ulValueLen == 8 and ULONG.unpack(bytes(cls))[0] == 3
    assert template[1].ulValueLen == CK_UNAVAILABLE_INFORMATION
    assert template[2].ulValueLen == 5
    assert template[3].ulValueLen == CK_UNAVAILABLE_INFORMATION
    assert template[4].ulValueLen == CK_UNAVAILABLE_INFORMATION


def test_get_attribute_value_buffer_too_small_alone(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    core.script["get_attribute_value"] = [b"0123456789"]
    attr = ffi.new("CK_ATTRIBUTE[1]")
    buf = ffi.new("CK_BYTE[4]")
    attr[0].type, attr[0].pValue, attr[0].ulValueLen = CKA.ID, buf, 4
    assert fl.C_GetAttributeValue(1, 2, attr, 1) == CKR.BUFFER_TOO_SMALL
    assert attr[0].ulValueLen == CK_UNAVAILABLE_INFORMATION


def test_template_decoding(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["create_object"] = 42
    keep = [ffi.new("CK_ULONG *", 3), ffi.new("char[]", b"abc"), ffi.new("CK_BBOOL *", 1)]
    template = ffi.new("CK_ATTRIBUTE[4]")
    template[0].type, template[0].pValue, template[0].ulValueLen = CKA.CLASS, keep[0], 8
    template[1].type, template[1].pValue, template[1].ulValueLen = CKA.LABEL, keep[1], 3
    template[2].type, template[2].pValue, template[2].ulValueLen = CKA.TOKEN, keep[2], 1
    template[3].type, template[3].pValue, template[3].ulValueLen = CKA.ID, ffi.NULL, 0
    handle = ffi.new("CK_OBJECT_HANDLE *")
    assert fl.C_CreateObject(9, template, 4, handle) == CKR.OK and handle[0] == 42
    assert core.last("create_object") == (
        9,
        [(CKA.CLASS, ULONG.pack(3)), (CKA.LABEL, b"abc"), (CKA.TOKEN, b"\x01"), (CKA.ID, b"")],
    )
    template[1].pValue = ffi.NULL  # NULL with a length
    assert fl.C_CreateObject(9, template, 4, handle) == CKR.ARGUMENTS_BAD


# ---- mechanisms ---------------------------------------------------------------------------


def _reads_param(session: int, mechanism: Any, key: int) -> None:
    """A core's C_SignInit that reads the parameter (after its state, mechanism, key checks)."""
    mechanism.param  # noqa: B018


def _sign_init(ffi: cffi.FFI, fl: Any, mtype: int, param: Any, length: int) -> int:
    mech = ffi.new("CK_MECHANISM *")
    mech.mechanism, mech.pParameter, mech.ulParameterLen = mtype, param, length
    return fl.C_SignInit(1, mech, 2)


def test_mechanism_without_and_with_flat_params(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["sign_init"] = _reads_param
    assert _sign_init(ffi, fl, CKM.ECDSA, ffi.NULL, 0) == CKR.OK
    assert core.last("sign_init") == (1, Mechanism(CKM.ECDSA, None), 2)
    iv = ffi.new("CK_BYTE[]", b"0123456789abcdef")
    assert _sign_init(ffi, fl, CKM.AES_CBC, iv, 16) == CKR.OK
    assert core.last("sign_init")[1] == Mechanism(CKM.AES_CBC, b"0123456789abcdef")
    assert _sign_init(ffi, fl, CKM.AES_CBC, ffi.NULL, 16) == CKR.MECHANISM_PARAM_INVALID
    assert fl.C_SignInit(1, ffi.NULL, 2) == CKR.ARGUMENTS_BAD


def test_gcm_params_both_layouts(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["sign_init"] = _reads_param
    iv = ffi.new("CK_BYTE[]", b"I" * 12)
    aad = ffi.new("CK_BYTE[]", b"A" * 5)
    gcm = ffi.new(
        "CK_GCM_PARAMS *",
        {"pIv": iv, "ulIvLen": 12, "ulIvBits": 96, "pAAD": aad, "ulAADLen": 5, "ulTagBits": 128},
    )
    assert _sign_init(ffi, fl, CKM.AES_GCM, gcm, ffi.sizeof(gcm[0])) == CKR.OK
    assert core.last("sign_init")[1] == Mechanism(
        CKM.AES_GCM, GcmParams(b"I" * 12, 96, b"A" * 5, 128)
    )
    old = ffi.new(
        "CK_GCM_PARAMS_V240 *",
        {"pIv": iv, "ulIvLen": 12, "pAAD": ffi.NULL, "ulAADLen": 0, "ulTagBits": 96},
    )
    assert _sign_init(ffi, fl, CKM.AES_GCM, old, ffi.sizeof(old[0])) == CKR.OK
    assert core.last("sign_init")[1] == Mechanism(CKM.AES_GCM, GcmParams(b"I" * 12, 96, b"", 96))
    assert _sign_init(ffi, fl, CKM.AES_GCM, gcm, 8) == CKR.MECHANISM_PARAM_INVALID


def test_ecdh1_params(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["derive_key"] = lambda session, mechanism, key, template: (mechanism.param, 77)[1]
    point = ffi.new("CK_BYTE[]", b"\x04" + b"P" * 64)
    params = ffi.new(
        "CK_ECDH1_DERIVE_PARAMS *",
        {
            "kdf": 1,
            "ulSharedDataLen": 0,
            "pSharedData": ffi.NULL,
            "ulPublicDataLen": 65,
            "pPublicData": point,
        },
    )
    mech = ffi.new(
        "CK_MECHANISM *",
        {
            "mechanism": CKM.ECDH1_DERIVE,
            "pParameter": params,
            "ulParameterLen": ffi.sizeof(params[0]),
        },
    )
    key = ffi.new("CK_OBJECT_HANDLE *")
    assert fl.C_DeriveKey(1, mech, 5, ffi.NULL, 0, key) == CKR.OK and key[0] == 77
    assert core.last("derive_key") == (
        1,
        Mechanism(CKM.ECDH1_DERIVE, Ecdh1DeriveParams(1, None, b"\x04" + b"P" * 64)),
        5,
        [],
    )
    params.pPublicData = ffi.NULL
    assert fl.C_DeriveKey(1, mech, 5, ffi.NULL, 0, key) == CKR.MECHANISM_PARAM_INVALID


# ---- info structs and C_Initialize ----------------------------------------------------------


def test_info_strings_are_blank_padded_and_cut_on_characters(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    core.script["get_info"] = LibraryInfo(Version(3, 0), "Maker", 0, "a" + "é" * 16, Version(0, 1))
    info = ffi.new("CK_INFO *")
    assert fl.C_GetInfo(info) == CKR.OK
    assert bytes(info.manufacturerID) == b"Maker" + b" " * 27
    assert bytes(info.libraryDescription) == ("a" + "é" * 15).encode() + b" "  # 31 bytes + blank
    assert (info.cryptokiVersion.major, info.cryptokiVersion.minor) == (3, 0)
    assert (info.libraryVersion.major, info.libraryVersion.minor) == (0, 1)


def test_session_info_fields(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["get_session_info"] = SessionInfo(slot_id=4, state=3, flags=6, device_error=9)
    info = ffi.new("CK_SESSION_INFO *")
    assert fl.C_GetSessionInfo(1, info) == CKR.OK
    assert (info.slotID, info.state, info.flags, info.ulDeviceError) == (4, 3, 6, 9)


def test_initialize_args(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    assert fl.C_Initialize(ffi.NULL) == CKR.OK
    assert core.last("initialize") == (None,)
    args = ffi.new("CK_C_INITIALIZE_ARGS *", {"flags": 2})
    assert fl.C_Initialize(args) == CKR.OK
    assert core.last("initialize") == (InitArgs(2, False, True),)

    fn = ffi.cast("CK_CREATEMUTEX", 1)  # never called: the ABI only checks presence
    args.CreateMutex = fn
    assert fl.C_Initialize(args) == CKR.ARGUMENTS_BAD
    args.DestroyMutex = ffi.cast("CK_DESTROYMUTEX", 1)
    args.LockMutex = ffi.cast("CK_LOCKMUTEX", 1)
    args.UnlockMutex = ffi.cast("CK_UNLOCKMUTEX", 1)
    assert fl.C_Initialize(args) == CKR.OK
    assert core.last("initialize") == (InitArgs(2, True, True),)
    args.pReserved = ffi.cast("void *", 1)
    calls = len(core.calls)
    assert fl.C_Initialize(args) == CKR.ARGUMENTS_BAD
    assert len(core.calls) == calls  # refused before the core


def test_pins_are_passed_through_and_null_means_none(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    pin = ffi.new("CK_UTF8CHAR[]", b"123456")
    assert fl.C_Login(1, 1, pin, 6) == CKR.OK
    assert core.last("login") == (1, 1, b"123456")
    assert fl.C_Login(1, 1, ffi.NULL, 0) == CKR.OK
    assert core.last("login") == (1, 1, None)


# ---- limits on lengths from C (cryptoki/limits.py) ------------------------------------------


def _data_calls(ffi: cffi.FFI, fl: Any) -> list[tuple[str, str, Any]]:
    """(C name, operation kind, call(data pointer, length) -> rv) for every data-taking call."""
    out = ffi.new("CK_BYTE[64]")
    n = ffi.new("CK_ULONG *", 64)
    sig = ffi.new("CK_BYTE[64]")
    return [
        ("C_Encrypt", "encrypt", lambda p, k: fl.C_Encrypt(1, p, k, out, n)),
        ("C_EncryptUpdate", "encrypt", lambda p, k: fl.C_EncryptUpdate(1, p, k, out, n)),
        ("C_Decrypt", "decrypt", lambda p, k: fl.C_Decrypt(1, p, k, out, n)),
        ("C_DecryptUpdate", "decrypt", lambda p, k: fl.C_DecryptUpdate(1, p, k, out, n)),
        ("C_Digest", "digest", lambda p, k: fl.C_Digest(1, p, k, out, n)),
        ("C_DigestUpdate", "digest", lambda p, k: fl.C_DigestUpdate(1, p, k)),
        ("C_Sign", "sign", lambda p, k: fl.C_Sign(1, p, k, out, n)),
        ("C_SignUpdate", "sign", lambda p, k: fl.C_SignUpdate(1, p, k)),
        ("C_Verify", "verify", lambda p, k: fl.C_Verify(1, p, k, sig, 64)),
        ("C_VerifyUpdate", "verify", lambda p, k: fl.C_VerifyUpdate(1, p, k)),
    ]


def test_data_over_max_data_per_call_gets_its_len_range_code_and_ends_the_operation(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    core.script.update(encrypt=b"", encrypt_update=b"", decrypt=b"", decrypt_update=b"")
    core.script.update(digest=b"", sign=b"")
    big = ffi.new("CK_BYTE[]", limits.MAX_DATA_PER_CALL + 1)
    for name, kind, call in _data_calls(ffi, fl):
        want = CKR.ENCRYPTED_DATA_LEN_RANGE if kind == "decrypt" else CKR.DATA_LEN_RANGE
        core.calls.clear()
        assert call(big, limits.MAX_DATA_PER_CALL + 1) == want, name
        assert core.calls == [("end_operation", (1, kind))], name  # the core never saw the data
        assert call(big, limits.MAX_DATA_PER_CALL) == CKR.OK, name  # the limit itself is fine


def test_signature_over_the_limit_is_signature_len_range(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    data = ffi.new("CK_BYTE[4]")
    big = ffi.new("CK_BYTE[]", limits.MAX_DATA_PER_CALL + 1)
    assert fl.C_Verify(1, data, 4, big, limits.MAX_DATA_PER_CALL + 1) == CKR.SIGNATURE_LEN_RANGE
    assert fl.C_VerifyFinal(1, big, limits.MAX_DATA_PER_CALL + 1) == CKR.SIGNATURE_LEN_RANGE
    assert [c for c in core.calls if c[0] != "end_operation"] == []


def test_abi_refusals_end_the_operation_but_buffer_too_small_does_not(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    """Every C_Encrypt/Decrypt/Digest/Sign/Verify(+Update/Final) refused by the ABI itself
    (NULL pointers) ends the session's operation of that kind (PKCS#11 §5.2)."""
    buf = ffi.new("CK_BYTE[8]")
    n = ffi.new("CK_ULONG *", 8)
    null = ffi.NULL
    refused = [
        ("encrypt", lambda: fl.C_Encrypt(3, buf, 8, buf, null)),
        ("encrypt", lambda: fl.C_EncryptUpdate(3, null, 8, buf, n)),
        ("encrypt", lambda: fl.C_EncryptFinal(3, buf, null)),
        ("decrypt", lambda: fl.C_Decrypt(3, null, 8, buf, n)),
        ("decrypt", lambda: fl.C_DecryptUpdate(3, buf, 8, buf, null)),
        ("decrypt", lambda: fl.C_DecryptFinal(3, buf, null)),
        ("digest", lambda: fl.C_Digest(3, buf, 8, buf, null)),
        ("digest", lambda: fl.C_DigestUpdate(3, null, 8)),
        ("digest", lambda: fl.C_DigestFinal(3, buf, null)),
        ("sign", lambda: fl.C_Sign(3, null, 8, buf, n)),
        ("sign", lambda: fl.C_SignUpdate(3, null, 8)),
        ("sign", lambda: fl.C_SignFinal(3, buf, null)),
        ("verify", lambda: fl.C_Verify(3, buf, 8, null, 8)),
        ("verify", lambda: fl.C_VerifyUpdate(3, null, 8)),
        ("verify", lambda: fl.C_VerifyFinal(3, null, 8)),
    ]
    for kind, call in refused:
        core.calls.clear()
        assert call() == CKR.ARGUMENTS_BAD
        assert core.calls == [("end_operation", (3, kind))]

    core.script["sign"] = BufferTooSmall(64)
    core.calls.clear()
    assert fl.C_Sign(3, buf, 8, buf, n) == CKR.BUFFER_TOO_SMALL
    assert [c[0] for c in core.calls] == ["sign"]  # the operation stays active

    core.script["end_operation"] = RuntimeError("core gone")  # the call's own error still wins
    assert fl.C_SignUpdate(3, null, 8) == CKR.ARGUMENTS_BAD


def test_template_limits(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    core.script["create_object"] = 5
    handle = ffi.new("CK_OBJECT_HANDLE *")
    value = ffi.new("CK_BYTE[]", limits.MAX_ATTRIBUTE_BYTES + 1)
    template = ffi.new("CK_ATTRIBUTE[]", limits.MAX_TEMPLATE_ATTRIBUTES + 1)
    for attr in template:
        attr.type, attr.pValue, attr.ulValueLen = CKA.LABEL, value, 1
    count = limits.MAX_TEMPLATE_ATTRIBUTES
    assert fl.C_CreateObject(1, template, count, handle) == CKR.OK
    assert fl.C_CreateObject(1, template, count + 1, handle) == CKR.ARGUMENTS_BAD
    assert fl.C_FindObjectsInit(1, template, count + 1) == CKR.ARGUMENTS_BAD
    assert fl.C_GetAttributeValue(1, 2, template, count + 1) == CKR.ARGUMENTS_BAD
    template[3].ulValueLen = limits.MAX_ATTRIBUTE_BYTES
    assert fl.C_CreateObject(1, template, 4, handle) == CKR.OK
    template[3].ulValueLen = limits.MAX_ATTRIBUTE_BYTES + 1
    for call in (
        lambda: fl.C_CreateObject(1, template, 4, handle),
        lambda: fl.C_CopyObject(1, 2, template, 4, handle),
        lambda: fl.C_SetAttributeValue(1, 2, template, 4),
        lambda: fl.C_FindObjectsInit(1, template, 4),
    ):
        core.calls.clear()
        assert call() == CKR.ATTRIBUTE_VALUE_INVALID
        assert core.calls == []


def test_random_and_pin_limits(ffi: cffi.FFI, fl: Any, core: ScriptedCore) -> None:
    buf = ffi.new("CK_BYTE[16]")
    assert fl.C_GenerateRandom(1, buf, limits.MAX_RANDOM_BYTES + 1) == CKR.DATA_LEN_RANGE
    assert fl.C_GenerateRandom(1, buf, 2**63) == CKR.DATA_LEN_RANGE
    assert core.calls == []
    pin = ffi.new("CK_UTF8CHAR[]", limits.MAX_PIN_BYTES + 1)
    over = limits.MAX_PIN_BYTES + 1
    assert fl.C_Login(1, 1, pin, over) == CKR.PIN_INCORRECT
    assert fl.C_InitPIN(1, pin, over) == CKR.PIN_LEN_RANGE
    assert fl.C_SetPIN(1, pin, 4, pin, over) == CKR.PIN_LEN_RANGE
    assert fl.C_SetPIN(1, pin, over, pin, 4) == CKR.PIN_INCORRECT
    assert core.calls == []
    assert fl.C_Login(1, 1, pin, limits.MAX_PIN_BYTES) == CKR.OK


# ---- mechanism parameters are decoded when the core reads them ------------------------------


def test_parameter_is_decoded_only_when_the_core_reads_it(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    """The core checks session, state, mechanism and key first; an unread bad parameter cannot
    fail the call, a read one fails it with MECHANISM_PARAM_INVALID."""
    junk = ffi.new("CK_BYTE[8]")
    assert _sign_init(ffi, fl, CKM.AES_GCM, junk, 3) == CKR.OK  # the core never looked
    core.script["sign_init"] = SessionHandleInvalid()
    assert _sign_init(ffi, fl, CKM.AES_GCM, junk, 2**40) == CKR.SESSION_HANDLE_INVALID
    core.script["sign_init"] = _reads_param
    assert _sign_init(ffi, fl, CKM.AES_GCM, junk, 3) == CKR.MECHANISM_PARAM_INVALID
    assert _sign_init(ffi, fl, CKM.AES_CBC, junk, 2**40) == CKR.MECHANISM_PARAM_INVALID
    assert _sign_init(ffi, fl, CKM.AES_CBC, junk, limits.MAX_MECHANISM_PARAM_BYTES + 1) == (
        CKR.MECHANISM_PARAM_INVALID
    )


def test_parameter_decoder_failure_is_param_invalid_never_general_error(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ptr: Any, length: int) -> Any:
        raise OverflowError("a field no decoder expected")

    monkeypatch.setitem(_abi._PARAM_DECODERS, int(CKM.AES_GCM), broken)
    core.script["sign_init"] = _reads_param
    junk = ffi.new("CK_BYTE[8]")
    assert _sign_init(ffi, fl, CKM.AES_GCM, junk, 8) == CKR.MECHANISM_PARAM_INVALID


def test_parameter_read_after_the_call_returned_never_touches_caller_memory(
    ffi: cffi.FFI, fl: Any, core: ScriptedCore
) -> None:
    """The caller's parameter memory is valid only during the call: the ABI settles the
    parameter before returning, so an operation that kept the mechanism reads a copy."""
    iv = ffi.new("CK_BYTE[]", b"0123456789abcdef")
    assert _sign_init(ffi, fl, CKM.AES_CBC, iv, 16) == CKR.OK
    kept = core.last("sign_init")[1]
    iv[0:16] = b"X" * 16
    del iv
    assert kept.param == b"0123456789abcdef"
    assert kept == Mechanism(CKM.AES_CBC, b"0123456789abcdef")
