"""Sums of pico-dollar costs past int64 come back exact (walleta.wide_sums), on SQLite and PostgreSQL.

The book: 4 customers x 12 months of 2026, one event each with a given cost of about $3M
(3e18 pico): every customer's year (3.6e19) and every month's total (1.2e19) pass 2^63, and
customers differ by a few pico only (below float precision at that size), so any float or
wrapped int64 step shows. Expected values are summed in Python from the written events.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from walleta import customer_detail, headline, prices_report, wide_sums
from walleta.analytics import anomalies, breakdowns, concentration, margins, reconciliation, trends
from walleta.capture import limits
from walleta.analytics.period import Period
from walleta.catalog import load_catalog
from walleta.events import prepare_events
from walleta.fx import load_fx
from walleta.matching import unmatched_usage
from walleta.simulator import whatif
from walleta.store import Store

BASE = 3 * 10**18
YEAR = Period.months("2026-01", "2026-12")
FEATURES = {"c0": "chat", "c1": "chat", "c2": "search", "c3": "search"}
MODELS = {"c0": "gpt-4.1", "c1": "gpt-4o", "c2": "gpt-4.1", "c3": "gpt-4o"}
# c1 is 1 pico a month costlier than c2 and c3 (3 vs 2 and 1); c0 the cheapest: exact order c1, c2, c3, c0.
OFFSET = {"c0": 0, "c1": 3, "c2": 2, "c3": 1}


def _cost(customer: str, month: int) -> int:
    return BASE + OFFSET[customer] + month


def _book(store: Store) -> pd.DataFrame:
    rows = []
    for month in range(1, 13):
        for customer in FEATURES:
            rows.append({
                "ts_us": int(pd.Timestamp(f"2026-{month:02d}-10T10:00:00Z").value // 1000), "customer_id": customer,
                "feature": FEATURES[customer], "model": MODELS[customer], "input_tokens": 1000, "output_tokens": 10,
                "request_id": f"r{month}-{customer}", "cost_pico": _cost(customer, month), "price_status": "priced", "price_note": "",
            })
    frame = prepare_events(pd.DataFrame(rows), load_catalog(), source="t")
    store.write_events(frame)
    return frame


@pytest.fixture
def book(store: Store) -> Store:
    _book(store)
    return store


def _year(customer: str) -> int:
    return sum(_cost(customer, m) for m in range(1, 13))


def _month_total(month: int) -> int:
    return sum(_cost(c, month) for c in FEATURES)


def _ints(values: object) -> list[int]:
    return [int(v) for v in values]


# -- the rewrite itself ------------------------------------------------------------------------


def test_widen_duplicates_the_placeholders_of_each_sum_and_keeps_the_others_in_place() -> None:
    widened = wide_sums.widen(
        "SELECT ? AS tag, CAST(SUM(CASE WHEN customer_id = ? THEN cost_pico ELSE 0 END) AS BIGINT) AS mine, "
        "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, COUNT(*) AS n FROM t WHERE day >= ? GROUP BY 1",
        ["x", "c1", "2026-01-01"],
    )
    assert widened is not None
    assert widened.names == ["mine", "requests"]
    assert widened.params == ["x", "c1", "c1", "c1", "2026-01-01"]
    assert f"SUM((CASE WHEN customer_id = ? THEN cost_pico ELSE 0 END) / {wide_sums.D})" in widened.statement
    assert f"COALESCE(SUM((requests) - ((requests) / {wide_sums.D}) * {wide_sums.D}), 0)" in widened.statement
    columns, rows = wide_sums.combine(widened, ["tag", "wide__hi0", "wide__lo0", "wide__hi1", "wide__lo1", "n"],
                                      [("x", 5, -3, None, None, 2)])
    assert columns == ["tag", "mine", "requests", "n"]
    assert rows == [("x", 5 * wide_sums.D - 3, None, 2)]


@pytest.mark.parametrize("statement", [
    "SELECT a, CAST(SUM(x) AS BIGINT) AS s FROM t GROUP BY a ORDER BY s DESC",
    "SELECT a, CAST(SUM(x) AS BIGINT) AS s FROM t GROUP BY a LIMIT 3",
    "SELECT a, CAST(SUM(x) AS BIGINT) AS s FROM t GROUP BY a HAVING SUM(x) > 0",
    "SELECT a, s FROM (SELECT a, CAST(SUM(x) AS BIGINT) AS s FROM t GROUP BY a) AS g",
    "SELECT a, SUM(x) AS s FROM t GROUP BY a",
])
def test_widen_refuses_what_it_cannot_keep_equivalent(statement: str) -> None:
    assert wide_sums.widen(statement, []) is None


def test_a_sum_past_int64_is_exact_and_the_connection_stays_usable(book: Store) -> None:
    statement = "SELECT CAST(SUM(cost_pico) AS BIGINT) AS cost FROM rollup_customer_month WHERE customer_id = ?"
    for _ in range(12):  # more than the pool's connections: a failed fast statement leaves none broken
        assert book.fetch(statement, ["c1"]) == (["cost"], [(_year("c1"),)])
        assert book.scalar(statement, ["c2"]) == _year("c2")
    assert book.scalar("SELECT COUNT(*) FROM rollup_customer_month") == 48
    with pytest.raises(Exception) as raised:  # what cannot be widened still raises the overflow
        book.fetch("SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS c FROM rollup_customer_month GROUP BY customer_id ORDER BY c")
    assert wide_sums.is_overflow(raised.value)


def test_normal_sums_are_untouched(store: Store) -> None:
    assert wide_sums.widen("SELECT 1", []) is None
    assert store.fetch("SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS c FROM rollup_customer_month") == (["c"], [(0,)])


# -- analytics over the book ---------------------------------------------------------------------


def test_feature_and_model_breakdowns_are_exact(book: Store) -> None:
    features = breakdowns.feature_breakdown(book, YEAR, load_fx())
    expected = {"chat": _year("c0") + _year("c1"), "search": _year("c2") + _year("c3")}
    assert features["feature"].tolist() == ["chat", "search"]  # chat costs 24 pico more
    assert _ints(features["ai_cost_pico"]) == [expected["chat"], expected["search"]]
    total = sum(expected.values())
    assert [Decimal(str(v)) for v in features["cost_share_pct"]] == [
        pytest.approx(Decimal(expected["chat"] * 100) / total, abs=Decimal("0.01")),
        pytest.approx(Decimal(expected["search"] * 100) / total, abs=Decimal("0.01"))]
    models = breakdowns.model_breakdown(book, YEAR)
    by_model = {"gpt-4o": _year("c1") + _year("c3"), "gpt-4.1": _year("c0") + _year("c2")}
    assert models["model"].tolist() == ["gpt-4o", "gpt-4.1"]
    assert _ints(models["ai_cost_pico"]) == [by_model["gpt-4o"], by_model["gpt-4.1"]]
    # gpt-4o: (24 * BASE + 12 * 4 + 2 * 78) / 24 = BASE + 8.5; gpt-4.1: BASE + 7.5 (half to even: both BASE + 8)
    assert _ints(models["cost_per_request_pico"]) == [BASE + 8, BASE + 8]


def test_customer_margins_are_exact(book: Store) -> None:
    frame = margins.customer_margins(book, YEAR, load_fx(), with_history=False)
    got = {c: (int(cost), int(margin)) for c, cost, margin in zip(frame["customer_id"], frame["ai_cost_pico"], frame["margin_pico"])}
    assert got == {c: (_year(c), -_year(c)) for c in FEATURES}
    assert frame["customer_id"].tolist() == ["c1", "c2", "c3", "c0"]  # lowest margin first


def test_trend_top_customers_orders_by_exact_cost(book: Store) -> None:
    assert trends.top_customers(book, YEAR, 2) == ["c1", "c2"]
    assert trends.top_customers(book, YEAR, 4) == ["c1", "c2", "c3", "c0"]
    frame = trends.trend(book, YEAR, grain="month", by="customer", top=2)
    november = frame[frame["bucket"] == "2026-11"]
    got = dict(zip(november["customer"], _ints(november["ai_cost_pico"])))
    assert got == {"c1": _cost("c1", 11), "c2": _cost("c2", 11), "(other customers)": _cost("c0", 11) + _cost("c3", 11)}


def test_trend_totals_and_plans_are_exact(book: Store) -> None:
    frame = trends.trend(book, YEAR, grain="month")
    assert _ints(frame["ai_cost_pico"]) == [_month_total(m) for m in range(1, 13)]
    by_plan = trends.trend(book, YEAR, grain="month", by="plan")
    assert set(by_plan["plan"]) == {"(unknown)"}  # the customers table is empty
    assert _ints(by_plan["ai_cost_pico"]) == [_month_total(m) for m in range(1, 13)]
    weekly = trends.trend(book, YEAR, grain="week", by="model")
    assert sum(_ints(weekly["ai_cost_pico"])) == sum(_year(c) for c in FEATURES)


def test_monthly_summary_and_concentration_are_exact(book: Store) -> None:
    summary = trends.monthly_summary(book, YEAR, load_fx())
    assert _ints(summary["ai_cost_pico"]) == [_month_total(m) for m in range(1, 13)]
    costs = concentration.customer_costs(book, YEAR)
    assert costs == sorted(_year(c) for c in FEATURES)
    top = concentration.top_shares(book, YEAR, [25], costs=costs)
    assert _ints(top["ai_cost_pico"]) == [_year("c1")]
    assert _ints(top["total_cost_pico"]) == [sum(costs)]


def test_reconciliation_summary_estimate_is_exact(book: Store) -> None:
    lines = reconciliation.estimated_line_items(book, YEAR, load_catalog())
    assert sum(_ints(lines["estimated_pico"])) >= 0  # re-priced from tokens: small, and it must not fail
    split = reconciliation._customer_split(book, YEAR)
    assert split == (sum(_year(c) for c in FEATURES), 0)
    summary = reconciliation.reconciliation_summary(book, YEAR, load_catalog())
    assert not summary.empty


def test_plan_breakdown_and_daily_anomalies_are_exact(book: Store) -> None:
    plans = breakdowns.plan_breakdown(book, YEAR, load_fx())
    total = sum(_year(c) for c in FEATURES)
    assert _ints(plans["ai_cost_pico"]) == [total]
    assert _ints(plans["margin_pico"]) == [-total]
    assert _ints(plans["ai_cost_per_customer_pico"]) == [total // 4]
    days = anomalies.daily_anomalies(book, YEAR)
    got = dict(zip(days["day"], _ints(days["ai_cost_pico"])))
    assert got == {f"2026-{m:02d}-10": _month_total(m) for m in range(1, 13)}


def test_headline_customer_detail_prices_report_and_what_if_reads_are_exact(book: Store) -> None:
    head = headline.headline(book, load_fx(), "2026-01", "2026-12")
    assert head.cost_pico == sum(_year(c) for c in FEATURES)
    assert head.margin_pico == -head.cost_pico
    features = customer_detail.customer_features(book, "c1", "2026-01", "2026-12")
    assert (features["feature"].tolist(), _ints(features["cost_pico"])) == (["chat"], [_year("c1")])
    models = customer_detail.customer_models(book, "c1", "2026-01", "2026-12")
    assert (models["model"].tolist(), _ints(models["cost_pico"])) == (["gpt-4o"], [_year("c1")])
    usage = prices_report.model_usage(book)
    assert usage["model"].tolist() == ["gpt-4o", "gpt-4.1"]
    assert _ints(usage["cost_pico"]) == [_year("c1") + _year("c3"), _year("c0") + _year("c2")]
    dominant = whatif.dominant_models(book, "2026-01-01", "2026-12-31")
    assert dict(zip(zip(dominant["feature"], dominant["month"]), dominant["model"]))[("chat", "2026-11")] == "gpt-4o"


def test_usage_limits_seed_reads_exact_month_totals(book: Store) -> None:
    # One customer-month is one rollup_customer_month row (int64 by the schema), so this sum
    # cannot pass int64 on a database that accepted the events; it must stay exact near it.
    november = int(pd.Timestamp("2026-11-15T00:00:00Z").value // 10**9)
    tracker = limits.LimitTracker(limits.Limits(clock=lambda: november))
    tracker.seed(book)
    assert tracker.spent("c1") == (_cost("c1", 11), 1010)


def test_unmatched_usage_orders_by_exact_cost(book: Store) -> None:
    frame = unmatched_usage(book)
    assert frame["customer_id"].tolist() == ["c1", "c2", "c3", "c0"]
    assert _ints(frame["cost_pico"]) == [_year(c) for c in ("c1", "c2", "c3", "c0")]


def test_reconciliation_of_token_priced_usage_past_int64_is_exact(store: Store) -> None:
    # As the scenario: ~$2.5M of gpt-4.1 input tokens per customer-month, priced by the catalog.
    rows = [{"ts_us": int(pd.Timestamp(f"2026-{m:02d}-{5 + c:02d}T10:00:00Z").value // 1000), "customer_id": f"c{c}",
             "feature": "chat", "model": "gpt-4.1", "input_tokens": 1_250_000_000_000 + c, "request_id": f"r{m}-{c}"}
            for m in range(1, 13) for c in range(4)]
    frame = prepare_events(pd.DataFrame(rows), load_catalog(), source="t")
    store.write_events(frame)
    total = sum(int(v) for v in frame["cost_pico"])
    assert total > 2**63
    summary = reconciliation.reconciliation_summary(store, YEAR, load_catalog())
    amounts = dict(zip(summary["component"], summary["amount_pico"]))
    assert int(amounts["estimated from usage"]) == total
    assert int(amounts["attributed to customers"]) == total
    assert int(amounts["difference (billed - estimated)"]) == -total
    features = breakdowns.feature_breakdown(store, YEAR, load_fx())
    assert _ints(features["ai_cost_pico"]) == [total]


def test_other_errors_are_not_taken_for_an_overflow(book: Store) -> None:
    with pytest.raises(Exception) as raised:
        book.fetch("SELECT CAST(SUM(no_such_column) AS BIGINT) AS s FROM rollup_customer_month")
    assert not wide_sums.is_overflow(raised.value)
    overflowing = "SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS c FROM rollup_customer_month GROUP BY customer_id LIMIT 9"
    with pytest.raises(Exception) as raised:
        try:
            book.fetch(overflowing)
        except Exception:
            raise ValueError("raised while handling the overflow")  # its __context__ is the overflow
    assert raised.type is ValueError and wide_sums.is_overflow(raised.value.__context__)
    assert not wide_sums.is_overflow(raised.value)


@pytest.mark.parametrize("values", [[-(2**40) - 3, 7, -5, 2**33 + 1], [-4 * 10**18, -4 * 10**18 - 1, -4 * 10**18 + 9, 3]])
def test_negative_amounts_split_and_recombine_exactly(store: Store, values: list[int]) -> None:
    # Credits and refunds are negative: both databases truncate toward zero, x = hi * D + lo.
    rows = " UNION ALL ".join(f"SELECT CAST({v} AS BIGINT) AS x, 'k' AS k" for v in values)
    statement = f"SELECT k, CAST(SUM(x) AS BIGINT) AS s FROM ({rows}) AS v GROUP BY k"
    widened = wide_sums.widen(statement)
    assert widened is not None
    assert wide_sums.combine(widened, *store.fetch(widened.statement, widened.params)) == (["k", "s"], [("k", sum(values))])
    assert store.fetch(statement) == (["k", "s"], [("k", sum(values))])  # the second set passes int64: the fallback
