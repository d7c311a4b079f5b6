"""The Cryptoki ABI: C pointers in, plain Python values to the core, C results out.

Owns: every ``extern "Python"`` function of ``libatecc_pkcs11.so`` (one ``C_X`` per PKCS#11
function the token implements), attached by :func:`register` from the library's embedding init
code. This is the ONLY module that touches ``ffi``/``lib`` or CK pointers, and the ONLY place an
exception becomes a ``CK_RV``: ``ffi.def_extern(error=CKR_GENERAL_ERROR, onerror=...)`` maps a
:class:`~cryptoki.errors.Pkcs11Error` to its ``rv``, :class:`~cryptoki.errors.BufferTooSmall` to the
required length plus ``CKR_BUFFER_TOO_SMALL``, and anything else to ``CKR_GENERAL_ERROR`` with one
ERROR log line (the traceback only at DEBUG). An entry point that raises can never return 0
(``CKR_OK``); one of C_Encrypt/Decrypt/Digest/Sign/Verify(+Update/Final) that fails ends the
session's operation of its kind, whoever raised (``@entry(ends=...)``).

Each ``C_X`` does, in order: NULL-pointer checks that make the call meaningless
(``CKR_ARGUMENTS_BAD``), every count and length from C checked against :mod:`cryptoki.limits`
before the memory it describes is read (each limit has its own CK_RV), decoding into
:mod:`cryptoki.types` values (mechanism parameters lazily: :class:`CMechanism` decodes them when
the core first reads ``param``, after its session and state checks), one call on the core object
(``cryptoki.library.LIBRARY``, imported lazily on first use so this module builds and loads before
the core exists), and encoding of the result (blank-padded fixed-width strings, native
``unsigned long``, the two-call length convention). Everything else (initialised? handle valid?
template sane?) is the core's decision.

Must not: make token decisions, print (stdout belongs to the host; logging goes to the
``cryptoki`` logger, whose handlers the core configures), log PINs or key bytes, or read the
environment per call. The per-call path is kept lean: no wrapper frames (the error mapping runs in
cffi's ``onerror``, only when something raised), no imports, lazily decoded arguments.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import Any

import cryptoki
from atecc.lazylog import get_logger
from cryptoki.constants import CK_UNAVAILABLE_INFORMATION, CKM, CKR
from cryptoki.errors import (
    ArgumentsBad,
    AttributeValueInvalid,
    BufferTooSmall,
    DataLenRange,
    EncryptedDataLenRange,
    GeneralError,
    MechanismParamInvalid,
    PinIncorrect,
    PinLenRange,
    Pkcs11Error,
    SignatureLenRange,
)
from cryptoki.limits import (
    MAX_ATTRIBUTE_BYTES,
    MAX_DATA_PER_CALL,
    MAX_MECHANISM_PARAM_BYTES,
    MAX_PIN_BYTES,
    MAX_RANDOM_BYTES,
    MAX_TEMPLATE_ATTRIBUTES,
)
from cryptoki.session import DECRYPT, DIGEST, ENCRYPT, SIGN, VERIFY
from cryptoki.types import (
    AttributeFailure,
    Ecdh1DeriveParams,
    GcmParams,
    InitArgs,
    Mechanism,
    MechanismParam,
    Template,
)

_log = get_logger("cryptoki")

# Plain ints: the comparisons and returns below run on every call.
_OK = int(CKR.OK)
_ARGUMENTS_BAD = int(CKR.ARGUMENTS_BAD)
_BUFFER_TOO_SMALL = int(CKR.BUFFER_TOO_SMALL)
_GENERAL_ERROR = int(CKR.GENERAL_ERROR)
_HOST_MEMORY = int(CKR.HOST_MEMORY)
_UNAVAILABLE = CK_UNAVAILABLE_INFORMATION

# Set by register(); module globals so the entry points reach them with one lookup.
_ffi: Any = None
_lib: Any = None
_buffer: Callable[..., Any] = None  # type: ignore[assignment]
_memmove: Callable[..., Any] = None  # type: ignore[assignment]
_cast: Callable[..., Any] = None  # type: ignore[assignment]
_SIZEOF_GCM = _SIZEOF_GCM_V240 = _SIZEOF_ECDH1 = -1

#: Output structs are packed with ``struct`` (native alignment, ``L`` = unsigned long) and copied
#: with one memmove: several times cheaper than one cffi attribute write per field. ``register``
#: checks every field offset against cffi's (compiler-verified) layout before anything is used.
_LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "CK_INFO": (
        ("cryptokiVersion", "BB"),
        ("manufacturerID", "32s"),
        ("flags", "L"),
        ("libraryDescription", "32s"),
        ("libraryVersion", "BB"),
    ),
    "CK_SLOT_INFO": (
        ("slotDescription", "64s"),
        ("manufacturerID", "32s"),
        ("flags", "L"),
        ("hardwareVersion", "BB"),
        ("firmwareVersion", "BB"),
    ),
    "CK_TOKEN_INFO": (
        ("label", "32s"),
        ("manufacturerID", "32s"),
        ("model", "16s"),
        ("serialNumber", "16s"),
        ("flags", "L"),
        ("ulMaxSessionCount", "L"),
        ("ulSessionCount", "L"),
        ("ulMaxRwSessionCount", "L"),
        ("ulRwSessionCount", "L"),
        ("ulMaxPinLen", "L"),
        ("ulMinPinLen", "L"),
        ("ulTotalPublicMemory", "L"),
        ("ulFreePublicMemory", "L"),
        ("ulTotalPrivateMemory", "L"),
        ("ulFreePrivateMemory", "L"),
        ("hardwareVersion", "BB"),
        ("firmwareVersion", "BB"),
        ("utcTime", "16s"),
    ),
    "CK_SESSION_INFO": (("slotID", "L"), ("state", "L"), ("flags", "L"), ("ulDeviceError", "L")),
    "CK_MECHANISM_INFO": (("ulMinKeySize", "L"), ("ulMaxKeySize", "L"), ("flags", "L")),
}
_PACKERS: dict[str, struct.Struct] = {
    name: struct.Struct("@" + "".join(fmt for _, fmt in fields))
    for name, fields in _LAYOUTS.items()
}
_pack_info = _PACKERS["CK_INFO"].pack
_pack_slot_info = _PACKERS["CK_SLOT_INFO"].pack
_pack_token_info = _PACKERS["CK_TOKEN_INFO"].pack
_pack_session_info = _PACKERS["CK_SESSION_INFO"].pack
_pack_mechanism_info = _PACKERS["CK_MECHANISM_INFO"].pack
_SIZE_INFO = _PACKERS["CK_INFO"].size
_SIZE_SLOT_INFO = _PACKERS["CK_SLOT_INFO"].size
_SIZE_TOKEN_INFO = _PACKERS["CK_TOKEN_INFO"].size
_SIZE_SESSION_INFO = _PACKERS["CK_SESSION_INFO"].size
_SIZE_MECHANISM_INFO = _PACKERS["CK_MECHANISM_INFO"].size


def _check_layouts(ffi: Any) -> None:
    """Every packed field must sit where the compiler put it (cffi knows: it checked at build)."""
    for name, fields in _LAYOUTS.items():
        prefix = "@"
        for field, fmt in fields:
            # A zero-count item aligns without adding data: the offset the next field gets.
            offset = struct.calcsize(prefix + "0" + fmt[-1])
            if offset != ffi.offsetof(name, field):
                raise RuntimeError(
                    f"{name}.{field}: packed at {offset}, C has {ffi.offsetof(name, field)}"
                )
            prefix += fmt
        if struct.calcsize(prefix) > ffi.sizeof(name):
            raise RuntimeError(f"{name}: packed size exceeds sizeof")


# --------------------------------------------------------------------------------------------
# The core, resolved on first use


class _LazyCore:
    """Stands in for ``cryptoki.library.LIBRARY`` until the first attribute access, which imports
    it and replaces this placeholder in the module globals: later calls reach the core directly."""

    _import_failure_logged = False

    def __getattr__(self, name: str) -> Any:
        global _core
        try:
            from cryptoki.library import LIBRARY
        except Exception:
            if not _LazyCore._import_failure_logged:
                _LazyCore._import_failure_logged = True
                exc = sys.exc_info()[1]
                _log.error(
                    "cannot import the Cryptoki core (cryptoki.library): %s: %s",
                    type(exc).__name__,
                    _one_line(exc) if exc is not None else "",
                )
                _log.debug("traceback of the import failure", exc_info=True)
            raise GeneralError("the Cryptoki core (cryptoki.library) is not importable") from None
        _core = LIBRARY
        return getattr(LIBRARY, name)


_core: Any = _LazyCore()


def _set_core(core: Any | None) -> None:
    """Test seam: use ``core`` instead of ``cryptoki.library.LIBRARY`` (None restores lazy
    loading). Production code never calls this."""
    global _core
    _core = _LazyCore() if core is None else core


# --------------------------------------------------------------------------------------------
# Entry registration and the one exception -> CK_RV mapping

#: C name -> (function, name of its output-length parameter or None, kind of operation the call
#: ends when it fails or None), filled by @entry.
_ENTRIES: dict[str, tuple[Callable[..., int], str | None, str | None]] = {}


def entry(
    fn: Callable[..., int] | None = None, *, out: str | None = None, ends: str | None = None
) -> Any:
    """Declare ``fn`` as the Python side of the C function of the same name.

    No wrapper is added (the happy path stays one Python frame); :func:`register` attaches the
    function with an ``onerror`` handler that maps exceptions. ``out`` names the ``CK_ULONG_PTR``
    parameter that receives the required length when the core raises ``BufferTooSmall``.
    ``ends`` names the session's operation (``cryptoki.session.SIGN``...) that a failure of this
    call terminates (PKCS#11 §5.2: any error but CKR_BUFFER_TOO_SMALL), also when the ABI itself
    refuses the call before the core sees it (a NULL pointer, data over its limit).
    """

    def declare(f: Callable[..., int]) -> Callable[..., int]:
        code = f.__code__
        params = code.co_varnames[: code.co_argcount]
        if out is not None and out not in params:
            # Checked at import, so a misspelt name can never silently skip writing the length.
            raise TypeError(f"@entry(out={out!r}): {f.__name__} has no such parameter")
        if ends is not None and "hSession" not in params:
            raise TypeError(f"@entry(ends=...): {f.__name__} has no hSession parameter")
        _ENTRIES[f.__name__] = (f, out, ends)
        return f

    return declare(fn) if fn is not None else declare


def _one_line(exc: BaseException) -> str:
    """``exc``'s message as one bounded log line (a message may hold newlines)."""
    text = str(exc).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= 300 else text[:300] + "..."


def _end_operation(name: str, tb: Any, kind: str) -> None:
    """End the failed call's operation (the session handle is a local of the entry's frame)."""
    session = tb.tb_frame.f_locals.get("hSession") if tb is not None else None
    if session is None:
        return
    try:
        _core.end_operation(session, kind)
    except Exception as exc:  # e.g. the core is not importable: the call fails anyway
        _log.debug("%s: could not end the %s operation: %s", name, kind, _one_line(exc))


def _onerror_for(
    name: str, out: str | None, ends: str | None
) -> Callable[[type, BaseException, Any], int]:
    """cffi ``onerror`` for ``name``: its return value becomes the function's CK_RV."""

    def rv_for(exc_type: type, exc: BaseException, tb: Any) -> int:
        if isinstance(exc, BufferTooSmall):
            # The length pointer is a local of the entry point's frame (the first traceback entry).
            if out is not None and tb is not None:
                ptr = tb.tb_frame.f_locals.get(out)
                if ptr:
                    ptr[0] = exc.required
            return _BUFFER_TOO_SMALL
        if ends is not None:
            _end_operation(name, tb, ends)
        if isinstance(exc, Pkcs11Error):
            rv = int(exc.rv)
            if rv == _OK:  # a misdeclared error must still fail the call
                _log.error("%s: exception %r carries CKR_OK", name, exc)
                return _GENERAL_ERROR
            if _log.isEnabledFor(10):  # logging.DEBUG
                _log.debug("%s -> %s", name, exc)
            return rv
        if isinstance(exc, MemoryError):
            return _HOST_MEMORY
        # One line for the host's log; the traceback only at DEBUG (never on the host's stderr
        # unless the operator asked for DEBUG).
        _log.error("%s failed: unexpected %s: %s", name, exc_type.__name__, _one_line(exc))
        _log.debug("%s: traceback of the %s", name, exc_type.__name__, exc_info=(exc_type, exc, tb))
        return _GENERAL_ERROR

    def onerror(exc_type: type, exc: BaseException, tb: Any) -> int:
        try:
            return rv_for(exc_type, exc, tb)
        except BaseException:  # cffi would print a traceback to the host's stderr
            return _GENERAL_ERROR

    return onerror


def register(ffi: Any, lib: Any) -> None:
    """Attach every entry point to the library (called once by its embedding init code).

    :raises RuntimeError: the library was built from another package version, or the library and
        this module disagree on which functions are Python-backed. The init code then fails and
        every call returns ``CKR_GENERAL_ERROR``.
    """
    global _ffi, _lib, _buffer, _memmove, _cast, _SIZEOF_GCM, _SIZEOF_GCM_V240, _SIZEOF_ECDH1
    built = ffi.string(lib.p11_package_version()).decode()
    if built != cryptoki.__version__:
        raise RuntimeError(
            f"{ffi.string(lib.p11_module_file()).decode()} was built for cryptoki {built}, but "
            f"cryptoki {cryptoki.__version__} is installed; rebuild with "
            "`python -m native.build_module` or reinstall the package"
        )
    declared = set(ffi.string(lib.p11_python_function_names()).decode().split())
    if declared != _ENTRIES.keys():
        raise RuntimeError(
            "library and cryptoki._abi disagree on Python-backed functions: "
            f"missing {sorted(declared - _ENTRIES.keys())}, "
            f"extra {sorted(_ENTRIES.keys() - declared)}"
        )
    _ffi, _lib = ffi, lib
    _buffer, _memmove, _cast = ffi.buffer, ffi.memmove, ffi.cast
    _SIZEOF_GCM = ffi.sizeof("CK_GCM_PARAMS")
    _SIZEOF_GCM_V240 = ffi.sizeof("CK_GCM_PARAMS_V240")
    _SIZEOF_ECDH1 = ffi.sizeof("CK_ECDH1_DERIVE_PARAMS")
    if ffi.sizeof("CK_ULONG") * 8 != _UNAVAILABLE.bit_length():
        raise RuntimeError("CK_UNAVAILABLE_INFORMATION does not match sizeof(CK_ULONG)")
    _check_layouts(ffi)
    for name, (fn, out, ends) in _ENTRIES.items():
        onerror = _onerror_for(name, out, ends)
        ffi.def_extern(name="py_" + name, error=_GENERAL_ERROR, onerror=onerror)(fn)


# --------------------------------------------------------------------------------------------
# Decoding


def _bytes(ptr: Any, length: int, limit: int, too_long: Callable[[str], Exception]) -> bytes:
    """Input buffer of ``length`` bytes, refused with ``too_long`` over ``limit`` before anything
    is read (the length comes from the caller and may be anything). NULL is allowed only for an
    empty buffer."""
    if not length:
        return b""
    if not ptr:
        raise ArgumentsBad("NULL buffer with a non-zero length")
    if length > limit:
        raise too_long(f"{length} bytes; at most {limit}")
    return _buffer(ptr, length)[:]


def _saved_state_invalid(message: str) -> Pkcs11Error:
    return Pkcs11Error(message, rv=CKR.SAVED_STATE_INVALID)


def _data(ptr: Any, length: int) -> bytes:
    """Data of a sign, verify, digest or encrypt call (limits.MAX_DATA_PER_CALL)."""
    return _bytes(ptr, length, MAX_DATA_PER_CALL, DataLenRange)


def _ciphertext(ptr: Any, length: int) -> bytes:
    """Data of a decrypt call: over the limit it is CKR_ENCRYPTED_DATA_LEN_RANGE."""
    return _bytes(ptr, length, MAX_DATA_PER_CALL, EncryptedDataLenRange)


def _signature(ptr: Any, length: int) -> bytes:
    """A signature to verify: over the limit it is CKR_SIGNATURE_LEN_RANGE."""
    return _bytes(ptr, length, MAX_DATA_PER_CALL, SignatureLenRange)


def _opt_bytes(
    ptr: Any, length: int, too_long: Callable[[str], Exception] = PinLenRange
) -> bytes | None:
    """Optional input (PINs, user names: NULL means the protected authentication path), at most
    limits.MAX_PIN_BYTES."""
    if not ptr:
        return None
    if length > MAX_PIN_BYTES:
        raise too_long(f"{length} bytes; at most {MAX_PIN_BYTES}")
    return _buffer(ptr, length)[:]


def _count(count: int) -> None:
    """A template's attribute count (limits.MAX_TEMPLATE_ATTRIBUTES): CKR_ARGUMENTS_BAD over it."""
    if count > MAX_TEMPLATE_ATTRIBUTES:
        raise ArgumentsBad(f"{count} attributes; at most {MAX_TEMPLATE_ATTRIBUTES}")


def _template(ptr: Any, count: int) -> Template:
    """CK_ATTRIBUTE[count] -> [(type, raw value bytes)] in caller order. Every count and length
    is checked against its limit before the value it describes is read."""
    if not count:
        return []
    if not ptr:
        raise ArgumentsBad("NULL template with a non-zero count")
    _count(count)
    out = []
    for i in range(count):
        attr = ptr[i]
        n = attr.ulValueLen
        if not n:
            out.append((attr.type, b""))
        elif not attr.pValue:
            raise ArgumentsBad("template attribute with NULL pValue and a non-zero length")
        elif n > MAX_ATTRIBUTE_BYTES:
            raise AttributeValueInvalid(
                f"attribute 0x{attr.type:X}: {n} bytes; at most {MAX_ATTRIBUTE_BYTES}"
            )
        else:
            out.append((attr.type, _buffer(attr.pValue, n)[:]))
    return out


def _param_bytes(ptr: Any, length: int, limit: int = MAX_MECHANISM_PARAM_BYTES) -> bytes:
    """A buffer inside mechanism parameters: a bad pointer or length is a bad parameter."""
    if not length:
        return b""
    if not ptr:
        raise MechanismParamInvalid("NULL pointer inside mechanism parameters")
    if length > limit:
        raise MechanismParamInvalid(f"a {length}-byte buffer in mechanism parameters")
    return _buffer(ptr, length)[:]


def _gcm_params(ptr: Any, length: int) -> GcmParams:
    if length == _SIZEOF_GCM:
        p = _cast("CK_GCM_PARAMS *", ptr)
        iv_bits = p.ulIvBits
    elif length == _SIZEOF_GCM_V240:  # the 2.40 header's layout, still sent by older callers
        p = _cast("CK_GCM_PARAMS_V240 *", ptr)
        iv_bits = p.ulIvLen * 8
    else:
        raise MechanismParamInvalid("CK_GCM_PARAMS has the wrong length")
    return GcmParams(
        iv=_param_bytes(p.pIv, p.ulIvLen),
        iv_bits=iv_bits,
        aad=_param_bytes(p.pAAD, p.ulAADLen, MAX_DATA_PER_CALL),  # AAD is data
        tag_bits=p.ulTagBits,
    )


def _ecdh1_params(ptr: Any, length: int) -> Ecdh1DeriveParams:
    if length != _SIZEOF_ECDH1:
        raise MechanismParamInvalid("CK_ECDH1_DERIVE_PARAMS has the wrong length")
    p = _cast("CK_ECDH1_DERIVE_PARAMS *", ptr)
    if not p.pPublicData or not p.ulPublicDataLen:
        raise MechanismParamInvalid("CK_ECDH1_DERIVE_PARAMS without public data")
    return Ecdh1DeriveParams(
        kdf=p.kdf,
        shared_data=_param_bytes(p.pSharedData, p.ulSharedDataLen) if p.pSharedData else None,
        public_data=_param_bytes(p.pPublicData, p.ulPublicDataLen),
    )


def _flat_params(ptr: Any, length: int) -> bytes:
    return _param_bytes(ptr, length)


#: Mechanisms whose parameters hold pointers; all others pass their parameter bytes through.
_PARAM_DECODERS: dict[int, Callable[[Any, int], MechanismParam]] = {
    int(CKM.AES_GCM): _gcm_params,
    int(CKM.ECDH1_DERIVE): _ecdh1_params,
    int(CKM.ECDH1_COFACTOR_DERIVE): _ecdh1_params,
}

_UNREAD = object()  #: CMechanism._param before the first read


class CMechanism:
    """A CK_MECHANISM whose parameter is decoded when the core first reads ``param``.

    The core checks the session, its operation state, the mechanism and the key before it looks
    at the parameter (PKCS#11's error precedence), so a bad parameter must not fail the call
    earlier, in the ABI. Equal to a :class:`cryptoki.types.Mechanism` with the same type and
    decoded parameter. The ABI calls :meth:`settle` before its C call returns: the caller's
    memory is only valid until then.
    """

    __slots__ = ("_error", "_len", "_param", "_ptr", "type")

    def __init__(self, mtype: int, ptr: Any, length: int) -> None:
        self.type = mtype
        self._ptr = ptr
        self._len = length
        self._param: Any = _UNREAD
        self._error: Pkcs11Error | None = None

    @property
    def param(self) -> MechanismParam:
        """None, flat bytes or a decoded struct (see :class:`cryptoki.types.Mechanism`).

        :raises MechanismParamInvalid: the parameter cannot be decoded.
        """
        if self._param is _UNREAD:
            self.settle()
        if self._error is not None:
            raise self._error
        return self._param

    def settle(self) -> None:
        """Decode now (idempotent); a failure is kept and raised by every read of ``param``."""
        if self._param is not _UNREAD:
            return
        ptr, length = self._ptr, self._len
        self._ptr = None
        self._param = None
        try:
            if not ptr:
                if length:
                    raise MechanismParamInvalid("NULL pParameter with a non-zero length")
                return
            decode = _PARAM_DECODERS.get(self.type, _flat_params)
            self._param = decode(ptr, length)
        except MechanismParamInvalid as exc:
            self._error = exc
        except Exception as exc:  # whatever the caller's bytes hold, never GENERAL_ERROR
            self._error = MechanismParamInvalid(f"undecodable parameter ({type(exc).__name__})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CMechanism | Mechanism):
            return NotImplemented
        try:
            return (self.type, self.param) == (other.type, other.param)
        except Pkcs11Error:
            return False

    def __hash__(self) -> int:
        return hash(self.type)

    def __repr__(self) -> str:
        return f"CMechanism(type=0x{self.type:X})"


def _mechanism(ptr: Any) -> CMechanism:
    """CK_MECHANISM -> a lazily decoded mechanism (only a NULL pointer fails here)."""
    if not ptr:
        raise ArgumentsBad("NULL mechanism")
    return CMechanism(ptr.mechanism, ptr.pParameter, ptr.ulParameterLen)


# --------------------------------------------------------------------------------------------
# Encoding


_PADDED: dict[tuple[str, int], bytes] = {}


def _padded(text: str, width: int) -> bytes:
    """UTF-8, truncated on a character boundary, blank-padded to ``width`` (no NUL). Cached:
    labels and descriptions rarely change, and this runs for every info call."""
    key = (text, width)
    raw = _PADDED.get(key)
    if raw is None:
        raw = text.encode("utf-8")
        if len(raw) > width:
            raw = raw[:width].decode("utf-8", "ignore").encode("utf-8")
        raw = raw.ljust(width, b" ")
        if len(_PADDED) >= 512:  # bounded: a token whose strings keep changing
            _PADDED.clear()
        _PADDED[key] = raw
    return raw


def _emit(result: bytes | int, out: Any, out_len: Any, capacity: int | None) -> int:
    """The two-call convention for a byte-string result (see cryptoki.types).

    ``capacity`` is the caller's buffer size, None for a NULL buffer (length query).
    """
    if isinstance(result, int):  # the core answered a length query
        out_len[0] = result
        return _OK
    n = len(result)
    if capacity is not None:
        if n > capacity:  # the core must raise BufferTooSmall; never overflow the caller anyway
            out_len[0] = n
            return _BUFFER_TOO_SMALL
        _memmove(out, result, n)
    out_len[0] = n
    return _OK


def _emit_ulongs(values: list[int], out: Any, count: Any) -> int:
    """CK_ULONG array with the two-call convention (C_GetSlotList, C_GetMechanismList)."""
    n = len(values)
    if out:
        if count[0] < n:
            count[0] = n
            return _BUFFER_TOO_SMALL
        if n:
            out[0:n] = values
    count[0] = n
    return _OK


def _flush_logs() -> None:
    """C hosts never finalize Python, so logging's shutdown flush never runs: flush here."""
    for handler in _log.handlers:
        try:
            handler.flush()
        except Exception:  # a broken handler must not fail C_Finalize
            pass


# ============================================================================================
# General purpose (PKCS#11 v3.0 §5.4)


@entry
def C_Initialize(pInitArgs: Any) -> int:
    """C_Initialize (§5.4.1): decode CK_C_INITIALIZE_ARGS, mutex callbacks all-or-none."""
    if not pInitArgs:
        _core.initialize(None)
        return _OK
    args = _cast("CK_C_INITIALIZE_ARGS *", pInitArgs)
    if args.pReserved:
        return _ARGUMENTS_BAD
    supplied = (
        bool(args.CreateMutex)
        + bool(args.DestroyMutex)
        + bool(args.LockMutex)
        + bool(args.UnlockMutex)
    )
    if supplied not in (0, 4):
        return _ARGUMENTS_BAD
    _core.initialize(
        InitArgs(flags=args.flags, has_mutex_functions=supplied == 4, reserved_is_null=True)
    )
    return _OK


@entry
def C_Finalize(pReserved: Any) -> int:
    """C_Finalize (§5.4.2)."""
    if pReserved:
        return _ARGUMENTS_BAD
    try:
        _core.finalize()
    finally:
        _flush_logs()
    return _OK


@entry
def C_GetInfo(pInfo: Any) -> int:
    """C_GetInfo (§5.4.3)."""
    if not pInfo:
        return _ARGUMENTS_BAD
    info = _core.get_info()
    cv, lv = info.cryptoki_version, info.library_version
    _memmove(
        pInfo,
        _pack_info(
            cv.major,
            cv.minor,
            _padded(info.manufacturer_id, 32),
            info.flags,
            _padded(info.library_description, 32),
            lv.major,
            lv.minor,
        ),
        _SIZE_INFO,
    )
    return _OK


# ============================================================================================
# Slot and token management (§5.5)


@entry
def C_GetSlotList(tokenPresent: int, pSlotList: Any, pulCount: Any) -> int:
    """C_GetSlotList (§5.5.1): two-call convention on the slot count."""
    if not pulCount:
        return _ARGUMENTS_BAD
    return _emit_ulongs(_core.get_slot_list(bool(tokenPresent)), pSlotList, pulCount)


@entry
def C_GetSlotInfo(slotID: int, pInfo: Any) -> int:
    """C_GetSlotInfo (§5.5.2)."""
    if not pInfo:
        return _ARGUMENTS_BAD
    info = _core.get_slot_info(slotID)
    hw, fw = info.hardware_version, info.firmware_version
    _memmove(
        pInfo,
        _pack_slot_info(
            _padded(info.slot_description, 64),
            _padded(info.manufacturer_id, 32),
            info.flags,
            hw.major,
            hw.minor,
            fw.major,
            fw.minor,
        ),
        _SIZE_SLOT_INFO,
    )
    return _OK


@entry
def C_GetTokenInfo(slotID: int, pInfo: Any) -> int:
    """C_GetTokenInfo (§5.5.3)."""
    if not pInfo:
        return _ARGUMENTS_BAD
    info = _core.get_token_info(slotID)
    hw, fw = info.hardware_version, info.firmware_version
    _memmove(
        pInfo,
        _pack_token_info(
            _padded(info.label, 32),
            _padded(info.manufacturer_id, 32),
            _padded(info.model, 16),
            _padded(info.serial_number, 16),
            info.flags,
            info.max_session_count,
            info.session_count,
            info.max_rw_session_count,
            info.rw_session_count,
            info.max_pin_len,
            info.min_pin_len,
            info.total_public_memory,
            info.free_public_memory,
            info.total_private_memory,
            info.free_private_memory,
            hw.major,
            hw.minor,
            fw.major,
            fw.minor,
            _padded(info.utc_time, 16),
        ),
        _SIZE_TOKEN_INFO,
    )
    return _OK


@entry
def C_WaitForSlotEvent(flags: int, pSlot: Any, pReserved: Any) -> int:
    """C_WaitForSlotEvent (§5.5.4). pReserved is ignored, as the spec reserves it."""
    if not pSlot:
        return _ARGUMENTS_BAD
    pSlot[0] = _core.wait_for_slot_event(flags)
    return _OK


@entry
def C_GetMechanismList(slotID: int, pMechanismList: Any, pulCount: Any) -> int:
    """C_GetMechanismList (§5.5.5): two-call convention on the count."""
    if not pulCount:
        return _ARGUMENTS_BAD
    return _emit_ulongs(_core.get_mechanism_list(slotID), pMechanismList, pulCount)


@entry
def C_GetMechanismInfo(slotID: int, type: int, pInfo: Any) -> int:
    """C_GetMechanismInfo (§5.5.6)."""
    if not pInfo:
        return _ARGUMENTS_BAD
    info = _core.get_mechanism_info(slotID, type)
    _memmove(
        pInfo,
        _pack_mechanism_info(info.min_key_size, info.max_key_size, info.flags),
        _SIZE_MECHANISM_INFO,
    )
    return _OK


@entry
def C_InitToken(slotID: int, pPin: Any, ulPinLen: int, pLabel: Any) -> int:
    """C_InitToken (§5.5.7): the label is 32 blank-padded bytes."""
    if not pLabel:
        return _ARGUMENTS_BAD
    _core.init_token(slotID, _opt_bytes(pPin, ulPinLen), _buffer(pLabel, 32)[:])
    return _OK


@entry
def C_InitPIN(hSession: int, pPin: Any, ulPinLen: int) -> int:
    """C_InitPIN (§5.5.8)."""
    _core.init_pin(hSession, _opt_bytes(pPin, ulPinLen))
    return _OK


@entry
def C_SetPIN(hSession: int, pOldPin: Any, ulOldLen: int, pNewPin: Any, ulNewLen: int) -> int:
    """C_SetPIN (§5.5.9)."""
    _core.set_pin(
        hSession, _opt_bytes(pOldPin, ulOldLen, PinIncorrect), _opt_bytes(pNewPin, ulNewLen)
    )
    return _OK


# ============================================================================================
# Session management (§5.6)


@entry
def C_OpenSession(slotID: int, flags: int, pApplication: Any, Notify: Any, phSession: Any) -> int:
    """C_OpenSession (§5.6.1). Notify callbacks are accepted and never called."""
    if not phSession:
        return _ARGUMENTS_BAD
    phSession[0] = _core.open_session(slotID, flags)
    return _OK


@entry
def C_CloseSession(hSession: int) -> int:
    """C_CloseSession (§5.6.2)."""
    _core.close_session(hSession)
    return _OK


@entry
def C_CloseAllSessions(slotID: int) -> int:
    """C_CloseAllSessions (§5.6.3)."""
    _core.close_all_sessions(slotID)
    return _OK


@entry
def C_GetSessionInfo(hSession: int, pInfo: Any) -> int:
    """C_GetSessionInfo (§5.6.4)."""
    if not pInfo:
        return _ARGUMENTS_BAD
    info = _core.get_session_info(hSession)
    _memmove(
        pInfo,
        _pack_session_info(info.slot_id, info.state, info.flags, info.device_error),
        _SIZE_SESSION_INFO,
    )
    return _OK


@entry
def C_SessionCancel(hSession: int, flags: int) -> int:
    """C_SessionCancel (§5.6.5, v3.0)."""
    _core.session_cancel(hSession, flags)
    return _OK


@entry(out="pulOperationStateLen")
def C_GetOperationState(hSession: int, pOperationState: Any, pulOperationStateLen: Any) -> int:
    """C_GetOperationState (§5.6.6): two-call convention."""
    if not pulOperationStateLen:
        return _ARGUMENTS_BAD
    cap = pulOperationStateLen[0] if pOperationState else None
    return _emit(
        _core.get_operation_state(hSession, cap), pOperationState, pulOperationStateLen, cap
    )


@entry
def C_SetOperationState(
    hSession: int,
    pOperationState: Any,
    ulOperationStateLen: int,
    hEncryptionKey: int,
    hAuthenticationKey: int,
) -> int:
    """C_SetOperationState (§5.6.7)."""
    if not pOperationState:
        return _ARGUMENTS_BAD
    _core.set_operation_state(
        hSession,
        _bytes(pOperationState, ulOperationStateLen, MAX_DATA_PER_CALL, _saved_state_invalid),
        hEncryptionKey,
        hAuthenticationKey,
    )
    return _OK


@entry
def C_Login(hSession: int, userType: int, pPin: Any, ulPinLen: int) -> int:
    """C_Login (§5.6.8). A NULL PIN means the protected authentication path."""
    _core.login(hSession, userType, _opt_bytes(pPin, ulPinLen, PinIncorrect))
    return _OK


@entry
def C_LoginUser(
    hSession: int, userType: int, pPin: Any, ulPinLen: int, pUsername: Any, ulUsernameLen: int
) -> int:
    """C_LoginUser (§5.6.9, v3.0)."""
    _core.login_user(
        hSession,
        userType,
        _opt_bytes(pPin, ulPinLen, PinIncorrect),
        _opt_bytes(pUsername, ulUsernameLen, ArgumentsBad),
    )
    return _OK


@entry
def C_Logout(hSession: int) -> int:
    """C_Logout (§5.6.10)."""
    _core.logout(hSession)
    return _OK


# ============================================================================================
# Object management (§5.7)


@entry
def C_CreateObject(hSession: int, pTemplate: Any, ulCount: int, phObject: Any) -> int:
    """C_CreateObject (§5.7.1)."""
    if not phObject:
        return _ARGUMENTS_BAD
    phObject[0] = _core.create_object(hSession, _template(pTemplate, ulCount))
    return _OK


@entry
def C_CopyObject(
    hSession: int, hObject: int, pTemplate: Any, ulCount: int, phNewObject: Any
) -> int:
    """C_CopyObject (§5.7.2)."""
    if not phNewObject:
        return _ARGUMENTS_BAD
    phNewObject[0] = _core.copy_object(hSession, hObject, _template(pTemplate, ulCount))
    return _OK


@entry
def C_DestroyObject(hSession: int, hObject: int) -> int:
    """C_DestroyObject (§5.7.3)."""
    _core.destroy_object(hSession, hObject)
    return _OK


@entry
def C_GetObjectSize(hSession: int, hObject: int, pulSize: Any) -> int:
    """C_GetObjectSize (§5.7.4)."""
    if not pulSize:
        return _ARGUMENTS_BAD
    pulSize[0] = _core.get_object_size(hSession, hObject)
    return _OK


@entry
def C_GetAttributeValue(hSession: int, hObject: int, pTemplate: Any, ulCount: int) -> int:
    """C_GetAttributeValue (§5.7.5).

    Every entry is processed. Per entry: NULL pValue gets the length; a large enough buffer gets
    the value and its length; a sensitive or invalid attribute, or a too-small buffer, gets
    CK_UNAVAILABLE_INFORMATION. The call returns the first such error in template order
    (ATTRIBUTE_SENSITIVE, ATTRIBUTE_TYPE_INVALID or BUFFER_TOO_SMALL; the spec lets any of them
    win), else CKR_OK.
    """
    if not pTemplate and ulCount:
        return _ARGUMENTS_BAD
    _count(ulCount)
    types = [pTemplate[i].type for i in range(ulCount)]
    values = _core.get_attribute_value(hSession, hObject, types)
    if len(values) != ulCount:
        raise GeneralError(f"core answered {len(values)} attributes for {ulCount}")
    rv = _OK
    for i, value in enumerate(values):
        attr = pTemplate[i]
        if isinstance(value, bytes):
            n = len(value)
            if not attr.pValue:
                attr.ulValueLen = n
                continue
            if attr.ulValueLen >= n:
                _memmove(attr.pValue, value, n)
                attr.ulValueLen = n
                continue
            err = _BUFFER_TOO_SMALL
        elif isinstance(value, AttributeFailure):
            err = int(value.rv)
        else:
            raise GeneralError(f"core answered {type(value).__name__} for an attribute")
        attr.ulValueLen = _UNAVAILABLE
        if rv == _OK:
            rv = err
    return rv


@entry
def C_SetAttributeValue(hSession: int, hObject: int, pTemplate: Any, ulCount: int) -> int:
    """C_SetAttributeValue (§5.7.6)."""
    _core.set_attribute_value(hSession, hObject, _template(pTemplate, ulCount))
    return _OK


@entry
def C_FindObjectsInit(hSession: int, pTemplate: Any, ulCount: int) -> int:
    """C_FindObjectsInit (§5.7.7)."""
    _core.find_objects_init(hSession, _template(pTemplate, ulCount))
    return _OK


@entry
def C_FindObjects(hSession: int, phObject: Any, ulMaxObjectCount: int, pulObjectCount: Any) -> int:
    """C_FindObjects (§5.7.8): writes at most ulMaxObjectCount handles."""
    if not pulObjectCount or (not phObject and ulMaxObjectCount):
        return _ARGUMENTS_BAD
    handles = _core.find_objects(hSession, ulMaxObjectCount)
    n = len(handles)
    if n > ulMaxObjectCount:
        raise GeneralError(f"core returned {n} handles for at most {ulMaxObjectCount}")
    if n:
        phObject[0:n] = handles
    pulObjectCount[0] = n
    return _OK


@entry
def C_FindObjectsFinal(hSession: int) -> int:
    """C_FindObjectsFinal (§5.7.9)."""
    _core.find_objects_final(hSession)
    return _OK


# ============================================================================================
# Encryption and decryption (§5.8, §5.9). Outputs follow the two-call convention.


@entry
def C_EncryptInit(hSession: int, pMechanism: Any, hKey: int) -> int:
    """C_EncryptInit (§5.8.1)."""
    mechanism = _mechanism(pMechanism)
    try:
        _core.encrypt_init(hSession, mechanism, hKey)
    finally:
        mechanism.settle()
    return _OK


@entry(out="pulEncryptedDataLen", ends=ENCRYPT)
def C_Encrypt(
    hSession: int, pData: Any, ulDataLen: int, pEncryptedData: Any, pulEncryptedDataLen: Any
) -> int:
    """C_Encrypt (§5.8.2)."""
    if not pulEncryptedDataLen:
        raise ArgumentsBad("NULL pulEncryptedDataLen")
    cap = pulEncryptedDataLen[0] if pEncryptedData else None
    return _emit(
        _core.encrypt(hSession, _data(pData, ulDataLen), cap),
        pEncryptedData,
        pulEncryptedDataLen,
        cap,
    )


@entry(out="pulEncryptedPartLen", ends=ENCRYPT)
def C_EncryptUpdate(
    hSession: int, pPart: Any, ulPartLen: int, pEncryptedPart: Any, pulEncryptedPartLen: Any
) -> int:
    """C_EncryptUpdate (§5.8.3)."""
    if not pulEncryptedPartLen:
        raise ArgumentsBad("NULL pulEncryptedPartLen")
    cap = pulEncryptedPartLen[0] if pEncryptedPart else None
    return _emit(
        _core.encrypt_update(hSession, _data(pPart, ulPartLen), cap),
        pEncryptedPart,
        pulEncryptedPartLen,
        cap,
    )


@entry(out="pulLastEncryptedPartLen", ends=ENCRYPT)
def C_EncryptFinal(hSession: int, pLastEncryptedPart: Any, pulLastEncryptedPartLen: Any) -> int:
    """C_EncryptFinal (§5.8.4)."""
    if not pulLastEncryptedPartLen:
        raise ArgumentsBad("NULL pulLastEncryptedPartLen")
    cap = pulLastEncryptedPartLen[0] if pLastEncryptedPart else None
    return _emit(
        _core.encrypt_final(hSession, cap), pLastEncryptedPart, pulLastEncryptedPartLen, cap
    )


@entry
def C_DecryptInit(hSession: int, pMechanism: Any, hKey: int) -> int:
    """C_DecryptInit (§5.9.1)."""
    mechanism = _mechanism(pMechanism)
    try:
        _core.decrypt_init(hSession, mechanism, hKey)
    finally:
        mechanism.settle()
    return _OK


@entry(out="pulDataLen", ends=DECRYPT)
def C_Decrypt(
    hSession: int, pEncryptedData: Any, ulEncryptedDataLen: int, pData: Any, pulDataLen: Any
) -> int:
    """C_Decrypt (§5.9.2)."""
    if not pulDataLen:
        raise ArgumentsBad("NULL pulDataLen")
    cap = pulDataLen[0] if pData else None
    return _emit(
        _core.decrypt(hSession, _ciphertext(pEncryptedData, ulEncryptedDataLen), cap),
        pData,
        pulDataLen,
        cap,
    )


@entry(out="pulPartLen", ends=DECRYPT)
def C_DecryptUpdate(
    hSession: int, pEncryptedPart: Any, ulEncryptedPartLen: int, pPart: Any, pulPartLen: Any
) -> int:
    """C_DecryptUpdate (§5.9.3)."""
    if not pulPartLen:
        raise ArgumentsBad("NULL pulPartLen")
    cap = pulPartLen[0] if pPart else None
    return _emit(
        _core.decrypt_update(hSession, _ciphertext(pEncryptedPart, ulEncryptedPartLen), cap),
        pPart,
        pulPartLen,
        cap,
    )


@entry(out="pulLastPartLen", ends=DECRYPT)
def C_DecryptFinal(hSession: int, pLastPart: Any, pulLastPartLen: Any) -> int:
    """C_DecryptFinal (§5.9.4)."""
    if not pulLastPartLen:
        raise ArgumentsBad("NULL pulLastPartLen")
    cap = pulLastPartLen[0] if pLastPart else None
    return _emit(_core.decrypt_final(hSession, cap), pLastPart, pulLastPartLen, cap)


# ============================================================================================
# Message digesting (§5.10)


@entry
def C_DigestInit(hSession: int, pMechanism: Any) -> int:
    """C_DigestInit (§5.10.1)."""
    mechanism = _mechanism(pMechanism)
    try:
        _core.digest_init(hSession, mechanism)
    finally:
        mechanism.settle()
    return _OK


@entry(out="pulDigestLen", ends=DIGEST)
def C_Digest(hSession: int, pData: Any, ulDataLen: int, pDigest: Any, pulDigestLen: Any) -> int:
    """C_Digest (§5.10.2)."""
    if not pulDigestLen:
        raise ArgumentsBad("NULL pulDigestLen")
    cap = pulDigestLen[0] if pDigest else None
    return _emit(_core.digest(hSession, _data(pData, ulDataLen), cap), pDigest, pulDigestLen, cap)


@entry(ends=DIGEST)
def C_DigestUpdate(hSession: int, pPart: Any, ulPartLen: int) -> int:
    """C_DigestUpdate (§5.10.3)."""
    _core.digest_update(hSession, _data(pPart, ulPartLen))
    return _OK


@entry
def C_DigestKey(hSession: int, hKey: int) -> int:
    """C_DigestKey (§5.10.4)."""
    _core.digest_key(hSession, hKey)
    return _OK


@entry(out="pulDigestLen", ends=DIGEST)
def C_DigestFinal(hSession: int, pDigest: Any, pulDigestLen: Any) -> int:
    """C_DigestFinal (§5.10.5)."""
    if not pulDigestLen:
        raise ArgumentsBad("NULL pulDigestLen")
    cap = pulDigestLen[0] if pDigest else None
    return _emit(_core.digest_final(hSession, cap), pDigest, pulDigestLen, cap)


# ============================================================================================
# Signing and MACing (§5.11), verifying (§5.12)


@entry
def C_SignInit(hSession: int, pMechanism: Any, hKey: int) -> int:
    """C_SignInit (§5.11.1)."""
    mechanism = _mechanism(pMechanism)
    try:
        _core.sign_init(hSession, mechanism, hKey)
    finally:
        mechanism.settle()
    return _OK


@entry(out="pulSignatureLen", ends=SIGN)
def C_Sign(hSession: int, pData: Any, ulDataLen: int, pSignature: Any, pulSignatureLen: Any) -> int:
    """C_Sign (§5.11.2). A NULL pSignature is a length query and keeps the operation active."""
    if not pulSignatureLen:
        raise ArgumentsBad("NULL pulSignatureLen")
    cap = pulSignatureLen[0] if pSignature else None
    return _emit(
        _core.sign(hSession, _data(pData, ulDataLen), cap), pSignature, pulSignatureLen, cap
    )


@entry(ends=SIGN)
def C_SignUpdate(hSession: int, pPart: Any, ulPartLen: int) -> int:
    """C_SignUpdate (§5.11.3)."""
    _core.sign_update(hSession, _data(pPart, ulPartLen))
    return _OK


@entry(out="pulSignatureLen", ends=SIGN)
def C_SignFinal(hSession: int, pSignature: Any, pulSignatureLen: Any) -> int:
    """C_SignFinal (§5.11.4)."""
    if not pulSignatureLen:
        raise ArgumentsBad("NULL pulSignatureLen")
    cap = pulSignatureLen[0] if pSignature else None
    return _emit(_core.sign_final(hSession, cap), pSignature, pulSignatureLen, cap)


@entry
def C_VerifyInit(hSession: int, pMechanism: Any, hKey: int) -> int:
    """C_VerifyInit (§5.12.1)."""
    mechanism = _mechanism(pMechanism)
    try:
        _core.verify_init(hSession, mechanism, hKey)
    finally:
        mechanism.settle()
    return _OK


@entry(ends=VERIFY)
def C_Verify(
    hSession: int, pData: Any, ulDataLen: int, pSignature: Any, ulSignatureLen: int
) -> int:
    """C_Verify (§5.12.2)."""
    _core.verify(hSession, _data(pData, ulDataLen), _signature(pSignature, ulSignatureLen))
    return _OK


@entry(ends=VERIFY)
def C_VerifyUpdate(hSession: int, pPart: Any, ulPartLen: int) -> int:
    """C_VerifyUpdate (§5.12.3)."""
    _core.verify_update(hSession, _data(pPart, ulPartLen))
    return _OK


@entry(ends=VERIFY)
def C_VerifyFinal(hSession: int, pSignature: Any, ulSignatureLen: int) -> int:
    """C_VerifyFinal (§5.12.4)."""
    _core.verify_final(hSession, _signature(pSignature, ulSignatureLen))
    return _OK


# ============================================================================================
# Key management (§5.14)


@entry
def C_GenerateKey(hSession: int, pMechanism: Any, pTemplate: Any, ulCount: int, phKey: Any) -> int:
    """C_GenerateKey (§5.14.1)."""
    if not phKey:
        return _ARGUMENTS_BAD
    mechanism = _mechanism(pMechanism)
    try:
        phKey[0] = _core.generate_key(hSession, mechanism, _template(pTemplate, ulCount))
    finally:
        mechanism.settle()
    return _OK


@entry
def C_GenerateKeyPair(
    hSession: int,
    pMechanism: Any,
    pPublicKeyTemplate: Any,
    ulPublicKeyAttributeCount: int,
    pPrivateKeyTemplate: Any,
    ulPrivateKeyAttributeCount: int,
    phPublicKey: Any,
    phPrivateKey: Any,
) -> int:
    """C_GenerateKeyPair (§5.14.2)."""
    if not phPublicKey or not phPrivateKey:
        return _ARGUMENTS_BAD
    mechanism = _mechanism(pMechanism)
    try:
        public, private = _core.generate_key_pair(
            hSession,
            mechanism,
            _template(pPublicKeyTemplate, ulPublicKeyAttributeCount),
            _template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount),
        )
    finally:
        mechanism.settle()
    phPublicKey[0] = public
    phPrivateKey[0] = private
    return _OK


@entry
def C_DeriveKey(
    hSession: int, pMechanism: Any, hBaseKey: int, pTemplate: Any, ulAttributeCount: int, phKey: Any
) -> int:
    """C_DeriveKey (§5.14.5)."""
    if not phKey:
        return _ARGUMENTS_BAD
    mechanism = _mechanism(pMechanism)
    try:
        phKey[0] = _core.derive_key(
            hSession, mechanism, hBaseKey, _template(pTemplate, ulAttributeCount)
        )
    finally:
        mechanism.settle()
    return _OK


# ============================================================================================
# Random number generation (§5.15)


@entry
def C_SeedRandom(hSession: int, pSeed: Any, ulSeedLen: int) -> int:
    """C_SeedRandom (§5.15.1)."""
    _core.seed_random(hSession, _bytes(pSeed, ulSeedLen, MAX_RANDOM_BYTES, DataLenRange))
    return _OK


@entry
def C_GenerateRandom(hSession: int, pRandomData: Any, ulRandomLen: int) -> int:
    """C_GenerateRandom (§5.15.2): exactly ulRandomLen bytes, or an error."""
    if not pRandomData and ulRandomLen:
        return _ARGUMENTS_BAD
    if ulRandomLen > MAX_RANDOM_BYTES:
        raise DataLenRange(f"{ulRandomLen} random bytes; at most {MAX_RANDOM_BYTES}")
    data = _core.generate_random(hSession, ulRandomLen)
    if len(data) != ulRandomLen:
        raise GeneralError(f"core returned {len(data)} random bytes for {ulRandomLen}")
    if ulRandomLen:
        _memmove(pRandomData, data, ulRandomLen)
    return _OK
