"""The import graph follows the layers: fleet -> cryptoki -> atecc, fleet -> atecc, nothing
imports fleet, and atecc (driver, emulator, chip certificates) imports neither cryptoki nor fleet,
not even by name through importlib."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DYNAMIC_IMPORTERS = {"import_module", "__import__", "find_spec"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports: import statements (at any depth) and string literals given
    to importlib.import_module / __import__ / find_spec."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DYNAMIC_IMPORTERS and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    return found


def top_level(module: str) -> str:
    return module.split(".", 1)[0]


def package_imports(package: str) -> dict[str, set[str]]:
    """``{file: {top-level packages of ours it imports}}`` for every file of ``package``."""
    ours = {"atecc", "cryptoki", "fleet"}
    result = {}
    for path in sorted((REPO / package).rglob("*.py")):
        result[str(path.relative_to(REPO))] = {
            top_level(m) for m in imported_modules(path) if top_level(m) in ours
        }
    return result


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("atecc", {"cryptoki", "fleet"}), ("cryptoki", {"fleet"})],
)
def test_lower_layers_never_import_upper_layers(package, forbidden):
    offenders = {
        path: sorted(deps & forbidden)
        for path, deps in package_imports(package).items()
        if deps & forbidden
    }
    assert offenders == {}, offenders


def test_the_checker_sees_static_and_dynamic_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nfrom fleet.ca import x\ndef f():\n    import cryptoki.token\n"
        "    importlib.import_module('cryptoki._paths')\n    __import__('fleet')\n"
    )
    assert {top_level(m) for m in imported_modules(sample)} == {"os", "fleet", "cryptoki"}


def test_the_fleet_layer_exists_and_uses_the_layers_below():
    deps = set().union(*package_imports("fleet").values())
    assert {"atecc", "cryptoki"} <= deps


def test_driver_commands_load_no_upper_layer():
    """At run time too: the atecc CLI with one of its own commands never loads fleet or cryptoki,
    while the fleet's commands are still there through the entry-point group."""
    probe = (
        "import sys\n"
        "from atecc import cli\n"
        "cli.build_parser(with_plugins=cli._wants_plugins(['info']))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fleet', 'cryptoki')))\n"
        "cli.build_parser(with_plugins=cli._wants_plugins(['ca', 'list']))\n"
        "print('fleet.cli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"
