"""The shared UI helpers (walleta.ui.charts / tables / frame) on the demo data under AppTest:
money series drawn from the core's numbers, money axes and tooltips in dollars, every grid with
its CSV download and its money columns formatted as dollars, shared column presets.

Uses the demo database and fixtures of tests/test_app.py (imported below).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pytest

from tests.test_app import PAGES, app_env, assert_clean, demo_url, demo_window, dollars, on_demo, open_page, start  # noqa: F401
from walleta.analytics.margins import monthly_customer_margins
from walleta.analytics.period import Period as AnalyticsPeriod
from walleta.analytics.trends import monthly_summary
from walleta.fx import load_fx
from walleta.periods import Period, shift_month
from walleta.store import open_store
from walleta.ui import charts, tables
from walleta.ui.frame import PageContext

# -- reading what AppTest shows ----------------------------------------------------------------


def chart_elements(at) -> list[Any]:
    return [e for e in at.main if "vega" in str(getattr(e, "type", ""))]


def spec_of(element) -> dict:
    return json.loads(element.proto.spec)


def chart_data(element) -> pd.DataFrame:
    """The first dataset of a chart, as sent to the browser."""
    return pa.ipc.open_stream(element.proto.datasets[0].data.data).read_all().to_pandas()


def encodings(spec: dict) -> Iterator[dict]:
    """Every `encoding` block of a (possibly layered) spec."""
    if isinstance(spec, dict):
        if isinstance(spec.get("encoding"), dict):
            yield spec["encoding"]
        for value in spec.values():
            if isinstance(value, (dict, list)):
                yield from encodings(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from encodings(item)


def money_chart_problems(spec: dict) -> list[str]:
    """Axes on a money field without a dollar format, and charts without any tooltip."""
    problems = []
    blocks = list(encodings(spec))
    if not any("tooltip" in block for block in blocks):
        problems.append("no tooltip")
    for block in blocks:
        for channel in ("x", "y"):
            enc = block.get(channel)
            if not isinstance(enc, dict) or not str(enc.get("field", "")).endswith("_pico"):
                continue
            axis = enc.get("axis") or {}
            if enc.get("type") == "quantitative" and not str(axis.get("format", "")).startswith("$"):
                problems.append(f"{channel}={enc['field']} axis format {axis.get('format')!r}")
        tips = block.get("tooltip") or []
        for tip in tips if isinstance(tips, list) else [tips]:
            if str(tip.get("field", "")).endswith("_pico") and not str(tip.get("format", "")).startswith("$"):
                problems.append(f"tooltip {tip['field']} format {tip.get('format')!r}")
    return problems


def grid_problems(at) -> list[str]:
    """Grids whose money columns are not shown as dollars, and grids without a download."""
    problems = []
    grids = [g for g in at.dataframe if not g.proto.editing_mode]  # data editors are inputs, not reports
    for grid in grids:
        config = json.loads(grid.proto.columns or "{}")
        for name, column in config.items():
            fmt = str((column.get("type_config") or {}).get("format", ""))
            if name.endswith("_pico") and not (fmt == "dollar" or fmt.startswith("$")):
                problems.append(f"{name}: format {fmt!r}")
        shown = [c for c in grid.value.columns if str(c).endswith("_pico")]
        problems += [f"{c}: no column config" for c in shown if c not in config]
    downloads = at.get("download_button")
    if len(downloads) < len(grids):
        problems.append(f"{len(grids)} grids but {len(downloads)} downloads")
    return problems


# -- every page ----------------------------------------------------------------------------------


def test_every_page_formats_money_and_offers_every_grid_as_csv(on_demo):
    at = start()
    for path in ["app.py", *PAGES]:
        open_page(at, path)
        for element in chart_elements(at):
            assert money_chart_problems(spec_of(element)) == [], (path, spec_of(element))
        assert grid_problems(at) == [], path
    at.switch_page("pages/5_Reconciliation.py").run()
    at.segmented_control(key="reconcile_view").set_value("day").run()
    assert_clean(at)
    assert chart_elements(at) and all(money_chart_problems(spec_of(e)) == [] for e in chart_elements(at))
    assert grid_problems(at) == []


def test_anomaly_tables_show_labelled_dollar_columns(on_demo):
    at = open_page(start(), "pages/3_Trends.py")
    at.selectbox(key="anomalies_by").select("feature").run()
    assert_clean(at)
    grids = [g for g in at.dataframe if "baseline_median_pico" in g.value.columns]
    assert grids, "the demo has unusual feature days"
    config = json.loads(grids[0].proto.columns)
    assert config["ai_cost_pico"]["label"] == "AI cost"
    assert config["excess_pico"]["type_config"]["format"] == "dollar"
    assert "baseline_mad_pico" not in grids[0].value.columns


# -- money_over_time ---------------------------------------------------------------------------


def _monthly_chart(at):
    for element in chart_elements(at):
        data = chart_data(element)
        if {"month", "what", "amount_pico"} <= set(data.columns):
            return spec_of(element), data
    raise AssertionError("no monthly money chart")


def test_overview_trend_draws_the_cores_monthly_numbers_as_lines(on_demo):
    at = start()
    first, last = demo_window(on_demo, months=12)
    expected = monthly_summary(open_store(on_demo), AnalyticsPeriod.months(first, last), load_fx())
    spec, data = _monthly_chart(at)
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["color"]["scale"]["domain"] == ["Revenue", "AI cost", "Gross margin"]
    assert spec["encoding"]["color"]["scale"]["range"] == [charts.COLORS["revenue"], charts.COLORS["cost"], charts.COLORS["margin"]]
    margin = data[data["what"] == "Gross margin"].sort_values("month")
    assert margin["amount_pico"].tolist() == pytest.approx([dollars(v) for v in expected["margin_pico"]], abs=1e-9)
    assert [m.strftime("%Y-%m") for m in margin["month"]] == list(expected["month"])


def test_two_months_of_data_draw_side_by_side_bars_not_a_line(on_demo):
    first, _ = demo_window(on_demo, months=120)
    second = shift_month(first, 1)
    at = start({"walleta_period_preset": "custom", "walleta_period_range": (first, second)})
    spec, data = _monthly_chart(at)
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["xOffset"]["field"] == "what"
    assert sorted({m.strftime("%Y-%m") for m in data["month"]}) == [first, second]


def test_customer_drill_down_chart_is_that_customers_revenue_and_cost(on_demo):
    at = open_page(start(), "pages/1_Customers.py")
    customer = at.selectbox(key="customers_pick").value
    _, data = _monthly_chart(at)
    assert set(data["what"]) == {"Revenue", "AI cost"}
    _, last = demo_window(on_demo)
    monthly = monthly_customer_margins(open_store(on_demo), load_fx(), None, last)
    mine = monthly[monthly["customer_id"] == customer].sort_values("month")
    cost = data[data["what"] == "AI cost"].sort_values("month")
    assert [m.strftime("%Y-%m") for m in cost["month"]] == list(mine["month"])
    assert cost["amount_pico"].tolist() == pytest.approx([dollars(v) for v in mine["ai_cost_pico"]], abs=1e-9)


# -- the helpers' own logic --------------------------------------------------------------------


def test_long_frame_stacks_columns_and_series_in_order():
    wide = pd.DataFrame({"month": ["2026-01", "2026-02"], "a_pico": [1, 2], "b_pico": [10, 20]})
    long = charts.long_frame(wide, "month", {"A": "a_pico", "B": wide["b_pico"] * 2, "C": "a_pico"})
    assert long.to_dict("list") == {
        "month": ["2026-01", "2026-02"] * 3,
        "what": ["A", "A", "B", "B", "C", "C"],
        "amount_pico": [1, 2, 20, 40, 1, 2],
    }


def test_money_over_time_keeps_exact_dollars_in_the_chart_data():
    wide = pd.DataFrame({"day": ["2026-01-02", "2026-01-01"], "billed_pico": [1_234_567_890_123, 5], "estimated_pico": [None, 0]})
    chart = charts.money_over_time(wide, x="day", x_kind="day", series={"Billed": "billed_pico", "Estimated": "estimated_pico"})
    data = chart.data
    assert list(data["day"].dt.strftime("%Y-%m-%d")) == ["2026-01-01", "2026-01-01", "2026-01-02", "2026-01-02"]
    billed = data[data["what"] == "Billed"].set_index(data.loc[data["what"] == "Billed", "day"].dt.day)["amount_pico"]
    assert billed[2] == float(Decimal(1_234_567_890_123) / 10**12) and billed[1] == 5e-12
    assert data.loc[data["what"] == "Estimated", "amount_pico"].isna().sum() == 1  # missing stays missing, not $0
    assert chart.to_dict()["encoding"]["color"]["scale"]["range"] == [charts.COLORS["margin"], charts.COLORS["cost"]]


def test_standard_presets_label_and_format_money_and_reject_unknown_names():
    columns = tables.standard("margin_pico", "requests")
    assert list(columns) == ["margin_pico", "requests"]
    assert columns["margin_pico"].config["label"] == "Gross margin"
    assert columns["margin_pico"].config["type_config"]["format"] == "dollar"
    assert set(tables.MARGIN_GROUP) <= set(tables.standard(*tables.MARGIN_GROUP))
    with pytest.raises(KeyError):
        tables.standard("margin_pcnt")


def test_csv_names_carry_the_period():
    ctx = PageContext(store=None, source=None, coverage=None, period=Period("2026-09", "2026-11"), previous=None)  # type: ignore[arg-type]
    assert ctx.csv_name("trend", "week", "total") == "walleta-trend-week-total-2026-09-2026-11.csv"
    assert PageContext(store=None, source=None, coverage=None, period=None, previous=None).csv_name("x") == "walleta-x.csv"  # type: ignore[arg-type]


def test_forecast_bars_convert_every_amount_and_keep_a_missing_band_missing():
    rows = {
        "AI cost": {"so_far_pico": 6_000 * 10**12, "forecast_pico": 7_500 * 10**12, "low_pico": 7_400 * 10**12, "high_pico": 7_700 * 10**12},
        "Margin": {"so_far_pico": 15_000 * 10**12, "forecast_pico": 14_000 * 10**12, "low_pico": None, "high_pico": None},
    }
    chart = charts.forecast_bars(rows)
    data = (chart.data if isinstance(chart.data, pd.DataFrame) else chart.layer[0].data).set_index("what")
    assert data.loc["AI cost", ["so_far", "forecast", "low", "high"]].tolist() == [6000.0, 7500.0, 7400.0, 7700.0]
    assert data.loc["Margin", "forecast"] == 14000.0 and pd.isna(data.loc["Margin", "low"])
    spec = chart.to_dict()
    assert money_chart_problems(spec) == []
    assert spec["layer"][0]["encoding"]["x"]["axis"]["format"] == charts.money_format([7700.0, 15000.0])
