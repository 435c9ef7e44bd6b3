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
                   "ingest floor (the same rows into an in-memory table, no index, no rollup)",
                   "ingest ceiling (the same rows inserted by SQLite itself, no Python", "growth from 10,000 to 20,000",
                   "recomp: median with nothing remembered", "all targets"):
        assert figure in out, figure


def test_ingest_ceiling_leaves_the_database_unchanged(tmp_path: Path) -> None:
    """The ceiling inserts a chunk into the real events table and rolls it back."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import analytics_10m as bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    import numpy as np

    from walleta.catalog import load_catalog
    from walleta.events import prepare_events
    from walleta.store import open_store

    bench.configure_customers(50)
    chunk = prepare_events(bench.generate_chunk(np.random.default_rng(1), 0, 3000, 6000), load_catalog(), source="bench")
    path = tmp_path / "events.db"
    store = open_store(f"sqlite:///{path}")
    store.write_events(chunk)
    before = store.fetch("SELECT COUNT(*), MAX(ts_us), SUM(cost_pico) FROM usage_events")
    store.close()
    rate = bench.table_insert_rate(path, chunk)  # asserts every row went in before the rollback
    assert rate > 0
    store = open_store(f"sqlite:///{path}", create=False)
    assert store.fetch("SELECT COUNT(*), MAX(ts_us), SUM(cost_pico) FROM usage_events") == before
    store.close()
