"""Fixtures for the ABI tests: the built library, the C harness, an emulated filestore.

Owns: building ``cryptoki/libatecc_pkcs11.so`` when it is missing or older than its build
sources (``python -m native.build_module``, so a fresh checkout works after ``pip install -e .``),
compiling ``harness.c`` against p11-kit's ``pkcs11.h``, and marking every test under
``tests/abi`` ``native``. Shared helpers are in ``_support.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._support import (
    BUILD_SOURCES,
    HERE,
    LIBRARY,
    REPO,
    compile_c_host,
    describe,
    make_filestore,
    require_core,
    run,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.native)


@pytest.fixture(scope="session")
def module_path() -> Path:
    """The built library; built here when missing or older than native/*.py."""
    stale = not LIBRARY.exists() or any(
        src.stat().st_mtime > LIBRARY.stat().st_mtime for src in BUILD_SOURCES
    )
    if stale:
        proc = run(
            [sys.executable, "-m", "native.build_module", str(LIBRARY)], cwd=REPO, timeout=300
        )
        if proc.returncode != 0:
            pytest.fail(f"building the Cryptoki library failed:\n{describe(proc)}")
    return LIBRARY


@pytest.fixture(scope="session")
def harness(module_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``harness.c`` compiled against p11-kit's pkcs11.h."""
    return compile_c_host(HERE / "harness.c", tmp_path_factory.mktemp("harness") / "harness")


@pytest.fixture
def filestore(tmp_path: Path) -> Path:
    require_core()
    return make_filestore(tmp_path / "filestore")
