"""Smoke run of the benchmark (bench/run.py --quick) so that it cannot rot.

No timing is asserted: the benchmark is a separate command (`.venv/bin/python bench/run.py`);
this only checks that the quick mode runs end to end and prints every row of its table.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = pytest.mark.native


def _missing() -> str | None:
    if not (ROOT / "cryptoki" / "libatecc_pkcs11.so").is_file():
        return "the Cryptoki library is not built"
    if not any(
        Path(p).is_file()
        for p in (
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        )
    ):
        return "SoftHSM2 is not installed"
    for tool in ("softhsm2-util", "pkcs11-tool", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("cc") is None or not Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h").is_file():
        return "no C compiler or no p11-kit pkcs11.h (libp11-kit-dev)"
    return None


def test_quick_benchmark_prints_every_row(tmp_path: Path) -> None:
    why = _missing()
    if why:
        pytest.skip(why)
    import run as bench_run  # bench/run.py

    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = (tmp_path / "results.md").read_text()
    assert text.splitlines()[0] in proc.stdout
    table = [line for line in text.splitlines() if line.startswith("| ")]
    for key, label in bench_run.row_labels(bench_run.QUICK).items():
        rows = [line for line in table if line.startswith(f"| {label}")]
        assert rows, f"row {key!r} missing from the table"
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert len(cells) == 6, rows[0]  # metric, SoftHSM2, direct, ratio, broker, ratio
        if key != "tls" or "TLS row skipped" not in text:
            assert cells[1] != "n/a" and cells[2] != "n/a", rows[0]
            if key in bench_run.BROKER_ROWS:
                assert cells[4] != "n/a" and cells[5] != "n/a", rows[0]
    for needle in (
        "chip's own time for a signature",
        "C_Sign latency, realistic timing",
        "overhead our driver and module add",
        "## Targets",
        "## Versions",
        "cores:",
    ):
        assert needle in text
    png = (tmp_path / "ratios.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_startup_breakdown_prints_every_step(tmp_path: Path) -> None:
    import startup  # bench/startup.py

    out = tmp_path / "startup.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "startup.py"), "--runs", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert out.read_text() == proc.stdout
    for label, _ in startup.STEPS:
        assert f"| {label} | " in proc.stdout
