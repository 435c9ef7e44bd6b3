"""Foundation guarantees: Streamlit-free core, pinned public API, deterministic demo, CLI, app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import walleta
import walleta.money
from walleta.catalog import load_catalog
from walleta.demo import build_demo, demo_frames
from walleta.events import prepare_events
from walleta.headline import headline
from walleta.fx import load_fx
from walleta.money import PICO_PER_USD
from walleta.revenue import monthly_revenue, spread_by_month
from datetime import date

ROOT = Path(__file__).resolve().parent.parent


def _imports_streamlit(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "streamlit":
            return True
    return False


def test_only_the_ui_layer_imports_streamlit() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "walleta").rglob("*.py")
        if _imports_streamlit(p) and not str(p.relative_to(ROOT)).startswith(("walleta/ui.py", "walleta/ui/"))
    ]
    assert offenders == []


def test_importing_the_core_does_not_load_streamlit() -> None:
    code = (
        "import sys, pkgutil, importlib, walleta\n"
        "def walk(path, prefix):\n"  # walk_packages would import the walleta.ui package itself
        "    for m in pkgutil.iter_modules(path, prefix):\n"
        "        if m.name.startswith('walleta.ui') or m.name == 'walleta.__main__':\n"
        "            continue\n"
        "        module = importlib.import_module(m.name)\n"
        "        if m.ispkg:\n"
        "            walk(module.__path__, m.name + '.')\n"
        "walk(walleta.__path__, 'walleta.')\n"
        "print('streamlit' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# The deliberate public API. Adding a name is a decision: update this list in the same change.
PUBLIC_API = [
    "Catalog",
    "CatalogError",
    "ConfigError",
    "FxTable",
    "InputError",
    "Limits",
    "Recorder",
    "SchemaError",
    "SourceError",
    "Store",
    "UsageLimitExceeded",
    "WalletaError",
    "__version__",
    "attribute",
    "instrument",
    "load_catalog",
    "load_fx",
    "open_store",
    "price_events",
    "recorder_of",
    "tag",
]


def test_public_api_is_pinned() -> None:
    assert sorted(walleta.__all__) == sorted(PUBLIC_API)
    for name in walleta.__all__:
        assert hasattr(walleta, name), name


def test_demo_frames_are_deterministic() -> None:
    first = demo_frames(seed=7)
    second = demo_frames(seed=7)
    for a, b in zip(first, second):
        pd.testing.assert_frame_equal(a, b)
    other = demo_frames(seed=8)
    assert not first[1]["input_tokens"].equals(other[1]["input_tokens"])


def test_demo_shape_is_believable() -> None:
    customers, events, revenue = demo_frames()
    assert len(customers) == 200
    assert set(customers["plan"]) == {"Free", "Starter", "Pro", "Business"}
    assert 6 <= events["feature"].nunique() <= 10
    assert events["batch"].sum() > 0 and (events["cached_input_tokens"] > 0).any() and (events["reasoning_tokens"] > 0).any()
    assert (revenue["kind"] == "refund").sum() >= 3
    assert (revenue["period_end"].str.slice(0, 4) > revenue["period_start"].str.slice(0, 4)).any()  # annual plans
    assert set(revenue["currency"]) >= {"USD", "EUR"}
    priced = prepare_events(events, load_catalog(), source="demo")
    assert (priced["price_status"] == "priced").all()


def test_demo_has_a_handful_of_paying_customers_losing_money(sqlite_url: str) -> None:
    store = walleta.open_store(sqlite_url)
    build_demo(store)
    costs = store.query("SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM rollup_customer_month_model GROUP BY customer_id")
    revenue = monthly_revenue(store.query("SELECT * FROM revenue_entries"), load_fx())
    paid = revenue.groupby("customer_id")["revenue_pico"].sum()
    joined = costs.set_index("customer_id").join(paid.rename("revenue"), how="inner")
    losing = joined[joined["revenue"] > 0]
    losing = losing[losing["cost"] > losing["revenue"]]
    assert 3 <= len(losing) <= 20


def test_building_the_demo_twice_adds_nothing(sqlite_url: str) -> None:
    store = walleta.open_store(sqlite_url)
    first = build_demo(store)
    before = store.query("SELECT COUNT(*) AS n, CAST(SUM(cost_pico) AS BIGINT) AS c FROM usage_events").iloc[0].tolist()
    second = build_demo(store)
    after = store.query("SELECT COUNT(*) AS n, CAST(SUM(cost_pico) AS BIGINT) AS c FROM usage_events").iloc[0].tolist()
    assert first.events > 100_000 and second.events == 0 and before == after


def test_headline_matches_a_recount(sqlite_url: str) -> None:
    store = walleta.open_store(sqlite_url)
    build_demo(store)
    totals = headline(store, load_fx())
    raw_cost = store.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM usage_events")
    assert totals.cost_pico == raw_cost
    entries = store.query("SELECT * FROM revenue_entries")
    fx = load_fx()
    expected = sum(fx.to_usd_pico(a, c) for a, c in zip(entries["amount_minor"], entries["currency"]))
    assert totals.revenue_pico == expected  # spreading never creates or loses a minor unit
    assert totals.margin_pct is not None and 0 < totals.margin_pct < 1


@pytest.mark.parametrize(
    ("amount", "start", "end", "expected"),
    [
        (9900, date(2026, 1, 1), date(2026, 1, 31), {"2026-01": 9900}),
        (36500, date(2026, 1, 1), date(2026, 12, 31), {"2026-01": 3100, "2026-02": 2800, "2026-03": 3100, "2026-04": 3000, "2026-05": 3100, "2026-06": 3000, "2026-07": 3100, "2026-08": 3100, "2026-09": 3000, "2026-10": 3100, "2026-11": 3000, "2026-12": 3100}),
        (100, date(2026, 1, 30), date(2026, 2, 2), {"2026-01": 50, "2026-02": 50}),
        (-101, date(2026, 1, 31), date(2026, 2, 1), {"2026-01": -51, "2026-02": -50}),
        (1, date(2026, 1, 1), date(2026, 3, 31), {"2026-01": 1, "2026-02": 0, "2026-03": 0}),
    ],
)
def test_revenue_is_spread_over_its_service_period_exactly(amount: int, start: date, end: date, expected: dict[str, int]) -> None:
    result = spread_by_month(amount, start, end)
    assert result == expected
    assert sum(result.values()) == amount


def test_fx_conversion_is_exact() -> None:
    fx = load_fx()
    assert fx.to_usd_pico(10000, "EUR") == 108 * PICO_PER_USD  # EUR 100.00 at 1.08
    assert fx.to_usd_pico(1000, "JPY") == int(1000 * 66) * PICO_PER_USD // 10000  # zero-decimal currency
    assert not fx.has("XYZ")


def _cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "walleta", "--db", db, *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_demo_status_and_prices(sqlite_url: str) -> None:
    built = _cli("demo", db=sqlite_url)
    assert built.returncode == 0 and "200 customers" in built.stdout
    again = _cli("demo", "--if-missing", db=sqlite_url)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    status = _cli("status", db=sqlite_url)
    assert "unpriced rows: 0" in status.stdout
    prices = _cli("prices", "--model", "gpt-4o-2024-08-06", "--format", "csv", db=sqlite_url)
    assert prices.returncode == 0 and "gpt-4o,token,,2.5,1.25,10" in prices.stdout
    unknown = _cli("prices", "--model", "gpt-99", db=sqlite_url)
    assert unknown.returncode == 1 and "unpriced" in unknown.stdout


def test_cli_reprice_after_an_override_changes_cost(sqlite_url: str, tmp_path: Path) -> None:
    assert _cli("demo", db=sqlite_url).returncode == 0
    store = walleta.open_store(sqlite_url)
    before = store.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM rollup_customer_month_model WHERE model = 'gpt-4.1-mini'")
    override = tmp_path / "override.csv"
    override.write_text(
        "model,provider,unit,input_per_1m,cached_input_per_1m,output_per_1m,batch_input_per_1m,batch_output_per_1m,per_unit_price,effective_from,source\n"
        "gpt-4.1-mini,openai,token,0.8,0.2,3.2,0.4,1.6,,2025-04-14,local\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "walleta", "--db", sqlite_url, "reprice"],
        cwd=ROOT, capture_output=True, text=True, env={**__import__("os").environ, "WALLETA_PRICE_OVERRIDES": str(override)},
    )
    assert result.returncode == 0, result.stderr
    after = store.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM rollup_customer_month_model WHERE model = 'gpt-4.1-mini'")
    assert after == 2 * before  # every gpt-4.1-mini rate doubled
    assert store.scalar("SELECT CAST(SUM(cost_pico) AS BIGINT) FROM usage_events WHERE model = 'gpt-4.1-mini'") == after


def test_app_opens_on_the_demo(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    store = walleta.open_store(sqlite_url)
    build_demo(store)
    monkeypatch.setenv("WALLETA_DATABASE_URL", sqlite_url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["walleta_period_preset"] = "all"  # the app opens on the last 3 months
    at.run()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    # "All time" is the months with usage; revenue recognised after them (annual plans) is outside.
    months = store.query("SELECT MIN(month) AS a, MAX(month) AS b FROM rollup_customer_month_model").iloc[0]
    totals = headline(store, load_fx(), months["a"], months["b"])
    assert shown["AI cost"] == walleta.money.format_usd(totals.cost_pico)
    assert shown["Revenue"] == walleta.money.format_usd(totals.revenue_pico)
