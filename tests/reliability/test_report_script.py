"""bench/reliability_report.py prints the recorded figures and their totals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_script_prints_totals(tmp_path: Path) -> None:
    figures = {"run": "r1", "tests": {
        "faults.a[sqlite]": {"kind": "fault", "processes_killed": 7, "events_lost": 0},
        "fuzz.b": {"kind": "fuzz", "inputs": 40, "known_bug_hits": 2},
        "concurrency.c": {"kind": "concurrency", "processes": 6, "app_reads": 90, "events_lost": 0},
    }}
    path = tmp_path / "reliability.json"
    path.write_text(json.dumps(figures))
    out = subprocess.run([sys.executable, "bench/reliability_report.py", "--quick", "--file", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line[:45].strip(): line[45:].strip() for line in out.stdout.splitlines() if line and not line.startswith(" ")}
    assert lines["inputs tried"] == "40" and lines["faults injected"] == "7"
    assert lines["lost: events_lost"] == "0" and lines["concurrent processes"] == "6"
    assert "faults.a[sqlite]" in out.stdout
    missing = subprocess.run([sys.executable, "bench/reliability_report.py", "--file", str(tmp_path / "none.json")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 0 and "no figures yet" in missing.stdout
