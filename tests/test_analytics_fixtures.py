"""Every analytics function against hand-computed results on a small book (tests/analytics_fixture.py):
multi-currency revenue, a refund, customers with no revenue and with no usage, unpriced usage,
a price change mid-period, usage without a customer or a project. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterator

import pandas as pd
import pytest

from walleta.analytics import anomalies, breakdowns, cohorts, concentration, forecast, margins, reconciliation, trends
from walleta.analytics.breakdowns import Allocation, allocate_exact
from walleta.analytics.display import div_round, pct, usd, with_usd
from walleta.analytics.margins import HealthThresholds, classify_tier
from walleta.analytics.period import Period, latest_complete_month
from walleta.analytics.sources import revenue_by_customer_month
from walleta.catalog import load_catalog
from walleta.errors import InputError
from walleta.events import prepare_events
from walleta.fx import FxTable
from walleta.revenue import monthly_revenue
from walleta.revenue_rollup import is_fresh
from walleta.store import Store, open_store

from .analytics_fixture import FX, USD, build_fixture, fixture_catalog
from .pgserver import scoped_database_url

JAN = Period.month("2026-01")
FEB = Period.month("2026-02")
M = 10**9  # one thousandth of a dollar, in pico


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "sqlite-from-entries"])
def book(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, object]]:
    """The fixture book; revenue read from the revenue rollup, or (sqlite-from-entries) with the
    rollup stale, so every revenue view is derived from the entries themselves."""
    folder = tmp_path_factory.mktemp("book")
    url = scoped_database_url(request, request.param, folder)
    store = open_store(url)
    catalog = fixture_catalog(folder / "catalog")
    build_fixture(store, catalog, revenue_rollup=request.param != "sqlite-from-entries")
    assert is_fresh(store) is (request.param != "sqlite-from-entries")
    yield store, catalog
    store.close()


def _row(frame: pd.DataFrame, **keys: object) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in keys.items():
        mask &= frame[column] == value
    rows = frame[mask]
    assert len(rows) == 1, (keys, rows)
    return rows.iloc[0]


# -- periods, display helpers, tiers -----------------------------------------------------------


def test_periods_parse_months_quarters_and_days() -> None:
    assert Period.quarter("2026-Q1").label() == "2026-01..2026-03"
    assert Period.parse("2026-02", None, default=JAN).label() == "2026-02"
    assert Period.parse("2026-01-10", "2026-02", default=JAN) == Period.days("2026-01-10", "2026-02-28")
    assert Period.days("2026-01-10", "2026-02-03").whole_months() == Period.months("2026-01", "2026-02")
    with pytest.raises(InputError):
        Period.parse("2026-13", None, default=JAN)
    with pytest.raises(InputError):
        Period.days("2026-02-01", "2026-01-01")


def test_display_rounds_once_half_even() -> None:
    assert usd(5 * 10**9) == Decimal("0.00") and usd(15 * 10**9) == Decimal("0.02")  # $0.005 -> 0.00, $0.015 -> 0.02
    assert pct(1, 8) == Decimal("12.50") and pct(1, 0) is None
    assert div_round(5, 2) == 2 and div_round(7, 2) == 4 and div_round(1, 0) is None
    frame = with_usd(pd.DataFrame({"ai_cost_pico": [1_234_567 * 10**7], "cost_per_request_pico": [1_500_000]}), drop_pico=True)
    assert list(frame.columns) == ["ai_cost_usd", "cost_per_request_usd"]
    assert frame["ai_cost_usd"][0] == Decimal("12.35") and frame["cost_per_request_usd"][0] == Decimal("0.000002")


@pytest.mark.parametrize(
    ("revenue", "cost", "requests", "unpriced", "expected"),
    [
        (100, 50, 1, 0, "healthy"),  # exactly 50% is healthy
        (100, 51, 1, 0, "moderate"),
        (100, 80, 1, 0, "moderate"),  # exactly 20%
        (100, 81, 1, 0, "at_risk"),
        (100, 100, 1, 0, "at_risk"),  # exactly 0%
        (100, 101, 1, 0, "losing"),
        (-10, 0, 1, 0, "losing"),  # net refunds
        (0, 5, 1, 0, "free"),
        (0, 0, 1, 0, "free"),  # free customer on a free model
        (100, 0, 0, 0, "no_usage"),
        (0, 0, 0, 0, "inactive"),
        (100, 0, 3, 3, "unpriced"),
    ],
)
def test_tiers(revenue: int, cost: int, requests: int, unpriced: int, expected: str) -> None:
    assert classify_tier(revenue, cost, requests, unpriced) == expected


def test_tier_thresholds_are_configurable_and_checked() -> None:
    strict = HealthThresholds.from_percentages(70, 40, 10)
    assert classify_tier(100, 35, 1, 0, strict) == "moderate"
    assert classify_tier(100, 95, 1, 0, strict) == "losing"
    assert classify_tier(0, 5, 1, 0, unconverted=True) == "unconverted"
    with pytest.raises(InputError):
        HealthThresholds.from_percentages(20, 50, 0)


def test_allocate_exact_keeps_every_pico() -> None:
    assert allocate_exact(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate_exact(-10, [1, 1, 1]) == [-4, -3, -3]
    assert allocate_exact(7, [0, 2, 5]) == [0, 2, 5]
    with pytest.raises(ValueError):
        allocate_exact(5, [0, 0])


# -- revenue -------------------------------------------------------------------------------------


def test_revenue_fast_path_equals_the_recognition_rule(book: tuple[Store, object]) -> None:
    store, _ = book
    ours = revenue_by_customer_month(store, FX)
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    rule = monthly_revenue(entries, FX).groupby(["customer_id", "month", "currency"], as_index=False)["amount_minor"].sum()
    merged = ours.merge(rule, on=["customer_id", "month", "currency"], suffixes=("", "_rule"), how="outer")
    assert (merged["amount_minor"] == merged["amount_minor_rule"]).all() and len(merged) == len(ours)
    annual = ours[(ours["customer_id"] == "annual")].set_index("month")["revenue_pico"]
    assert annual["2026-01"] == 10192 * 10**10 and annual["2026-02"] == 9205 * 10**10  # $1,200 spread by days
    assert ours[ours["customer_id"] == "yen"]["revenue_pico"].tolist() == [None]  # no JPY rate: never summed in


# -- margins ------------------------------------------------------------------------------------


def test_customer_margins_january(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = margins.customer_margins(store, JAN, FX)
    assert frame["customer_id"].tolist() == ["freebie", "(unattributed)", "yen", "mystery", "idle", "euro", "acme", "annual"]
    acme = _row(frame, customer_id="acme")
    assert acme["revenue_pico"] == 70 * USD  # $100 minus a $30 refund
    assert acme["ai_cost_pico"] == 3275 * M  # $2 + $0.85 before the price cut + $0.425 after
    assert acme["margin_pico"] == 66725 * M
    assert (acme["margin_pct"], acme["cost_pct_of_revenue"]) == (Decimal("95.32"), Decimal("4.68"))
    assert (acme["requests"], acme["input_tokens"], acme["cached_input_tokens"], acme["output_tokens"]) == (20, 1_200_000, 100_000, 520_000)
    assert (acme["total_tokens"], acme["tier"], acme["tier_since"], acme["plan"]) == (1_720_000, "healthy", "2026-01", "Pro")
    assert acme["mom_margin_change_pico"] == 66725 * M and acme["mom_margin_pct_change"] is None  # nothing in December
    euro = _row(frame, customer_id="euro")
    assert (euro["revenue_pico"], euro["margin_pct"], euro["tier"]) == (54 * USD, Decimal("90.74"), "healthy")  # EUR 50 x 1.08
    yen = _row(frame, customer_id="yen")
    assert (yen["revenue_pico"], yen["unconverted_revenue"], yen["tier"]) == (0, "JPY 10000", "unconverted")
    idle = _row(frame, customer_id="idle")
    assert (idle["tier"], idle["margin_pct"], idle["requests"]) == ("no_usage", Decimal("100.00"), 0)
    freebie = _row(frame, customer_id="freebie")
    assert (freebie["tier"], freebie["margin_pico"], freebie["margin_pct"]) == ("free", -6500 * M, None)
    mystery = _row(frame, customer_id="mystery")
    assert (mystery["ai_cost_pico"], mystery["unpriced_requests"], mystery["unpriced_tokens"]) == (100 * M, 4, 440_000)
    assert (mystery["tier"], mystery["margin_pct"]) == ("healthy", Decimal("99.50"))
    annual = _row(frame, customer_id="annual")
    assert (annual["revenue_pico"], annual["margin_pico"], annual["margin_pct"]) == (10192 * 10**10, 9932 * 10**10, Decimal("97.45"))
    unattributed = _row(frame, customer_id="(unattributed)")
    assert (unattributed["tier"], unattributed["ai_cost_pico"]) == ("unattributed", USD)
    assert sum(frame["ai_cost_pico"]) == 18975 * M


def test_customer_margins_history_and_month_over_month(book: tuple[Store, object]) -> None:
    store, _ = book
    feb = margins.customer_margins(store, FEB, FX)
    assert sorted(feb["customer_id"]) == ["acme", "annual"]
    acme = _row(feb, customer_id="acme")
    assert (acme["margin_pico"], acme["tier"], acme["tier_since"]) == (98 * USD, "healthy", "2026-01")
    assert acme["prev_month_margin_pico"] == 66725 * M and acme["mom_margin_change_pico"] == 31275 * M
    assert acme["mom_margin_pct_change"] == Decimal("2.68")  # 98.00% - 95.32%
    annual = _row(feb, customer_id="annual")
    assert (annual["revenue_pico"], annual["tier"], annual["tier_since"]) == (9205 * 10**10, "no_usage", "2026-02")
    both = margins.customer_margins(store, Period.months("2026-01", "2026-02"), FX)
    acme2, annual2 = _row(both, customer_id="acme"), _row(both, customer_id="annual")
    assert (acme2["revenue_pico"], acme2["ai_cost_pico"], acme2["tier_since"]) == (170 * USD, 5275 * M, "2026-01")
    assert (annual2["tier"], annual2["tier_since"]) == ("healthy", None)  # healthy over two months, but February alone is no_usage


def test_customer_margins_thresholds_and_inactive(book: tuple[Store, object]) -> None:
    store, _ = book
    strict = HealthThresholds.from_percentages(96, 92, 0)
    frame = margins.customer_margins(store, JAN, FX, thresholds=strict, include_inactive=True, include_unattributed=False)
    tiers = dict(zip(frame["customer_id"], frame["tier"]))
    assert tiers["acme"] == "moderate" and tiers["euro"] == "at_risk" and tiers["annual"] == "healthy"
    assert "(unattributed)" not in tiers
    march = margins.customer_margins(store, Period.month("2026-03"), FX, include_inactive=True)
    assert set(march["tier"]) == {"inactive", "no_usage"}  # only the annual plan is recognised in March
    summary = margins.tier_summary(margins.customer_margins(store, JAN, FX))
    assert summary["tier"].tolist()[:2] == ["healthy", "free"]
    assert _row(summary, tier="healthy")["customers"] == 4


# -- breakdowns ----------------------------------------------------------------------------------


def test_feature_breakdown_by_cost_share(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = breakdowns.feature_breakdown(store, JAN, FX)
    assert frame["feature"].tolist() == ["chat", "search", "(revenue without usage)"]
    chat, search, rest = (frame.iloc[i] for i in range(3))
    assert (chat["ai_cost_pico"], chat["cost_share_pct"], chat["requests"], chat["unpriced_requests"]) == (15 * USD, Decimal("79.05"), 55, 4)
    assert chat["cost_per_request_pico"] == 294_117_647_059  # $15 over 51 priced requests, half-even
    assert search["ai_cost_pico"] == 3975 * M
    # acme's $70 splits 2 : 1.275 by its cost per feature; the extra pico goes to its larger feature.
    assert chat["allocated_revenue_pico"] == 42_748_091_603_054 + 54 * USD
    assert search["allocated_revenue_pico"] == 27_251_908_396_946 + 10192 * 10**10 + 20 * USD  # + annual + mystery (only priced usage)
    assert rest["allocated_revenue_pico"] == 29 * USD and rest["ai_cost_pico"] == 0  # idle: revenue without usage
    assert sum(frame["allocated_revenue_pico"]) == 27492 * 10**10  # every converted dollar of January, none invented
    assert (chat["margin_pct"], search["margin_pct"]) == (Decimal("84.50"), Decimal("97.34"))
    assert "AI cost per feature" in chat["allocation_rule"]


def test_feature_costs_are_the_usage_columns_of_the_feature_breakdown(book: tuple[Store, object]) -> None:
    """The Overview's top features read costs without allocating revenue: the same values as
    the breakdown's usage columns (its rows with usage), and over a few days a recount of the
    raw events of those days."""
    store, _ = book
    for period in (JAN, FEB, Period.months("2025-11", "2026-02")):
        costs = breakdowns.feature_costs(store, period)
        full = breakdowns.feature_breakdown(store, period, FX)
        full = full[full["feature"] != breakdowns.NO_USAGE_ROW][list(costs.columns)].reset_index(drop=True)
        assert costs.astype(object).values.tolist() == full.astype(object).values.tolist()
        assert len(costs) > 0
    days = Period.days("2026-01-10", "2026-01-20")
    costs = breakdowns.feature_costs(store, days)
    assert costs["feature"].tolist() == ["search", "chat"]  # search on both sides of January's price change
    expected = store.query("SELECT feature, CAST(SUM(COALESCE(cost_pico, 0)) AS BIGINT) AS cost, CAST(SUM(requests) AS BIGINT) AS requests "
                           "FROM usage_events WHERE day >= ? AND day <= ? GROUP BY feature", [days.first_day, days.last_day])
    assert sorted(zip(costs["feature"], costs["ai_cost_pico"], costs["requests"])) == sorted(
        (f, int(c), int(r)) for f, c, r in zip(expected["feature"], expected["cost"], expected["requests"]))


def test_feature_breakdown_by_requests_and_by_weights(book: tuple[Store, object]) -> None:
    store, _ = book
    by_requests = breakdowns.feature_breakdown(store, JAN, FX, Allocation.parse("request_share"))
    allocated = dict(zip(by_requests["feature"], by_requests["allocated_revenue_pico"]))
    assert allocated["chat"] == (35 + 54 + 16) * USD  # acme 10 of 20 requests, euro all, mystery 4 of 5
    assert allocated["search"] == 35 * USD + 4 * USD + 10192 * 10**10
    by_weights = breakdowns.feature_breakdown(store, JAN, FX, Allocation.parse("weights:chat=3,search=1"))
    allocated = dict(zip(by_weights["feature"], by_weights["allocated_revenue_pico"]))
    assert allocated == {"chat": 20619 * 10**10, "search": 6873 * 10**10}
    with pytest.raises(InputError):
        Allocation.parse("by_magic")
    with pytest.raises(InputError):
        Allocation.parse("weights:chat=0")


def test_model_breakdown(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = breakdowns.model_breakdown(store, JAN)
    assert frame["model"].tolist() == ["m-big", "m-small", "gpt-99-unknown"]
    big, small, unknown = (frame.iloc[i] for i in range(3))
    assert (big["ai_cost_pico"], big["requests"], big["cost_per_request_pico"], big["cost_share_pct"]) == (10375 * M, 20, 518_750_000_000, Decimal("54.68"))
    assert (small["ai_cost_pico"], small["cost_per_request_pico"]) == (8600 * M, 195_454_545_455)
    assert (unknown["price_status"], unknown["ai_cost_pico"], unknown["cost_per_request_pico"], unknown["unpriced_tokens"]) == ("unpriced", 0, None, 440_000)
    late = breakdowns.model_breakdown(store, Period.days("2026-01-16", "2026-01-31"))
    assert dict(zip(late["model"], late["ai_cost_pico"])) == {"m-big": 6925 * M, "m-small": USD}  # exact days, new m-big price


def test_plan_breakdown(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = breakdowns.plan_breakdown(store, JAN, FX)
    assert frame["plan"].tolist() == ["Business", "Pro", "Starter", "(unattributed)", "Free"]
    pro = _row(frame, plan="Pro")
    assert (pro["customers"], pro["paying_customers"], pro["revenue_pico"], pro["ai_cost_pico"]) == (2, 2, 90 * USD, 3375 * M)
    assert pro["margin_pct"] == Decimal("96.25")
    starter = _row(frame, plan="Starter")
    assert (starter["customers"], starter["paying_customers"], starter["revenue_pico"], starter["unconverted_revenue"]) == (3, 2, 83 * USD, "JPY 10000")
    free = _row(frame, plan="Free")
    assert (free["revenue_pico"], free["ai_cost_pico"], free["margin_pct"]) == (0, 6500 * M, None)


# -- trends, forecast, anomalies --------------------------------------------------------------------


def test_trends_by_week_and_model(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = trends.trend(store, JAN, grain="week", by="model")
    first = _row(frame, bucket="2025-12-29", model="m-big")  # ISO week of Monday 2025-12-29: only 1-4 January inside
    assert (first["ai_cost_pico"], first["days_in_bucket"]) == (2600 * M, 4)
    assert _row(frame, bucket="2026-01-05", model="m-small")["ai_cost_pico"] == 7 * USD
    assert _row(frame, bucket="2026-01-19", model="m-big")["ai_cost_pico"] == 6925 * M
    unknown = _row(frame, bucket="2026-01-12", model="gpt-99-unknown")
    assert (unknown["ai_cost_pico"], unknown["unpriced_requests"]) == (0, 4)
    assert _row(frame, bucket="2026-01-26", model="m-small")["days_in_bucket"] == 6
    assert sum(frame["ai_cost_pico"]) == 18975 * M


def test_trends_by_customer_plan_and_day(book: tuple[Store, object]) -> None:
    store, _ = book
    by_customer = trends.trend(store, JAN, grain="day", by="customer", top=2)
    assert set(by_customer["customer"]) == {"freebie", "euro", "(other customers)"}
    assert _row(by_customer, bucket="2026-01-05", customer="(other customers)")["ai_cost_pico"] == 2 * USD
    assert _row(by_customer, bucket="2026-01-25", customer="freebie")["ai_cost_pico"] == 6500 * M
    assert sum(by_customer["ai_cost_pico"]) == 18975 * M
    by_plan = trends.trend(store, Period.months("2026-01", "2026-02"), grain="month", by="plan")
    assert _row(by_plan, bucket="2026-02", plan="Pro")["ai_cost_pico"] == 2 * USD
    assert _row(by_plan, bucket="2026-01", plan="(unattributed)")["ai_cost_pico"] == USD
    assert _row(by_plan, bucket="2026-01", plan="Starter")["ai_cost_pico"] == 5500 * M
    daily = trends.trend(store, Period.days("2026-01-10", "2026-01-12"), grain="day")
    assert daily["bucket"].tolist() == ["2026-01-10", "2026-01-12"] and daily["ai_cost_pico"].tolist() == [850 * M, 100 * M]
    with pytest.raises(InputError):
        trends.trend(store, JAN, grain="hour")


def test_monthly_summary(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = trends.monthly_summary(store, Period.months("2026-01", "2026-02"), FX)
    jan, feb = frame.iloc[0], frame.iloc[1]
    assert (jan["revenue_pico"], jan["ai_cost_pico"], jan["margin_pct"], jan["unconverted_revenue"]) == (27492 * 10**10, 18975 * M, Decimal("93.10"), "JPY 10000")
    assert (jan["customers_with_usage"], jan["paying_customers"], jan["requests"], jan["unpriced_requests"]) == (6, 5, 68, 4)
    assert (feb["revenue_pico"], feb["ai_cost_pico"], feb["paying_customers"]) == (19205 * 10**10, 2 * USD, 2)


def test_month_end_forecast_run_rate_and_band(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = forecast.month_end_forecast(store, FX, month="2026-01", as_of="2026-01-10")
    cost = _row(frame, metric="ai_cost")
    daily = [0, 2600, 0, 0, 2000, 0, 5000, 0, 0, 850]  # $0.001 units, 1..10 January
    assert cost["so_far_pico"] == 10450 * M and cost["daily_run_rate_pico"] == 1045 * M
    assert cost["forecast_pico"] == 10450 * M + 21 * 1045 * M  # + 21 remaining days at the run rate
    mean = Decimal(sum(daily)) / 10
    variance = sum((Decimal(v) - mean) ** 2 for v in daily) / 9
    band = Decimal("1.2816") * (variance * 21 + variance * 21 * 21 / 10).sqrt() * M
    assert abs(cost["high_pico"] - (cost["forecast_pico"] + band)) <= 1
    assert cost["low_pico"] == max(10450 * M, cost["forecast_pico"] * 2 - cost["high_pico"])
    margin = _row(frame, metric="margin")
    assert margin["forecast_pico"] == 27492 * 10**10 - cost["forecast_pico"] and margin["low_pico"] == 27492 * 10**10 - cost["high_pico"]
    assert "run rate" in cost["method"] and "remaining days" in cost["method"]
    done = _row(forecast.month_end_forecast(store, FX, month="2026-02", as_of="2026-02-28"), metric="ai_cost")
    assert done["forecast_pico"] == done["low_pico"] == done["high_pico"] == 2 * USD


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Daily usage 1-10 Jan..Feb 2026: 'steady' alternates $0.90/$1.10, a $5 spike on 5 Feb;
    'spiky' $0.50/day then $10/day from 4 Feb; 'newbie' $2/day from 4 Feb only."""
    folder = tmp_path_factory.mktemp("series")
    store = open_store(f"sqlite:///{folder / 'series.db'}")
    catalog = fixture_catalog(folder / "catalog")
    rows = []
    for offset, day in enumerate(pd.date_range("2026-01-01", "2026-02-10", freq="D").strftime("%Y-%m-%d")):
        steady = 5_000_000 if day == "2026-02-05" else (900_000 if offset % 2 else 1_100_000)
        rows.append(("steady", day, steady))
        rows.append(("spiky", day, 10_000_000 if day >= "2026-02-04" else 500_000))
        if day >= "2026-02-04":
            rows.append(("newbie", day, 2_000_000))
    frame = pd.DataFrame(
        [{"ts_us": int(pd.Timestamp(d, tz="UTC").value // 1000), "customer_id": c, "feature": "f", "model": "m-small",
          "input_tokens": t, "request_id": f"r{i}"} for i, (c, d, t) in enumerate(rows)]
    )
    store.write_events(prepare_events(frame, catalog, source="test"))
    yield store
    store.close()


def test_daily_anomalies_use_a_robust_baseline(series: Store) -> None:
    flagged = anomalies.daily_anomalies(series, Period.days("2026-02-01", "2026-02-10"), by="model")
    # From 4 Feb spiky and newbie lift the day ~10x; the 28-day median stays on the old level.
    assert flagged["day"].tolist() == [f"2026-02-{d:02d}" for d in range(4, 11)]
    spike = _row(flagged, day="2026-02-05")
    assert spike["ai_cost_pico"] == 5 * USD + 10 * USD + 2 * USD and spike["baseline_median_pico"] == 1500 * M
    assert spike["ratio"] == Decimal("11.33") and "robust score" in spike["explanation"]
    every = anomalies.daily_anomalies(series, Period.days("2026-02-03", "2026-02-03"), only_anomalies=False)
    quiet = every.iloc[0]
    assert not quiet["is_anomaly"] and quiet["baseline_median_pico"] == 1500 * M  # steady ~$1 + spiky $0.50
    with pytest.raises(InputError):
        anomalies.daily_anomalies(series, JAN, by="customer")


def test_customer_anomalies(series: Store) -> None:
    frame = anomalies.customer_anomalies(series, as_of="2026-02-10")
    assert frame["customer_id"].tolist() == ["spiky", "newbie"]  # steady's one $5 day is not 3x its baseline
    spiky = frame.iloc[0]
    assert (spiky["recent_cost_pico"], spiky["baseline_daily_pico"], spiky["ratio"]) == (70 * USD, 500 * M, Decimal("20.00"))
    assert (spiky["excess_pico"], spiky["largest_day"]) == (70 * USD - 3500 * M, "2026-02-04")
    newbie = frame.iloc[1]
    assert newbie["ratio"] is None and "new spend" in newbie["explanation"] and newbie["recent_cost_pico"] == 14 * USD


# -- concentration and cohorts ------------------------------------------------------------------


def test_concentration(book: tuple[Store, object]) -> None:
    store, _ = book
    shares = concentration.top_shares(store, JAN, (1, 5, 50))
    assert shares["customers_in_top"].tolist() == [1, 1, 3] and shares["customers"].tolist() == [6, 6, 6]
    assert shares["share_of_cost_pct"].tolist() == [Decimal("36.16"), Decimal("36.16"), Decimal("82.20")]
    assert shares["total_cost_pico"][0] == 17975 * M  # the unattributed $1 is not a customer
    curve = concentration.lorenz_curve(store, JAN, points=2)
    assert curve["cost_share_pct"].tolist() == [Decimal("0.00"), Decimal("17.80"), Decimal("100.00")]
    assert concentration.gini(store, JAN)["gini"][0] == Decimal("0.4281")
    summary = concentration.concentration_summary(store, JAN).iloc[0]
    assert (summary["top_10_pct_share"], summary["gini"], summary["customers"]) == (Decimal("36.16"), Decimal("0.4281"), 6)


def test_cohort_margins_and_table(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = cohorts.cohort_margins(store, JAN, FX)
    assert frame["cohort"].tolist() == ["(unknown)", "2025-11", "2025-12", "2026-01"]
    nov = _row(frame, cohort="2025-11")
    assert (nov["customers"], nov["revenue_pico"], nov["ai_cost_pico"], nov["margin_pico"]) == (2, 99 * USD, 3275 * M, 95725 * M)
    jan = _row(frame, cohort="2026-01")
    assert (jan["customers"], jan["paying_customers"], jan["revenue_pico"], jan["ai_cost_pico"]) == (3, 2, 74 * USD, 5600 * M)
    by_plan = cohorts.cohort_margins(store, JAN, FX, by="cohort_plan")
    assert _row(by_plan, cohort="2026-01", plan="Pro")["revenue_pico"] == 20 * USD
    table = cohorts.cohort_table(store, Period.months("2026-01", "2026-02"), FX)
    cell = _row(table, cohort="2025-11", month="2026-02")
    assert (cell["active_customers"], cell["revenue_pico"], cell["months_since_signup"]) == (1, 100 * USD, 3)
    assert _row(table, cohort="2025-12", month="2026-02")["revenue_pico"] == 9205 * 10**10


def test_margin_distribution_nearest_rank(book: tuple[Store, object]) -> None:
    store, _ = book
    frame = cohorts.margin_distribution(store, JAN, FX)
    assert frame["customers"].tolist() == [5] * 5  # paying customers only
    assert frame["margin_pico"].tolist() == [19900 * M, 29 * USD, 49 * USD, 66725 * M, 9932 * 10**10]
    assert frame["margin_pct"].tolist() == [Decimal("90.74"), Decimal("95.32"), Decimal("97.45"), Decimal("99.50"), Decimal("100.00")]
    by_plan = cohorts.margin_distribution(store, JAN, FX, by="plan", percentiles=(50,))
    assert _row(by_plan, plan="Starter")["margin_pico"] == 29 * USD  # euro $49, idle $29 -> rank ceil(1) = $29
    # From the margins a page already holds (with history, unattributed included): the same.
    shown = margins.customer_margins(store, JAN, FX)
    assert cohorts.margin_distribution_of(shown, JAN.label()).values.tolist() == frame.values.tolist()
    acme_plan = shown[shown["customer_id"] == "acme"]["plan"].iloc[0]
    one_plan = cohorts.margin_distribution_of(shown[shown["plan"] == acme_plan], JAN.label(), percentiles=(50,))
    assert one_plan["customers"].tolist() == [int((shown[shown["plan"] == acme_plan]["revenue_pico"].map(int) > 0).sum())]


# -- reconciliation -------------------------------------------------------------------------------


def test_parse_line_items() -> None:
    catalog = load_catalog()
    assert reconciliation.parse_line_item("gpt-4o-2024-08-06, input", catalog) == ("gpt-4o", "input")
    assert reconciliation.parse_line_item("gpt-5.4, cached input", catalog) == ("gpt-5.4", "cached input")
    assert reconciliation.parse_line_item("o3, output_tokens", catalog) == ("o3", "output")
    assert reconciliation.parse_line_item("gpt-6-astra, input_tokens", catalog) == ("gpt-6-astra", "input")
    assert reconciliation.parse_line_item("gpt-4o-audio-preview, audio input", catalog) == ("gpt-4o-audio-preview", "other")
    assert reconciliation.parse_line_item("input_tokens", catalog) == ("(no model)", "input")


def test_reconcile_by_day_project_and_line_item(book: tuple[Store, object]) -> None:
    store, catalog = book
    frame = reconciliation.reconcile(store, JAN, catalog)
    output = _row(frame, day="2026-01-10", project_id="proj_acme", line_item="m-big, output")
    assert (output["estimated_pico"], output["billed_pico"], output["difference_pico"], output["difference_pct"]) == (300 * M, 400 * M, 100 * M, Decimal("25.00"))
    assert output["status"] == "billed above estimate" and "not logged" in output["explanation"]
    cached = _row(frame, day="2026-01-10", project_id="proj_acme", line_item="m-big, cached input")  # "cached_input_tokens" on the bill
    assert (cached["estimated_pico"], cached["billed_pico"], cached["status"]) == (50 * M, 50 * M, "matches")
    assert _row(frame, day="2026-01-10", project_id="proj_acme", line_item="m-big, input")["status"] == "matches"  # dated snapshot name
    unpriced = _row(frame, day="2026-01-12", project_id="proj_shared", line_item="gpt-99-unknown, input")
    assert (unpriced["status"], unpriced["unpriced_requests"], unpriced["unpriced_tokens"]) == ("unpriced usage", 4, 440_000)
    assert "prices.override.csv" in unpriced["explanation"]
    ghost = _row(frame, project_id="proj_ghost")
    assert (ghost["status"], ghost["billed_pico"], ghost["estimated_pico"]) == ("not logged", 7 * USD, 0)
    after_cut = _row(frame, day="2026-01-20", project_id="proj_acme", line_item="m-big, input")
    assert (after_cut["estimated_pico"], after_cut["status"]) == (250 * M, "not billed")  # 50,000 tokens at the new $5/M
    no_project = _row(frame, day="2026-01-30", line_item="m-small, input")
    assert (no_project["project_id"], no_project["estimated_pico"]) == ("(no project)", USD)
    assert sum(frame["billed_pico"]) == 15350 * M and sum(frame["estimated_pico"]) == 18975 * M
    assert frame["difference_pico"].map(abs).is_monotonic_decreasing


def test_reconcile_grouped_and_summary(book: tuple[Store, object]) -> None:
    store, catalog = book
    projects = reconciliation.reconcile(store, JAN, catalog, by=("project_id",))
    assert list(projects.columns[:3]) == ["project_id", "estimated_pico", "billed_pico"]
    assert _row(projects, project_id="proj_ghost")["status"] == "not logged"
    summary = reconciliation.reconciliation_summary(store, JAN, catalog).set_index("component")
    assert summary.loc["billed (OpenAI Costs API)", "amount_pico"] == 15350 * M
    assert summary.loc["estimated from usage", "amount_pico"] == 18975 * M
    assert summary.loc["attributed to customers", "amount_pico"] == 17975 * M
    assert summary.loc["logged without a customer", "amount_pico"] == USD
    assert summary.loc["unattributed remainder", "amount_pico"] == 15350 * M - 17975 * M
    assert summary.loc["billed with no logged usage", "amount_pico"] == 7 * USD
    assert "proj_ghost" in summary.loc["billed with no logged usage", "explanation"]
    assert "gpt-99-unknown" in summary.loc["unpriced usage", "explanation"] and summary.loc["unpriced usage", "amount_pico"] is None
    assert "EUR" in summary.loc["bill rows in other currencies", "explanation"]
    models = reconciliation.unpriced_models(store, JAN, catalog)
    assert models.to_dict("records") == [{"model": "gpt-99-unknown", "in_catalog": False, "unpriced_requests": 4, "unpriced_tokens": 440_000,
                                          "unpriced_events": 1, "reason": "not in the catalog: add it to data/prices.override.csv"}]


def test_default_period_is_the_latest_complete_month(book: tuple[Store, object]) -> None:
    store, _ = book
    assert latest_complete_month(store) == "2026-01"  # the last usage day, 3 February, leaves February incomplete


def test_sql_tier_history_equals_the_row_by_row_path(book: tuple[Store, object]) -> None:
    from walleta.analytics.margins import HealthThresholds, _monthly_by_merge, _with_history
    from walleta.analytics.tier_history import since_and_change, tier_history

    store, _ = book
    columns = ["tier_since", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico", "mom_margin_pct_change"]
    for period in (JAN, FEB, Period.months("2026-01", "2026-02"), Period.month("2026-03")):
        frame = margins.customer_margins(store, period, FX, include_inactive=True, with_history=False)
        history, months = tier_history(store, FX, period.last_month, HealthThresholds())
        fast = since_and_change(frame, history, months, period.last_month)
        slow = _with_history(frame.copy(), _monthly_by_merge(store, FX, None, period.last_month, HealthThresholds()), period.last_month)
        for column in columns:
            assert fast[column].tolist() == slow[column].tolist(), (period, column)
    inexact = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.080000000001")}, as_of={})  # not whole pico per cent
    assert tier_history(store, inexact, "2026-01", HealthThresholds()) is None
    assert _row(margins.customer_margins(store, JAN, inexact), customer_id="acme")["tier_since"] == "2026-01"


def test_tier_summary_sums_exactly_and_keeps_tier_order() -> None:
    """Per tier: customers and exact sums (values past int64 included; None counts 0), tiers in
    `TIERS` order and unknown tiers last, whatever the row order."""
    big = 2**63 - 1
    frame = pd.DataFrame({
        "tier": ["losing", "healthy", "mystery", "losing", "healthy", "healthy"],
        "revenue_pico": pd.Series([1, big, 5, 2, big, None], dtype=object),
        "ai_cost_pico": pd.Series([10, 3, 0, 20, 4, 7], dtype=object),
        "margin_pico": pd.Series([-9, big - 3, 5, -18, big - 4, -7], dtype=object),
        "unpriced_requests": [1, 0, 2, 3, 0, 4],
    })
    summary = margins.tier_summary(frame)
    assert summary["tier"].tolist() == ["healthy", "losing", "mystery"]
    assert summary["customers"].tolist() == [3, 2, 1]
    assert summary["revenue_pico"].tolist() == [2 * big, 3, 5]
    assert summary["ai_cost_pico"].tolist() == [14, 30, 0]
    assert summary["margin_pico"].tolist() == [2 * big - 14, -27, 5]
    assert summary["unpriced_requests"].tolist() == [4, 4, 2]
    assert margins.tier_summary(frame.iloc[:0]).empty
