"""Limits: every input the module accepts has a bound, and this is where the bounds live.

Owns: the numbers (sizes, counts, lengths) past which a call is refused with a specific CK_RV
instead of being served slowly, exhausting memory or holding the chip from other processes. The
README's "Limits" section and SECURITY.md list the same numbers; a test keeps them in step.
Must not: enforce anything itself (the ABI, the library, the store and the operations do, each
at the point where the input arrives).
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

#: Attributes in one template (C_CreateObject, C_FindObjectsInit, C_GetAttributeValue, ...);
#: over it: CKR_ARGUMENTS_BAD (the call as a whole is unreasonable).
MAX_TEMPLATE_ATTRIBUTES = 256
#: Bytes of one attribute value in a template; over it: CKR_ATTRIBUTE_VALUE_INVALID.
MAX_ATTRIBUTE_BYTES = 32 * KIB
#: Bytes of all attribute values of one object a caller creates; over it: CKR_DEVICE_MEMORY.
MAX_OBJECT_BYTES = 32 * KIB
#: Token objects C_CreateObject may create on one token; over it: CKR_DEVICE_MEMORY.
MAX_TOKEN_OBJECTS = 256
#: Session objects one process may hold on one token; over it: CKR_DEVICE_MEMORY.
MAX_SESSION_OBJECTS = 1024
#: Open sessions per token (reported in CK_TOKEN_INFO); over it: CKR_SESSION_COUNT.
MAX_SESSIONS = 1024
#: Input bytes of one single-part call (C_Sign, C_Verify, C_Digest, C_Encrypt, C_Decrypt) and of
#: one *Update call; over it: CKR_DATA_LEN_RANGE (CKR_ENCRYPTED_DATA_LEN_RANGE for decryption).
MAX_DATA_PER_CALL = 1 * MIB
#: Input bytes of one multi-part operation in total; over it: CKR_DATA_LEN_RANGE.
MAX_DATA_PER_OPERATION = 64 * MIB
#: Bytes sent to the chip in one locked transaction of a long operation: the chip lock is
#: released between chunks so that other processes are served.
CHIP_CHUNK_BYTES = 4 * KIB
#: Messages up to this size are hashed on the chip's SHA engine (C_Digest with CKM_SHA256);
#: longer ones on the host (same result: no key is involved), since the chip takes a command per
#: 64-byte block.
CHIP_DIGEST_BYTES = 4 * KIB
#: Random bytes asked from the chip in one transaction (32 Random commands, at most about 0.7 s
#: of chip time on hardware) before other processes get their turn.
RANDOM_CHUNK_BYTES = 1 * KIB
#: Bytes of one C_GenerateRandom call; over it: CKR_DATA_LEN_RANGE.
MAX_RANDOM_BYTES = 64 * KIB
#: Size of a slot file (``<N>.conf``); a larger one is skipped with a logged reason (the
#: parser's own bound, ``atecc.slotfile.MAX_SLOT_FILE_BYTES``, is this number).
MAX_SLOT_FILE_BYTES = 64 * KIB
#: Largest slot ID a slot file name may carry (``<N>.conf``); larger ones are skipped.
MAX_SLOT_ID = 0xFFFF
#: Size of a token's metadata file; a larger one makes the token absent (fail closed).
MAX_METADATA_BYTES = 32 * MIB
#: Secret keys made by C_DeriveKey keep at least this many bytes (CKA_VALUE_LEN), so that a key
#: cannot be guessed byte by byte through C_DigestKey or a MAC.
MIN_SECRET_KEY_BYTES = 16
#: Bytes of a mechanism parameter and of each buffer it points to (IV, public data, shared
#: data; GCM's additional data counts as data: MAX_DATA_PER_CALL); over it:
#: CKR_MECHANISM_PARAM_INVALID.
MAX_MECHANISM_PARAM_BYTES = 4 * KIB
#: Bytes of a PIN or user name (C_Login, C_LoginUser, C_InitToken, C_InitPIN, C_SetPIN); over
#: it: CKR_PIN_INCORRECT for C_Login/C_LoginUser, CKR_PIN_LEN_RANGE for the others.
MAX_PIN_BYTES = 255
