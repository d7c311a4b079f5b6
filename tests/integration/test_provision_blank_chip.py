"""``atecc provision`` end to end (issue 14 point 1): a blank emulated chip becomes a device that
every peer uses -- p11tool lists its key and certificate, the OpenSSL engine makes a CSR with it,
a mutual-TLS handshake completes, C_GenerateKeyPair and C_GenerateKey fill its free slots; the
dry run sends no write or lock (checked at the bus, over the real smbus2 path); locking needs
--yes; a process killed between steps is finished by running the same command again; the
certificate step wants the user PIN when the token requires one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from .conftest import BIN, REPO, read_until, require, run

pytestmark = pytest.mark.native

ATECC = str(BIN / "atecc")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A filestore with a blank emulated ATECC608 as slot 0, and a CA next to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATECC_", "OPENSSL_CONF"))}
    env["ATECC_PKCS11_FILESTORE"] = str(tmp_path / "fs")
    run([ATECC, "emulator", "init", "--device", "ATECC608"], env=env)
    run(
        [ATECC, "ca", "init", "--dir", str(tmp_path / "ca"), "--subject", "/CN=Provisioning CA"],
        env=env,
    )
    return env


def atecc(env: dict[str, str], *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([ATECC, *argv], env=env, check=check, input="", timeout=120)


def locks(env: dict[str, str]) -> tuple[bool, bool]:
    info = json.loads(atecc(env, "info", "--json").stdout)
    return info["config_locked"], info["data_locked"]


def test_locking_needs_yes_and_nothing_is_written_without_it(env):
    state = Path(env["ATECC_PKCS11_FILESTORE"]) / "chip0.json"
    before = state.read_bytes()
    proc = atecc(env, "provision", check=False)
    assert proc.returncode == 2 and "run again with --yes" in proc.stderr
    assert "slot 0  SlotConfig" in proc.stdout  # the plan was shown first
    assert state.read_bytes() == before


def test_on_a_terminal_locking_goes_on_only_when_yes_is_typed(env):
    import pty

    for answer, expected in ((b"no\n", 2), (b"yes\n", 0)):
        pid, fd = pty.fork()
        if pid == 0:  # the child: atecc on a terminal, as a user runs it
            os.execve(ATECC, [ATECC, "provision"], env)
        try:
            asked = read_until(fd, b"Type 'yes'")
            os.write(fd, answer)
            rest = read_until(fd, b"\x00", timeout=60)  # everything until it exits
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        assert b"This locks chip" in asked
        assert os.waitstatus_to_exitcode(status) == expected, rest
        assert locks(env) == ((True, True) if expected == 0 else (False, False))


def test_a_provisioned_blank_chip_serves_every_peer(env, module_path, tmp_path):
    proc = atecc(env, "provision", "--yes", "--ca-dir", str(tmp_path / "ca"), "--json")
    result = json.loads(proc.stdout)
    assert set(result["public_keys"]) == {"0", "1"}
    assert result["certificate"]["action"] == "stored"
    assert locks(env) == (True, True)

    listing = run([require("p11tool"), "--provider", module_path, "--list-all"], env=env).stdout
    assert re.search(r"Type: Private key \(EC/ECDSA-SECP256R1\)\n\s+Label: device\n", listing)
    assert "Label: device-tls" in listing  # the certificate from the CA, next to the key

    # the OpenSSL engine makes a CSR with the new key, and a mutual-TLS handshake completes
    demo = run(
        ["bash", str(REPO / "scripts" / "mtls-demo.sh"), str(tmp_path / "work"), module_path],
        env=env,
        timeout=180,
    )
    assert "mtls-demo: OK" in demo.stdout, demo.stdout + demo.stderr
    request = x509.load_pem_x509_csr((tmp_path / "work" / "client_csr.csr").read_bytes())
    public = bytes.fromhex(result["public_keys"]["0"])
    assert request.public_key().public_numbers().x == int.from_bytes(public[:32], "big")

    # the free slots take new keys: C_GenerateKeyPair (slots 2-4) and C_GenerateKey (slot 9)
    tool = [require("pkcs11-tool"), "--module", module_path, "--login", "--pin", "0000"]
    run([*tool, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "spare"], env=env)
    run([*tool, "--keygen", "--key-type", "AES:16", "--label", "aes", "--sensitive"], env=env)
    objects = run([*tool, "--list-objects"], env=env).stdout
    assert "label:      spare" in objects and "label:      aes" in objects

    again = json.loads(
        atecc(env, "provision", "--yes", "--ca-dir", str(tmp_path / "ca"), "--json").stdout
    )
    assert again["certificate"]["action"] == "unchanged"
    assert again["public_keys"] == result["public_keys"]


def test_the_dry_run_sends_no_write_or_lock_checked_at_the_bus(tmp_path):
    filestore = tmp_path / "i2c"
    filestore.mkdir()
    (filestore / "0.conf").write_text("interface = i2c,0xC0,1\ndevice = ATECC608\n")
    state, log = tmp_path / "blank.json", tmp_path / "i2c.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATECC_")}
    base = [ATECC, "emulator", "run", "--state", str(state), "--device", "ATECC608"]
    proc = run(
        [
            *base,
            "--log",
            str(log),
            "--",
            ATECC,
            "--filestore",
            str(filestore),
            "provision",
            "--dry-run",
        ],
        env=env,
        timeout=120,
    )
    assert "dry run, nothing is written or locked" in proc.stdout
    planned = re.findall(
        r"^\s+(write-config|lock-config|generate-key|write-data|lock-data)\s", proc.stdout, re.M
    )
    assert planned.count("lock-config") == 1 and planned.count("lock-data") == 1
    traffic = log.read_text()
    assert "command READ" in traffic
    for opcode in ("WRITE", "LOCK", "GENKEY", "PRIVWRITE", "UPDATEEXTRA"):
        assert f"command {opcode}" not in traffic, opcode
    # and the real thing over the same path: the chip is provisioned and the module serves it
    module = run([ATECC, "module-path"], env=env).stdout.strip()
    script = (
        f"{ATECC} --filestore {filestore} provision --yes > /dev/null && "
        f"ATECC_PKCS11_FILESTORE={filestore} {require('pkcs11-tool')} --module {module} -O"
    )
    proc = run([*base, "--", "bash", "-c", script], env=env, timeout=120)
    assert "label:      device" in proc.stdout
    assert "interface = i2c,0xC0,1" in (filestore / "0.conf").read_text()


KILL_AT = """
import os, sys
from atecc.provision import plan
step = sys.argv[1]
plan.step_hook = lambda name: os._exit(9) if name == step else None
if step == "store-certificate":
    import cryptoki.provision
    cryptoki.provision.store_certificate = lambda *a, **k: os._exit(9)
from atecc.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "step", ["write-config", "lock-config", "write-data", "lock-data", "store-certificate"]
)
def test_a_kill_between_steps_is_finished_by_the_same_command(env, tmp_path, step):
    argv = ["provision", "--yes", "--ca-dir", str(tmp_path / "ca")]
    killed = run([sys.executable, "-c", KILL_AT, step, *argv], env=env, check=False, input="")
    assert killed.returncode == 9, killed.stderr
    finished = json.loads(atecc(env, *argv, "--json").stdout)
    assert locks(env) == (True, True)
    assert finished["certificate"]["action"] == "stored"
    if step == "store-certificate":  # the CA had signed: that certificate is used, not another
        assert any("reused" in line for line in finished["steps"])
        listing = atecc(env, "ca", "list", "--dir", str(tmp_path / "ca"), "--json").stdout
        assert json.loads(listing)["total"] == 1


def test_the_certificate_step_wants_the_pin_when_the_token_requires_one(env, tmp_path, token_pins):
    filestore = Path(env["ATECC_PKCS11_FILESTORE"])
    atecc(env, "provision", "--yes")
    with (filestore / "0.conf").open("a") as conf:
        conf.write("user_pin = required\n")
    token_pins(filestore, so_pin=b"so-secret-1", user_pin=b"2468-user")
    argv = ["provision", "--yes", "--ca-dir", str(tmp_path / "ca")]
    proc = atecc(env, *argv, check=False)
    assert proc.returncode == 2 and "needs the user PIN" in proc.stderr
    proc = run([ATECC, *argv], env={**env, "ATECC_PIN": "2468-user"}, input="", timeout=120)
    assert "stored on the token" in proc.stdout
    assert "user_pin = required" in (filestore / "0.conf").read_text()  # kept by the rewrite
