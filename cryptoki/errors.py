"""PKCS#11 errors: one exception class per CK_RV, raised by the core and mapped in one place.

Core code only raises these; ``cryptoki._abi`` turns a :class:`Pkcs11Error` into its ``rv`` and
any other exception into ``CKR_GENERAL_ERROR`` (never ``CKR_OK``). Class names are the CKR names
in CamelCase without the prefix (``CKR_PIN_INCORRECT`` -> :class:`PinIncorrect`).
:class:`BufferTooSmall` carries the length the caller needs. Generated once from ``constants.CKR``;
keep the two in step.
"""

from __future__ import annotations

from cryptoki.constants import CKR


class Pkcs11Error(Exception):
    """Base class; ``rv`` is the CK_RV the entry point returns."""

    rv: int = CKR.GENERAL_ERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)

    def __str__(self) -> str:
        name = CKR(self.rv).name if self.rv in CKR._value2member_map_ else hex(self.rv)
        return f"CKR_{name}: {self.args[0]}"


class Cancel(Pkcs11Error):
    """CKR_CANCEL."""

    rv = CKR.CANCEL


class HostMemory(Pkcs11Error):
    """CKR_HOST_MEMORY."""

    rv = CKR.HOST_MEMORY


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


class NeedToCreateThreads(Pkcs11Error):
    """CKR_NEED_TO_CREATE_THREADS."""

    rv = CKR.NEED_TO_CREATE_THREADS


class CantLock(Pkcs11Error):
    """The locking the application asked for cannot be provided."""

    rv = CKR.CANT_LOCK


class AttributeReadOnly(Pkcs11Error):
    """The attribute cannot be set or modified (spec: takes precedence over value errors)."""

    rv = CKR.ATTRIBUTE_READ_ONLY


class AttributeSensitive(Pkcs11Error):
    """The attribute's value is sensitive or unextractable and cannot be revealed."""

    rv = CKR.ATTRIBUTE_SENSITIVE


class AttributeTypeInvalid(Pkcs11Error):
    """The template names an attribute type that is not valid for the object."""

    rv = CKR.ATTRIBUTE_TYPE_INVALID


class AttributeValueInvalid(Pkcs11Error):
    """A template attribute has an invalid value or length."""

    rv = CKR.ATTRIBUTE_VALUE_INVALID


class ActionProhibited(Pkcs11Error):
    """CKR_ACTION_PROHIBITED."""

    rv = CKR.ACTION_PROHIBITED


class DataInvalid(Pkcs11Error):
    """The input data is invalid for the operation."""

    rv = CKR.DATA_INVALID


class DataLenRange(Pkcs11Error):
    """The input data has the wrong length for the operation."""

    rv = CKR.DATA_LEN_RANGE


class DeviceError(Pkcs11Error):
    """The chip or its bus failed (no answer, CRC errors, timeouts)."""

    rv = CKR.DEVICE_ERROR


class DeviceMemory(Pkcs11Error):
    """The token has no room left (no free chip slot or data space)."""

    rv = CKR.DEVICE_MEMORY


class DeviceRemoved(Pkcs11Error):
    """CKR_DEVICE_REMOVED."""

    rv = CKR.DEVICE_REMOVED


class EncryptedDataInvalid(Pkcs11Error):
    """CKR_ENCRYPTED_DATA_INVALID."""

    rv = CKR.ENCRYPTED_DATA_INVALID


class EncryptedDataLenRange(Pkcs11Error):
    """CKR_ENCRYPTED_DATA_LEN_RANGE."""

    rv = CKR.ENCRYPTED_DATA_LEN_RANGE


class AeadDecryptFailed(Pkcs11Error):
    """CKR_AEAD_DECRYPT_FAILED."""

    rv = CKR.AEAD_DECRYPT_FAILED


class FunctionCanceled(Pkcs11Error):
    """CKR_FUNCTION_CANCELED."""

    rv = CKR.FUNCTION_CANCELED


class FunctionNotParallel(Pkcs11Error):
    """CKR_FUNCTION_NOT_PARALLEL."""

    rv = CKR.FUNCTION_NOT_PARALLEL


class FunctionNotSupported(Pkcs11Error):
    """The module does not implement this function."""

    rv = CKR.FUNCTION_NOT_SUPPORTED


class KeyHandleInvalid(Pkcs11Error):
    """The key handle does not name a key."""

    rv = CKR.KEY_HANDLE_INVALID


class KeySizeRange(Pkcs11Error):
    """CKR_KEY_SIZE_RANGE."""

    rv = CKR.KEY_SIZE_RANGE


class KeyTypeInconsistent(Pkcs11Error):
    """The key's type does not fit the mechanism."""

    rv = CKR.KEY_TYPE_INCONSISTENT


class KeyNotNeeded(Pkcs11Error):
    """CKR_KEY_NOT_NEEDED."""

    rv = CKR.KEY_NOT_NEEDED


class KeyChanged(Pkcs11Error):
    """CKR_KEY_CHANGED."""

    rv = CKR.KEY_CHANGED


class KeyNeeded(Pkcs11Error):
    """CKR_KEY_NEEDED."""

    rv = CKR.KEY_NEEDED


class KeyIndigestible(Pkcs11Error):
    """CKR_KEY_INDIGESTIBLE."""

    rv = CKR.KEY_INDIGESTIBLE


class KeyFunctionNotPermitted(Pkcs11Error):
    """The key's attributes do not allow this use (e.g. CKA_SIGN false)."""

    rv = CKR.KEY_FUNCTION_NOT_PERMITTED


class KeyNotWrappable(Pkcs11Error):
    """CKR_KEY_NOT_WRAPPABLE."""

    rv = CKR.KEY_NOT_WRAPPABLE


class KeyUnextractable(Pkcs11Error):
    """CKR_KEY_UNEXTRACTABLE."""

    rv = CKR.KEY_UNEXTRACTABLE


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


class PinInvalid(Pkcs11Error):
    """CKR_PIN_INVALID."""

    rv = CKR.PIN_INVALID


class PinLenRange(Pkcs11Error):
    """The PIN is too short or too long."""

    rv = CKR.PIN_LEN_RANGE


class PinExpired(Pkcs11Error):
    """CKR_PIN_EXPIRED."""

    rv = CKR.PIN_EXPIRED


class PinLocked(Pkcs11Error):
    """Too many wrong PINs: the user PIN is locked."""

    rv = CKR.PIN_LOCKED


class SessionClosed(Pkcs11Error):
    """CKR_SESSION_CLOSED."""

    rv = CKR.SESSION_CLOSED


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


class TokenNotRecognized(Pkcs11Error):
    """CKR_TOKEN_NOT_RECOGNIZED."""

    rv = CKR.TOKEN_NOT_RECOGNIZED


class TokenWriteProtected(Pkcs11Error):
    """The token does not allow the change (e.g. a locked chip zone)."""

    rv = CKR.TOKEN_WRITE_PROTECTED


class UnwrappingKeyHandleInvalid(Pkcs11Error):
    """CKR_UNWRAPPING_KEY_HANDLE_INVALID."""

    rv = CKR.UNWRAPPING_KEY_HANDLE_INVALID


class UnwrappingKeySizeRange(Pkcs11Error):
    """CKR_UNWRAPPING_KEY_SIZE_RANGE."""

    rv = CKR.UNWRAPPING_KEY_SIZE_RANGE


class UnwrappingKeyTypeInconsistent(Pkcs11Error):
    """CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT."""

    rv = CKR.UNWRAPPING_KEY_TYPE_INCONSISTENT


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


class UserTooManyTypes(Pkcs11Error):
    """CKR_USER_TOO_MANY_TYPES."""

    rv = CKR.USER_TOO_MANY_TYPES


class WrappedKeyInvalid(Pkcs11Error):
    """CKR_WRAPPED_KEY_INVALID."""

    rv = CKR.WRAPPED_KEY_INVALID


class WrappedKeyLenRange(Pkcs11Error):
    """CKR_WRAPPED_KEY_LEN_RANGE."""

    rv = CKR.WRAPPED_KEY_LEN_RANGE


class WrappingKeyHandleInvalid(Pkcs11Error):
    """CKR_WRAPPING_KEY_HANDLE_INVALID."""

    rv = CKR.WRAPPING_KEY_HANDLE_INVALID


class WrappingKeySizeRange(Pkcs11Error):
    """CKR_WRAPPING_KEY_SIZE_RANGE."""

    rv = CKR.WRAPPING_KEY_SIZE_RANGE


class WrappingKeyTypeInconsistent(Pkcs11Error):
    """CKR_WRAPPING_KEY_TYPE_INCONSISTENT."""

    rv = CKR.WRAPPING_KEY_TYPE_INCONSISTENT


class RandomSeedNotSupported(Pkcs11Error):
    """The chip's generator cannot be seeded from outside."""

    rv = CKR.RANDOM_SEED_NOT_SUPPORTED


class RandomNoRng(Pkcs11Error):
    """CKR_RANDOM_NO_RNG."""

    rv = CKR.RANDOM_NO_RNG


class DomainParamsInvalid(Pkcs11Error):
    """CKR_DOMAIN_PARAMS_INVALID."""

    rv = CKR.DOMAIN_PARAMS_INVALID


class CurveNotSupported(Pkcs11Error):
    """The curve is not supported (the chip does P-256 only)."""

    rv = CKR.CURVE_NOT_SUPPORTED


class BufferTooSmall(Pkcs11Error):
    """The output buffer is too small; the required length is returned alongside."""

    rv = CKR.BUFFER_TOO_SMALL

    def __init__(self, required: int, message: str = "") -> None:
        super().__init__(message or f"output buffer too small; {required} bytes needed")
        self.required = required


class SavedStateInvalid(Pkcs11Error):
    """CKR_SAVED_STATE_INVALID."""

    rv = CKR.SAVED_STATE_INVALID


class InformationSensitive(Pkcs11Error):
    """CKR_INFORMATION_SENSITIVE."""

    rv = CKR.INFORMATION_SENSITIVE


class StateUnsaveable(Pkcs11Error):
    """CKR_STATE_UNSAVEABLE."""

    rv = CKR.STATE_UNSAVEABLE


class CryptokiNotInitialized(Pkcs11Error):
    """C_Initialize has not been called in this process."""

    rv = CKR.CRYPTOKI_NOT_INITIALIZED


class CryptokiAlreadyInitialized(Pkcs11Error):
    """C_Initialize was already called."""

    rv = CKR.CRYPTOKI_ALREADY_INITIALIZED


class MutexBad(Pkcs11Error):
    """CKR_MUTEX_BAD."""

    rv = CKR.MUTEX_BAD


class MutexNotLocked(Pkcs11Error):
    """CKR_MUTEX_NOT_LOCKED."""

    rv = CKR.MUTEX_NOT_LOCKED


class NewPinMode(Pkcs11Error):
    """CKR_NEW_PIN_MODE."""

    rv = CKR.NEW_PIN_MODE


class NextOtp(Pkcs11Error):
    """CKR_NEXT_OTP."""

    rv = CKR.NEXT_OTP


class ExceededMaxIterations(Pkcs11Error):
    """CKR_EXCEEDED_MAX_ITERATIONS."""

    rv = CKR.EXCEEDED_MAX_ITERATIONS


class FipsSelfTestFailed(Pkcs11Error):
    """CKR_FIPS_SELF_TEST_FAILED."""

    rv = CKR.FIPS_SELF_TEST_FAILED


class LibraryLoadFailed(Pkcs11Error):
    """CKR_LIBRARY_LOAD_FAILED."""

    rv = CKR.LIBRARY_LOAD_FAILED


class PinTooWeak(Pkcs11Error):
    """CKR_PIN_TOO_WEAK."""

    rv = CKR.PIN_TOO_WEAK


class PublicKeyInvalid(Pkcs11Error):
    """CKR_PUBLIC_KEY_INVALID."""

    rv = CKR.PUBLIC_KEY_INVALID


class FunctionRejected(Pkcs11Error):
    """CKR_FUNCTION_REJECTED."""

    rv = CKR.FUNCTION_REJECTED


class TokenResourceExceeded(Pkcs11Error):
    """CKR_TOKEN_RESOURCE_EXCEEDED."""

    rv = CKR.TOKEN_RESOURCE_EXCEEDED


class OperationCancelFailed(Pkcs11Error):
    """CKR_OPERATION_CANCEL_FAILED."""

    rv = CKR.OPERATION_CANCEL_FAILED


_BY_RV: dict[int, type[Pkcs11Error]] = {
    cls.rv: cls for cls in Pkcs11Error.__subclasses__() if cls is not BufferTooSmall
}


def error_for_rv(rv: int, message: str = "") -> Pkcs11Error:
    """An exception instance for ``rv`` (unknown values keep their number)."""
    if rv == CKR.BUFFER_TOO_SMALL:
        return BufferTooSmall(0, message)
    cls = _BY_RV.get(rv)
    if cls is None:
        err = Pkcs11Error(message or f"CK_RV 0x{rv:X}")
        err.rv = rv
        return err
    return cls(message)
