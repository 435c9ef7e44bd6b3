"""The analytics bench runs end to end (tiny sizes; the real figures come from running it by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_runs_and_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "bench/analytics_10m.py", "--quick", "--sizes", "10000,20000", "--customers", "200", "--runs", "1", "--chunk", "10000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for page in ("overview", "customers", "features", "trends", "reconciliation"):
        assert f"\n{page} " in out
    for figure in ("ingest (Store.write_events, rollups maintained)", "query process peak RSS", "naive baseline",
                   "ingest floor (the same rows into an in-memory table, no index, no rollup)", "growth from 10,000 to 20,000",
                   "recomp: median with nothing remembered", "all targets"):
        assert figure in out, figure
