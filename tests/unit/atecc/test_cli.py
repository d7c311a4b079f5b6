"""The ``atecc`` command-line tool, run in-process (``main([...])``) and once as a real process.

Every chip is a fresh emulated one in a per-test filestore under ``tmp_path``; nothing is canned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from atecc.cli import main, parse_hex

pytest.importorskip("atecc.emulator.profiles")
pytest.importorskip("atecc.emulator.bus")

ATECC = Path(sys.executable).parent / "atecc"
INFO_PACKET = "07 30 00 00 00 03 5D"


def assert_one_error_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("atecc: error: "), err
    assert "Traceback" not in err


@pytest.fixture(autouse=True)
def _no_env_filestore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATECC_PKCS11_FILESTORE", raising=False)


@pytest.fixture
def filestore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = tmp_path / "filestore"
    assert main(["emulator", "init", "--filestore", str(store)]) == 0
    capsys.readouterr()
    return store


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


# --- emulator init -------------------------------------------------------------------------------


def test_emulator_init_creates_state_and_slot_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "fs"
    assert main(["emulator", "init", "--filestore", str(store), "--slot", "3"]) == 0
    out = capsys.readouterr().out
    assert (store / "chip3.json").is_file() and str(store / "chip3.json") in out
    conf = (store / "3.conf").read_text()
    assert "interface = emulator,chip3.json" in conf.splitlines()
    assert "device = ATECC608-TNGTLS" in conf.splitlines()
    assert "label = 03ABC" in conf.splitlines()
    assert (store / "chip3.root-ca.pem").is_file()


def test_emulator_init_refuses_to_overwrite_without_force(
    filestore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (filestore / "chip0.json").read_bytes()
    assert main(["emulator", "init", "--filestore", str(filestore)]) != 0
    assert_one_error_line(capsys.readouterr().err)
    assert (filestore / "chip0.json").read_bytes() == before
    assert main(["emulator", "init", "--filestore", str(filestore), "--force"]) == 0
    assert (filestore / "chip0.json").read_bytes() != before  # a new chip (new serial/keys)


def test_emulator_init_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["emulator", "init", "--device", "ATECC999", "--filestore", str(tmp_path)])
    assert code != 0
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "ATECC999" in err
    assert not (tmp_path / "chip0.json").exists()


# --- reads ---------------------------------------------------------------------------------------


def test_info(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "info", "--filestore", str(filestore))
    serial = str(data["serial"])
    assert len(serial) == 18 and serial.startswith("0123")
    assert data["config_locked"] is True and data["data_locked"] is True
    assert data["i2c_address"] == "0x35"
    assert str(data["model"]).startswith("ATECC608")
    assert main(["--filestore", str(filestore), "info"]) == 0  # global option before the command
    text = capsys.readouterr().out
    assert serial in text and "locked" in text


def test_info_on_blank_chip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "blank"
    assert main(["emulator", "init", "--device", "ATECC608", "--filestore", str(store)]) == 0
    capsys.readouterr()
    data = run_json(capsys, "info", "--filestore", str(store))
    assert data["config_locked"] is False and data["data_locked"] is False
    # A blank chip has no certificates: one clear line, no traceback.
    assert main(["certs", "--filestore", str(store)]) != 0
    assert_one_error_line(capsys.readouterr().err)


def test_config(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--filestore", str(filestore)]) == 0
    text = capsys.readouterr().out
    assert "P-256 private" in text and "slot" in text
    data = run_json(capsys, "config", "--filestore", str(filestore))
    slots = data["slots"]
    assert isinstance(slots, list) and len(slots) == 16
    assert len(str(data["config_zone"])) == 256


def test_random_json(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "random", "--filestore", str(filestore))["random"]
    second = run_json(capsys, "random", "--filestore", str(filestore))["random"]
    assert len(str(first)) == 64 and first != second
    bytes.fromhex(str(first))


def test_certs_pem_matches_chip_key(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from atecc.certs.factory import public_key_bytes
    from atecc.certs.rebuild import verify_signature
    from atecc.slotfile import EmulatorInterface, open_device

    data = run_json(capsys, "certs", "--filestore", str(filestore))
    device_cert = x509.load_pem_x509_certificate(str(data["device"]).encode())
    signer_cert = x509.load_pem_x509_certificate(str(data["signer"]).encode())
    root_cert = x509.load_pem_x509_certificate(str(data["root"]).encode())
    dev = open_device(EmulatorInterface(filestore / "chip0.json"))
    try:
        chip_key = dev.get_public_key(0)
        serial = dev.serial_number().hex().upper()
    finally:
        dev.close()
    assert public_key_bytes(device_cert.public_key()) == chip_key  # type: ignore[arg-type]
    cn = device_cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == f"{serial} ATECC"
    der = lambda c: c.public_bytes(serialization.Encoding.DER)  # noqa: E731
    signer_key = public_key_bytes(signer_cert.public_key())  # type: ignore[arg-type]
    root_key = public_key_bytes(root_cert.public_key())  # type: ignore[arg-type]
    assert verify_signature(der(device_cert), signer_key)
    assert verify_signature(der(signer_cert), root_key)
    # Text mode: three PEM blocks (device, signer, root).
    assert main(["certs", "--filestore", str(filestore)]) == 0
    assert capsys.readouterr().out.count("-----BEGIN CERTIFICATE-----") == 3


def test_raw_info_packet(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["raw", INFO_PACKET, "--filestore", str(filestore)]) == 0
    reply = bytes.fromhex(capsys.readouterr().out)
    assert len(reply) == 7 and reply[0] == 7
    assert reply[3] == 0x60  # RevNum byte 2: the 608 family
    data = run_json(capsys, "raw", "0730000000035D", "--filestore", str(filestore))
    assert data["command"] == INFO_PACKET
    assert len(bytes.fromhex(str(data["reply"]))) == 7


@pytest.mark.parametrize(
    "packet",
    ["07 30 00 00 00 03 5G", "07 30 0", "07 30 00 00 00 03 5E", "06 30 00 00 00 03 5D"],
)
def test_raw_rejects_bad_packets(
    filestore: Path, capsys: pytest.CaptureFixture[str], packet: str
) -> None:
    assert main(["raw", packet, "--filestore", str(filestore)]) != 0
    assert_one_error_line(capsys.readouterr().err)


def test_parse_hex_forms() -> None:
    assert parse_hex("07 30 00") == parse_hex("073000") == parse_hex("07:30:00") == b"\x07\x30\x00"


# --- choosing the chip, and errors ---------------------------------------------------------------


def test_missing_filestore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--filestore", str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "does not exist" in err


def test_filestore_without_slot_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["random", "--filestore", str(tmp_path)]) != 0
    assert_one_error_line(capsys.readouterr().err)


def test_filestore_from_environment(
    filestore: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATECC_PKCS11_FILESTORE", str(filestore))
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["serial"]


def test_slot_selection(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "init", "--filestore", str(filestore), "--slot", "1"]) == 0
    capsys.readouterr()
    first = run_json(capsys, "info", "--filestore", str(filestore))["serial"]
    second = run_json(capsys, "info", "--filestore", str(filestore), "--slot", "1")["serial"]
    assert first != second
    assert main(["info", "--filestore", str(filestore), "--slot", "7"]) != 0
    assert_one_error_line(capsys.readouterr().err)


def test_unreadable_state_file(filestore: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (filestore / "chip0.json").write_text("{ not json")
    assert main(["info", "--filestore", str(filestore)]) != 0
    assert_one_error_line(capsys.readouterr().err)


def test_no_i2c_bus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bus 0xEE (hex, as cryptoauthlib reads it) does not exist on any test machine.
    (tmp_path / "0.conf").write_text("interface = i2c,0x6A,EE\n")
    assert main(["info", "--filestore", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert "I2C bus 238" in err


def test_verbose_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "0.conf").write_text("interface = emulator,missing.json\n")
    assert main(["-v", "info", "--filestore", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("atecc: error: ")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert_one_error_line(capsys.readouterr().err)
    assert main([]) == 2
    assert_one_error_line(capsys.readouterr().err)


def test_module_path(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["module-path"])
    out, err = capsys.readouterr()
    if code == 0:
        assert out.strip().endswith(".so")
    else:
        assert_one_error_line(err)


# --- as a real process ---------------------------------------------------------------------------


def test_console_script_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATECC_PKCS11_FILESTORE"}
    store = tmp_path / "fs"

    def atecc(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ATECC), *argv], capture_output=True, text=True, env=env, timeout=120
        )

    init = atecc("emulator", "init", "--filestore", str(store))
    assert init.returncode == 0, init.stderr
    env["ATECC_PKCS11_FILESTORE"] = str(store)
    info = atecc("info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["serial"].startswith("0123")
    raw = atecc("raw", INFO_PACKET)
    assert raw.returncode == 0 and len(bytes.fromhex(raw.stdout)) == 7
    certs = atecc("certs")
    assert certs.returncode == 0 and certs.stdout.count("BEGIN CERTIFICATE") == 3
    for argv in (
        ("raw", "zz"),
        ("info", "--filestore", str(tmp_path / "missing")),
        ("emulator", "init", "--device", "NOPE", "--filestore", str(tmp_path / "x")),
    ):
        bad = atecc(*argv)
        assert bad.returncode != 0
        assert_one_error_line(bad.stderr)


def test_info_shows_the_device_id_the_csr_carries(
    filestore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from atecc.certs.csr import device_id_for_serial

    assert main(["--filestore", str(filestore), "info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["device_id"] == device_id_for_serial(bytes.fromhex(data["serial"]))
    assert main(["--filestore", str(filestore), "info"]) == 0
    assert f"device id     {data['device_id']}" in capsys.readouterr().out
