"""Rollup-based analytics equal a brute-force computation over the raw usage events of the demo
data set (plus `monthly_revenue`, the recognition rule), on SQLite and on PostgreSQL.

The demo is built once per database for the session; the raw events are read once per database.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from walleta.analytics import anomalies, breakdowns, cohorts, concentration, forecast, margins, reconciliation, trends
from walleta.analytics.breakdowns import allocate_exact
from walleta.analytics.display import pct
from walleta.analytics.margins import classify_tier
from walleta.analytics.period import Period, month_range
from walleta.analytics.trends import bucket_of
from walleta.catalog import Catalog, load_catalog
from walleta.demo import DRIFT_DAYS, UNLOGGED_PROJECT, build_demo
from walleta.fx import FxTable, load_fx
from walleta.revenue import monthly_revenue
from walleta.schema import UNATTRIBUTED
from walleta.store import Store, open_store

from .pgserver import scoped_database_url
from .revenue_checks import assert_revenue_rollup_current

OCT = Period.month("2026-10")
Q3 = Period.quarter("2026-Q3")
YEAR = Period.months("2025-12", "2026-11")
RAW_COLUMNS = (
    "customer_id, feature, model, day, month, project_id, service_tier, batch, requests, input_tokens, cached_input_tokens, "
    "cache_write_tokens, output_tokens, reasoning_tokens, input_audio_tokens, output_audio_tokens, input_image_tokens, "
    "output_image_tokens, cost_pico"
)


class Demo:
    """The demo store and its raw material, read without rollups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.fx: FxTable = load_fx()
        self.catalog: Catalog = load_catalog()
        raw = store.query(f"SELECT {RAW_COLUMNS} FROM usage_events")
        raw["cost"] = raw["cost_pico"].map(lambda v: 0 if v is None or pd.isna(v) else int(v)).astype("int64")
        raw["unpriced"] = raw["cost_pico"].isna()
        self.events = raw
        entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
        self.revenue = monthly_revenue(entries, self.fx)
        self.customers = store.query("SELECT customer_id, plan, signup_date FROM customers")

    def in_months(self, period: Period) -> pd.DataFrame:
        return self.events[self.events["month"].isin(period.months_list)]

    def in_days(self, period: Period) -> pd.DataFrame:
        return self.events[(self.events["day"] >= period.first_day) & (self.events["day"] <= period.last_day)]

    def revenue_by_customer(self, months: list[str]) -> dict[str, int]:
        rows = self.revenue[self.revenue["month"].isin(months) & self.revenue["revenue_pico"].notna()]
        return {c: int(sum(int(v) for v in g)) for c, g in rows.groupby("customer_id")["revenue_pico"]}

    def brute_margins(self, months: list[str]) -> pd.DataFrame:
        usage = self.events[self.events["month"].isin(months)]
        cost = usage.groupby("customer_id")["cost"].sum()
        requests = usage.groupby("customer_id")["requests"].sum()
        unpriced = usage[usage["unpriced"]].groupby("customer_id")["requests"].sum()
        revenue = self.revenue_by_customer(months)
        ids = sorted(set(cost.index) | set(revenue))
        rows = []
        for c in ids:
            r, k, n, u = revenue.get(c, 0), int(cost.get(c, 0)), int(requests.get(c, 0)), int(unpriced.get(c, 0))
            tier = "unattributed" if c == UNATTRIBUTED else classify_tier(r, k, n, u)
            rows.append({"customer_id": c, "revenue_pico": r, "ai_cost_pico": k, "requests": n, "tier": tier})
        return pd.DataFrame(rows)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    url = scoped_database_url(request, request.param, tmp_path_factory.mktemp("demo"))
    store = open_store(url)
    build_demo(store)
    assert_revenue_rollup_current(store)  # the pages below read revenue from the rollup
    yield Demo(store)
    store.close()


def _ints(values: pd.Series) -> list[int]:
    return [int(v) for v in values]


def test_customer_margins_equal_a_recount(demo: Demo) -> None:
    for period in (OCT, Q3):
        frame = margins.customer_margins(demo.store, period, demo.fx).set_index("customer_id")
        brute = demo.brute_margins(period.months_list).set_index("customer_id")
        assert sorted(frame.index) == sorted(brute.index)
        joined = frame.join(brute.add_suffix("_raw"))
        assert _ints(joined["revenue_pico"]) == _ints(joined["revenue_pico_raw"])
        assert _ints(joined["ai_cost_pico"]) == _ints(joined["ai_cost_pico_raw"])
        assert (joined["requests"] == joined["requests_raw"]).all() and (joined["tier"] == joined["tier_raw"]).all()
        assert 3 <= (joined["tier"] == "losing").sum() and (joined["tier"] == "free").sum() >= 5 and (joined["tier"] == "no_usage").sum() == 3


def test_tier_since_and_month_over_month_equal_a_recount(demo: Demo) -> None:
    frame = margins.customer_margins(demo.store, OCT, demo.fx).set_index("customer_id")
    months = month_range("2025-12", "2026-10")
    monthly = {m: demo.brute_margins([m]).set_index("customer_id") for m in months}
    for customer, row in frame.iterrows():
        tiers = [monthly[m].loc[customer, "tier"] if customer in monthly[m].index else "inactive" for m in months]
        run_start = len(months) - 1
        while run_start > 0 and tiers[run_start - 1] == row["tier"]:
            run_start -= 1
        assert row["tier_since"] == months[run_start], customer
        margin = {m: (int(monthly[m].loc[customer, "revenue_pico"]) - int(monthly[m].loc[customer, "ai_cost_pico"])) if customer in monthly[m].index else 0
                  for m in ("2026-09", "2026-10")}
        assert row["mom_margin_change_pico"] == margin["2026-10"] - margin["2026-09"]


def test_feature_breakdown_equals_a_recount(demo: Demo) -> None:
    frame = breakdowns.feature_breakdown(demo.store, OCT, demo.fx)
    usage = demo.in_months(OCT)
    cost = usage.groupby("feature")["cost"].sum()
    used = frame[frame["feature"] != breakdowns.NO_USAGE_ROW].set_index("feature")
    assert {f: int(v) for f, v in used["ai_cost_pico"].items()} == {f: int(v) for f, v in cost.items()}
    assert {f: int(v) for f, v in used["requests"].items()} == {f: int(v) for f, v in usage.groupby("feature")["requests"].sum().items()}
    # Allocation, recomputed customer by customer with the exact splitter.
    revenue = demo.revenue_by_customer(OCT.months_list)
    expected: dict[str, int] = {}
    basis = usage.groupby(["customer_id", "feature"])["cost"].sum()
    for customer, amount in revenue.items():
        if amount == 0:
            continue
        mine = basis[customer] if customer in basis.index.get_level_values(0) else pd.Series(dtype="int64")
        mine = mine[mine > 0].sort_index()
        if mine.empty:
            expected[breakdowns.NO_USAGE_ROW] = expected.get(breakdowns.NO_USAGE_ROW, 0) + amount
            continue
        for feature, part in zip(mine.index, allocate_exact(amount, [int(v) for v in mine])):
            expected[feature] = expected.get(feature, 0) + part
    got = {f: int(v) for f, v in zip(frame["feature"], frame["allocated_revenue_pico"]) if int(v) != 0}
    assert got == {f: v for f, v in expected.items() if v != 0}
    assert sum(got.values()) == sum(revenue.values())


def test_model_and_plan_breakdowns_equal_a_recount(demo: Demo) -> None:
    days = Period.days("2026-03-10", "2026-04-20")  # spans the model migration of March
    frame = breakdowns.model_breakdown(demo.store, days).set_index("model")
    usage = demo.in_days(days)
    assert {m: int(v) for m, v in frame["ai_cost_pico"].items()} == {m: int(v) for m, v in usage.groupby("model")["cost"].sum().items()}
    assert {m: int(v) for m, v in frame["input_tokens"].items()} == {m: int(v) for m, v in usage.groupby("model")["input_tokens"].sum().items()}
    plans = breakdowns.plan_breakdown(demo.store, OCT, demo.fx).set_index("plan")
    brute = demo.brute_margins(OCT.months_list).merge(demo.customers, on="customer_id", how="left")
    for plan, group in brute.groupby("plan"):
        assert int(plans.loc[plan, "revenue_pico"]) == sum(_ints(group["revenue_pico"]))
        assert int(plans.loc[plan, "ai_cost_pico"]) == sum(_ints(group["ai_cost_pico"]))
        assert plans.loc[plan, "customers"] == len(group)


@pytest.mark.parametrize(("period", "grain", "by"), [(OCT, "day", "model"), (Q3, "week", "feature"), (YEAR, "month", "plan"), (Q3, "week", "plan"), (OCT, "day", None)])
def test_trends_equal_a_recount(demo: Demo, period: Period, grain: str, by: str | None) -> None:
    frame = trends.trend(demo.store, period, grain=grain, by=by)
    usage = demo.in_days(period).copy()
    usage["bucket"] = usage["day"].map(lambda d: bucket_of(d, grain))
    if by == "plan":
        usage = usage.merge(demo.customers[["customer_id", "plan"]], on="customer_id", how="left")
    keys = ["bucket", *([by] if by else [])]
    expected = usage.groupby(keys)["cost"].sum()
    got = frame.set_index(keys)["ai_cost_pico"]
    assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in expected.items()}


def test_trend_by_top_customers_adds_up(demo: Demo) -> None:
    frame = trends.trend(demo.store, OCT, grain="day", by="customer", top=5)
    usage = demo.in_days(OCT)
    top = usage[usage["customer_id"] != UNATTRIBUTED].groupby("customer_id")["cost"].sum().sort_values(ascending=False).index[:5]
    assert set(frame["customer"]) == {*top, trends.OTHER_CUSTOMERS}
    for customer in top:
        mine = frame[frame["customer"] == customer].set_index("bucket")["ai_cost_pico"]
        expected = usage[usage["customer_id"] == customer].groupby("day")["cost"].sum()
        assert {d: int(v) for d, v in mine.items()} == {d: int(v) for d, v in expected.items()}
    assert sum(_ints(frame["ai_cost_pico"])) == int(usage["cost"].sum())


def test_monthly_summary_and_forecast_equal_a_recount(demo: Demo) -> None:
    summary = trends.monthly_summary(demo.store, YEAR, demo.fx).set_index("month")
    for month in YEAR.months_list:
        assert int(summary.loc[month, "ai_cost_pico"]) == int(demo.events[demo.events["month"] == month]["cost"].sum())
        assert int(summary.loc[month, "revenue_pico"]) == sum(demo.revenue_by_customer([month]).values())
    result = forecast.month_end_forecast(demo.store, demo.fx).set_index("metric")
    november = demo.events[demo.events["month"] == "2026-11"]
    so_far = int(november["cost"].sum())
    days = november["day"].max()
    assert (result.loc["ai_cost", "as_of"], result.loc["ai_cost", "so_far_pico"]) == (days, so_far)
    elapsed = int(days[8:10])
    run_rate = Decimal(so_far) / elapsed
    assert result.loc["ai_cost", "forecast_pico"] == so_far + int((run_rate * (30 - elapsed)).to_integral_value())
    assert result.loc["ai_cost", "low_pico"] < result.loc["ai_cost", "forecast_pico"] < result.loc["ai_cost", "high_pico"]


def test_anomalies_equal_a_recount(demo: Demo) -> None:
    period = Period.months("2026-06", "2026-11")
    frame = anomalies.daily_anomalies(demo.store, period, only_anomalies=False)
    daily = demo.events.groupby("day")["cost"].sum()
    assert {d: int(v) for d, v in zip(frame["day"], frame["ai_cost_pico"])} == {d: int(daily.get(d, 0)) for d in frame["day"]}
    flagged = anomalies.customer_anomalies(demo.store)
    end = demo.events["day"].max()
    window = pd.date_range(end=end, periods=7).strftime("%Y-%m-%d")
    baseline = pd.date_range(end=window[0], periods=29).strftime("%Y-%m-%d")[:-1]
    known = demo.events[demo.events["customer_id"] != UNATTRIBUTED]
    recent = known[known["day"].isin(window)].groupby("customer_id")["cost"].sum()
    before = known[known["day"].isin(baseline)].groupby("customer_id")["cost"].sum()
    expected = sorted(
        c for c, r in recent.items()
        if (before.get(c, 0) == 0 and r >= 5 * 10**12)
        or (before.get(c, 0) > 0 and r * 28 >= 3 * before.get(c, 0) * 7 and r * 28 - before.get(c, 0) * 7 >= 5 * 10**12 * 28)
    )
    assert sorted(flagged["customer_id"]) == expected and len(expected) > 0
    for customer, cost in zip(flagged["customer_id"], flagged["recent_cost_pico"]):
        assert cost == int(recent[customer])


def test_concentration_and_cohorts_equal_a_recount(demo: Demo) -> None:
    costs = demo.in_months(OCT)
    costs = sorted(int(v) for c, v in costs.groupby("customer_id")["cost"].sum().items() if c != UNATTRIBUTED and v > 0)
    shares = concentration.top_shares(demo.store, OCT, (5,))
    top = -(-len(costs) * 5 // 100)
    assert shares["share_of_cost_pct"][0] == pct(sum(costs[-top:]), sum(costs))
    n, total = len(costs), sum(costs)
    gini = Decimal(2 * sum(i * x for i, x in enumerate(costs, 1))) / Decimal(n * total) - Decimal(n + 1) / Decimal(n)
    assert concentration.gini(demo.store, OCT)["gini"][0] == gini.quantize(Decimal("0.0001"))
    frame = cohorts.cohort_margins(demo.store, OCT, demo.fx).set_index("cohort")
    brute = demo.brute_margins(OCT.months_list).merge(demo.customers, on="customer_id")
    brute["cohort"] = brute["signup_date"].str[:7]
    for cohort, group in brute.groupby("cohort"):
        assert int(frame.loc[cohort, "revenue_pico"]) == sum(_ints(group["revenue_pico"]))
        assert int(frame.loc[cohort, "ai_cost_pico"]) == sum(_ints(group["ai_cost_pico"]))
    spread = cohorts.margin_distribution(demo.store, OCT, demo.fx)
    paying = brute[brute["revenue_pico"].map(int) > 0]
    margins_sorted = sorted(int(r) - int(c) for r, c in zip(paying["revenue_pico"], paying["ai_cost_pico"]))
    assert _ints(spread["margin_pico"]) == [margins_sorted[-(-len(margins_sorted) * p // 100) - 1] for p in (10, 25, 50, 75, 90)]


def test_reconciliation_equals_a_recount_and_tells_the_demo_story(demo: Demo) -> None:
    frame = reconciliation.reconcile(demo.store, OCT, demo.catalog, by=("day", "project_id", "line_item"))
    usage = demo.in_days(OCT).copy()
    usage["events"] = 1
    usage["unpriced_events"] = usage["unpriced"].astype("int64")
    usage["cost_pico"] = usage["cost"]
    grouped = usage.groupby(["day", "project_id", "model", "service_tier", "batch"], as_index=False)[
        ["events", "unpriced_events", "input_tokens", "cached_input_tokens", "cache_write_tokens", "input_audio_tokens",
         "input_image_tokens", "output_tokens", "output_audio_tokens", "output_image_tokens", "cost_pico"]].sum()
    lines = reconciliation.line_item_costs(grouped, demo.catalog)
    lines["line_item"] = lines["line_model"] + ", " + lines["token_class"]
    expected = lines.groupby(["day", "project_id", "line_item"])["estimated_pico"].sum()
    expected = {k: int(v) for k, v in expected.items() if int(v) != 0}
    got = {(d, p, i): int(e) for d, p, i, e in zip(frame["day"], frame["project_id"], frame["line_item"], frame["estimated_pico"]) if int(e) != 0}
    assert got == expected
    assert sum(_ints(frame["estimated_pico"])) == int(usage["cost"].sum())
    billed = demo.store.query("SELECT CAST(SUM(amount_pico) AS BIGINT) AS b FROM billed_costs WHERE day >= '2026-10-01' AND day <= '2026-10-31'")
    assert sum(_ints(frame["billed_pico"])) == int(billed["b"][0])
    statuses = frame.groupby("status").size()
    assert statuses["matches"] > 0.9 * len(frame)  # everything else is a gap the demo planted
    drift = frame[frame["day"].isin(DRIFT_DAYS) & (frame["project_id"] == "proj_shared")]
    assert (drift[drift["billed_pico"].map(int) > 10**12]["status"] == "billed above estimate").all() and len(drift) > 10
    summary = reconciliation.reconciliation_summary(demo.store, OCT, demo.catalog).set_index("component")
    assert UNLOGGED_PROJECT in summary.loc["billed with no logged usage", "explanation"]
    assert "2026-10-14..2026-10-16" in summary.loc["drift on logged projects", "explanation"]
    attributed = int(usage[usage["customer_id"] != UNATTRIBUTED]["cost"].sum())
    assert summary.loc["attributed to customers", "amount_pico"] == attributed
