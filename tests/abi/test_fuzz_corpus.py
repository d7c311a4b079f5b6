"""CI's replay of the C ABI fuzz corpus (``fuzz/corpus``, grown and run by ``fuzz/run.sh``).

``fuzz/abi_fuzz.c`` is built in replay mode (``-DREPLAY``: a ``main`` that runs each file once)
with the same gcc the other ABI tests use, so CI needs no clang. Every committed input, including
each past finding, must run without a finding (CKR_GENERAL_ERROR, a write past a buffer, a crash,
a hang) and without a traceback on the host's stderr.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ._support import P11KIT_INCLUDE, REPO, describe, host_env, run

FUZZ = REPO / "fuzz"


@pytest.fixture(scope="module")
def replay(module_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None or not (P11KIT_INCLUDE / "p11-kit" / "pkcs11.h").exists():
        pytest.skip("gcc or p11-kit's pkcs11.h (libp11-kit-dev) is not installed")
    out = tmp_path_factory.mktemp("fuzz") / "abi_fuzz_replay"
    proc = run(
        [
            gcc,
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
            "-DREPLAY",
            f"-I{P11KIT_INCLUDE}",
            FUZZ / "abi_fuzz.c",
            "-o",
            out,
            "-ldl",
        ]
    )
    if proc.returncode != 0:
        pytest.fail(f"compiling fuzz/abi_fuzz.c failed:\n{describe(proc)}")
    return out


def test_fuzz_corpus_replays_without_a_finding_or_traceback(
    replay: Path, module_path: Path, filestore: Path
) -> None:
    inputs = sorted(p for p in (FUZZ / "corpus").iterdir() if p.is_file())
    assert len(inputs) >= 20, "the seed corpus is missing"
    env = host_env(filestore, ATECC_FUZZ_MODULE=str(module_path))
    proc = run([replay, *inputs], env=env, timeout=600)
    assert proc.returncode == 0, describe(proc)
    assert f"REPLAYED {len(inputs)} inputs" in proc.stdout, describe(proc)
    assert "FINDING" not in proc.stderr and "Traceback" not in proc.stderr, describe(proc)
