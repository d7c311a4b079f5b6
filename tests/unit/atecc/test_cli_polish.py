"""The ``atecc`` command line as a new user meets it (issue 14 point 5): ``--version``, bare
``atecc`` shows help, every subcommand of every layer has a description and an example,
``--json`` wherever data is printed, ``-v`` says what happened, one-line errors without internal
names or temporary file names; ``emulator list/reset/delete``, ``pubkey``, ``sign``/``verify``,
``random --bytes N``, unlocked-chip warnings. Chips are fresh emulated ones under ``tmp_path``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from atecc.cli import build_parser, main
from atecc.cmd_chip import key_use
from atecc.packet import decode_command

pytestmark = pytest.mark.usefixtures("no_atecc_env")

ATECC = Path(sys.executable).parent / "atecc"
#: Subcommands that print no data of their own (they run something else or serve forever, or
#: print a shell script).
NO_DATA = {"emulator run", "serve", "broker", "completion"}


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atecc: error: "), err
    assert "Traceback" not in err
    # no Python class names (ExecutionError, FileRefusedError, StateFileError, ...)
    assert not re.search(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*Error\b", lines[0]), lines[0]
    return lines[0]


def leaves(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                here = f"{path} {name}".strip()
                found.append((here, sub))
                found += leaves(sub, here)
    return found


# --- help, version -------------------------------------------------------------------------------


def test_version_is_the_package_version() -> None:
    proc = subprocess.run([str(ATECC), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"atecc {version('atecc-pkcs11')} (Python 3.")


def test_bare_atecc_shows_the_help_of_every_layer_and_succeeds() -> None:
    proc = subprocess.run([str(ATECC)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: atecc")
    for command in ("emulator", "info", "pubkey", "verify", "sign", "csr", "openssl-config"):
        assert re.search(rf"^\s+{re.escape(command)}\s", proc.stdout, re.M), command


def test_every_subcommand_has_a_description_and_an_example() -> None:
    commands = leaves(build_parser(with_plugins=True))
    assert len(commands) >= 25
    for name, parser in commands:
        assert parser.description and len(parser.description.split("\n")[0]) > 10, name
        assert parser.epilog and parser.epilog.startswith("example"), name
        assert "atecc " in parser.epilog, name
        assert parser.format_help()  # renders


def test_every_command_that_prints_data_takes_json() -> None:
    for name, parser in leaves(build_parser(with_plugins=True)):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a group: its subcommands print
        options = {o for a in parser._actions for o in a.option_strings}
        assert ("--json" in options) == (name not in NO_DATA), name


def test_no_option_can_be_abbreviated() -> None:
    # `--pin 1234` must not be taken as `--pin-file 1234` and echo the PIN in an error
    assert main(["raw", "--pin", "1234", "07 30 00 00 00 03 5D"]) == 2


# --- json and verbose ----------------------------------------------------------------------------


def test_data_commands_answer_json(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["emulator", "list"],
        ["info"],
        ["config"],
        ["random", "--bytes", "3"],
        ["pubkey"],
        ["certs"],
    ):
        assert main([*argv, "--filestore", str(store), "--json"]) == 0, argv
        assert isinstance(json.loads(capsys.readouterr().out), dict), argv
    assert main(["module-path", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["module"].endswith(".so")


def test_verbose_says_which_slot_file_and_which_commands(store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATECC_PKCS11_FILESTORE"}
    proc = subprocess.run(
        [str(ATECC), "-v", "--filestore", str(store), "info"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0
    assert f"slot file {store / '0.conf'}: emulator state" in proc.stderr
    assert "READ: 35-byte reply" in proc.stderr and "INFO: 7-byte reply" in proc.stderr


# --- errors --------------------------------------------------------------------------------------


def test_chip_errors_say_what_the_chip_answered_not_a_class_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank"
    assert main(["emulator", "init", "--device", "ATECC608", "--filestore", str(blank)]) == 0
    capsys.readouterr()
    assert main(["pubkey", "--filestore", str(blank)]) == 1
    err = one_error(capsys.readouterr().err)
    assert "chip status 0x0F" in err


def test_a_failed_write_names_the_file_asked_for_not_a_temporary_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-dir" / "device.pub"
    assert main(["pubkey", "--filestore", str(store), "--out", str(target)]) != 0
    err = one_error(capsys.readouterr().err)
    assert str(target) in err and ".tmp" not in err


def test_a_broken_state_file_is_one_line(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (store / "chip0.json").write_text("{not json")
    assert main(["info", "--filestore", str(store)]) == 2
    assert "chip state" in one_error(capsys.readouterr().err)


# --- emulator list, reset, delete ----------------------------------------------------------------


def test_emulator_list_reset_and_delete(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["emulator", "init", "--filestore", str(store), "--slot", "1", "--device", "ATECC608"])
        == 0
    )
    (store / "2.conf").write_text("interface = i2c,0x6A,1\n")  # a real chip: never touched
    capsys.readouterr()
    assert main(["emulator", "list", "--filestore", str(store), "--json"]) == 0
    chips = json.loads(capsys.readouterr().out)["chips"]
    assert [(c["slot"], c["profile"], c["data_locked"]) for c in chips] == [
        (0, "ATECC608-TNGTLS", True),
        (1, "ATECC608", False),
    ]
    serial = chips[0]["serial"]
    public = (store / "chip0.json").read_text()
    (store / "0.pkcs11.json").write_text("{}")  # the old chip's token metadata

    assert main(["emulator", "reset", "--filestore", str(store), "--slot", "0"]) == 0
    assert "reset" in capsys.readouterr().out
    assert (store / "chip0.json").read_text() != public  # new keys
    assert not (store / "0.pkcs11.json").exists()
    assert main(["emulator", "list", "--filestore", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chips"][0]["serial"] == serial  # same serial

    assert (
        main(
            ["emulator", "reset", "--filestore", str(store), "--slot", "0", "--device", "ATECC608"]
        )
        == 0
    )
    capsys.readouterr()
    assert "device = ATECC608\n" in (store / "0.conf").read_text()
    assert not (store / "chip0.root-ca.pem").exists()

    assert main(["emulator", "delete", "--filestore", str(store), "--slot", "2"]) == 2
    assert "left alone" in one_error(capsys.readouterr().err)
    assert main(["emulator", "delete", "--filestore", str(store)]) == 2  # --slot is required
    capsys.readouterr()
    assert main(["emulator", "delete", "--filestore", str(store), "--slot", "1"]) == 0
    capsys.readouterr()
    assert not (store / "chip1.json").exists() and not (store / "1.conf").exists()
    assert (store / "2.conf").exists()


# --- pubkey, sign, verify, random ----------------------------------------------------------------


def test_pubkey_is_the_key_the_device_certificate_certifies(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pubkey", "--filestore", str(store), "--out", str(tmp_path / "d.pub")]) == 0
    capsys.readouterr()
    key = serialization.load_pem_public_key((tmp_path / "d.pub").read_bytes())
    assert main(["certs", "--filestore", str(store), "--json"]) == 0
    device = x509.load_pem_x509_certificate(json.loads(capsys.readouterr().out)["device"].encode())
    assert device.public_key() == key


def test_sign_then_verify_and_openssl_agrees(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg, sig, pub = tmp_path / "msg", tmp_path / "msg.sig", tmp_path / "d.pub"
    msg.write_bytes(b"hello chip\n" * 100)
    base = ["--filestore", str(store)]
    assert main(["sign", *base, "--in", str(msg), "--out", str(sig)]) == 0
    assert main(["verify", *base, "--in", str(msg), "--signature", str(sig)]) == 0
    assert "signature OK" in capsys.readouterr().out
    assert main(["pubkey", *base, "--out", str(pub)]) == 0
    capsys.readouterr()
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(sig), str(msg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert openssl.stdout.strip() == "Verified OK", openssl
    msg.write_bytes(b"tampered")
    assert main(["verify", *base, "--in", str(msg), "--signature", str(sig), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False
    assert main(["sign", *base, "--in", str(msg), "--format", "raw", "--json"]) == 0
    raw = bytes.fromhex(json.loads(capsys.readouterr().out)["signature"])
    sig.write_bytes(raw)
    assert len(raw) == 64
    assert (
        main(["verify", *base, "--in", str(msg), "--signature", str(sig), "--pubkey", str(pub)])
        == 0
    )


def test_sign_with_a_key_the_token_does_not_have_lists_the_keys_it_has(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m").write_text("x")
    argv = ["sign", "--filestore", str(store), "--in", str(tmp_path / "m"), "--out", "-"]
    assert main([*argv, "--key", "nope"]) == 2
    assert "its keys: 'device' (chip slot 0)" in one_error(capsys.readouterr().err)


def test_random_bytes_and_its_bounds(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for count in (1, 31, 33, 100):
        assert main(["random", "--filestore", str(store), "--bytes", str(count)]) == 0
        assert len(bytes.fromhex(capsys.readouterr().out.strip())) == count
    for bad in ("0", "65537", "x"):
        assert main(["random", "--filestore", str(store), "--bytes", bad]) == 2
        one_error(capsys.readouterr().err)


def test_an_unlocked_chip_is_named_where_its_answers_mean_little(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank"
    assert main(["emulator", "init", "--device", "ATECC608", "--filestore", str(blank)]) == 0
    out = capsys.readouterr().out
    assert "provision" in out
    assert main(["random", "--filestore", str(blank)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "FFFF0000" * 8  # the chip's test pattern ...
    assert "warning: the configuration zone is unlocked" in err and "test pattern" in err
    assert main(["info", "--filestore", str(blank)]) == 0
    assert "a blank or half-provisioned chip" in capsys.readouterr().out


def test_certs_are_titled(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--filestore", str(store)]) == 0
    out = capsys.readouterr().out
    titles = re.findall(r"^# (device certificate|signer certificate|root CA)", out, re.M)
    assert titles == ["device certificate", "signer certificate", "root CA"]
    assert len(x509.load_pem_x509_certificates(out.encode())) == 3


# --- raw: which packets use a key ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "keyed"),
    [
        ("07 30 00 00 00", False),  # Info
        ("07 41 A0 00 00", True),  # Sign
        ("07 43 0C 00 00", True),  # ECDH
        ("07 40 04 02 00", True),  # GenKey create
        ("07 40 00 00 00", False),  # GenKey public key
        ("07 1B 00 00 00", False),  # Random
        ("07 47 04 06 00", True),  # SHA HMAC start
        ("07 47 00 00 00", False),  # SHA start
        ("07 12 00 00 00", False),  # Write (clear)
        ("07 12 42 00 00", True),  # Write, encrypted
        ("07 99 00 00 00", True),  # unknown: fail closed
    ],
)
def test_raw_packets_that_use_a_key(packet: str, keyed: bool) -> None:
    from atecc.crc import crc16

    body = bytes.fromhex(packet)
    full = body + crc16(body).to_bytes(2, "little")
    assert (key_use(decode_command(full)) is not None) == keyed
