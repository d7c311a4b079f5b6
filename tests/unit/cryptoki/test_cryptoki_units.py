"""Pure units: attribute codecs, template schemas, DER helpers, the metadata store, logging
configuration, session bookkeeping, and process-level behaviour (cold imports, exit)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cryptoki import attributes, der, errors, policy, schema
from cryptoki import log as cryptoki_log
from cryptoki.constants import CKA, CKK, CKM, CKO, P256_EC_PARAMS
from cryptoki.session import SIGN, Session
from cryptoki.store import KeyRecord, MetadataError, MetadataStore

REPO = Path(__file__).resolve().parents[3]


# -- attributes ------------------------------------------------------------------------------


def test_attribute_codecs_round_trip():
    cases = {
        CKA.TOKEN: True,
        CKA.CLASS: CKO.PRIVATE_KEY,
        CKA.LABEL: "läbel",
        CKA.ID: b"\x00\x01",
        CKA.START_DATE: b"20250101",
        CKA.ALLOWED_MECHANISMS: (CKM.ECDSA, CKM.ECDSA_SHA256),
    }
    for t, v in cases.items():
        assert attributes.decode(t, attributes.encode(t, v)) == v
    assert attributes.encode(CKA.CLASS, 3) == struct.pack("@L", 3)
    assert attributes.encode(CKA.SIGN, True) == b"\x01"


@pytest.mark.parametrize(
    "attr_type, raw, exc",
    [
        (CKA.TOKEN, b"", errors.AttributeValueInvalid),
        (CKA.TOKEN, b"\x01\x00", errors.AttributeValueInvalid),
        (CKA.CLASS, b"\x01\x00\x00\x00\x00", errors.AttributeValueInvalid),
        (CKA.LABEL, b"\xff\xfe", errors.AttributeValueInvalid),
        (CKA.START_DATE, b"2025", errors.AttributeValueInvalid),
        (CKA.ALLOWED_MECHANISMS, b"\x01\x02\x03", errors.AttributeValueInvalid),
        (0x8000_0001, b"", errors.AttributeTypeInvalid),
    ],
)
def test_attribute_decode_errors(attr_type, raw, exc):
    with pytest.raises(exc):
        attributes.decode(attr_type, raw)


def test_decode_template_duplicates():
    t = [(CKA.TOKEN, b"\x01"), (CKA.TOKEN, b"\x02")]
    assert attributes.decode_template(t) == {CKA.TOKEN: True}  # same value twice: fine
    with pytest.raises(errors.TemplateInconsistent):
        attributes.decode_template([(CKA.TOKEN, b"\x01"), (CKA.TOKEN, b"\x00")])


# -- templates --------------------------------------------------------------------------------


def test_template_rule_precedence():
    # Unknown type wins over read-only, which wins over an impossible value.
    t = [(CKA.EXTRACTABLE, b"\x01"), (CKA.LOCAL, b"\x01"), (CKA.MODULUS, b"\x01")]
    generate = schema.Op.GENERATE
    with pytest.raises(errors.AttributeTypeInvalid):
        schema.validate(policy.EC_PRIVATE_GENERATE, t, generate)
    with pytest.raises(errors.AttributeReadOnly):
        schema.validate(policy.EC_PRIVATE_GENERATE, t[:2], generate)
    with pytest.raises(errors.TemplateInconsistent):
        schema.validate(
            policy.EC_PRIVATE_GENERATE, [(CKA.KEY_TYPE, struct.pack("@L", CKK.AES))], generate
        )


# -- DER ----------------------------------------------------------------------------------------


def test_der_helpers_match_cryptography():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert der.spki(point[1:]) == spki
    assert der.ec_point(point[1:]) == b"\x04\x41" + point
    assert der.spki_id(spki) == der.key_id(point[1:])
    assert der.read_tlv(P256_EC_PARAMS)[:3] == (0x06, 2, 10)
    with pytest.raises(ValueError):
        der.parse_certificate(b"\x30\x03\x02\x01\x01")


# -- store ----------------------------------------------------------------------------------


def test_store_round_trip_and_serial_binding(tmp_path):
    path = tmp_path / "0.pkcs11.json"
    store = MetadataStore(path, "0123AA")
    assert store.read() == [] and store.fingerprint() is None
    rec = KeyRecord(
        slot=2,
        label="k",
        id=b"\x01",
        public_key=bytes(range(64)),
        derive=True,
        mechanisms=(CKM.ECDSA,),
        subject=b"\x30\x00",
    )
    store.modify(lambda meta: meta.keys.append(rec))
    assert store.read() == [rec]
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(MetadataError, match="written for chip 0123AA"):
        MetadataStore(path, "0123BB").read()  # another chip's file is not trusted
    path.write_text("{not json")
    with pytest.raises(MetadataError):
        store.read()
    with pytest.raises(MetadataError):  # and a file that cannot be trusted is never rewritten
        store.modify(lambda meta: meta.keys.clear())
    assert path.read_text() == "{not json"


def test_store_session_records_die_with_their_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(proc.stdout)
    assert not KeyRecord(2, "", b"", bytes(64), session_pid=dead).alive
    assert KeyRecord(2, "", b"", bytes(64), session_pid=os.getpid()).alive
    assert KeyRecord(2, "", b"", bytes(64)).alive


# -- session ------------------------------------------------------------------------------------


def test_session_run_keeps_or_ends():
    s = Session(1, 0, 4)
    s.begin(SIGN, object())
    assert s.run(SIGN, lambda op: 64) == 64  # a length query keeps it
    with pytest.raises(errors.BufferTooSmall):
        s.run(SIGN, lambda op: (_ for _ in ()).throw(errors.BufferTooSmall(64)))
    s.active(SIGN)
    with pytest.raises(errors.DataLenRange):
        s.run(SIGN, lambda op: (_ for _ in ()).throw(errors.DataLenRange()))
    with pytest.raises(errors.OperationNotInitialized):
        s.active(SIGN)


# -- logging --------------------------------------------------------------------------------


def test_log_targets(tmp_path, monkeypatch, capsys):
    target = tmp_path / "x.log"
    monkeypatch.setenv("ATECC_PKCS11_LOG", f"{target}:DEBUG")
    logger = cryptoki_log.configure(force=True)
    try:
        cryptoki_log.get_logger("t").debug("hello %d", 42)
        assert "hello 42" in target.read_text()  # flushed at once
        assert capsys.readouterr().out == ""  # never stdout
        monkeypatch.setenv("ATECC_PKCS11_LOG", "stderr:ERROR")
        logger = cryptoki_log.configure(force=True)
        assert logger.level == 40
        monkeypatch.setenv("ATECC_PKCS11_LOG", str(tmp_path / "no" / "dir" / "f.log"))
        logger = cryptoki_log.configure(force=True)  # falls back to stderr, no exception
        assert logger.level == 30
    finally:
        monkeypatch.delenv("ATECC_PKCS11_LOG")
        cryptoki_log.configure(force=True)


def test_log_records_above_debug_are_one_line_without_traceback(tmp_path, monkeypatch):
    target = tmp_path / "x.log"
    monkeypatch.setenv("ATECC_PKCS11_LOG", f"{target}:DEBUG")
    cryptoki_log.configure(force=True)
    log = cryptoki_log.get_logger("t")
    try:
        try:
            raise KeyError("k")
        except KeyError:
            log.error("failed\nforged 'accepted' line", exc_info=True)
            log.debug("the traceback", exc_info=True)
    finally:
        monkeypatch.delenv("ATECC_PKCS11_LOG")
        cryptoki_log.configure(force=True)
    lines = target.read_text().splitlines()
    assert lines[0].endswith("ERROR failed\\nforged 'accepted' line (KeyError: 'k')")
    assert "DEBUG the traceback" in lines[1] and lines[2] == "Traceback (most recent call last):"
    assert sum("Traceback" in line for line in lines) == 1


# -- process level --------------------------------------------------------------------------


def run_python(code: str, filestore: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ATECC_PKCS11_FILESTORE=str(filestore))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_initialize_is_cold_and_light(tngtls_filestore):
    proc = run_python(
        """
        import sys
        from cryptoki.library import LIBRARY
        LIBRARY.initialize(None)
        print(LIBRARY.get_slot_list(False))
        print("cryptography" in sys.modules, "atecc.device" in sys.modules)
        """,
        tngtls_filestore,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[0]", "False False"]


def test_finalize_from_atexit_after_use(tngtls_filestore):
    proc = run_python(
        """
        import atexit
        from cryptoki.library import LIBRARY
        from cryptoki.constants import CKF
        LIBRARY.initialize(None)
        s = LIBRARY.open_session(0, CKF.SERIAL_SESSION)
        LIBRARY.find_objects_init(s, [])
        atexit.register(LIBRARY.finalize)
        atexit.register(LIBRARY.close_session, s)  # runs first, as providers do
        """,
        tngtls_filestore,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_fork_child_initialises_afresh(tngtls_filestore):
    proc = run_python(
        """
        import os, struct
        from cryptoki.library import LIBRARY
        from cryptoki.constants import CKF, CKR
        from cryptoki import errors
        LIBRARY.initialize(None)
        s = LIBRARY.open_session(0, CKF.SERIAL_SESSION)
        LIBRARY.generate_random(s, 8)
        pid = os.fork()
        if pid == 0:
            try:
                LIBRARY.get_slot_list(True)
                os._exit(3)
            except errors.CryptokiNotInitialized:
                pass
            LIBRARY.initialize(None)
            c = LIBRARY.open_session(0, CKF.SERIAL_SESSION)
            os._exit(0 if len(LIBRARY.generate_random(c, 40)) == 40 else 4)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        print(len(LIBRARY.generate_random(s, 8)))
        LIBRARY.finalize()
        """,
        tngtls_filestore,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "8"]
