"""The PKCS#11 layer's checks for ``atecc doctor`` (entry-point group ``atecc.doctor``).

Owns: whether the module is built and loads in a C host (pkcs11-tool or p11tool, with a plain
``PATH``, as a system service would start it) and which Python it embeds; each token as the
module sees it (present, or absent and why: the chip, a refused metadata file, a misconfigured
slot file; the user PIN's state); libp11's OpenSSL engine and the OpenSSL 3 provider; the p11-kit
registration (found, pointing at this module, not at a stale path).

Must not: change anything, log in, or use a key.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from atecc.doctor import FAIL, INFO, OK, WARN, Finding

if TYPE_CHECKING:
    from cryptoki.library import Library

#: Where p11-kit reads module files: per user (ignored for root), then the system's.
P11_KIT_USER_DIR = Path("~/.config/pkcs11/modules")
P11_KIT_SYSTEM_DIRS = (Path("/etc/pkcs11/modules"), Path("/usr/share/p11-kit/modules"))
#: A C host's environment: no virtual environment on PATH, as a service or cron job has.
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def checks(filestore: Path) -> list[Finding]:
    """Every check of this layer, for the filestore ``atecc doctor`` found."""
    from cryptoki._paths import module_path

    try:
        module = module_path()
    except FileNotFoundError as exc:
        return [Finding("module", FAIL, str(exc), "pip install -e . (or bash scripts/setup.sh)")]
    found = check_module(module)
    found += check_tokens(filestore)
    found += check_openssl()
    found.append(check_p11_kit(module, p11_kit_dirs()))
    return found


# --- the module ----------------------------------------------------------------------------------


def linked_python(module: str) -> tuple[str, str | None]:
    """The libpython the module links and where the loader finds it (None: not found)."""
    try:
        out = subprocess.run(["ldd", module], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "libpython (ldd not available)", ""
    for line in out.splitlines():
        match = re.match(r"\s*(libpython\S+)\s+=>\s+(.*?)\s+\(0x", line)
        if match:
            return match.group(1), match.group(2)
        match = re.match(r"\s*(libpython\S+)\s+=>\s+not found", line)
        if match:
            return match.group(1), None
    return "no libpython", ""


def check_module(module: str) -> list[Finding]:
    library, where = linked_python(module)
    if where is None:
        return [
            Finding(
                "module",
                FAIL,
                f"{module} needs {library}, which the loader does not find: C hosts cannot load it",
                "rebuild it with a Python that has a shared libpython (pip install -e .)",
            )
        ]
    host = shutil.which("pkcs11-tool", path=PLAIN_PATH) or shutil.which("p11tool", path=PLAIN_PATH)
    if host is None:
        return [
            Finding(
                "module",
                WARN,
                f"{module} built (embeds {library}), but no C host here to try it",
                "apt install opensc (pkcs11-tool) to check that C programs load it",
            )
        ]
    # C_Initialize and C_GetInfo only: an empty filestore, so no chip is touched here
    argv = (
        [host, "--module", module, "--show-info"]
        if host.endswith("pkcs11-tool")
        else [host, "--provider", module, "--list-tokens"]
    )
    loaded = "Cryptoki version" if host.endswith("pkcs11-tool") else "Manufacturer"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=PLAIN_PATH, ATECC_PKCS11_LOG="stderr:ERROR")
    try:
        with tempfile.TemporaryDirectory() as empty:
            env["ATECC_PKCS11_FILESTORE"] = empty
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return [Finding("module", FAIL, f"{Path(host).name} could not run: {exc}")]
    if loaded not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return [
            Finding(
                "module",
                FAIL,
                f"{Path(host).name} cannot load {module}: {last}",
                "rebuild it (pip install -e .); README 'Known problems' lists host quirks",
            )
        ]
    return [
        Finding(
            "module",
            OK,
            f"{module} loads in a C host ({Path(host).name}, plain PATH); embeds {library} "
            f"({where})",
        )
    ]


# --- tokens --------------------------------------------------------------------------------------


def check_tokens(filestore: Path) -> list[Finding]:
    from cryptoki.library import Library
    from cryptoki.log import quiet

    lib = Library(filestore=filestore)
    found = []
    with quiet():  # each problem is a finding; the module's own log lines would repeat them
        lib.initialize(None)
        try:
            found = _token_findings(lib)
        finally:
            lib.finalize()
    return found


def _token_findings(lib: Library) -> list[Finding]:
    from cryptoki import errors
    from cryptoki.constants import CKF

    found = []
    for slot_id in lib.get_slot_list(False):
        name = f"token {slot_id}"
        info = lib.get_slot_info(slot_id)
        if not info.flags & CKF.TOKEN_PRESENT:
            found.append(
                Finding(
                    name,
                    FAIL,
                    f"absent: {info.slot_description.strip()}",
                    "the checks above say why; C_GetSlotInfo shows the same reason",
                )
            )
            continue
        try:
            token = lib.get_token_info(slot_id)
        except errors.Pkcs11Error as exc:
            found.append(Finding(name, FAIL, f"the module cannot read it: {exc}"))
            continue
        found.append(_token_finding(name, token))
    return found


def _token_finding(name: str, token: object) -> Finding:
    from cryptoki.constants import CKF

    flags = int(getattr(token, "flags", 0))
    label = str(getattr(token, "label", "")).strip()
    serial = str(getattr(token, "serial_number", "")).strip()
    model = str(getattr(token, "model", "")).strip()
    detail = f"label {label}, {model}, serial {serial}"
    if not flags & CKF.LOGIN_REQUIRED:
        return Finding(name, OK, f"{detail}; no PIN (user_pin not required)")
    if not flags & CKF.USER_PIN_INITIALIZED:
        return Finding(
            name,
            WARN,
            f"{detail}; user_pin = required but no user PIN is set: private keys cannot be used",
            "pkcs11-tool --init-token, then --init-pin (README: 'Slot-file key user_pin')",
        )
    if flags & CKF.USER_PIN_LOCKED:
        return Finding(
            name,
            FAIL,
            f"{detail}; the user PIN is locked after too many wrong tries",
            "the SO sets a new one: pkcs11-tool --login --login-type so --init-pin",
        )
    if flags & CKF.USER_PIN_FINAL_TRY:
        return Finding(name, WARN, f"{detail}; one user PIN try left before it locks")
    return Finding(name, OK, f"{detail}; user PIN set")


# --- OpenSSL, p11-kit ----------------------------------------------------------------------------


def check_openssl() -> list[Finding]:
    from cryptoki import openssl_config

    found = []
    try:
        found.append(Finding("openssl-engine", OK, openssl_config.engine_path()))
    except openssl_config.NotFoundError as exc:
        found.append(
            Finding(
                "openssl-engine",
                WARN,
                str(exc),
                "apt install libengine-pkcs11-openssl (the OpenSSL and curl examples use it)",
            )
        )
    try:
        found.append(Finding("openssl-provider", OK, openssl_config.provider_path()))
    except openssl_config.NotFoundError as exc:
        found.append(Finding("openssl-provider", INFO, f"{exc} (optional: the engine will do)"))
    return found


def p11_kit_dirs() -> list[Path]:
    """The directories p11-kit reads module files from for this user (not ~ for root)."""
    dirs = [] if os.geteuid() == 0 else [P11_KIT_USER_DIR.expanduser()]
    config_home = os.environ.get("XDG_CONFIG_HOME")
    if config_home and os.geteuid() != 0:
        dirs = [Path(config_home) / "pkcs11" / "modules"]
    return dirs + list(P11_KIT_SYSTEM_DIRS)


def p11_kit_module_settings(dirs: Iterable[Path], key: str) -> list[tuple[Path, str]]:
    """(module file, value) for every p11-kit module file in ``dirs`` that sets ``key``
    (``module``, ``remote``...); unreadable directories and files are skipped."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*:\s*(\S+)", re.M)
    found = []
    for directory in dirs:
        try:
            files = sorted(directory.glob("*.module"))
        except OSError:
            continue
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            match = pattern.search(text)
            if match:
                found.append((path, match.group(1)))
    return found


def check_p11_kit(module: str, dirs: Iterable[Path]) -> Finding:
    """This module registered with p11-kit, and no registration of it pointing elsewhere."""
    ours, stale = [], []
    for path, target in p11_kit_module_settings(dirs, "module"):
        if "libatecc_pkcs11" not in target:
            continue
        if Path(target).resolve() == Path(module).resolve():
            ours.append(path)
        elif not Path(target).exists():
            stale.append((path, target))
    if stale:
        path, target = stale[0]
        return Finding(
            "p11-kit",
            FAIL,
            f"{path} names {target}, which does not exist: p11-kit programs fail to load it",
            f"bash scripts/install-p11-kit-module.sh (rewrites it for {module}) or delete it",
        )
    if ours:
        return Finding("p11-kit", OK, f"registered: {ours[0]}")
    return Finding(
        "p11-kit",
        INFO,
        "not registered with p11-kit (optional)",
        "bash scripts/install-p11-kit-module.sh: then p11tool --list-tokens and the OpenSSL "
        "engine find the token with no configuration",
    )
