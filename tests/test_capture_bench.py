"""bench/capture_overhead.py runs end to end (small size); timings are printed, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_capture_overhead_bench_quick() -> None:
    result = subprocess.run([sys.executable, "bench/capture_overhead.py", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored events: deferred 300 of 300, live 300 of 300, request-scoped 300 of 300, streamed 150 and 150 of 150" in result.stdout
    assert "[[['acme', 150, 150]], [['acme', 150, 150]]]" in result.stdout  # every streamed call recorded with its usage
    for label in (
        "targets, framing 1 - per-call block", "A tracked p50 overhead", "A tracked p99 overhead", "per-call ORM commit overhead / tracked overhead",
        "targets, framing 2 - request-scoped attribution", "A2 tracked p50 overhead", "A2 tracked p99 overhead",
        "A2 per-call ORM commit overhead (A) / request-scoped tracked overhead", "S streamed chat tracked p50 / p99 overhead",
        "S2 streamed chat, usage asked by the caller", "the attribute block alone, cold", "B tracked p50 / p99",
    ):
        assert label in result.stdout
