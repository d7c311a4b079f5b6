"""``atecc emulator run``: programs that open ``/dev/i2c-N`` talk to the emulated chip.

The project's own driver goes through its real hardware path here (``smbus2`` → ``/dev/i2c-1``
ioctls → the C preload shim → the emulator process): the driver contract suite's hardware tests,
the ``atecc`` CLI and the PKCS#11 module with ``pkcs11-tool`` on an ``interface = i2c,0x6A,1``
slot file. A small C client checks the shim's i2c-dev behaviour (errno values, limits,
descriptors), with no Python in the client process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from .conftest import BIN, REPO, export_public_key, require, run

ATECC = str(BIN / "atecc")
PYTHON = str(BIN / "python")
PRELOAD = REPO / "atecc" / "emulator" / "libatecc_i2c_preload.so"


def emulator_run(state: Path, *command: str, env=None, timing="fast", check=True, timeout=120):
    cmd = [ATECC, "emulator", "run", "--state", str(state), "--timing", timing, "--", *command]
    return run(cmd, env=env, check=check, timeout=timeout)


@pytest.fixture
def i2c_filestore(tmp_path: Path) -> Path:
    """A filestore whose slot 0 names I2C bus 1, address 0x6A; the chip state beside it."""
    filestore = tmp_path / "filestore"
    run([ATECC, "emulator", "init", "--filestore", str(filestore)])
    (filestore / "0.conf").write_text(
        "interface = i2c,0x6A,1\ndevice = ATECC608-TNGTLS\nlabel = 00ABC\n", encoding="utf-8"
    )
    return filestore


@pytest.fixture
def i2c_env(i2c_filestore: Path) -> dict[str, str]:
    env = dict(os.environ, ATECC_PKCS11_FILESTORE=str(i2c_filestore))
    env.pop("ATECC_PKCS11_LOG", None)
    return env


def test_driver_contract_suite_passes_over_smbus2(tmp_path: Path) -> None:
    """The contract tests marked ``hardware`` run through smbus2 against the emulated chip."""
    env = dict(os.environ, ATECC_I2C_BUS="1", ATECC_I2C_ADDRESS="0x35")
    proc = emulator_run(
        tmp_path / "chip.json",
        PYTHON,
        "-m",
        "pytest",
        "-q",
        "-m",
        "hardware",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / "contract" / "test_device.py"),
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) >= 20, proc.stdout


def test_atecc_cli_on_an_i2c_slot_file_sees_the_emulated_chip(i2c_filestore: Path) -> None:
    state = i2c_filestore / "chip0.json"
    over_i2c = json.loads(
        emulator_run(state, ATECC, "--filestore", str(i2c_filestore), "config", "--json").stdout
    )
    direct = tmp_direct = i2c_filestore.parent / "direct"
    tmp_direct.mkdir()
    (direct / "0.conf").write_text(f"interface = emulator,{state}\n", encoding="utf-8")
    expected = json.loads(run([ATECC, "--filestore", str(direct), "config", "--json"]).stdout)
    assert over_i2c == expected
    assert over_i2c["serial"].startswith("0123")


def test_atecc_cli_over_i2c_with_realistic_timing(i2c_filestore: Path) -> None:
    state = i2c_filestore / "chip0.json"
    proc = emulator_run(
        state, ATECC, "--filestore", str(i2c_filestore), "random", "--json", timing="realistic"
    )
    assert len(bytes.fromhex(json.loads(proc.stdout)["random"])) == 32


def test_pkcs11_tool_lists_generates_and_signs_over_i2c(
    module_path: str, i2c_filestore: Path, i2c_env: dict[str, str], tmp_path: Path
) -> None:
    state = i2c_filestore / "chip0.json"
    tool = require("pkcs11-tool")
    listing = emulator_run(state, tool, "--module", module_path, "-L", env=i2c_env).stdout
    assert re.search(r"token label\s*:\s*00ABC", listing), listing
    emulator_run(
        state,
        tool,
        "--module",
        module_path,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "over-i2c",
        "--id",
        "4343",
        # a private (CKA_PRIVATE) key needs a login; without user_pin = required any PIN does
        "--login",
        "--pin",
        "0000",
        env=i2c_env,
    )
    objects = emulator_run(state, tool, "--module", module_path, "-O", env=i2c_env).stdout
    assert "over-i2c" in objects and "device" in objects, objects
    digest = tmp_path / "digest"
    digest.write_bytes(hashlib.sha256(b"signed over /dev/i2c-1").digest())
    sig = tmp_path / "sig"
    emulator_run(
        state,
        tool,
        "--module",
        module_path,
        "--sign",
        "-m",
        "ECDSA",
        "--id",
        "4343",
        "--login",
        "--pin",
        "0000",
        "--input-file",
        str(digest),
        "--output-file",
        str(sig),
        env=i2c_env,
    )
    # The public key is read through the emulator interface: the key the chip made over I2C.
    direct_env = dict(i2c_env)
    (i2c_filestore / "0.conf").write_text(
        "interface = emulator,chip0.json\ndevice = ATECC608-TNGTLS\nlabel = 00ABC\n",
        encoding="utf-8",
    )
    pub = serialization.load_pem_public_key(
        export_public_key(module_path, direct_env, label="over-i2c")
    )
    raw = sig.read_bytes()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and len(raw) == 64
    pub.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        digest.read_bytes(),
        ec.ECDSA(Prehashed(hashes.SHA256())),
    )


# -- the shim, seen from a C program ----------------------------------------------------------


@pytest.fixture(scope="module")
def i2c_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("client") / "i2c_client"
    proc = subprocess.run(
        ["gcc", "-O1", "-Wall", "-o", str(out), str(Path(__file__).with_name("i2c_client.c"))],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def shim_report(i2c_client: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("shim") / "chip.json"
    proc = emulator_run(state, str(i2c_client), "/dev/i2c-1", "0x35", check=False)
    no_server = subprocess.run(
        [str(i2c_client), "/dev/i2c-1", "--no-server"],
        env=dict(
            os.environ,
            LD_PRELOAD=str(PRELOAD),
            ATECC_I2C_EMULATOR_DEVICE="/dev/i2c-1",
            ATECC_I2C_EMULATOR_SOCKET=str(state.parent / "nobody-listens.sock"),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    report: dict[str, str] = {}
    for line in (proc.stdout + no_server.stdout).splitlines():
        status, _, rest = line.partition(" ")
        report[rest.split(":")[0]] = line if status == "FAIL" else "ok"
    return report


@pytest.mark.parametrize(
    "check",
    [
        "openat_opens_the_emulated_device",
        "fortified_open_opens_the_emulated_device",
        "o_cloexec_is_honoured",
        "i2c_funcs_reports_plain_i2c",
        "write_to_address_0_wakes_and_nacks",
        "i2c_rdwr_runs_a_command",
        "absent_address_nacks_with_eremoteio",
        "slave_address_above_0x7f_einval",
        "unknown_ioctl_is_enotty",
        "more_than_42_messages_einval",
        "message_over_8192_bytes_einval",
        "dup_descriptor_reaches_the_chip",
        "forked_child_uses_inherited_fd",
        "parent_connection_survives_the_child",
        "close_releases_the_descriptor",
        "closed_descriptor_is_not_emulated",
        "second_open_reaches_the_chip",
        "other_paths_pass_through",
        "open_without_emulator_fails_with_enodev",
        "other_paths_pass_through_without_emulator",
    ],
)
def test_preload_shim_behaves_like_i2c_dev(shim_report: dict[str, str], check: str) -> None:
    assert shim_report.get(check) == "ok", shim_report.get(check, f"{check} did not run")


# -- the run itself ---------------------------------------------------------------------------


def test_run_returns_the_command_exit_status(tmp_path: Path) -> None:
    proc = emulator_run(tmp_path / "chip.json", "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7


def test_server_ends_when_the_client_is_killed(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = emulator_run(tmp_path / "chip.json", "sh", "-c", "kill -KILL $$", check=False)
    assert proc.returncode == 128 + 9
    assert time.monotonic() - start < 20


def test_run_leaves_no_socket_directory_behind(tmp_path: Path) -> None:
    proc = emulator_run(
        tmp_path / "chip.json", "sh", "-c", 'echo "$ATECC_I2C_EMULATOR_SOCKET"', check=True
    )
    socket_path = Path(proc.stdout.strip())
    assert socket_path.name == "i2c.sock"
    assert not socket_path.parent.exists()


def test_missing_command_is_a_one_line_error(tmp_path: Path) -> None:
    proc = emulator_run(tmp_path / "chip.json", "/nonexistent/program", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("atecc: error: cannot run /nonexistent/program:")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_transfer_log_decodes_commands(tmp_path: Path) -> None:
    filestore = tmp_path / "fs"
    run([ATECC, "emulator", "init", "--filestore", str(filestore)])
    (filestore / "0.conf").write_text("interface = i2c,0x6A,1\n", encoding="utf-8")
    log = tmp_path / "i2c.log"
    run(
        [
            ATECC,
            "emulator",
            "run",
            "--state",
            str(filestore / "chip0.json"),
            "--log",
            str(log),
            "--",
            ATECC,
            "--filestore",
            str(filestore),
            "random",
        ]
    )
    text = log.read_text()
    assert "W 0x00 01  | wake pulse" in text  # the driver's wake byte (atecc/transport.py)
    assert "EREMOTEIO" in text
    assert "status WAKE_OK" in text
    assert "command RANDOM param1=0x00 param2=0x0000" in text
    assert "32-byte output" in text
