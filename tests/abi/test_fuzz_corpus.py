"""CI's replay of the C ABI fuzz corpus (``fuzz/corpus``, grown and run by ``fuzz/run.sh``).

``fuzz/abi_fuzz.c`` is built in replay mode (``-DREPLAY``: a ``main`` that runs each file once)
with the same gcc the other ABI tests use, so CI needs no clang. Every committed input, including
each past finding, must run without a finding (CKR_GENERAL_ERROR, a write past a buffer, a crash,
a hang) and without a traceback on the host's stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import REPO, compile_c_host, describe, host_env, run

FUZZ = REPO / "fuzz"


@pytest.fixture(scope="module")
def replay(module_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "abi_fuzz_replay"
    return compile_c_host(FUZZ / "abi_fuzz.c", out, "-Wextra", "-DREPLAY")


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
