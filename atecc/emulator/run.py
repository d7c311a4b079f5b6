"""``atecc emulator run``: start any program with ``/dev/i2c-N`` served by an emulated chip.

Owns: starting the command with the C preload shim (``libatecc_i2c_preload.so``, built from
``native/i2c_preload.c`` by the project's install) and the two variables it reads, serving its
transfers from this process (:class:`~atecc.emulator.server.I2CServer`) until the command ends,
passing on SIGTERM/SIGHUP, and returning the command's exit status (128 + N after signal N).

One emulator process per run: every process the command starts inherits the preload and talks to
the same chip. The client side holds no Python. When the command exits, the server stops and the
private socket directory is removed, whatever grandchildren are still running (their transfers
then fail with EIO).

Must not: change the chip anywhere but through the bus, or leave the socket behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from atecc.emulator.server import I2CServer

PRELOAD_NAME = "libatecc_i2c_preload.so"
SOCKET_ENV = "ATECC_I2C_EMULATOR_SOCKET"
DEVICE_ENV = "ATECC_I2C_EMULATOR_DEVICE"
TIMINGS = ("fast", "realistic")
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)
#: Delivered by the terminal to the whole foreground group already; the child decides.
_IGNORED = (signal.SIGINT, signal.SIGQUIT)


class RunError(Exception):
    """The command could not be started; the message is one line for the user."""


def preload_library() -> Path:
    """Path of the built preload shim beside this module."""
    path = Path(__file__).with_name(PRELOAD_NAME)
    if not path.is_file():
        raise RunError(
            f"{path.name} is not built; reinstall the project (bash scripts/setup.sh, or "
            "pip install -e .)"
        )
    return path


def child_environment(
    base: dict[str, str], *, preload: Path, socket_path: Path, bus_number: int
) -> dict[str, str]:
    """``base`` plus the preload (first in ``LD_PRELOAD``) and the shim's two settings."""
    env = dict(base)
    previous = env.get("LD_PRELOAD", "").strip()
    env["LD_PRELOAD"] = f"{preload} {previous}".strip()
    env[SOCKET_ENV] = str(socket_path)
    env[DEVICE_ENV] = f"/dev/i2c-{bus_number}"
    return env


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run(
    command: Sequence[str],
    *,
    state_path: str | os.PathLike[str] | None = None,
    bus_number: int = 1,
    timing: str = "fast",
    device: str = "ATECC608-TNGTLS",
    log_path: str | os.PathLike[str] | None = None,
    notices: TextIO = sys.stderr,
) -> int:
    """Run ``command`` against an emulated chip on ``/dev/i2c-<bus_number>``; its exit status.

    :param state_path: the chip's state file; created with ``device`` if it does not exist, and a
        throwaway chip in the private run directory when None.
    :raises RunError: bad arguments, missing shim, or a command that cannot be started.
    """
    if not command:
        raise RunError("no command to run (atecc emulator run [options] -- COMMAND ...)")
    if not 0 <= bus_number <= 0xFFFF:
        raise RunError(f"bus number {bus_number} out of range")
    if timing not in TIMINGS:
        raise RunError(f"timing must be one of {', '.join(TIMINGS)}")
    if shutil.which(command[0]) is None:
        raise RunError(f"cannot run {command[0]}: no such program")
    preload = preload_library()

    from atecc.emulator.bus import EmulatedBus
    from atecc.emulator.profiles import create_chip
    from atecc.emulator.server import I2CServer
    from atecc.emulator.translog import TransferLog

    emulator_log = logging.getLogger("atecc.emulator")
    with contextlib.ExitStack() as stack:
        rundir = Path(tempfile.mkdtemp(prefix="atecc-i2c-"))
        stack.callback(shutil.rmtree, rundir, ignore_errors=True)
        state = Path(state_path) if state_path is not None else rundir / "chip.json"
        if not state.exists():
            create_chip(state, device)
            if state_path is not None:
                print(f"atecc emulator: created {state} ({device})", file=notices)
        bus = EmulatedBus(state, timing=timing)
        stack.callback(bus.close)
        handler = logging.StreamHandler(notices)
        handler.setFormatter(logging.Formatter("atecc emulator: %(message)s"))
        _attach(stack, emulator_log, handler)
        sink = None
        if log_path is not None:
            stream = stack.enter_context(open(log_path, "w", encoding="utf-8"))
            sink = TransferLog(stream)
            file_handler = logging.StreamHandler(stream)
            file_handler.setFormatter(logging.Formatter("%(message)s"))
            _attach(stack, emulator_log, file_handler)
        if emulator_log.getEffectiveLevel() > logging.WARNING:
            stack.callback(emulator_log.setLevel, emulator_log.level)
            emulator_log.setLevel(logging.WARNING)
        server = I2CServer(bus, rundir / "i2c.sock", sink=sink)
        stack.callback(server.close)
        env = child_environment(
            dict(os.environ), preload=preload, socket_path=server.path, bus_number=bus_number
        )
        try:
            proc = subprocess.Popen(list(command), env=env)
        except OSError as exc:
            raise RunError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
        return _supervise(proc, server)
    raise AssertionError("unreachable")  # pragma: no cover


def _attach(stack: contextlib.ExitStack, logger: logging.Logger, handler: logging.Handler) -> None:
    logger.addHandler(handler)
    stack.callback(logger.removeHandler, handler)


def _supervise(proc: subprocess.Popen[bytes], server: I2CServer) -> int:
    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    saved = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    saved.update({sig: signal.signal(sig, signal.SIG_IGN) for sig in _IGNORED})
    try:
        server.serve(lambda: proc.poll() is not None, pid=proc.pid)
        return _exit_status(proc.wait())
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)
