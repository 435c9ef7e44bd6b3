"""The simulator on a real Store (SQLite and PostgreSQL) and the `walleta simulate` CLI end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.cli import main
from walleta.demo import build_demo
from walleta.events import record_events
from walleta.fx import load_fx
from walleta.schema import UNATTRIBUTED
from walleta.simulator.engine import simulate
from walleta.simulator.loader import load_usage
from walleta.simulator.plans import load_scenario
from walleta.store import open_store

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "data" / "plans"
USD = 10**12


def _ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)


def _fill(store) -> None:
    """Two customers, two months, two models; revenue in USD and in a currency with no FX rate."""
    rows = [
        # acme, January: 1M input on gpt-4.1 ($2) and 0.5M output on gpt-4.1-mini ($0.80)
        {"ts_us": _ts("2026-01-10T10:00:00"), "customer_id": "acme", "feature": "chat", "model": "gpt-4.1", "input_tokens": 1_000_000, "requests": 10},
        {"ts_us": _ts("2026-01-20T10:00:00"), "customer_id": "acme", "feature": "draft", "model": "gpt-4.1-mini", "output_tokens": 500_000, "requests": 5},
        # acme, February: 0.1M output on gpt-4.1 ($0.80)
        {"ts_us": _ts("2026-02-03T10:00:00"), "customer_id": "acme", "feature": "chat", "model": "gpt-4.1", "output_tokens": 100_000, "requests": 1},
        # bolt, February only; and an unattributed call
        {"ts_us": _ts("2026-02-04T10:00:00"), "customer_id": "bolt", "feature": "chat", "model": "gpt-4.1", "input_tokens": 500_000, "requests": 2},
        {"ts_us": _ts("2026-02-05T10:00:00"), "customer_id": UNATTRIBUTED, "feature": "chat", "model": "gpt-4.1", "input_tokens": 500_000, "requests": 2},
    ]
    record_events(store, pd.DataFrame(rows), load_catalog(), source="test")
    store.upsert(
        "customers",
        [
            {"customer_id": "acme", "plan": "Pro", "seats": 4, "name": "", "signup_date": "", "email": "", "stripe_customer_id": "", "source": "t"},
            {"customer_id": "bolt", "plan": "Starter", "seats": None, "name": "", "signup_date": "", "email": "", "stripe_customer_id": "", "source": "t"},
            {"customer_id": "cora", "plan": "Pro", "seats": 1, "name": "", "signup_date": "", "email": "", "stripe_customer_id": "", "source": "t"},
        ],
        ["customer_id"],
    )
    revenue = [
        ("r1", "acme", "2026-01-01", "2026-01-31", 9900, "USD"),
        ("r2", "acme", "2026-02-01", "2026-02-28", 9900, "USD"),
        ("r3", "bolt", "2026-02-01", "2026-02-28", 2900, "XTS"),  # no FX rate for XTS
        ("r4", "cora", "2026-02-01", "2026-02-28", 9900, "USD"),  # pays, no usage
    ]
    store.upsert(
        "revenue_entries",
        [{"uid": u, "customer_id": c, "period_start": s, "period_end": e, "amount_minor": a, "currency": cur, "kind": "subscription", "document_id": u, "description": "", "source": "t"} for u, c, s, e, a, cur in revenue],
        ["uid"],
    )


def test_load_usage_from_the_store(store):
    _fill(store)
    data = load_usage(store, fx=load_fx())
    cells = data.cells.set_index(["customer_id", "month"]).sort_index()
    assert data.months == ("2026-01", "2026-02")
    assert list(cells.index) == [("acme", "2026-01"), ("acme", "2026-02"), ("bolt", "2026-02"), ("cora", "2026-02")]
    acme_jan = cells.loc[("acme", "2026-01")]
    assert (acme_jan["input_tokens"], acme_jan["output_tokens"], acme_jan["requests"]) == (1_000_000, 500_000, 15)
    assert acme_jan["cost_pico"] == 2 * USD + 800_000_000_000
    assert acme_jan["baseline_revenue_pico"] == 99 * USD
    assert (acme_jan["current_plan"], acme_jan["seats"]) == ("Pro", 4)
    assert pd.isna(cells.loc[("bolt", "2026-02"), "baseline_revenue_pico"])  # XTS has no rate
    assert pd.isna(cells.loc[("bolt", "2026-02"), "seats"])
    assert cells.loc[("cora", "2026-02"), "cost_pico"] == 0 and cells.loc[("cora", "2026-02"), "baseline_revenue_pico"] == 99 * USD
    assert any("not attributed" in n for n in data.notes) and any("XTS" in n for n in data.notes)
    assert set(data.by_model["model"]) == {"gpt-4.1", "gpt-4.1-mini"}
    assert set(data.by_feature["feature"]) == {"chat", "draft"}
    result = simulate(load_scenario(PLANS / "token-allocation.yaml"), data, load_fx())
    totals = result.totals.set_index("plan")
    assert totals.loc["TOTAL", "revenue_pico"] == (9900 + 9900 + 2900 + 9900) * 10**10  # all within allocations
    assert totals.loc["TOTAL", "baseline_revenue_pico"] == 3 * 99 * USD  # bolt's XTS revenue is left out


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    store = open_store(url)
    build_demo(store)
    store.close()
    return url


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "walleta", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_end_to_end_on_the_demo(demo_url, tmp_path):
    out = tmp_path / "results.csv"
    stripe_json = tmp_path / "prices.json"
    done = _cli("--db", demo_url, "simulate", "data/plans/token-allocation.yaml", "--target-margin", "0.6", "--out", str(out), "--stripe-json", str(stripe_json), "--ranges")
    assert done.returncode == 0, done.stderr
    assert "Token allocation with overage: 195 customers, 2025-12 to 2026-11" in done.stdout
    assert "Prices for a 60% gross margin" in done.stdout and "Ranges (90%" in done.stdout
    assert "Customers who hit a hard cap" in done.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 195
    assert {"customer_id", "revenue_usd", "ai_cost_usd", "margin_pct", "revenue_change_usd", "outcome", "first_cap"} <= set(rows[0])
    # the CSV adds up to the engine's totals on the same data
    store = open_store(demo_url)
    result = simulate(load_scenario(PLANS / "token-allocation.yaml"), load_usage(store, fx=load_fx()), load_fx())
    store.close()
    total = int(result.totals.set_index("plan").loc["TOTAL", "revenue_pico"])
    assert sum(D(r["revenue_usd"]) for r in rows) == D(total) / USD  # USD revenue is whole cents: exact
    prices = json.loads(stripe_json.read_text())
    assert [p["plan"] for p in prices["plans"]] == ["Free", "Starter", "Pro", "Business"]


def test_flat_plans_reproduce_todays_monthly_invoices(demo_url):
    store = open_store(demo_url)
    result = simulate(load_scenario(PLANS / "flat-today.yaml"), load_usage(store, fx=load_fx()), load_fx())
    store.close()
    # Monthly USD customers with no refund pay exactly today's price: their revenue change is 0.
    unchanged = (result.customers["revenue_change_pico"] == 0).sum()
    assert unchanged >= 150
    # Every difference is explained by annual contracts, EUR prices or refunds (never by more than a year's fee).
    assert (result.customers["revenue_change_pico"].abs() <= 12 * 499 * USD).all()


def test_cli_against_another_scenario_and_errors(demo_url, tmp_path, capsys, monkeypatch):
    """In-process runs of the same entry point (the subprocess run above covers `python -m walleta`)."""
    monkeypatch.chdir(ROOT)
    code = main(["--db", demo_url, "simulate", "data/plans/payg-markup.yaml", "--against", "data/plans/flat-today.yaml", "--from", "2026-01", "--to", "2026-03", "--format", "csv"])
    assert code == 0
    table = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert table[-1]["plan"] == "TOTAL" and D(table[-1]["margin_pct"]) == D("37.50")  # cost + 60% is a 37.5% margin
    assert D(table[-1]["baseline_revenue_usd"]) > 0  # the flat plans' revenue is the baseline now
    assert main(["--db", demo_url, "simulate", "data/plans/token-allocation.yaml", "--format", "json", "--ranges", "--target-margin", "0.5"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {"totals", "caps", "ranges", "prices", "notes"} <= set(document)
    assert document["totals"][-1]["plan"] == "TOTAL" and document["caps"][0]["first_cap"]
    assert [p["plan"] for p in document["prices"]] == ["Free", "Starter", "Pro", "Business"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("plans: [{name: A, base_fee: '1.001'}]\n")
    assert main(["--db", demo_url, "simulate", str(bad)]) == 1
    assert "bad.yaml: plans[0] (A).base_fee" in capsys.readouterr().err
    assert main(["--db", demo_url, "simulate", "data/plans/flat-today.yaml", "--from", "2026-13"]) == 1
    assert "YYYY-MM" in capsys.readouterr().err


def test_cli_stripe_json_to_stdout_needs_no_database(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--db", f"sqlite:///{tmp_path / 'empty.db'}", "simulate", "data/plans/graduated-tiers.yaml", "--stripe-json"]) == 0
    assert json.loads(capsys.readouterr().out)["plans"][0]["prices"][0]["tiers_mode"] == "graduated"
