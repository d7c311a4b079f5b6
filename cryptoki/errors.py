"""PKCS#11 errors: the exception classes the core raises, each fixing one CK_RV.

Core code only raises these; ``cryptoki._abi`` turns a :class:`Pkcs11Error` into its ``rv`` and
any other exception into ``CKR_GENERAL_ERROR`` (never ``CKR_OK``). Class names are the CKR names
in CamelCase without the prefix (``CKR_PIN_INCORRECT`` -> :class:`PinIncorrect`). Only codes the
core raises have a class; a rare code is raised as ``Pkcs11Error(message, rv=CKR.X)``.
:class:`BufferTooSmall` carries the length the caller needs, and the ABI writes it out.
A test (``tests/unit/cryptoki/test_errors.py``) checks that every class here is raised somewhere.
"""

from __future__ import annotations

from cryptoki.constants import CKR


class Pkcs11Error(Exception):
    """Base class; ``rv`` is the CK_RV the entry point returns.

    :param message: what went wrong, for the module's log (never shown to the host as text).
    :param rv: a CK_RV for codes without a class of their own; subclasses fix theirs.
    """

    rv: int = CKR.GENERAL_ERROR

    def __init__(self, message: str = "", *, rv: int | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        if rv is not None:
            self.rv = rv

    def __str__(self) -> str:
        name = CKR(self.rv).name if self.rv in CKR._value2member_map_ else hex(self.rv)
        return f"CKR_{name}: {self.args[0]}"


class BufferTooSmall(Pkcs11Error):
    """The output buffer is too small; ``required`` is the length the caller needs."""

    rv = CKR.BUFFER_TOO_SMALL

    def __init__(self, required: int, message: str = "") -> None:
        super().__init__(message or f"output buffer too small; {required} bytes needed")
        self.required = required


class SlotIdInvalid(Pkcs11Error):
    """The slot ID does not name a slot of this module."""

    rv = CKR.SLOT_ID_INVALID


class GeneralError(Pkcs11Error):
    """An unrecoverable error inside the module; what any unexpected Python exception becomes."""

    rv = CKR.GENERAL_ERROR


class FunctionFailed(Pkcs11Error):
    """The requested function could not be performed (e.g. the chip reported an ECC fault)."""

    rv = CKR.FUNCTION_FAILED


class ArgumentsBad(Pkcs11Error):
    """An argument is NULL where it must not be, or otherwise malformed."""

    rv = CKR.ARGUMENTS_BAD


class NoEvent(Pkcs11Error):
    """CKR_NO_EVENT."""

    rv = CKR.NO_EVENT


class CantLock(Pkcs11Error):
    """The locking the application asked for cannot be provided."""

    rv = CKR.CANT_LOCK


class AttributeReadOnly(Pkcs11Error):
    """The attribute cannot be set or modified (spec: takes precedence over value errors)."""

    rv = CKR.ATTRIBUTE_READ_ONLY


class AttributeTypeInvalid(Pkcs11Error):
    """The template names an attribute type that is not valid for the object."""

    rv = CKR.ATTRIBUTE_TYPE_INVALID


class AttributeValueInvalid(Pkcs11Error):
    """A template attribute has an invalid value or length."""

    rv = CKR.ATTRIBUTE_VALUE_INVALID


class ActionProhibited(Pkcs11Error):
    """CKR_ACTION_PROHIBITED."""

    rv = CKR.ACTION_PROHIBITED


class DataLenRange(Pkcs11Error):
    """The input data has the wrong length for the operation."""

    rv = CKR.DATA_LEN_RANGE


class DeviceError(Pkcs11Error):
    """The chip or its bus failed (no answer, CRC errors, timeouts)."""

    rv = CKR.DEVICE_ERROR


class DeviceMemory(Pkcs11Error):
    """The token has no room left (no free chip slot or data space)."""

    rv = CKR.DEVICE_MEMORY


class EncryptedDataInvalid(Pkcs11Error):
    """CKR_ENCRYPTED_DATA_INVALID."""

    rv = CKR.ENCRYPTED_DATA_INVALID


class EncryptedDataLenRange(Pkcs11Error):
    """CKR_ENCRYPTED_DATA_LEN_RANGE."""

    rv = CKR.ENCRYPTED_DATA_LEN_RANGE


class FunctionNotSupported(Pkcs11Error):
    """The module does not implement this function."""

    rv = CKR.FUNCTION_NOT_SUPPORTED


class KeyHandleInvalid(Pkcs11Error):
    """The key handle does not name a key."""

    rv = CKR.KEY_HANDLE_INVALID


class KeyTypeInconsistent(Pkcs11Error):
    """The key's type does not fit the mechanism."""

    rv = CKR.KEY_TYPE_INCONSISTENT


class KeyIndigestible(Pkcs11Error):
    """CKR_KEY_INDIGESTIBLE."""

    rv = CKR.KEY_INDIGESTIBLE


class KeyFunctionNotPermitted(Pkcs11Error):
    """The key's attributes do not allow this use (e.g. CKA_SIGN false)."""

    rv = CKR.KEY_FUNCTION_NOT_PERMITTED


class MechanismInvalid(Pkcs11Error):
    """The mechanism is not supported for this function or by this token."""

    rv = CKR.MECHANISM_INVALID


class MechanismParamInvalid(Pkcs11Error):
    """The mechanism parameter is missing, has the wrong size or a bad value."""

    rv = CKR.MECHANISM_PARAM_INVALID


class ObjectHandleInvalid(Pkcs11Error):
    """The object handle does not name an object visible to this session."""

    rv = CKR.OBJECT_HANDLE_INVALID


class OperationActive(Pkcs11Error):
    """Another operation of this kind is already active in the session."""

    rv = CKR.OPERATION_ACTIVE


class OperationNotInitialized(Pkcs11Error):
    """No operation of this kind is active in the session."""

    rv = CKR.OPERATION_NOT_INITIALIZED


class PinIncorrect(Pkcs11Error):
    """The PIN does not match."""

    rv = CKR.PIN_INCORRECT


class PinLenRange(Pkcs11Error):
    """The PIN is too short or too long."""

    rv = CKR.PIN_LEN_RANGE


class PinLocked(Pkcs11Error):
    """Too many wrong PINs: the user PIN is locked."""

    rv = CKR.PIN_LOCKED


class SessionCount(Pkcs11Error):
    """CKR_SESSION_COUNT."""

    rv = CKR.SESSION_COUNT


class SessionHandleInvalid(Pkcs11Error):
    """The session handle does not name an open session."""

    rv = CKR.SESSION_HANDLE_INVALID


class SessionParallelNotSupported(Pkcs11Error):
    """CKF_SERIAL_SESSION was not set in C_OpenSession's flags."""

    rv = CKR.SESSION_PARALLEL_NOT_SUPPORTED


class SessionReadOnly(Pkcs11Error):
    """The session is read-only and the function needs a read/write session."""

    rv = CKR.SESSION_READ_ONLY


class SessionExists(Pkcs11Error):
    """CKR_SESSION_EXISTS."""

    rv = CKR.SESSION_EXISTS


class SessionReadOnlyExists(Pkcs11Error):
    """CKR_SESSION_READ_ONLY_EXISTS."""

    rv = CKR.SESSION_READ_ONLY_EXISTS


class SessionReadWriteSoExists(Pkcs11Error):
    """CKR_SESSION_READ_WRITE_SO_EXISTS."""

    rv = CKR.SESSION_READ_WRITE_SO_EXISTS


class SignatureInvalid(Pkcs11Error):
    """The signature does not verify."""

    rv = CKR.SIGNATURE_INVALID


class SignatureLenRange(Pkcs11Error):
    """The signature has the wrong length (spec: checked before verifying)."""

    rv = CKR.SIGNATURE_LEN_RANGE


class TemplateIncomplete(Pkcs11Error):
    """The template lacks an attribute the object needs."""

    rv = CKR.TEMPLATE_INCOMPLETE


class TemplateInconsistent(Pkcs11Error):
    """The template's attributes conflict with each other or with the operation."""

    rv = CKR.TEMPLATE_INCONSISTENT


class TokenNotPresent(Pkcs11Error):
    """The token is not present (the chip did not answer)."""

    rv = CKR.TOKEN_NOT_PRESENT


class UserAlreadyLoggedIn(Pkcs11Error):
    """The user is already logged in."""

    rv = CKR.USER_ALREADY_LOGGED_IN


class UserNotLoggedIn(Pkcs11Error):
    """The operation needs a logged-in user."""

    rv = CKR.USER_NOT_LOGGED_IN


class UserPinNotInitialized(Pkcs11Error):
    """The user PIN has not been set."""

    rv = CKR.USER_PIN_NOT_INITIALIZED


class UserTypeInvalid(Pkcs11Error):
    """The user type is not CKU_SO, CKU_USER or CKU_CONTEXT_SPECIFIC."""

    rv = CKR.USER_TYPE_INVALID


class UserAnotherAlreadyLoggedIn(Pkcs11Error):
    """CKR_USER_ANOTHER_ALREADY_LOGGED_IN."""

    rv = CKR.USER_ANOTHER_ALREADY_LOGGED_IN


class RandomSeedNotSupported(Pkcs11Error):
    """The chip's generator cannot be seeded from outside."""

    rv = CKR.RANDOM_SEED_NOT_SUPPORTED


class CurveNotSupported(Pkcs11Error):
    """The curve is not supported (the chip does P-256 only)."""

    rv = CKR.CURVE_NOT_SUPPORTED


class CryptokiNotInitialized(Pkcs11Error):
    """C_Initialize has not been called in this process."""

    rv = CKR.CRYPTOKI_NOT_INITIALIZED


class CryptokiAlreadyInitialized(Pkcs11Error):
    """C_Initialize was already called."""

    rv = CKR.CRYPTOKI_ALREADY_INITIALIZED
