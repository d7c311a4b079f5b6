"""A setuid program that loads the module must not let its caller choose the code it runs.

``ATECC_PKCS11_PYTHON`` names the interpreter the module embeds (an escape hatch for odd
installations). In a setuid/setgid process (AT_SECURE) the environment belongs to whoever started
it, so the variable must be ignored there: otherwise any user runs a Python of their choosing --
here, one whose site-packages hold a ``.pth`` file -- with the program's privileges.

The test is real, not simulated: it builds a small C host, makes it setuid root, and runs it as
an unprivileged uid (``setpriv``), which is what gives the process AT_SECURE. That needs root; the
same host run normally (not setuid) shows that the variable is honoured there, i.e. that the
planted interpreter would run if the module let it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from ._support import P11KIT_INCLUDE, describe, host_env, make_filestore, run

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="making a setuid-root test host needs root"
)

UNPRIVILEGED = 54321

HOST_C = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <p11-kit/pkcs11.h>
int main(int argc, char **argv)
{
    CK_C_GetFunctionList get;
    CK_FUNCTION_LIST_PTR fl;
    CK_RV rv;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen %s\n", dlerror()); return 2; }
    get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    if (!get || get(&fl) != CKR_OK) { printf("no function list\n"); return 2; }
    rv = fl->C_Initialize(NULL);
    printf("C_Initialize 0x%lx\n", rv);
    if (rv == CKR_OK)
        fl->C_Finalize(NULL);
    return 0;
}
"""


@pytest.fixture
def planted(tmp_path_factory) -> Path:
    """An 'interpreter' an unprivileged user controls: a venv-shaped directory whose
    site-packages runs code (a .pth line) that records the effective uid it ran with."""
    base = Path(tempfile.mkdtemp(prefix="atecc-planted-", dir="/tmp"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = base / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (base / "bin").mkdir()
    shutil.copy(Path(sys.base_prefix) / "bin" / version, base / "bin" / "python")
    (base / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n")
    marker = base / "ran-as"
    (site / "planted.pth").write_text(
        f"import os; open({str(marker)!r}, 'w').write(str(os.geteuid()))\n"
    )
    for path in [base, *base.rglob("*")]:
        os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def setuid_host(tmp_path) -> Path:
    cc = shutil.which("cc") or pytest.skip("no C compiler")
    if not (P11KIT_INCLUDE / "p11-kit" / "pkcs11.h").is_file():
        pytest.skip("p11-kit's pkcs11.h is not installed (libp11-kit-dev)")
    directory = Path(tempfile.mkdtemp(prefix="atecc-suid-", dir="/tmp"))
    directory.chmod(0o755)
    (directory / "host.c").write_text(HOST_C)
    exe = directory / "host"
    proc = run([cc, "-I", P11KIT_INCLUDE, "-o", exe, directory / "host.c", "-ldl"])
    assert proc.returncode == 0, describe(proc)
    yield exe
    shutil.rmtree(directory, ignore_errors=True)


def test_a_setuid_host_ignores_the_interpreter_named_in_its_callers_environment(
    module_path, tmp_path, planted, setuid_host
):
    filestore = make_filestore(tmp_path / "filestore")
    env = host_env(filestore, ATECC_PKCS11_PYTHON=str(planted / "bin" / "python"))
    marker = planted / "ran-as"

    # Not setuid: the escape hatch works, the planted interpreter's code runs.
    plain = run([setuid_host, module_path], env=env)
    assert marker.read_text() == "0", describe(plain)
    marker.unlink()

    # Setuid root, started by an unprivileged uid: the process is AT_SECURE.
    os.chown(setuid_host, 0, 0)
    setuid_host.chmod(0o4755)
    cmd = ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups"]
    elevated = run([*cmd, "--", setuid_host, module_path], env=env)
    assert not marker.exists(), f"planted code ran as uid {marker.read_text()}\n" + describe(
        elevated
    )
    assert "C_Initialize 0x0" in elevated.stdout, describe(elevated)  # the real interpreter
    assert "ignoring ATECC_PKCS11_PYTHON" in elevated.stderr, describe(elevated)


def test_a_setuid_host_does_not_append_to_a_log_file_named_by_its_caller(
    module_path, tmp_path, setuid_host
):
    """``ATECC_PKCS11_LOG=/some/file`` makes the module append lines (with text such as the
    filestore path, which the caller also chooses) to that file: in a setuid process that would
    be a write anywhere as root. In secure mode the module logs to stderr only."""
    filestore = make_filestore(tmp_path / "filestore")
    root_only = setuid_host.parent / "root-only"
    root_only.mkdir(mode=0o700)
    target = root_only / "appended"
    env = host_env(filestore, ATECC_PKCS11_LOG=f"{target}:DEBUG")
    plain = run([setuid_host, module_path], env=env)  # not setuid: the log file is honoured
    assert target.is_file() and target.stat().st_size > 0, describe(plain)
    target.unlink()
    os.chown(setuid_host, 0, 0)
    setuid_host.chmod(0o4755)
    cmd = ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups"]
    elevated = run([*cmd, "--", setuid_host, module_path], env=env)
    assert "C_Initialize 0x0" in elevated.stdout, describe(elevated)
    assert not target.exists(), describe(elevated)
