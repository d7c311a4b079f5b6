"""``atecc doctor`` on a good set-up and on broken ones, each broken case named by the check that
must catch it (issue 14 point 2). Every set-up is a fresh emulated chip under ``tmp_path``; the
doctor runs in-process through ``atecc.cli.main`` with every layer's checks (entry points)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from atecc.cli import main
from atecc.doctor import FAIL, OK, WARN

pytestmark = [
    pytest.mark.native,
    pytest.mark.usefixtures("no_atecc_env"),
]  # the module check loads the built library in a C host


def doctor(capsys: pytest.CaptureFixture[str], store: Path) -> tuple[int, dict[str, dict]]:
    status = main(["doctor", "--filestore", str(store), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (status == 0)
    return status, {c["check"]: c for c in report["checks"]}


def test_a_good_set_up_passes_every_check(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, checks = doctor(capsys, store)
    assert status == 0, checks
    for name in (
        "filestore",
        "slot-file 0.conf",
        "emulator-state 0.conf",
        "chip 0.conf",
        "locks 0.conf",
        "module",
        "token 0",
    ):
        assert checks[name]["status"] == OK, checks[name]
    assert "loads in a C host" in checks["module"]["detail"]
    assert "libpython3" in checks["module"]["detail"]
    assert {"openssl-engine", "openssl-provider", "p11-kit"} <= set(checks)
    assert all(c["status"] != FAIL for c in checks.values())
    assert main(["doctor", "--filestore", str(store)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("ok    filestore")
    assert text.rstrip().endswith("everything checked is fine")


def _group_writable(path: Path) -> None:
    path.chmod(path.stat().st_mode | 0o020)


def _corrupt_metadata(store: Path) -> None:
    (store / "0.pkcs11.json").write_text('{"format": "something else"}')


BROKEN: list[tuple[str, Callable[[Path], object], str, str]] = [
    (
        "missing-filestore",
        lambda s: os.rename(s, s.with_name("gone")),
        "filestore",
        "does not exist",
    ),
    ("filestore-others-may-write", _group_writable, "filestore", "writable by its group"),
    (
        "empty-filestore",
        lambda s: [p.unlink() for p in s.glob("*.conf")],
        "filestore",
        "no slot files",
    ),
    (
        "device-typo",
        lambda s: (s / "0.conf").write_text(
            (s / "0.conf").read_text().replace("= ATECC608-TNGTLS", "= ATECC608-TNGTSL")
        ),
        "slot-file 0.conf",
        "unknown device 'ATECC608-TNGTSL'",
    ),
    (
        "unknown-key",
        lambda s: (s / "0.conf").write_text((s / "0.conf").read_text() + "lable = x\n"),
        "slot-file 0.conf",
        "unknown key 'lable'",
    ),
    (
        "slot-file-others-may-write",
        lambda s: _group_writable(s / "0.conf"),
        "slot-file 0.conf",
        "writable by its group",
    ),
    (
        "state-file-missing",
        lambda s: (s / "chip0.json").unlink(),
        "emulator-state 0.conf",
        "no chip state",
    ),
    (
        "state-file-corrupt",
        lambda s: (s / "chip0.json").write_text("{"),
        "emulator-state 0.conf",
        "cannot read chip state",
    ),
    (
        "no-i2c-bus",
        lambda s: (s / "0.conf").write_text("interface = i2c,0x6A,63\n"),
        "i2c-bus 99",
        "/dev/i2c-99 does not exist",
    ),
    ("metadata-refused", _corrupt_metadata, "token 0", "absent"),
]


@pytest.mark.parametrize(
    ("case", "breaks", "check", "says"), BROKEN, ids=[case for case, *_ in BROKEN]
)
def test_a_broken_set_up_fails_the_check_that_names_it(
    store: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    breaks: Callable[[Path], object],
    check: str,
    says: str,
) -> None:
    breaks(store)
    status, checks = doctor(capsys, store)
    assert status == 1
    assert checks[check]["status"] == FAIL, checks
    assert says in checks[check]["detail"], checks[check]
    assert checks[check]["fix"] or check == "token 0", checks[check]


def test_a_misconfigured_slot_file_is_also_an_absent_token_with_the_reason(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = store / "0.conf"
    conf.write_text(conf.read_text().replace("= ATECC608-TNGTLS", "= ATECC608-TNGTSL"))
    _, checks = doctor(capsys, store)
    assert checks["token 0"]["status"] == FAIL
    assert "unknown device 'ATECC608-TNGTSL'" in checks["token 0"]["detail"]


def test_a_blank_chip_fails_the_locks_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank"
    assert main(["emulator", "init", "--device", "ATECC608", "--filestore", str(blank)]) == 0
    capsys.readouterr()
    status, checks = doctor(capsys, blank)
    assert status == 1
    assert checks["locks 0.conf"]["status"] == FAIL
    assert "atecc provision" in checks["locks 0.conf"]["fix"]


def test_a_locked_user_pin_fails_the_token_check(
    store: Path, capsys: pytest.CaptureFixture[str], token_pins
) -> None:
    from cryptoki.constants import CKF, CKU
    from cryptoki.library import Library

    (store / "0.conf").write_text((store / "0.conf").read_text() + "user_pin = required\n")
    token_pins(store, so_pin=b"so-secret", user_pin=b"1234-user")
    _, checks = doctor(capsys, store)
    assert checks["token 0"]["status"] == OK and "user PIN set" in checks["token 0"]["detail"]
    lib = Library(filestore=store)
    lib.initialize(None)
    try:
        session = lib.open_session(0, CKF.SERIAL_SESSION)
        for _ in range(10):
            with pytest.raises(Exception):  # noqa: B017 - PinIncorrect, then PinLocked
                lib.login(session, CKU.USER, b"0000-bad")
    finally:
        lib.finalize()
    status, checks = doctor(capsys, store)
    assert status == 1
    assert checks["token 0"]["status"] == FAIL and "locked" in checks["token 0"]["detail"]


def test_a_module_a_c_host_cannot_load_fails_the_module_check() -> None:
    from cryptoki.doctor import check_module

    (finding,) = check_module("/bin/true")
    assert finding.check == "module" and finding.status == FAIL
    assert "cannot load /bin/true" in finding.detail


def test_a_stale_p11_kit_registration_fails_the_p11_kit_check(tmp_path: Path) -> None:
    from cryptoki._paths import module_path
    from cryptoki.doctor import check_p11_kit

    modules = tmp_path / "modules"
    modules.mkdir()
    assert check_p11_kit(module_path(), [modules]).status != FAIL  # none: fine (optional)
    (modules / "atecc608.module").write_text(f"module: {module_path()}\n")
    assert check_p11_kit(module_path(), [modules]).status == OK
    (modules / "old.module").write_text("module: /gone/cryptoki/libatecc_pkcs11.so\n")
    finding = check_p11_kit(module_path(), [modules])
    assert finding.check == "p11-kit" and finding.status == FAIL
    assert "/gone/cryptoki/libatecc_pkcs11.so" in finding.detail


def test_a_missing_openssl_engine_is_a_warning_of_the_engine_check(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptoki import openssl_config

    def missing() -> str:
        raise openssl_config.NotFoundError("libp11's pkcs11 engine is not installed")

    monkeypatch.setattr(openssl_config, "engine_path", missing)
    status, checks = doctor(capsys, store)
    assert status == 0  # a warning: the token itself works
    assert checks["openssl-engine"]["status"] == WARN
    assert "libengine-pkcs11-openssl" in checks["openssl-engine"]["fix"]


def test_the_text_report_gives_each_problem_its_fix(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (store / "chip0.json").unlink()
    assert main(["doctor", "--filestore", str(store)]) == 1
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("FAIL  emulator-state 0.conf"))
    assert out[at + 1].strip().startswith("fix: make a new chip")
    assert out[-1].startswith("2 problems")  # the state file, and the token it leaves absent


def test_a_configured_broker_that_does_not_answer_fails_the_broker_check(tmp_path: Path) -> None:
    import socket

    from broker.doctor import findings

    modules = tmp_path / "modules"
    modules.mkdir()
    sock_path = tmp_path / "p11.sock"
    assert findings([modules], tmp_path / "default.sock") == []  # no broker configured: silent
    (modules / "atecc608-broker.module").write_text(f"remote: unix:path={sock_path}\n")
    (finding,) = findings([modules], tmp_path / "default.sock")
    assert finding.check == f"broker {sock_path}" and finding.status == FAIL
    assert "atecc broker --check" in finding.fix
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(sock_path))
        server.listen(1)
        (finding,) = findings([modules], tmp_path / "default.sock")
        assert finding.status == OK
    (finding,) = findings([modules], tmp_path / "default.sock")  # socket left, nobody listens
    assert finding.status == FAIL and "nothing answers" in finding.detail
