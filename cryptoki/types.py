"""Plain values that cross the line between ``cryptoki._abi`` (C pointers) and the core (Python).

The ABI layer decodes every C argument into these types (or ``bytes``/``int``), calls one method of
the core object described by :class:`Core`, and encodes the result back. The core never sees a
cffi object; the ABI never makes a decision the spec leaves to the token. Strings in the info
structs are given unpadded; the ABI blank-pads them to their fixed widths (and truncates UTF-8 on a
character boundary).

Output convention for functions that return a byte string into a caller buffer (C_Sign, C_Digest,
C_Encrypt*, C_Decrypt*, ...): the core method takes ``out_len``; ``None`` means the caller passed a
NULL buffer (a length query). The core then returns the required length as an ``int`` and keeps the
operation active. With a buffer, the core raises ``BufferTooSmall(required)`` if ``out_len`` is too
small (operation stays active) or returns the ``bytes`` (operation ends for single-part calls).

Attribute values are raw bytes exactly as they sit in CK_ATTRIBUTE.pValue (CK_ULONG as native
``unsigned long``, CK_BBOOL as one byte). ``get_attribute_value`` returns, per requested type,
either the bytes or an ``AttributeFailure`` naming the CKR for that entry (ATTRIBUTE_SENSITIVE or
ATTRIBUTE_TYPE_INVALID); the ABI applies the length conventions and CK_UNAVAILABLE_INFORMATION.

The value types are frozen :func:`atecc.record.record` classes (immutable, compared by value):
this module is imported by every process's first C_Initialize, where a ``typing.NamedTuple``
costs about 0.25 ms to define (11 of them: 3 ms) and a frozen dataclass about 0.9 ms.
"""

from __future__ import annotations

from typing import Protocol

from atecc.record import record

Template = list[tuple[int, bytes]]  #: (CKA type, raw value bytes) in caller order
Output = bytes | int  #: bytes, or the required length for a NULL-buffer query


@record(frozen=True)
class InitArgs:
    """Decoded CK_C_INITIALIZE_ARGS (None is passed instead when pInitArgs was NULL)."""

    flags: int
    has_mutex_functions: bool  #: all four mutex callbacks supplied (all-or-none checked by ABI)
    reserved_is_null: bool


@record(frozen=True)
class Version:
    major: int
    minor: int


@record(frozen=True)
class LibraryInfo:
    cryptoki_version: Version
    manufacturer_id: str
    flags: int
    library_description: str
    library_version: Version


@record(frozen=True)
class SlotInfo:
    slot_description: str
    manufacturer_id: str
    flags: int
    hardware_version: Version
    firmware_version: Version


@record(frozen=True)
class TokenInfo:
    label: str
    manufacturer_id: str
    model: str
    serial_number: str
    flags: int
    max_session_count: int
    session_count: int
    max_rw_session_count: int
    rw_session_count: int
    max_pin_len: int
    min_pin_len: int
    total_public_memory: int
    free_public_memory: int
    total_private_memory: int
    free_private_memory: int
    hardware_version: Version
    firmware_version: Version
    utc_time: str  #: 16 chars, or "" (ABI pads with blanks) when CKF_CLOCK_ON_TOKEN is not set


@record(frozen=True)
class SessionInfo:
    slot_id: int
    state: int
    flags: int
    device_error: int


@record(frozen=True)
class MechanismInfo:
    min_key_size: int
    max_key_size: int
    flags: int


@record(frozen=True)
class GcmParams:
    """Decoded CK_GCM_PARAMS."""

    iv: bytes
    iv_bits: int
    aad: bytes
    tag_bits: int


@record(frozen=True)
class Ecdh1DeriveParams:
    """Decoded CK_ECDH1_DERIVE_PARAMS."""

    kdf: int
    shared_data: bytes | None
    public_data: bytes


MechanismParam = None | bytes | GcmParams | Ecdh1DeriveParams


@record(frozen=True)
class Mechanism:
    """Decoded CK_MECHANISM. ``param`` is None for pParameter NULL, raw bytes for flat params
    (IVs, CK_ULONG lengths), or a decoded struct for mechanisms whose params hold pointers."""

    type: int
    param: MechanismParam = None


@record(frozen=True)
class AttributeFailure:
    """Per-attribute failure in get_attribute_value (rv is a CKR value)."""

    rv: int


class Core(Protocol):
    """What the ABI calls. Session handles, object handles and slot IDs are plain ints.

    Every method raises ``cryptoki.errors.Pkcs11Error`` subclasses for spec errors. The ABI has
    already checked NULL pointers that make a call meaningless (CKR_ARGUMENTS_BAD) and the
    all-or-none rule for mutex callbacks; everything else (initialised?, handle valid?, template
    sane?) is checked here, in the spec's order.
    """

    # General purpose (PKCS#11 3.0 §5.4)
    def initialize(self, args: InitArgs | None) -> None: ...
    def finalize(self) -> None: ...
    def get_info(self) -> LibraryInfo: ...

    # Slot and token management (§5.5)
    def get_slot_list(self, token_present: bool) -> list[int]: ...
    def get_slot_info(self, slot_id: int) -> SlotInfo: ...
    def get_token_info(self, slot_id: int) -> TokenInfo: ...
    def wait_for_slot_event(self, flags: int) -> int: ...
    def get_mechanism_list(self, slot_id: int) -> list[int]: ...
    def get_mechanism_info(self, slot_id: int, mechanism_type: int) -> MechanismInfo: ...
    def init_token(self, slot_id: int, so_pin: bytes | None, label: bytes) -> None: ...
    def init_pin(self, session: int, pin: bytes | None) -> None: ...
    def set_pin(self, session: int, old_pin: bytes | None, new_pin: bytes | None) -> None: ...

    # Session management (§5.6)
    def open_session(self, slot_id: int, flags: int) -> int: ...
    def close_session(self, session: int) -> None: ...
    def close_all_sessions(self, slot_id: int) -> None: ...
    def get_session_info(self, session: int) -> SessionInfo: ...
    def get_operation_state(self, session: int, out_len: int | None) -> Output: ...
    def set_operation_state(
        self, session: int, state: bytes, encryption_key: int, authentication_key: int
    ) -> None: ...
    def login(self, session: int, user_type: int, pin: bytes | None) -> None: ...
    def login_user(
        self, session: int, user_type: int, pin: bytes | None, username: bytes | None
    ) -> None: ...
    def logout(self, session: int) -> None: ...
    def session_cancel(self, session: int, flags: int) -> None: ...

    # Object management (§5.7)
    def create_object(self, session: int, template: Template) -> int: ...
    def copy_object(self, session: int, obj: int, template: Template) -> int: ...
    def destroy_object(self, session: int, obj: int) -> None: ...
    def get_object_size(self, session: int, obj: int) -> int: ...
    def get_attribute_value(
        self, session: int, obj: int, types: list[int]
    ) -> list[bytes | AttributeFailure]: ...
    def set_attribute_value(self, session: int, obj: int, template: Template) -> None: ...
    def find_objects_init(self, session: int, template: Template) -> None: ...
    def find_objects(self, session: int, max_count: int) -> list[int]: ...
    def find_objects_final(self, session: int) -> None: ...

    # Encryption and decryption (§5.8, §5.9)
    def encrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None: ...
    def encrypt(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def encrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def encrypt_final(self, session: int, out_len: int | None) -> Output: ...
    def decrypt_init(self, session: int, mechanism: Mechanism, key: int) -> None: ...
    def decrypt(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def decrypt_update(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def decrypt_final(self, session: int, out_len: int | None) -> Output: ...

    # Message digesting (§5.10)
    def digest_init(self, session: int, mechanism: Mechanism) -> None: ...
    def digest(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def digest_update(self, session: int, data: bytes) -> None: ...
    def digest_key(self, session: int, key: int) -> None: ...
    def digest_final(self, session: int, out_len: int | None) -> Output: ...

    # Signing and MACing (§5.11), verifying (§5.12)
    def sign_init(self, session: int, mechanism: Mechanism, key: int) -> None: ...
    def sign(self, session: int, data: bytes, out_len: int | None) -> Output: ...
    def sign_update(self, session: int, data: bytes) -> None: ...
    def sign_final(self, session: int, out_len: int | None) -> Output: ...
    def verify_init(self, session: int, mechanism: Mechanism, key: int) -> None: ...
    def verify(self, session: int, data: bytes, signature: bytes) -> None: ...
    def verify_update(self, session: int, data: bytes) -> None: ...
    def verify_final(self, session: int, signature: bytes) -> None: ...

    # Key management (§5.14)
    def generate_key(self, session: int, mechanism: Mechanism, template: Template) -> int: ...
    def generate_key_pair(
        self,
        session: int,
        mechanism: Mechanism,
        public_template: Template,
        private_template: Template,
    ) -> tuple[int, int]: ...
    def derive_key(
        self, session: int, mechanism: Mechanism, base_key: int, template: Template
    ) -> int: ...

    # Random number generation (§5.15)
    def seed_random(self, session: int, seed: bytes) -> None: ...
    def generate_random(self, session: int, length: int) -> bytes: ...

    # The ABI's own failures: a call it refused still terminates the session's operation of
    # that kind (``cryptoki.session.SIGN``...); silent for an invalid session.
    def end_operation(self, session: int, kind: str) -> None: ...
