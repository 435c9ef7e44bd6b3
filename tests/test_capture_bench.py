"""bench/capture_overhead.py runs end to end (small size); timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_capture_overhead_bench_quick() -> None:
    result = subprocess.run([sys.executable, "bench/capture_overhead.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored events: deferred 300 of 300, live 300 of 300" in result.stdout
    for label in ("A tracked p50 overhead", "A tracked p99 overhead", "per-call ORM commit overhead / tracked overhead", "B tracked p50 / p99"):
        assert label in result.stdout
