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

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import REPO, export_public_key, require, run

pytestmark = pytest.mark.native

#: Loads the library as the provider does, opens a session with pApplication and Notify, lists the
#: objects. Each probe below goes on from here and prints one JSON line.
PRELUDE = textwrap.dedent(
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
    """
)

PROBE = PRELUDE + textwrap.dedent(
    r"""
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

#: The provider's key cache (pkcs11-provider 1.2.0, src/obj/object.c cache_key and
#: destroy_key_cache; tests/unit/cryptoki/test_provider_key_cache.py has the same sequence against
#: the core): log in as CKU_USER with a NULL PIN (what it passes on a protected authentication
#: path), copy the token key into a session object with {CKA_TOKEN = FALSE}, sign with the copy
#: from another session twice (CKM_ECDSA_SHA256 multi-part, a C_GetOperationState try in between),
#: destroy the copy.
CACHE_PROBE = PRELUDE + textwrap.dedent(
    r"""
    info = ffi.new("CK_TOKEN_INFO *")
    out["token_info"] = fl.C_GetTokenInfo(slots[0], info)
    out["token_flags"] = info.flags
    keys = {}
    for h in handles[0:found[0]]:
        _, v = get(h, [CLASS, LABEL])
        keys[(int.from_bytes(v[CLASS], sys.byteorder), v[LABEL])] = h
    private, public = keys[(3, b"device")], keys[(2, b"device")]
    out["point"] = get(public, [EC_POINT])[1][EC_POINT].hex()
    out["login"] = fl.C_Login(session[0], 1, ffi.NULL, 0)  # CKU_USER, NULL_PTR
    false = ffi.new("CK_BBOOL *", 0)
    template = ffi.new("CK_ATTRIBUTE[1]")
    template[0].type, template[0].pValue, template[0].ulValueLen = TOKEN, false, 1
    cached = ffi.new("CK_OBJECT_HANDLE *")
    out["copy"] = fl.C_CopyObject(session[0], private, template, 1, cached)
    other = ffi.new("CK_SESSION_HANDLE *")
    out["open_other"] = fl.C_OpenSession(slots[0], 4, app, notify, other)
    mechanism = ffi.new("CK_MECHANISM *", {"mechanism": 0x1044})  # CKM_ECDSA_SHA256
    out["uses"] = []
    for message in (b"first use", b"second use"):
        use = {"message": message.hex()}
        use["init"] = fl.C_SignInit(other[0], mechanism, cached[0])
        use["update"] = fl.C_SignUpdate(other[0], message, len(message))
        state_len = ffi.new("CK_ULONG *")
        use["get_state"] = fl.C_GetOperationState(other[0], ffi.NULL, state_len)
        sig, sig_len = ffi.new("CK_BYTE[]", 75), ffi.new("CK_ULONG *", 75)
        use["final"] = fl.C_SignFinal(other[0], sig, sig_len)
        use["sig"] = bytes(ffi.buffer(sig, sig_len[0])).hex()
        out["uses"].append(use)
    out["destroy"] = fl.C_DestroyObject(session[0], cached[0])
    out["close_other"] = fl.C_CloseSession(other[0])
    out["close"] = fl.C_CloseSession(session[0])
    out["finalize"] = fl.C_Finalize(ffi.NULL)
    print(json.dumps(out))
    """
)

OK, TYPE_INVALID, SENSITIVE, FUNCTION_NOT_SUPPORTED = 0x0, 0x12, 0x11, 0x54
LOGIN_REQUIRED, PROTECTED_AUTHENTICATION_PATH = 0x4, 0x100


def _run_probe(probe: str, module_path: str, env: dict[str, str], tmp_path: Path) -> dict:
    script = tmp_path / "probe.py"
    script.write_text(probe)
    proc = run(
        [sys.executable, str(script), module_path, str(REPO / "native" / "cdefs.py")], env=env
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_module_answers_what_the_provider_asks(module_path, token_env, tmp_path):
    out = _run_probe(PROBE, module_path, token_env, tmp_path)
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


def test_providers_key_cache_on_a_token_without_pin_needs_no_pin_and_signs_with_the_copy(
    module_path, token_env, tmp_path
):
    out = _run_probe(CACHE_PROBE, module_path, token_env, tmp_path)
    assert out["token_info"] == OK
    # Without this flag the provider, holding no PIN, prompts the user for one before caching.
    assert out["token_flags"] & PROTECTED_AUTHENTICATION_PATH, hex(out["token_flags"])
    assert not out["token_flags"] & LOGIN_REQUIRED
    assert out["login"] == OK and out["copy"] == OK and out["open_other"] == OK
    point = bytes.fromhex(out["point"])[2:]
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    for use in out["uses"]:
        assert (use["init"], use["update"], use["final"]) == (OK, OK, OK), use
        assert use["get_state"] == FUNCTION_NOT_SUPPORTED, use
        sig = bytes.fromhex(use["sig"])
        assert len(sig) == 64, use
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        message = bytes.fromhex(use["message"])
        public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    assert out["destroy"] == OK
    assert (out["close_other"], out["close"], out["finalize"]) == (OK, OK, OK)


#: A pkcs11-provider build to test with (its ``pkcs11.so``), for where none is installed.
PROVIDER_ENV = "ATECC_TEST_PKCS11_PROVIDER"


def _provider_module() -> Path | None:
    """$ATECC_TEST_PKCS11_PROVIDER, else ``pkcs11.so`` in OpenSSL's MODULESDIR, else None."""
    explicit = os.environ.get(PROVIDER_ENV)
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"{PROVIDER_ENV}={explicit}: no such file")
        return Path(explicit)
    proc = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True)
    match = re.search(r'MODULESDIR: "(.*)"', proc.stdout)
    if match and (Path(match.group(1)) / "pkcs11.so").is_file():
        return Path(match.group(1)) / "pkcs11.so"
    return None


def _public_numbers(pem: bytes) -> ec.EllipticCurvePublicNumbers:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.public_numbers()


def _serve_twice(env: dict[str, str], key_uri: str, cert: Path) -> str:
    """`openssl s_server` with the token key for two handshakes (two signatures, one process);
    returns what the server printed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            require("openssl"),
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-key",
            key_uri,
            "-cert",
            str(cert),
            "-naccept",
            "2",
        ],
        env=env,
        stdin=subprocess.PIPE,  # held open: s_server quits at EOF on stdin
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = []
        while not any("ACCEPT" in line for line in lines):  # listening (bounded by -naccept)
            line = server.stdout.readline()
            assert line, "s_server exited:\n" + "".join(lines)
            lines.append(line)
        for n in (1, 2):
            run(
                [
                    require("openssl"),
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{port}",
                    "-CAfile",
                    str(cert),
                    "-verify_return_error",
                    "-brief",
                ],
                input=f"hello {n}\n",
                timeout=30,
            )
        rest, _ = server.communicate(timeout=30)
        return "".join(lines) + rest
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.fixture
def provider_conf(module_path, tmp_path):
    """Writes an OpenSSL configuration loading the real provider for our module (the README's,
    plus any extra provider settings given) and returns its path; skips where there is none."""
    provider = _provider_module()
    if provider is None:
        pytest.skip(
            "pkcs11-provider (OpenSSL 3 provider) is not installed here; Debian 12 does "
            f"not package it (point {PROVIDER_ENV} at a built pkcs11.so). The engine path is "
            "tested in test_peers.py."
        )

    def write(*settings: str) -> Path:
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
            + "".join(f"{line}\n" for line in settings)
        )
        return conf

    return write


def test_provider_end_to_end(module_path, token_env, tmp_path, provider_conf):
    """The real provider with its defaults (no quirk settings, no PIN, key caching on): the
    public key, a CSR, `pkeyutl -sign`, a server using the key for two handshakes in one process,
    and the mTLS demo with the provider as the client. Nothing may ask for a PIN; the provider's
    debug log must show the key cached (C_CopyObject) and the copy destroyed without an error."""
    conf = provider_conf()
    debug_log = tmp_path / "provider-debug.log"
    env = dict(token_env, OPENSSL_CONF=str(conf), PKCS11_PROVIDER_DEBUG=f"file:{debug_log},level:2")
    uri = "pkcs11:token=00ABC;object=device"
    stderr = []

    def with_provider(args: list[str]) -> subprocess.CompletedProcess[str]:
        proc = run([require("openssl"), *args], env=env, input="")  # a PIN prompt would see EOF
        stderr.append(proc.stderr)
        return proc

    token_key = _public_numbers(export_public_key(module_path, token_env, label="device"))
    pub = with_provider(["pkey", "-in", f"{uri};type=public", "-pubin", "-pubout"])
    assert _public_numbers(pub.stdout.encode()) == token_key

    csr = tmp_path / "p.csr"
    with_provider(
        ["req", "-new", "-key", f"{uri};type=private", "-subj", "/CN=KE CLIENT", "-out", str(csr)]
    )
    assert "verify OK" in run(["openssl", "req", "-in", str(csr), "-noout", "-verify"]).stderr
    request = x509.load_pem_x509_csr(csr.read_bytes())
    assert request.public_key().public_numbers() == token_key

    digest = tmp_path / "digest"
    digest.write_bytes(hashlib.sha256(b"signed through the provider").digest())
    sig = tmp_path / "sig"
    with_provider(
        ["pkeyutl", "-sign", "-inkey", f"{uri};type=private", "-in", str(digest), "-out", str(sig)]
    )
    token_key.public_key().verify(
        sig.read_bytes(), digest.read_bytes(), ec.ECDSA(Prehashed(hashes.SHA256()))
    )

    cert = tmp_path / "self.crt"
    with_provider(
        [
            "req",
            "-x509",
            "-new",
            "-key",
            f"{uri};type=private",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-out",
            str(cert),
        ]
    )
    served = _serve_twice(env, f"{uri};type=private", cert)
    assert "hello 1" in served and "hello 2" in served, served
    stderr.append(served)

    proc = run(
        [
            "bash",
            str(REPO / "scripts" / "mtls-demo.sh"),
            str(tmp_path / "work"),
            module_path,
            f"{uri};type=private",
        ],
        env=dict(env, MTLS_DEMO_PROVIDER_CONF=str(conf)),
        input="",
        timeout=120,
    )
    assert "mtls-demo: OK" in proc.stdout
    stderr.append(proc.stdout + proc.stderr)

    assert not any("PIN" in text for text in stderr), stderr
    log = debug_log.read_text(errors="replace")
    assert "Calling C_CopyObject" in log and "Calling C_DestroyObject" in log  # keys were cached
    failed = re.findall(r"Error \w+ returned by C_(?:Login|CopyObject|DestroyObject|Sign\w*)", log)
    assert not failed, failed


def test_provider_logs_in_without_a_pin_to_use_a_private_generated_key(
    module_path, token_env, tmp_path, provider_conf
):
    """pkcs11-tool's key pairs are CKA_PRIVATE: seen only after C_Login. The provider logs in
    by itself only where CKF_LOGIN_REQUIRED is set, so on a token without a PIN it needs
    `pkcs11-module-login-behavior = always`; it then logs in with a NULL PIN (the token announces
    a protected authentication path) instead of prompting, and signs with the key."""
    run(
        [
            require("pkcs11-tool"),
            "--module",
            module_path,
            "--login",
            "--pin",
            "0000",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "made",
            "--id",
            "0a",
        ],
        env=token_env,
    )
    conf = provider_conf("pkcs11-module-login-behavior = always")
    env = dict(token_env, OPENSSL_CONF=str(conf))
    digest = tmp_path / "digest"
    digest.write_bytes(hashlib.sha256(b"generated key").digest())
    sig = tmp_path / "sig"
    proc = run(
        [
            require("openssl"),
            "pkeyutl",
            "-sign",
            "-inkey",
            "pkcs11:object=made;type=private",
            "-in",
            str(digest),
            "-out",
            str(sig),
        ],
        env=env,
        input="",
    )
    assert "PIN" not in proc.stderr, proc.stderr
    public = _public_numbers(export_public_key(module_path, token_env, label="made"))
    public.public_key().verify(
        sig.read_bytes(), digest.read_bytes(), ec.ECDSA(Prehashed(hashes.SHA256()))
    )
