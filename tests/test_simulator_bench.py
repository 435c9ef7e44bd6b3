"""The simulator bench runs (small sizes) and its engine agrees with the per-customer loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_and_matches_the_loop():
    done = subprocess.run([sys.executable, "bench/simulator.py", "--quick", "--repeat", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "per-customer Python loop" in done.stdout
    line = next(l for l in done.stdout.splitlines() if l.startswith("identical results:"))
    matched, total = line.split(":")[1].split(" customer-months")[0].split(" of ")
    assert matched.strip() == total.strip()
