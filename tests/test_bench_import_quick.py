"""The import benchmark runs (small sizes); its speed figures are not asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_bench_quick_runs_and_reports_both_figures() -> None:
    done = subprocess.run([sys.executable, "bench/import_csv.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "20,000 rows" in done.stdout
    assert "pandas.read_csv alone" in done.stdout and "walleta import csv, end to end" in done.stdout
    assert "target 200,000 rows/s end to end:" in done.stdout
