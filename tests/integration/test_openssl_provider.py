"""The OpenSSL 3 pkcs11-provider's view of the module.

Two parts:
* ``test_module_answers_what_the_provider_asks``: always runs. A separate process loads the built
  library with cffi and makes the calls pkcs11-provider makes (field notes): C_GetInterface for
  ("PKCS 11", 3.2) first, falling back to the default interface on an error; a session opened with
  a non-NULL pApplication and Notify; on every object one C_GetAttributeValue with the provider's
  template, which must answer CKR_OK, CKR_ATTRIBUTE_TYPE_INVALID or CKR_ATTRIBUTE_SENSITIVE and
  nothing else (anything else makes the provider drop the key); CKA_ALWAYS_AUTHENTICATE false.
* ``test_provider_end_to_end``: with the real provider, where installed (Debian 12 does not
  package it): read the public key, make a CSR and complete an mTLS handshake with
  ``-key "pkcs11:..."`` and no quirk settings.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO, require, run

pytestmark = pytest.mark.native

PROBE = textwrap.dedent(
    r"""
    import importlib.util, json, sys
    from cffi import FFI

    so, cdefs_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("cdefs", cdefs_path)
    cdefs = importlib.util.module_from_spec(spec); spec.loader.exec_module(cdefs)
    ffi = FFI()
    ffi.cdef(cdefs.TYPES + '''
        CK_RV C_GetInterface(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
    ''')
    lib = ffi.dlopen(so)
    out = {}
    iface = ffi.new("CK_INTERFACE_PTR *")
    want = ffi.new("CK_VERSION *", {"major": 3, "minor": 2})
    name = ffi.new("char[]", b"PKCS 11")
    out["get_interface_3_2"] = lib.C_GetInterface(ffi.cast("CK_UTF8CHAR_PTR", name), want, iface, 0)
    if out["get_interface_3_2"] != 0:
        out["get_interface_default"] = lib.C_GetInterface(ffi.NULL, ffi.NULL, iface, 0)
    fl = ffi.cast("CK_FUNCTION_LIST_3_0 *", iface[0].pFunctionList)
    out["version"] = [fl.version.major, fl.version.minor]
    out["init"] = fl.C_Initialize(ffi.NULL)

    @ffi.callback("CK_RV(CK_SESSION_HANDLE, CK_NOTIFICATION, CK_VOID_PTR)")
    def notify(session, event, app):
        return 0

    count = ffi.new("CK_ULONG *")
    fl.C_GetSlotList(1, ffi.NULL, count)
    slots = ffi.new("CK_SLOT_ID[]", count[0])
    fl.C_GetSlotList(1, slots, count)
    app = ffi.new("int *", 42)
    session = ffi.new("CK_SESSION_HANDLE *")
    out["open"] = fl.C_OpenSession(slots[0], 4, app, notify, session)  # CKF_SERIAL_SESSION
    fl.C_FindObjectsInit(session[0], ffi.NULL, 0)
    handles = ffi.new("CK_OBJECT_HANDLE[]", 64)
    found = ffi.new("CK_ULONG *")
    fl.C_FindObjects(session[0], handles, 64, found)
    fl.C_FindObjectsFinal(session[0])

    CLASS, KEY_TYPE, TOKEN, LABEL, ID = 0x0, 0x100, 0x1, 0x3, 0x102
    COPYABLE, PARAMETER_SET, EC_PARAMS, EC_POINT = 0x171, 0x61D, 0x180, 0x181
    ALWAYS_AUTH, ALLOWED = 0x202, 0x40000600

    def get(handle, types):
        template = ffi.new("CK_ATTRIBUTE[]", len(types))
        bufs = []
        for i, t in enumerate(types):
            buf = ffi.new("unsigned char[]", 512)
            bufs.append(buf)
            template[i].type, template[i].pValue, template[i].ulValueLen = t, buf, 512
        rv = fl.C_GetAttributeValue(session[0], handle, template, len(types))
        values = {}
        for i, t in enumerate(types):
            n = template[i].ulValueLen
            values[t] = None if n == ffi.cast("CK_ULONG", -1) else bytes(ffi.buffer(bufs[i], n))
        return rv, values

    objects = []
    for h in handles[0:found[0]]:
        rv1, common = get(h, [CLASS, KEY_TYPE, COPYABLE, TOKEN, PARAMETER_SET])
        cls = int.from_bytes(common[CLASS], sys.byteorder)
        entry = {"class": cls, "rv_common": rv1}
        if cls in (2, 3):  # public / private key
            types = [EC_PARAMS, ID, LABEL] + ([EC_POINT] if cls == 2 else [ALWAYS_AUTH])
            rv2, ec = get(h, types)
            rv3, allowed = get(h, [ALLOWED])
            entry.update(rv_ec=rv2, rv_allowed=rv3,
                         copyable=common[COPYABLE] is not None,
                         always_auth=ec.get(ALWAYS_AUTH) and ec[ALWAYS_AUTH].hex(),
                         allowed_len=len(allowed[ALLOWED] or b""))
        objects.append(entry)
    out["objects"] = objects
    out["close"] = fl.C_CloseSession(session[0])
    out["finalize"] = fl.C_Finalize(ffi.NULL)
    print(json.dumps(out))
    """
)

OK, TYPE_INVALID, SENSITIVE = 0x0, 0x12, 0x11


def test_module_answers_what_the_provider_asks(module_path, token_env, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    proc = run(
        [sys.executable, str(script), module_path, str(REPO / "native" / "cdefs.py")], env=token_env
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # 3.2 is not offered: an error, then the default interface, which is 3.0.
    assert out["get_interface_3_2"] != OK
    assert out["get_interface_default"] == OK
    assert out["version"] == [3, 0]
    assert out["init"] == OK and out["open"] == OK
    keys = [o for o in out["objects"] if o["class"] in (2, 3)]
    assert len(keys) >= 2, out
    for obj in out["objects"]:
        assert obj["rv_common"] in (OK, TYPE_INVALID), obj
    for key in keys:
        assert key["rv_ec"] in (OK, TYPE_INVALID, SENSITIVE), key
        assert key["rv_allowed"] in (OK, TYPE_INVALID), key
        assert key["copyable"], key  # answered, true or false, never an error
    private = [k for k in keys if k["class"] == 3]
    assert private and all(k["always_auth"] == "00" for k in private), private
    assert out["close"] == OK and out["finalize"] == OK


def _provider_module() -> Path | None:
    proc = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True)
    match = re.search(r'MODULESDIR: "(.*)"', proc.stdout)
    if match and (Path(match.group(1)) / "pkcs11.so").is_file():
        return Path(match.group(1)) / "pkcs11.so"
    return None


def test_provider_end_to_end(module_path, token_env, tmp_path):
    provider = _provider_module()
    if provider is None:
        pytest.skip(
            "pkcs11-provider (OpenSSL 3 provider) is not installed here; Debian 12 does "
            "not package it. The engine path is tested in test_peers.py."
        )
    conf = tmp_path / "provider.cnf"
    conf.write_text(
        textwrap.dedent(f"""\
        openssl_conf = openssl_init
        [openssl_init]
        providers = provider_sect
        [provider_sect]
        default = default_sect
        pkcs11 = pkcs11_sect
        [default_sect]
        activate = 1
        [pkcs11_sect]
        module = {provider}
        pkcs11-module-path = {module_path}
        activate = 1
        """)
    )
    env = dict(token_env, OPENSSL_CONF=str(conf))
    uri = "pkcs11:token=00ABC;object=device"
    pub = run(["openssl", "pkey", "-in", f"{uri};type=public", "-pubin", "-pubout"], env=env)
    assert "BEGIN PUBLIC KEY" in pub.stdout
    csr = tmp_path / "p.csr"
    run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            f"{uri};type=private",
            "-subj",
            "/CN=KE CLIENT",
            "-out",
            str(csr),
        ],
        env=env,
    )
    assert "verify OK" in run(["openssl", "req", "-in", str(csr), "-noout", "-verify"]).stderr
    # mTLS: the demo script with the provider's key URI (the engine config is unused there).
    require("openssl")
    proc = run(
        [
            "bash",
            str(REPO / "scripts" / "mtls-demo.sh"),
            str(tmp_path / "work"),
            module_path,
            f"{uri};type=private",
        ],
        env=env,
        timeout=120,
    )
    assert "mtls-demo: OK" in proc.stdout
