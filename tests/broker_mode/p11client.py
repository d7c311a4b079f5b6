"""A small PKCS#11 client process for the broker tests: loads a module (p11-kit-client.so) with
cffi's ABI mode and the project's own declarations, and does one job given on the command line.

    python p11client.py MODULE sign N        -> "pub <hex>" then N lines "sig <digest> <r||s>"
    python p11client.py MODULE list N        -> N rounds of find-all + CKA_LABEL; "found <n>"
    python p11client.py MODULE sessions      -> "sessions <ulSessionCount>" (own session open)
    python p11client.py MODULE sign-slowly   -> C_SignInit, prints "signing", then C_Sign
    python p11client.py MODULE idle          -> opens a session, prints "ready", waits for a
                                                line on stdin, then signs once: "rv <hex>"

Every PKCS#11 error ends the process with "rv 0x..." on stdout and exit status 3, so a test can
tell a clean error from a hang or a crash.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import cffi

from native.cdefs import TYPES

CKF_SERIAL_SESSION, CKF_RW_SESSION = 0x4, 0x2
CKA_CLASS, CKA_LABEL, CKA_EC_POINT = 0x0, 0x3, 0x181
CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 2, 3
CKM_ECDSA = 0x1041

ffi = cffi.FFI()
ffi.cdef(TYPES + "CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR);")


class CallError(Exception):
    pass


def check(rv: int) -> None:
    if rv != 0:
        raise CallError(f"rv 0x{rv:X}")


def open_module(path: str):
    lib = ffi.dlopen(path)
    pp = ffi.new("CK_FUNCTION_LIST_PTR *")
    check(lib.C_GetFunctionList(pp))
    fl = pp[0]
    check(fl.C_Initialize(ffi.NULL))
    count = ffi.new("CK_ULONG *")
    check(fl.C_GetSlotList(1, ffi.NULL, count))
    slots = ffi.new("CK_SLOT_ID[]", max(1, count[0]))
    check(fl.C_GetSlotList(1, slots, count))
    if count[0] == 0:
        raise CallError("no token")
    session = ffi.new("CK_SESSION_HANDLE *")
    check(
        fl.C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, ffi.NULL, ffi.NULL, session)
    )
    return lib, fl, slots[0], session[0]


def find(fl, session, klass: int, label: bytes | None = b"device") -> list[int]:
    cls = ffi.new("CK_OBJECT_CLASS *", klass)
    keep = [cls]
    attrs = [(CKA_CLASS, cls, ffi.sizeof("CK_OBJECT_CLASS"))]
    if label is not None:
        buf = ffi.new("char[]", label)
        keep.append(buf)
        attrs.append((CKA_LABEL, buf, len(label)))
    template = ffi.new("CK_ATTRIBUTE[]", len(attrs))
    for i, (kind, value, size) in enumerate(attrs):
        template[i].type, template[i].pValue, template[i].ulValueLen = kind, value, size
    check(fl.C_FindObjectsInit(session, template, len(attrs)))
    handles = ffi.new("CK_OBJECT_HANDLE[]", 64)
    n = ffi.new("CK_ULONG *")
    check(fl.C_FindObjects(session, handles, 64, n))
    check(fl.C_FindObjectsFinal(session))
    return [handles[i] for i in range(n[0])]


def attribute(fl, session, handle: int, kind: int) -> bytes:
    template = ffi.new("CK_ATTRIBUTE[1]")
    template[0].type = kind
    check(fl.C_GetAttributeValue(session, handle, template, 1))
    buf = ffi.new("unsigned char[]", template[0].ulValueLen)
    template[0].pValue = buf
    check(fl.C_GetAttributeValue(session, handle, template, 1))
    return bytes(ffi.buffer(buf, template[0].ulValueLen))


def sign(fl, session, key: int, digest: bytes) -> bytes:
    mech = ffi.new("CK_MECHANISM *")
    mech.mechanism = CKM_ECDSA
    check(fl.C_SignInit(session, mech, key))
    out = ffi.new("unsigned char[64]")
    n = ffi.new("CK_ULONG *", 64)
    check(fl.C_Sign(session, digest, len(digest), out, n))
    return bytes(ffi.buffer(out, n[0]))


def main() -> int:
    module, job, *rest = sys.argv[1:]
    _lib, fl, slot, session = open_module(module)
    if job == "sign":
        pub = find(fl, session, CKO_PUBLIC_KEY)[0]
        print("pub", attribute(fl, session, pub, CKA_EC_POINT).hex(), flush=True)
        key = find(fl, session, CKO_PRIVATE_KEY)[0]
        for i in range(int(rest[0])):
            digest = hashlib.sha256(f"{os.getpid()} {i}".encode()).digest()
            print("sig", digest.hex(), sign(fl, session, key, digest).hex(), flush=True)
    elif job == "list":
        total = 0
        for _ in range(int(rest[0])):
            for handle in find(fl, session, CKO_PUBLIC_KEY, None) + find(
                fl, session, CKO_PRIVATE_KEY, None
            ):
                attribute(fl, session, handle, CKA_LABEL)
                total += 1
        print("found", total, flush=True)
    elif job == "sessions":
        info = ffi.new("CK_TOKEN_INFO *")
        check(fl.C_GetTokenInfo(slot, info))
        print("sessions", info.ulSessionCount, flush=True)
    elif job == "sign-slowly":
        key = find(fl, session, CKO_PRIVATE_KEY)[0]
        mech = ffi.new("CK_MECHANISM *")
        mech.mechanism = CKM_ECDSA
        check(fl.C_SignInit(session, mech, key))
        out, n = ffi.new("unsigned char[64]"), ffi.new("CK_ULONG *", 64)
        print("signing", flush=True)  # the next thing this process does is send C_Sign
        check(fl.C_Sign(session, bytes(32), 32, out, n))
        print("signed", flush=True)
    elif job == "idle":
        key = find(fl, session, CKO_PRIVATE_KEY)[0]
        print("ready", flush=True)
        sys.stdin.readline()
        sign(fl, session, key, bytes(32))
        print("rv 0x0", flush=True)
    else:
        raise SystemExit(f"unknown job {job}")
    check(fl.C_CloseSession(session))
    check(fl.C_Finalize(ffi.NULL))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CallError as exc:
        print(exc, flush=True)
        sys.exit(3)
