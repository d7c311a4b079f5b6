"""The user PIN everywhere a chip key is used (issue 11, "Secrets that can be guessed"; issue 14
point 4): with ``user_pin = required``, every ``atecc`` command that uses a private key -- csr,
sign, cert-store, a raw packet that uses a key -- wants the user PIN, from ``--pin-file``,
``ATECC_PIN`` or a prompt that does not echo (never a ``--pin`` argument), and each try goes
through the module's counter and lockout. Through the OpenSSL engine, the PIN goes in the URI
(``pin-value=``) or with ``-passin``.

Before this change ``atecc csr`` and ``atecc raw`` signed with the chip key without any PIN, and
``atecc cert-store`` failed with a false "not issued for a key of this chip" (the key is hidden
before login and the command had no way to take a PIN).
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from atecc import commands as chip_commands
from cryptoki.constants import CKF

from .conftest import BIN, read_until, require, run

pytestmark = pytest.mark.native

ATECC = str(BIN / "atecc")
USER_PIN = "4711-user"
SO_PIN = "so-secret-1"


@pytest.fixture
def pin_env(tmp_path, token_pins) -> dict[str, str]:
    """A fresh emulated Trust&GO chip whose slot file says ``user_pin = required``, with its
    PINs set; the environment of a user's shell (no ATECC_PIN)."""
    filestore = tmp_path / "filestore"
    run([ATECC, "emulator", "init", "--filestore", str(filestore)])
    with (filestore / "0.conf").open("a") as conf:
        conf.write("user_pin = required\n")
    token_pins(filestore, so_pin=SO_PIN.encode(), user_pin=USER_PIN.encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATECC_", "OPENSSL_CONF"))}
    env["ATECC_PKCS11_FILESTORE"] = str(filestore)
    return env


def atecc(env: dict[str, str], *argv: str, pin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(env)
    if pin is not None:
        env["ATECC_PIN"] = pin
    # stdin is not a terminal here: a missing PIN is an error, never a hang on a prompt
    return run([ATECC, *argv], env=env, check=False, input="")


def one_error(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and lines and lines[-1].startswith("atecc: error: "), proc
    assert "Traceback" not in proc.stderr and "Error:" not in proc.stderr, proc.stderr
    return lines[-1]


def test_csr_without_the_pin_is_refused_when_the_token_requires_one(pin_env, tmp_path):
    out = tmp_path / "device.csr"
    proc = atecc(pin_env, "csr", "--out", str(out))
    assert "needs the user PIN" in one_error(proc)
    assert proc.returncode == 2 and not out.exists()
    proc = atecc(pin_env, "csr", "--out", str(out), pin=USER_PIN)
    assert proc.returncode == 0, proc.stderr
    assert x509.load_pem_x509_csr(out.read_bytes()).is_signature_valid


def test_a_wrong_pin_is_counted_by_the_module_and_says_how_many_tries_are_left(
    pin_env, tmp_path, read_token_flags
):
    filestore = Path(pin_env["ATECC_PKCS11_FILESTORE"])
    (tmp_path / "msg").write_text("hello")
    proc = atecc(pin_env, "sign", "--in", str(tmp_path / "msg"), "--out", "-", pin="0000-bad")
    assert "wrong PIN (9 tries left" in one_error(proc)
    assert read_token_flags(filestore) & CKF.USER_PIN_COUNT_LOW  # the module's own counter
    proc = atecc(pin_env, "csr", "--out", str(tmp_path / "x.csr"), pin="0000-bad")
    assert "wrong PIN (8 tries left" in one_error(proc)
    # a right PIN resets the count, as a C_Login does
    proc = atecc(
        pin_env, "sign", "--in", str(tmp_path / "msg"), "--out", str(tmp_path / "sig"), pin=USER_PIN
    )
    assert proc.returncode == 0, proc.stderr
    assert not read_token_flags(filestore) & CKF.USER_PIN_COUNT_LOW


def test_ten_wrong_pins_lock_the_pin_for_every_command_and_for_the_module(
    pin_env, tmp_path, read_token_flags
):
    filestore = Path(pin_env["ATECC_PKCS11_FILESTORE"])
    (tmp_path / "msg").write_text("hello")
    sign = ["sign", "--in", str(tmp_path / "msg"), "--out", str(tmp_path / "sig")]
    for _ in range(9):
        atecc(pin_env, *sign, pin="0000-bad")
    assert "now locked" in one_error(atecc(pin_env, *sign, pin="0000-bad"))
    assert read_token_flags(filestore) & CKF.USER_PIN_LOCKED
    for argv in (sign, ["csr", "--out", str(tmp_path / "x.csr")]):
        assert "locked" in one_error(atecc(pin_env, *argv, pin=USER_PIN))  # even the right one
    assert not (tmp_path / "sig").exists()


def test_cert_store_takes_the_pin_instead_of_a_false_not_this_chip_message(pin_env, tmp_path):
    ca, csr, crt = tmp_path / "ca", tmp_path / "device.csr", tmp_path / "device.crt"
    run([ATECC, "ca", "init", "--dir", str(ca), "--subject", "/CN=PIN CA"], env=pin_env)
    assert atecc(pin_env, "csr", "--out", str(csr), pin=USER_PIN).returncode == 0
    run([ATECC, "ca", "sign", "--dir", str(ca), "--csr", str(csr), "--out", str(crt)], env=pin_env)
    error = one_error(atecc(pin_env, "cert-store", "--in", str(crt)))
    assert "needs the user PIN" in error and "not issued" not in error
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    proc = atecc(pin_env, "cert-store", "--in", str(crt), "--pin-file", str(pin_file))
    assert proc.returncode == 0 and "next to private key 'device'" in proc.stdout, proc.stderr
    assert proc.stderr == ""  # a 0600 PIN file: no warning


def test_a_pin_file_other_users_can_read_is_used_with_a_warning(pin_env, tmp_path):
    (tmp_path / "msg").write_text("hello")
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN)
    pin_file.chmod(0o644)
    proc = atecc(
        pin_env,
        "sign",
        "--in",
        str(tmp_path / "msg"),
        "--out",
        str(tmp_path / "sig"),
        "--pin-file",
        str(pin_file),
    )
    assert proc.returncode == 0 and "readable by other users" in proc.stderr


def test_there_is_no_pin_argument_on_the_command_line(pin_env, tmp_path):
    proc = atecc(pin_env, "sign", "--in", "-", "--out", "-", "--pin", USER_PIN)
    assert proc.returncode == 2 and "unrecognized arguments: --pin" in proc.stderr


def raw_sign_packet() -> str:
    command, _ = chip_commands.sign(0, source=chip_commands.MessageSource.MSG_DIGEST_BUFFER)
    return command.encode().hex(" ")


def test_a_raw_packet_that_uses_a_chip_key_needs_the_pin(pin_env):
    proc = atecc(pin_env, "raw", raw_sign_packet())
    assert "needs the user PIN" in one_error(proc)
    assert proc.stdout == ""  # nothing was sent, so no reply
    proc = atecc(pin_env, "raw", raw_sign_packet(), pin="0000-bad")
    assert "wrong PIN" in one_error(proc) and proc.stdout == ""
    # with the PIN the packet goes to the chip (which refuses a Sign without a loaded digest)
    proc = atecc(pin_env, "raw", raw_sign_packet(), pin=USER_PIN)
    assert proc.returncode == 0 and proc.stdout.strip() == "04 0F 23 42", proc
    # a packet that uses no key needs no PIN
    assert atecc(pin_env, "raw", "07 30 00 00 00 03 5D").returncode == 0


def test_without_user_pin_required_no_command_asks_for_a_pin(token_env, tmp_path):
    (tmp_path / "msg").write_text("hello")
    env = {k: v for k, v in token_env.items() if k != "ATECC_PIN"}
    for argv in (
        ["sign", "--in", str(tmp_path / "msg"), "--out", str(tmp_path / "sig")],
        ["csr", "--out", str(tmp_path / "x.csr")],
        ["raw", raw_sign_packet()],
    ):
        proc = run([ATECC, *argv], env=env, check=False, input="")
        assert proc.returncode == 0, (argv, proc.stderr)


def test_the_pin_prompt_on_a_terminal_does_not_echo(pin_env, tmp_path):
    (tmp_path / "msg").write_text("hello")
    sig = tmp_path / "sig"
    pid, fd = pty.fork()
    if pid == 0:  # the child: atecc on a terminal, as a user runs it
        os.execve(ATECC, [ATECC, "sign", "--in", str(tmp_path / "msg"), "--out", str(sig)], pin_env)
    try:
        prompt = read_until(fd, b"PIN")
        assert b"User PIN" in prompt
        os.write(fd, USER_PIN.encode() + b"\n")
        rest = read_until(fd, b"wrote")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, rest
    assert USER_PIN.encode() not in prompt + rest  # typed, never echoed
    assert sig.stat().st_size > 60


def test_the_engine_takes_the_pin_in_the_uri_or_with_passin(pin_env, tmp_path):
    conf = tmp_path / "engine.cnf"
    run([ATECC, "openssl-config", "engine", "--out", str(conf)], env=pin_env)
    env = {**pin_env, "OPENSSL_CONF": str(conf)}
    uri = "pkcs11:token=00ABC;object=device;type=private"
    openssl = require("openssl")

    def req(key: str, *extra: str) -> subprocess.CompletedProcess:
        out = tmp_path / "req.csr"
        out.unlink(missing_ok=True)
        return run(
            [
                openssl,
                "req",
                "-engine",
                "pkcs11",
                "-keyform",
                "engine",
                "-key",
                key,
                *extra,
                "-new",
                "-subj",
                "/CN=engine",
                "-out",
                str(out),
            ],
            env=env,
            check=False,
            input="",
        )

    assert req(uri).returncode != 0  # no PIN, no terminal: refused
    assert req(f"{uri};pin-value={USER_PIN}").returncode == 0
    assert req(uri, "-passin", f"pass:{USER_PIN}").returncode == 0
    assert x509.load_pem_x509_csr((tmp_path / "req.csr").read_bytes()).is_signature_valid
