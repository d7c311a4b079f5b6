"""PKCS#11 3.0 C declarations for the cffi build: types, structs and the function table.

Owns: the one C text (:data:`TYPES`) that is fed both to ``ffi.cdef()`` and to the
``set_source()`` preamble, so cffi's generated code checks every field offset against the C
compiler at build time; and :data:`FUNCTIONS`, the Cryptoki functions in the order of the
spec's ``CK_FUNCTION_LIST_3_0`` (the first 68 are the 2.40 ``CK_FUNCTION_LIST``). The
function-list structs are generated from that table, so the table order *is* the ABI.

Must not: be imported at run time (``native/`` is build-time only), copy a vendor header, or
declare anything cffi cannot parse (no macros other than integer ``#define``\\ s, no attributes).

Layout rules, from the spec's platform notes for Linux: ``CK_ULONG`` is ``unsigned long`` (8 bytes
on LP64), pointers are plain ``*``, structs use the compiler's default alignment (no
``#pragma pack``, unlike Windows). ``CK_GCM_PARAMS`` is the 3.0 layout with ``ulIvBits``.
The test ``tests/abi/test_layout.py`` compares these offsets with independent headers.
"""

from __future__ import annotations

#: Scalar typedefs, structs and callback types (PKCS#11 v3.0 §3).
_SCALARS = """
typedef unsigned char CK_BYTE;
typedef unsigned char CK_CHAR;
typedef unsigned char CK_UTF8CHAR;
typedef unsigned char CK_BBOOL;
typedef unsigned long CK_ULONG;
typedef long CK_LONG;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_OBJECT_CLASS;
typedef CK_ULONG CK_KEY_TYPE;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;
typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_ULONG CK_USER_TYPE;
typedef CK_ULONG CK_STATE;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_NOTIFICATION;
typedef CK_ULONG CK_EC_KDF_TYPE;

typedef CK_BYTE *CK_BYTE_PTR;
typedef CK_CHAR *CK_CHAR_PTR;
typedef CK_UTF8CHAR *CK_UTF8CHAR_PTR;
typedef CK_ULONG *CK_ULONG_PTR;
typedef void *CK_VOID_PTR;
typedef CK_VOID_PTR *CK_VOID_PTR_PTR;
typedef CK_SLOT_ID *CK_SLOT_ID_PTR;
typedef CK_SESSION_HANDLE *CK_SESSION_HANDLE_PTR;
typedef CK_OBJECT_HANDLE *CK_OBJECT_HANDLE_PTR;
typedef CK_MECHANISM_TYPE *CK_MECHANISM_TYPE_PTR;

typedef struct CK_VERSION {
    CK_BYTE major;
    CK_BYTE minor;
} CK_VERSION;
typedef CK_VERSION *CK_VERSION_PTR;

typedef struct CK_INFO {
    CK_VERSION cryptokiVersion;
    CK_UTF8CHAR manufacturerID[32];
    CK_FLAGS flags;
    CK_UTF8CHAR libraryDescription[32];
    CK_VERSION libraryVersion;
} CK_INFO;
typedef CK_INFO *CK_INFO_PTR;

typedef struct CK_SLOT_INFO {
    CK_UTF8CHAR slotDescription[64];
    CK_UTF8CHAR manufacturerID[32];
    CK_FLAGS flags;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
} CK_SLOT_INFO;
typedef CK_SLOT_INFO *CK_SLOT_INFO_PTR;

typedef struct CK_TOKEN_INFO {
    CK_UTF8CHAR label[32];
    CK_UTF8CHAR manufacturerID[32];
    CK_UTF8CHAR model[16];
    CK_CHAR serialNumber[16];
    CK_FLAGS flags;
    CK_ULONG ulMaxSessionCount;
    CK_ULONG ulSessionCount;
    CK_ULONG ulMaxRwSessionCount;
    CK_ULONG ulRwSessionCount;
    CK_ULONG ulMaxPinLen;
    CK_ULONG ulMinPinLen;
    CK_ULONG ulTotalPublicMemory;
    CK_ULONG ulFreePublicMemory;
    CK_ULONG ulTotalPrivateMemory;
    CK_ULONG ulFreePrivateMemory;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
    CK_CHAR utcTime[16];
} CK_TOKEN_INFO;
typedef CK_TOKEN_INFO *CK_TOKEN_INFO_PTR;

typedef struct CK_SESSION_INFO {
    CK_SLOT_ID slotID;
    CK_STATE state;
    CK_FLAGS flags;
    CK_ULONG ulDeviceError;
} CK_SESSION_INFO;
typedef CK_SESSION_INFO *CK_SESSION_INFO_PTR;

typedef struct CK_ATTRIBUTE {
    CK_ATTRIBUTE_TYPE type;
    CK_VOID_PTR pValue;
    CK_ULONG ulValueLen;
} CK_ATTRIBUTE;
typedef CK_ATTRIBUTE *CK_ATTRIBUTE_PTR;

typedef struct CK_DATE {
    CK_CHAR year[4];
    CK_CHAR month[2];
    CK_CHAR day[2];
} CK_DATE;

typedef struct CK_MECHANISM {
    CK_MECHANISM_TYPE mechanism;
    CK_VOID_PTR pParameter;
    CK_ULONG ulParameterLen;
} CK_MECHANISM;
typedef CK_MECHANISM *CK_MECHANISM_PTR;

typedef struct CK_MECHANISM_INFO {
    CK_ULONG ulMinKeySize;
    CK_ULONG ulMaxKeySize;
    CK_FLAGS flags;
} CK_MECHANISM_INFO;
typedef CK_MECHANISM_INFO *CK_MECHANISM_INFO_PTR;

typedef CK_RV (*CK_NOTIFY)(CK_SESSION_HANDLE hSession, CK_NOTIFICATION event,
                           CK_VOID_PTR pApplication);
typedef CK_RV (*CK_CREATEMUTEX)(CK_VOID_PTR_PTR ppMutex);
typedef CK_RV (*CK_DESTROYMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (*CK_LOCKMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (*CK_UNLOCKMUTEX)(CK_VOID_PTR pMutex);

typedef struct CK_C_INITIALIZE_ARGS {
    CK_CREATEMUTEX CreateMutex;
    CK_DESTROYMUTEX DestroyMutex;
    CK_LOCKMUTEX LockMutex;
    CK_UNLOCKMUTEX UnlockMutex;
    CK_FLAGS flags;
    CK_VOID_PTR pReserved;
} CK_C_INITIALIZE_ARGS;
typedef CK_C_INITIALIZE_ARGS *CK_C_INITIALIZE_ARGS_PTR;

typedef struct CK_GCM_PARAMS {
    CK_BYTE_PTR pIv;
    CK_ULONG ulIvLen;
    CK_ULONG ulIvBits;
    CK_BYTE_PTR pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
} CK_GCM_PARAMS;

typedef struct CK_GCM_PARAMS_V240 {
    CK_BYTE_PTR pIv;
    CK_ULONG ulIvLen;
    CK_BYTE_PTR pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
} CK_GCM_PARAMS_V240;

typedef struct CK_ECDH1_DERIVE_PARAMS {
    CK_EC_KDF_TYPE kdf;
    CK_ULONG ulSharedDataLen;
    CK_BYTE_PTR pSharedData;
    CK_ULONG ulPublicDataLen;
    CK_BYTE_PTR pPublicData;
} CK_ECDH1_DERIVE_PARAMS;

typedef struct CK_INTERFACE {
    CK_CHAR *pInterfaceName;
    CK_VOID_PTR pFunctionList;
    CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_INTERFACE *CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR;

typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_FUNCTION_LIST *CK_FUNCTION_LIST_PTR;
typedef CK_FUNCTION_LIST_PTR *CK_FUNCTION_LIST_PTR_PTR;
typedef struct CK_FUNCTION_LIST_3_0 CK_FUNCTION_LIST_3_0;
typedef CK_FUNCTION_LIST_3_0 *CK_FUNCTION_LIST_3_0_PTR;
"""

_S = "CK_SESSION_HANDLE hSession"

#: (name, C parameter list) in ``CK_FUNCTION_LIST_3_0`` order (PKCS#11 v3.0 §5). The first 68
#: entries form the 2.40 ``CK_FUNCTION_LIST``. Every function returns ``CK_RV``.
FUNCTIONS: tuple[tuple[str, str], ...] = (
    # General purpose (§5.4)
    ("C_Initialize", "CK_VOID_PTR pInitArgs"),
    ("C_Finalize", "CK_VOID_PTR pReserved"),
    ("C_GetInfo", "CK_INFO_PTR pInfo"),
    ("C_GetFunctionList", "CK_FUNCTION_LIST_PTR_PTR ppFunctionList"),
    # Slot and token management (§5.5)
    ("C_GetSlotList", "CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount"),
    ("C_GetSlotInfo", "CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo"),
    ("C_GetTokenInfo", "CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo"),
    (
        "C_GetMechanismList",
        "CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount",
    ),
    (
        "C_GetMechanismInfo",
        "CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo",
    ),
    (
        "C_InitToken",
        "CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel",
    ),
    ("C_InitPIN", f"{_S}, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen"),
    (
        "C_SetPIN",
        f"{_S}, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, "
        "CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen",
    ),
    # Session management (§5.6)
    (
        "C_OpenSession",
        "CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, "
        "CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession",
    ),
    ("C_CloseSession", _S),
    ("C_CloseAllSessions", "CK_SLOT_ID slotID"),
    ("C_GetSessionInfo", f"{_S}, CK_SESSION_INFO_PTR pInfo"),
    (
        "C_GetOperationState",
        f"{_S}, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen",
    ),
    (
        "C_SetOperationState",
        f"{_S}, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, "
        "CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey",
    ),
    ("C_Login", f"{_S}, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen"),
    ("C_Logout", _S),
    # Object management (§5.7)
    (
        "C_CreateObject",
        f"{_S}, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject",
    ),
    (
        "C_CopyObject",
        f"{_S}, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, "
        "CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject",
    ),
    ("C_DestroyObject", f"{_S}, CK_OBJECT_HANDLE hObject"),
    ("C_GetObjectSize", f"{_S}, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize"),
    (
        "C_GetAttributeValue",
        f"{_S}, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount",
    ),
    (
        "C_SetAttributeValue",
        f"{_S}, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount",
    ),
    ("C_FindObjectsInit", f"{_S}, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount"),
    (
        "C_FindObjects",
        f"{_S}, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, "
        "CK_ULONG_PTR pulObjectCount",
    ),
    ("C_FindObjectsFinal", _S),
    # Encryption (§5.8)
    ("C_EncryptInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_Encrypt",
        f"{_S}, CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen",
    ),
    (
        "C_EncryptUpdate",
        f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, "
        "CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen",
    ),
    (
        "C_EncryptFinal",
        f"{_S}, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen",
    ),
    # Decryption (§5.9)
    ("C_DecryptInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_Decrypt",
        f"{_S}, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, "
        "CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen",
    ),
    (
        "C_DecryptUpdate",
        f"{_S}, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, "
        "CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen",
    ),
    ("C_DecryptFinal", f"{_S}, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen"),
    # Message digesting (§5.10)
    ("C_DigestInit", f"{_S}, CK_MECHANISM_PTR pMechanism"),
    (
        "C_Digest",
        f"{_S}, CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen",
    ),
    ("C_DigestUpdate", f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen"),
    ("C_DigestKey", f"{_S}, CK_OBJECT_HANDLE hKey"),
    ("C_DigestFinal", f"{_S}, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen"),
    # Signing and MACing (§5.11)
    ("C_SignInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_Sign",
        f"{_S}, CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen",
    ),
    ("C_SignUpdate", f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen"),
    ("C_SignFinal", f"{_S}, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen"),
    ("C_SignRecoverInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_SignRecover",
        f"{_S}, CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen",
    ),
    # Verifying signatures and MACs (§5.12)
    ("C_VerifyInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_Verify",
        f"{_S}, CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen",
    ),
    ("C_VerifyUpdate", f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen"),
    ("C_VerifyFinal", f"{_S}, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen"),
    ("C_VerifyRecoverInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_VerifyRecover",
        f"{_S}, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, "
        "CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen",
    ),
    # Dual-function cryptographic functions (§5.13)
    (
        "C_DigestEncryptUpdate",
        f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, "
        "CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen",
    ),
    (
        "C_DecryptDigestUpdate",
        f"{_S}, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, "
        "CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen",
    ),
    (
        "C_SignEncryptUpdate",
        f"{_S}, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, "
        "CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen",
    ),
    (
        "C_DecryptVerifyUpdate",
        f"{_S}, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, "
        "CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen",
    ),
    # Key management (§5.14)
    (
        "C_GenerateKey",
        f"{_S}, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, "
        "CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey",
    ),
    (
        "C_GenerateKeyPair",
        f"{_S}, CK_MECHANISM_PTR pMechanism, "
        "CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount, "
        "CK_ATTRIBUTE_PTR pPrivateKeyTemplate, "
        "CK_ULONG ulPrivateKeyAttributeCount, "
        "CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey",
    ),
    (
        "C_WrapKey",
        f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, "
        "CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen",
    ),
    (
        "C_UnwrapKey",
        f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, "
        "CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, "
        "CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, "
        "CK_OBJECT_HANDLE_PTR phKey",
    ),
    (
        "C_DeriveKey",
        f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, "
        "CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, "
        "CK_OBJECT_HANDLE_PTR phKey",
    ),
    # Random number generation (§5.15)
    ("C_SeedRandom", f"{_S}, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen"),
    ("C_GenerateRandom", f"{_S}, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen"),
    # Parallel function management (§5.16, legacy)
    ("C_GetFunctionStatus", _S),
    ("C_CancelFunction", _S),
    # Slot events (§5.5)
    ("C_WaitForSlotEvent", "CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved"),
    # ---- 3.0 additions (CK_FUNCTION_LIST_3_0 only) ----
    ("C_GetInterfaceList", "CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount"),
    (
        "C_GetInterface",
        "CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, "
        "CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags",
    ),
    (
        "C_LoginUser",
        f"{_S}, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, "
        "CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen",
    ),
    ("C_SessionCancel", f"{_S}, CK_FLAGS flags"),
    # Message-based encryption (§5.8 in 3.0)
    ("C_MessageEncryptInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_EncryptMessage",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, "
        "CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, "
        "CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen",
    ),
    (
        "C_EncryptMessageBegin",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen",
    ),
    (
        "C_EncryptMessageNext",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, "
        "CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, "
        "CK_FLAGS flags",
    ),
    ("C_MessageEncryptFinal", _S),
    ("C_MessageDecryptInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_DecryptMessage",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, "
        "CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, "
        "CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen",
    ),
    (
        "C_DecryptMessageBegin",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen",
    ),
    (
        "C_DecryptMessageNext",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, "
        "CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, "
        "CK_FLAGS flags",
    ),
    ("C_MessageDecryptFinal", _S),
    # Message-based signing and verifying (§5.11, §5.12 in 3.0)
    ("C_MessageSignInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_SignMessage",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen",
    ),
    ("C_SignMessageBegin", f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen"),
    (
        "C_SignMessageNext",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen",
    ),
    ("C_MessageSignFinal", _S),
    ("C_MessageVerifyInit", f"{_S}, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey"),
    (
        "C_VerifyMessage",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen",
    ),
    ("C_VerifyMessageBegin", f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen"),
    (
        "C_VerifyMessageNext",
        f"{_S}, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, "
        "CK_BYTE_PTR pData, CK_ULONG ulDataLen, "
        "CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen",
    ),
    ("C_MessageVerifyFinal", _S),
)

#: Number of entries in the 2.40 ``CK_FUNCTION_LIST`` (a prefix of :data:`FUNCTIONS`).
N_FUNCTIONS_240 = 68


def _function_list_struct(tag: str, entries: tuple[tuple[str, str], ...]) -> str:
    """``struct <tag> { CK_VERSION version; CK_RV (*C_x)(...); ... };``"""
    fields = "".join(f"    CK_RV (*{name})({params});\n" for name, params in entries)
    return f"struct {tag} {{\n    CK_VERSION version;\n{fields}}};\n"


#: The text fed to both ``cdef()`` and ``set_source()``.
TYPES: str = (
    _SCALARS
    + _function_list_struct("CK_FUNCTION_LIST", FUNCTIONS[:N_FUNCTIONS_240])
    + _function_list_struct("CK_FUNCTION_LIST_3_0", FUNCTIONS)
)

assert len(FUNCTIONS) == 92 and FUNCTIONS[N_FUNCTIONS_240 - 1][0] == "C_WaitForSlotEvent"
