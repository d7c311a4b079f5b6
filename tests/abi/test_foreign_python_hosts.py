"""Python hosts the module cannot run in: python-pkcs11 on another Python X.Y, and on the same
X.Y in an environment without the project's dependencies.

Each must get an error from the module (python-pkcs11 raises it) and exactly one line on stderr
that says what is wrong and that the broker is the way to use the module from that host -- no
hang, no traceback. The hosts are the venvs ``scripts/setup.sh`` makes in ``.venv-hosts/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._support import REPO, describe, host_env, make_filestore, run

HOSTS = REPO / ".venv-hosts"
MINE = f"{sys.version_info.major}.{sys.version_info.minor}"

HOST_SCRIPT = r"""
import sys
import pkcs11
try:
    lib = pkcs11.lib(sys.argv[1])
    print("slots", len(lib.get_slots()))
except pkcs11.exceptions.PKCS11Error as exc:
    print("error", type(exc).__name__)
"""


def host_python(name: str) -> Path:
    python = HOSTS / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{python} is missing: scripts/setup.sh makes it (needs pyenv's Python)")
    return python


def other_version_host() -> Path:
    for candidate in sorted(HOSTS.glob("py3.*")):
        if candidate.name != f"py{MINE}-bare" and not candidate.name.endswith("-bare"):
            return host_python(candidate.name)
    pytest.skip("no .venv-hosts/py3.X of another version: scripts/setup.sh makes one")


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def test_python_pkcs11_on_another_python_version_gets_an_error_and_one_line_naming_the_broker(
    module_path, tmp_path
):
    python = other_version_host()
    filestore = make_filestore(tmp_path / "filestore")
    proc = run([python, "-c", HOST_SCRIPT, module_path], env=host_env(filestore), timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["error", "GeneralError"], describe(proc)
    line = one_line(proc)
    assert f"this module was built for Python {MINE}" in line, line
    assert "atecc broker" in line and "p11-kit-client.so" in line, line


def test_python_pkcs11_without_the_projects_dependencies_gets_an_error_and_one_line(
    module_path, tmp_path
):
    python = host_python(f"py{MINE}-bare")
    filestore = make_filestore(tmp_path / "filestore")
    proc = run([python, "-c", HOST_SCRIPT, module_path], env=host_env(filestore), timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["error", "GeneralError"], describe(proc)
    line = one_line(proc)
    assert "lacks _cffi_backend, cryptography, smbus2" in line, line
    assert str(HOSTS / f"py{MINE}-bare") in line, line
    assert "atecc broker" in line and "p11-kit-client.so" in line, line


def test_the_same_host_with_the_dependencies_works(module_path, tmp_path):
    """The control: this test venv (same X.Y, dependencies installed) runs the module."""
    filestore = make_filestore(tmp_path / "filestore")
    proc = run([sys.executable, "-c", HOST_SCRIPT, module_path], env=host_env(filestore))
    assert proc.stdout.split() == ["slots", "1"], describe(proc)
    assert not proc.stderr.strip(), describe(proc)


def test_the_dependency_check_covers_every_runtime_dependency_of_the_module():
    """Every dependency the module's packages (cryptoki, atecc) import is checked; others, such
    as pyOpenSSL for the fleet server, are not the module's business."""
    import ast
    import re
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d)[0].lower() for d in deps}
    import_names = {"cffi": "cffi", "pyopenssl": "OpenSSL"}  # distribution -> import name
    used = set()
    for package in ("cryptoki", "atecc"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    used.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    used.add(node.module.split(".")[0])
    needed = {n for n in names if import_names.get(n, n) in used or n == "cffi"}
    modules = {"cffi": "_cffi_backend"}  # cffi's run-time part is its backend
    source = (REPO / "native" / "build_module.py").read_text()
    checked = ast.literal_eval(re.search(r"^RUNTIME_MODULES = (\(.*?\))$", source, re.M)[1])
    assert {modules.get(n, n) for n in needed} == set(checked), (needed, checked)
