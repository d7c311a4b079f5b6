"""Struct layout of native/cdefs.py against independent C headers.

cffi checks our declarations against the C compiler when the library is built, but both sides
are then *our* text. Here the same offsets and sizes are compiled from two headers we did not
write: NSS's OASIS-derived ``pkcs11.h`` (PKCS#11 3.0: CK_INTERFACE, CK_FUNCTION_LIST_3_0) and
p11-kit's ``pkcs11.h`` (2.40). A field in the wrong place, a 4-byte CK_ULONG or a function-list
slot out of spec order shows up as a differing offset.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cffi
import pytest

from ._support import native_cdefs

_cdefs = native_cdefs()
FUNCTIONS, N_FUNCTIONS_240, TYPES = _cdefs.FUNCTIONS, _cdefs.N_FUNCTIONS_240, _cdefs.TYPES

#: Structs compared with both headers, then the ones only NSS's 3.0 header has.
COMMON = [
    "CK_VERSION",
    "CK_INFO",
    "CK_SLOT_INFO",
    "CK_TOKEN_INFO",
    "CK_SESSION_INFO",
    "CK_ATTRIBUTE",
    "CK_DATE",
    "CK_MECHANISM",
    "CK_MECHANISM_INFO",
    "CK_C_INITIALIZE_ARGS",
    "CK_GCM_PARAMS",
    "CK_ECDH1_DERIVE_PARAMS",
    "CK_FUNCTION_LIST",
]
ONLY_30 = ["CK_INTERFACE", "CK_FUNCTION_LIST_3_0"]

HEADERS = {
    # NSS adds a non-standard LibraryParameters field to CK_C_INITIALIZE_ARGS; p11-kit covers it.
    "nss": (
        ["-I/usr/include/nss", "-I/usr/include/nspr"],
        "#include <pkcs11.h>",
        [s for s in COMMON if s != "CK_C_INITIALIZE_ARGS"] + ONLY_30,
        Path("/usr/include/nss/pkcs11.h"),
    ),
    "p11-kit": (
        ["-I/usr/include/p11-kit-1"],
        "#include <p11-kit/pkcs11.h>",
        [s for s in COMMON if s not in ("CK_GCM_PARAMS", "CK_ECDH1_DERIVE_PARAMS")],
        Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h"),
    ),
}


@pytest.fixture(scope="module")
def ffi() -> cffi.FFI:
    f = cffi.FFI()
    f.cdef(TYPES)
    return f


def ours(ffi: cffi.FFI, structs: list[str]) -> dict[str, int]:
    out = {}
    for name in structs:
        ctype = ffi.typeof(name)
        out[f"{name} sizeof"] = ffi.sizeof(ctype)
        for field, info in ctype.fields:
            out[f"{name}.{field}"] = info.offset
    return out


def theirs(flags: list[str], include: str, expected: dict[str, int], tmp: Path) -> dict[str, int]:
    lines = []
    for key in expected:
        if key.endswith(" sizeof"):
            struct = key.split()[0]
            lines.append(f'printf("%s %zu\\n", "{key}", sizeof({struct}));')
        else:
            struct, field = key.split(".")
            lines.append(f'printf("%s %zu\\n", "{key}", offsetof({struct}, {field}));')
    src = tmp / "layout.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n"
        + include
        + "\nint main(void){\n"
        + "\n".join(lines)
        + "\nreturn 0;}\n",
        encoding="utf-8",
    )
    exe = tmp / "layout"
    proc = subprocess.run(["gcc", *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}


@pytest.mark.parametrize("header", sorted(HEADERS))
def test_layout_matches_header(header: str, ffi: cffi.FFI, tmp_path: Path) -> None:
    flags, include, structs, path = HEADERS[header]
    if shutil.which("gcc") is None or not path.exists():
        pytest.skip(f"gcc or {path} is not installed")
    expected = ours(ffi, structs)
    assert theirs(flags, include, expected, tmp_path) == expected


def test_function_table_order(ffi: cffi.FFI) -> None:
    """The 2.40 list is a prefix of the 3.0 list and both follow FUNCTIONS."""
    names = [f for f, _ in ffi.typeof("CK_FUNCTION_LIST_3_0").fields]
    assert names == ["version"] + [n for n, _ in FUNCTIONS]
    names_240 = [f for f, _ in ffi.typeof("CK_FUNCTION_LIST").fields]
    assert names_240 == names[: N_FUNCTIONS_240 + 1]
    assert len(FUNCTIONS) == 92 and ffi.sizeof("CK_ULONG") == ffi.sizeof("unsigned long")
