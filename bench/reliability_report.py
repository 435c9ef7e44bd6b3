"""Print the figures of the last reliability run (test-artifacts/reliability.json).

    python bench/reliability_report.py            # the figures of the last run
    python bench/reliability_report.py --run      # run tests/reliability first (pytest -n 2), then print
    WALLETA_SOAK=1 python bench/reliability_report.py --run   # the long soak, then print
    python bench/reliability_report.py --quick    # same as no flag (for `make bench`)

The reliability tests write their counts as they run (tests/reliability/support.py:
record_figures): inputs tried by the fuzzers, faults injected (processes killed, API faults,
read-only / full disks), concurrent processes, and what was lost (events, rows, calls confirmed
flushed). docs/RELIABILITY.md quotes these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "test-artifacts" / "reliability.json"
LOSS_KEYS = ("events_lost", "rows_lost", "flushed_calls_lost", "events_sent_twice", "events_doubled", "tracebacks")
FAULT_KEYS = ("processes_killed", "faults_injected")
INPUT_KEYS = ("inputs",)


def summarise(report: dict[str, Any]) -> dict[str, int]:
    """Totals over every test: inputs tried, faults injected, losses, known-bug hits."""
    totals: dict[str, int] = defaultdict(int)
    for counts in report.get("tests", {}).values():
        for key in INPUT_KEYS:
            totals["inputs tried"] += int(counts.get(key, 0))
        for key in FAULT_KEYS:
            totals["faults injected"] += int(counts.get(key, 0))
        for key in LOSS_KEYS:
            totals[f"lost: {key}"] += int(counts.get(key, 0))
        totals["known-bug hits (tolerated, see xfails)"] += int(counts.get("known_bug_hits", 0)) + int(counts.get("tracebacks_known_bugs", 0))
        totals["concurrent processes"] += int(counts.get("processes", 0))
        totals["app reads under concurrent writes"] += int(counts.get("app_reads", 0))
    return dict(totals)


def render(report: dict[str, Any]) -> str:
    """The report as text: one line per test, then the totals."""
    lines = [f"reliability run {report.get('run', '?')} (tests recorded: {len(report.get('tests', {}))})", ""]
    for name in sorted(report.get("tests", {})):
        counts = {k: v for k, v in report["tests"][name].items() if k not in ("recorded_at", "kind")}
        lines.append(f"  {name:58s} " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    lines.append("")
    for key, value in summarise(report).items():
        lines.append(f"{key:45s} {value:>10,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run tests/reliability first (pytest -n 2)")
    parser.add_argument("--quick", action="store_true", help="only print the last figures (the default)")
    parser.add_argument("--file", type=Path, default=DEFAULT, help="figures file (default: test-artifacts/reliability.json)")
    args = parser.parse_args(argv)
    if args.run:
        command = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider"]
        status = subprocess.run(command, cwd=ROOT, env=os.environ.copy()).returncode
        if status != 0:
            print(f"the reliability suite failed (exit {status}); figures below are from the tests that ran")
    if not args.file.exists():
        print(f"no figures yet: {args.file} does not exist; run `python bench/reliability_report.py --run`")
        return 0
    print(render(json.loads(args.file.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
