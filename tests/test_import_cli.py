"""`walleta import csv|openai` and `walleta mapping` as a cron job would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.openai_admin import FakeOpenAIAdmin, bucket, page

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
SECRET = "sk-admin-CLI-secret-value"


def walleta(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run([sys.executable, "-m", "walleta", "--db", db, *args], cwd=ROOT, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=120)


def test_csv_import_says_the_kind_and_summarises(sqlite_url: str) -> None:
    done = walleta(sqlite_url, "import", "csv", str(SAMPLES / "usage.csv"), "--progress")
    assert done.returncode == 0, done.stderr
    assert "kind: usage (detected from the header" in done.stdout
    assert "usage.csv (usage): read 8, imported 8, skipped 0, errors 0, cost covered $" in done.stdout
    assert "100% writing" in done.stderr  # the progress bar
    again = walleta(sqlite_url, "import", "csv", str(SAMPLES / "usage.csv"))
    assert again.returncode == 0 and "imported 0, skipped 8" in again.stdout and "%" not in again.stderr


def test_rejected_rows_give_exit_status_3_and_an_error_file(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "usage.csv"
    source.write_text("timestamp,customer_id,model,input_tokens,output_tokens\n2025-10-01,acme,gpt-5-mini,10,1\nsoon,acme,gpt-5-mini,x,1\n")
    done = walleta(sqlite_url, "import", "csv", str(source), "--kind", "usage")
    assert done.returncode == 3
    error_file = tmp_path / "usage.errors.csv"
    assert f"rejected rows written to {error_file}" in done.stdout and error_file.exists()
    assert "usage.csv row 3, column timestamp: unparseable time" in done.stderr
    assert "usage.csv row 3, column input_tokens: not a number" in done.stderr
    assert "read 2, imported 1, skipped 0, errors 1" in done.stdout


def test_a_file_that_is_not_csv_fails_with_one_message(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "report.xlsx"
    source.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    done = walleta(sqlite_url, "import", "csv", str(source))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: report.xlsx is a spreadsheet or ZIP archive (.xlsx/.ods/.zip), not a CSV file: open it and save or export it as CSV (UTF-8), then import that"]


def test_openai_import_uses_the_admin_key_from_the_environment_and_never_prints_it(sqlite_url: str) -> None:
    with FakeOpenAIAdmin() as fake:
        fake.state.empty()
        fake.state.set_pages("completions", [page([bucket(1_759_276_800, [{"object": "organization.usage.completions.result", "input_tokens": 100, "output_tokens": 10, "num_model_requests": 1, "project_id": "proj_a", "model": "gpt-5-mini"}])])])
        env = {"OPENAI_ADMIN_KEY": SECRET, "OPENAI_BASE_URL": fake.base_url}
        done = walleta(sqlite_url, "-v", "import", "openai", "--since", "2025-10-01", "--until", "2025-10-01", env=env)
        assert done.returncode == 0, done.stderr
        assert "OpenAI API (openai): read 1, imported 1" in done.stdout
        assert all(r["authorization"] == f"Bearer {SECRET}" for r in fake.state.requests)
        assert SECRET not in done.stdout + done.stderr
        mapped = walleta(sqlite_url, "mapping", "set", "project", "proj_a", "acme")
        assert mapped.returncode == 0 and "1 usage rows re-mapped" in mapped.stdout
        listing = walleta(sqlite_url, "mapping", "list", "--format", "csv")
        assert "openai_project,proj_a,acme,acme,1," in listing.stdout
        fake.state.projects = [{"id": "proj_b", "object": "organization.project", "name": "Globex", "created_at": 1, "archived_at": None, "status": "active"}]
        fake.state.api_keys = {"proj_b": [{"object": "organization.project.api_key", "id": "key_b1", "name": "prod", "redacted_value": "sk-...x", "created_at": 1, "owner": {"type": "user", "user": {"id": "user_1", "name": "Ann"}}}]}
        template = walleta(sqlite_url, "mapping", "list", "--openai", "--format", "csv", env=env)
        assert template.returncode == 0, template.stderr
        lines = template.stdout.splitlines()
        assert lines[0].startswith("source,key,customer_id,")
        assert any(line.startswith("openai_api_key,key_b1,,") and "user:Ann" in line for line in lines)
        assert SECRET not in template.stdout + template.stderr
    missing = walleta(sqlite_url, "import", "openai")
    assert missing.returncode == 1 and "OPENAI_ADMIN_KEY is not set" in missing.stderr


def test_a_file_with_too_many_columns_fails_with_one_message(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "wide.csv"
    source.write_bytes(b"a," * 5_000 + b"\n")
    done = walleta(sqlite_url, "import", "csv", str(source))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: wide.csv: the header row has 5,001 columns; at most 1,000 are supported "
                                                "(check that this is the right file and that it has one record per line)"]


def test_an_amount_too_large_is_a_rejected_row_with_exit_status_3(sqlite_url: str, tmp_path: Path) -> None:
    source = tmp_path / "revenue.csv"
    source.write_text("customer_id,period_start,amount,currency\nacme,2026-01-01,1e400,USD\nacme,2026-01-01,99.00,USD\n")
    done = walleta(sqlite_url, "import", "csv", str(source), "--kind", "revenue")
    assert done.returncode == 3, done.stderr
    assert "revenue.csv row 2, column amount: amount too large" in done.stderr
    assert "Traceback" not in done.stderr
