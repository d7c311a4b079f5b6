"""Smoke run of the fleet registry benchmark (bench/fleet_registry.py --quick) so that it cannot
rot. No timing is asserted: the benchmark is a separate command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_fleet_benchmark_quick_run_prints_both_tables(tmp_path):
    out = tmp_path / "fleet.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet_registry.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    assert "| sqlite | 100 |" in table and "| sqlite | 300 |" in table
    assert "| sqlite | 50 |" in table
