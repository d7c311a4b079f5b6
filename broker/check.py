"""``atecc broker --check``: what would stop the broker from working, or make it unsafe.

Owns: the diagnosis, one line per finding (``ok``, ``warn`` or ``FAIL``), exit status 1 when
anything failed. It checks libp11-kit, the module (loaded and initialised through p11-kit, its
tokens listed), who can read the filestore, the chip files and the I2C devices (the broker's
user, and nobody else, should), the socket directory, whether a broker already answers on the
socket, and the client module clients will need.

Must not: change anything (it only reads and probes), or print a secret (it lists labels and
modes, never file contents).
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broker import relay
from broker.peers import AllowList

#: Where Debian/Ubuntu and Fedora put p11-kit's client module.
CLIENT_MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/arm-linux-gnueabihf/pkcs11/p11-kit-client.so",
    "/usr/lib64/pkcs11/p11-kit-client.so",
    "/usr/lib/pkcs11/p11-kit-client.so",
)


class Report:
    def __init__(self) -> None:
        self.failed = False

    def ok(self, text: str) -> None:
        print(f"ok    {text}")

    def warn(self, text: str) -> None:
        print(f"warn  {text}")

    def fail(self, text: str) -> None:
        self.failed = True
        print(f"FAIL  {text}")


def _owner(st: os.stat_result) -> str:
    try:
        return pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        return str(st.st_uid)


def _private(path: Path, what: str, report: Report) -> None:
    """``path`` should be the broker user's alone (no access for others, no writes by group)."""
    try:
        st = path.stat()
    except OSError as exc:
        report.fail(f"{what} {path}: {exc.strerror}")
        return
    mode = stat.S_IMODE(st.st_mode)
    where = f"{what} {path} (owner {_owner(st)}, mode {mode:04o})"
    if not os.access(path, os.R_OK):
        report.fail(f"{where}: the broker's user cannot read it")
    elif mode & 0o007:
        report.warn(f"{where}: other users can reach it; make it readable by the broker only")
    elif mode & 0o020:
        report.warn(f"{where}: its group can write it")
    else:
        report.ok(where)


def _chip_files(filestore: Path) -> Iterator[tuple[str, Path]]:
    from atecc import slotfile

    for conf in slotfile.list_slot_files(filestore):
        yield "slot file", conf
        try:
            parsed = slotfile.parse_slot_file(conf)
        except (OSError, ValueError):
            continue  # the module's own check (C_GetSlotList) reports it
        interface: Any = parsed.interface
        if isinstance(interface, slotfile.EmulatorInterface):
            yield "emulator state", Path(interface.state_path)
        elif isinstance(interface, slotfile.I2CInterface):
            yield "I2C device", Path(f"/dev/i2c-{interface.bus}")


def _tokens(module: relay.ManagedModule, report: Report) -> None:
    ffi = relay.ffi
    fl = module.function_list
    count = ffi.new("CK_ULONG *")
    rv = fl.C_GetSlotList(1, ffi.NULL, count)
    if rv != relay.CKR_OK:
        report.fail(f"C_GetSlotList returned 0x{rv:X}")
        return
    slots = ffi.new("CK_SLOT_ID[]", max(1, count[0]))
    rv = fl.C_GetSlotList(1, slots, count)
    if rv != relay.CKR_OK or count[0] == 0:
        report.fail("the module shows no token: check the filestore and the slot files")
        return
    info = ffi.new("CK_TOKEN_INFO *")
    for i in range(count[0]):
        if fl.C_GetTokenInfo(slots[i], info) == relay.CKR_OK:
            label = bytes(ffi.buffer(info.label)).decode(errors="replace").rstrip()
            serial = bytes(ffi.buffer(info.serialNumber)).decode(errors="replace").rstrip()
            report.ok(f"slot {slots[i]}: token {label!r}, serial {serial}")


def _socket(path: str, report: Report) -> None:
    sock_path = Path(path)
    directory = sock_path.parent
    try:
        st = directory.stat()
    except OSError:
        report.warn(f"socket directory {directory} does not exist (the broker creates it, 0750)")
        return
    mode = stat.S_IMODE(st.st_mode)
    text = f"socket directory {directory} (owner {_owner(st)}, mode {mode:04o})"
    if mode & 0o001:
        report.warn(f"{text}: every user may enter; make it 0750 with the clients' group")
    else:
        report.ok(text)
    if not sock_path.exists():
        report.ok(f"no broker listening on {sock_path} yet")
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(sock_path))
            probe.sendall(b"\x00")
            answer = probe.recv(1)
        except OSError as exc:
            report.warn(f"{sock_path} exists but nothing answers ({exc.strerror or exc})")
            return
    if answer:
        report.ok(f"a broker answers on {sock_path}")
    else:
        report.warn(f"a process on {sock_path} closed the connection (allow list?)")


def run(module_path: str, socket_path: str, allow: AllowList) -> int:
    """Print the diagnosis; 0 when nothing failed."""
    from atecc import slotfile

    report = Report()
    problem = relay.p11kit_problem()
    if problem:
        report.fail(f"libp11-kit: {problem} (install p11-kit)")
    else:
        report.ok("libp11-kit found")
    client = next((p for p in CLIENT_MODULE_CANDIDATES if os.path.isfile(p)), None)
    if client:
        report.ok(f"client module for applications: {client}")
    else:
        report.warn("p11-kit-client.so not found: clients need it (Debian: p11-kit-modules)")
    report.ok(f"allowed peers: {allow.describe()}")

    filestore = Path(slotfile.filestore_dir(None))
    _private(filestore, "filestore", report)
    if filestore.is_dir():
        for what, path in _chip_files(filestore):
            _private(path, what, report)

    if not problem:
        try:
            module = relay.ManagedModule(module_path)
        except relay.BrokerError as exc:
            report.fail(str(exc))
        else:
            try:
                module.initialize()
                report.ok(f"module {module_path} loads and initialises through p11-kit")
                _tokens(module, report)
                module.finalize()
            except relay.BrokerError as exc:
                report.fail(str(exc))
            finally:
                module.release()
    _socket(socket_path, report)
    return 1 if report.failed else 0
