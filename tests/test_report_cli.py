"""`walleta report ...` on the hand-computed book: machine formats name money with its unit, round
once (half-even), keep unpriced usage in its own columns with a warning on stderr."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from walleta.cli import main
from walleta.store import open_store

from .analytics_fixture import PRICES, build_fixture, fixture_catalog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{folder / 'book.db'}"
    store = open_store(url)
    build_fixture(store, fixture_catalog(folder / "catalog"))
    store.close()
    (folder / "fx.csv").write_text("currency,usd_per_unit,as_of\nUSD,1,2026-01-31\nEUR,1.08,2026-01-31\n")
    (folder / "override.csv").write_text(PRICES)
    return url, {"WALLETA_FX_RATES": str(folder / "fx.csv"), "WALLETA_PRICE_OVERRIDES": str(folder / "override.csv")}


@pytest.fixture
def cli(book: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `walleta --db URL report ...` in this process (the entry point itself is run as
    `python -m walleta` once, below)."""
    url, env = book
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main(["--db", url, "report", *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def test_python_m_walleta_report_runs(book: tuple[str, dict[str, str]]) -> None:
    url, env = book
    result = subprocess.run([sys.executable, "-m", "walleta", "--db", url, "report", "models", "--format", "csv"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model,period,ai_cost_usd,cost_share_pct") and "gpt-99-unknown" in result.stdout
    assert "warning: 4 requests" in result.stderr


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_customers_csv_names_money_with_units_and_warns_about_unpriced_usage(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("customers", "--format", "csv")  # default period: the latest complete month, January 2026
    assert result.returncode == 0, result.stderr
    rows = {r["customer_id"]: r for r in _csv(result.stdout)}
    header = result.stdout.splitlines()[0].split(",")
    assert {"revenue_usd", "ai_cost_usd", "margin_usd", "margin_pct", "unpriced_requests", "unpriced_tokens"} <= set(header)
    assert not any(c.endswith("_pico") for c in header)
    acme = rows["acme"]
    assert (acme["revenue_usd"], acme["ai_cost_usd"], acme["margin_usd"], acme["margin_pct"]) == ("70.00", "3.28", "66.72", "95.32")  # 3.275 and 66.725 round half-even
    assert rows["mystery"]["unpriced_requests"] == "4" and rows["yen"]["unconverted_revenue"] == "JPY 10000"
    assert "warning: 4 requests (440,000 tokens) could not be priced" in result.stderr and "gpt-99-unknown" in result.stderr
    assert "JPY 10000" in result.stderr


def test_features_json_is_exact(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("features", "--from", "2026-01", "--format", "json", "--allocation", "weights:chat=3,search=1")
    assert result.returncode == 0, result.stderr
    assert '"allocated_revenue_usd": 206.19' in result.stdout  # a JSON number written from the exact decimal
    rows = {r["feature"]: r for r in json.loads(result.stdout)}
    assert rows["search"]["allocated_revenue_usd"] == 68.73 and rows["chat"]["ai_cost_usd"] == 15.0
    assert rows["chat"]["cost_per_request_usd"] == 0.294118


def test_models_and_trends_tables(cli) -> None:  # type: ignore[no-untyped-def]
    models = cli("models", "--from", "2026-01-16", "--to", "2026-01-31")
    assert models.returncode == 0 and "models report, 2026-01-16..2026-01-31" in models.stdout
    assert "m-big" in models.stdout and " 6.92 " in models.stdout  # $6.925 after the price cut, half-even to the even cent
    trends = cli("trends", "--by", "plan", "--grain", "month", "--from", "2026-01", "--to", "2026-02", "--format", "csv")
    rows = _csv(trends.stdout)
    assert {(r["bucket"], r["plan"], r["ai_cost_usd"]) for r in rows} >= {("2026-02", "Pro", "2.00"), ("2026-01", "(unattributed)", "1.00")}


def test_reconciliation_summary_and_rows(cli) -> None:  # type: ignore[no-untyped-def]
    summary = _csv(cli("reconciliation", "--by", "summary", "--format", "csv").stdout)
    amounts = {r["component"]: r["amount_usd"] for r in summary}
    assert amounts["billed (OpenAI Costs API)"] == "15.35" and amounts["billed with no logged usage"] == "7.00"
    table = cli("reconciliation", "--by", "project")
    assert table.returncode == 0 and "billed $15.35, estimated $18.98" in table.stdout and "proj_ghost" in table.stdout
    rows = _csv(cli("reconciliation", "--by", "day,project,line_item", "--format", "csv").stdout)
    output = [r for r in rows if r["line_item"] == "m-big, output" and r["day"] == "2026-01-10"][0]
    assert (output["difference_usd"], output["difference_pct"], output["status"]) == ("0.10", "25.00", "billed above estimate")


@pytest.mark.parametrize(
    ("args", "message"),
    [(("trends", "--by", "colour"), "trends --by"), (("customers", "--from", "2026-13"), "not a month"),
     (("features", "--allocation", "by_magic"), "unknown allocation rule"), (("customers", "--thresholds", "20,50,0"), "healthy >= moderate")],
)
def test_bad_arguments_fail_with_a_message(cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args)
    assert result.returncode == 1 and message in result.stderr
