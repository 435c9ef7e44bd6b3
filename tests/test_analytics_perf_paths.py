"""The faster read paths of the analytics pages (issue 6, page speed) against hand-computed results
and against the slower definitions they replace, on SQLite and PostgreSQL:

- `display.pct`: integer rounding equals the Decimal definition (value, sign and exponent);
- `tier_history` / `revenue_and_paying_by_month` (numpy grouping of two plain scans), including
  money beyond int64 (a customer-month above 2^62 pico-dollars, month totals above int64);
- `period_margins` (the per-customer part of `customer_margins` that plan views sum);
- `sources.read` keeps text columns as plain object columns.
"""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walleta.analytics import margins
from walleta.analytics.display import pct, pct_of_positive
from walleta.analytics.margins import HealthThresholds, _monthly_by_merge, _with_history, monthly_customer_margins, period_margins
from walleta.analytics.period import Period
from walleta.analytics.sources import read
from walleta.analytics.tier_history import revenue_and_paying_by_month, tier_history
from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.revenue_rollup import ensure_fresh, is_fresh
from walleta.store import Store

from .analytics_fixture import FX, USD, build_fixture, fixture_catalog

FEB = Period.month("2026-02")
BIG = 10**15  # minor units: $10^13, i.e. 10^25 pico-dollars in one customer-month (beyond int64)


def _reference_pct(n: int, d: int) -> Decimal | None:
    if d == 0:
        return None
    return ((Decimal(n) / Decimal(d)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def test_pct_equals_the_decimal_definition() -> None:
    rng = random.Random(6)
    cases = [(0, 5), (0, -5), (-1, 10**9), (1, -10**9), (5, 1000), (15, 10000), (25, 10000), (-25, 10000), (35, 10000),
             (1, 3), (2, 3), (-2, 3), (10**21 - 1, 7), (-(10**21 - 1), 7), (10**21, 7), (7, 10**30), (3, 0)]
    for _ in range(50_000):
        d = rng.choice([rng.randint(1, 10), rng.randint(1, 10**6), rng.randint(1, 10**15), rng.randint(1, 10**26)]) * rng.choice([1, 1, -1])
        midpoint = (2 * rng.randint(-10**6, 10**6) + 1) * d // 20000  # 100 n / d on or next to x.xx5
        n = rng.choice([rng.randint(-10**15, 10**15), rng.randint(-10**22, 10**22), midpoint, midpoint + rng.choice([-1, 1])])
        cases.append((n, d))
    for n, d in cases:
        try:
            expected = _reference_pct(n, d)
        except InvalidOperation:
            with pytest.raises(InvalidOperation):
                pct(n, d)
            continue
        got = pct(n, d)
        assert str(got) == str(expected), (n, d, got, expected)
    assert str(pct(-1, 10**9)) == "-0.00" and str(pct(1, 8)) == "12.50" and str(pct(1, 800)) == "0.12"  # 0.125 -> even


def _usage(store: Store, catalog: Catalog, rows: list[tuple[str, str, int]]) -> None:
    """Events (customer, day, input tokens) of m-small ($1 per 1M input tokens)."""
    frame = pd.DataFrame([
        {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000), "customer_id": customer, "feature": "chat", "model": "m-small",
         "input_tokens": tokens, "output_tokens": 0, "requests": 1, "request_id": f"perf_{i}"}
        for i, (customer, day, tokens) in enumerate(rows)
    ])
    store.write_events(prepare_events(frame, catalog, source="test"))


def _revenue(store: Store, rows: list[tuple[str, str, str, int]], source: str) -> None:
    """USD subscription (or refund, when negative) entries (customer, start, end, amount_minor);
    `source` "rollup" brings the revenue rollup up to date, "entries" leaves it stale."""
    with store.transaction() as cur:
        store.upsert(
            "revenue_entries",
            [{"uid": f"perf_{i}", "customer_id": c, "period_start": a, "period_end": b, "amount_minor": m, "currency": "USD",
              "kind": "refund" if m < 0 else "subscription", "document_id": "", "description": "", "source": "test"}
             for i, (c, a, b, m) in enumerate(rows)],
            ["uid"],
            cur=cur,
        )
        if source == "rollup":
            ensure_fresh(cur, store.dialect)
    assert is_fresh(store) is (source == "rollup")


@pytest.fixture(params=["rollup", "entries"])
def revenue_source(request: pytest.FixtureRequest) -> str:
    """Where the analytics read revenue: the revenue rollup, or the entries (rollup stale)."""
    return str(request.param)


@pytest.fixture
def big_book(store: Store, tmp_path: Path, revenue_source: str) -> Store:
    """big: $10^13 revenue and $1 cost in January and February (healthy, beyond int64);
    gap: $10 revenue and $1 cost in December and February, nothing in January;
    refund: January $10 and no usage (no_usage); February $10 refunded and $1 cost (free)."""
    catalog = fixture_catalog(tmp_path / "catalog")
    _usage(store, catalog, [("big", "2026-01-05", 1_000_000), ("big", "2026-02-03", 1_000_000), ("gap", "2025-12-10", 1_000_000),
                            ("gap", "2026-02-10", 1_000_000), ("refund", "2026-02-11", 1_000_000)])
    _revenue(store, [("big", "2026-01-01", "2026-01-31", BIG), ("big", "2026-02-01", "2026-02-28", BIG),
                     ("gap", "2025-12-01", "2025-12-31", 1000), ("gap", "2026-02-01", "2026-02-28", 1000),
                     ("refund", "2026-01-01", "2026-01-31", 1000), ("refund", "2026-02-01", "2026-02-28", 1000),
                     ("refund", "2026-02-01", "2026-02-28", -1000)], revenue_source)
    return store


def test_tier_history_with_money_beyond_int64_hand_computed(big_book: Store) -> None:
    history, months = tier_history(big_book, FX, "2026-02", HealthThresholds())
    assert months == ["2025-12", "2026-01", "2026-02"]
    rows = history.set_index("customer_id")
    assert rows.loc["big", "revenue_now"] == BIG * 10**10 and rows.loc["big", "margin_before"] == BIG * 10**10 - USD
    assert rows.loc["gap", "last_gap"] == 1 and rows.loc["gap", "first_idx"] == 0 and rows.loc["gap", "revenue_before"] == 0
    assert rows.loc["refund", "miss_free"] == 1 and rows.loc["refund", "miss_no_usage"] == 2 and np.isnan(rows.loc["big", "miss_healthy"])
    frame = margins.customer_margins(big_book, FEB, FX).set_index("customer_id")
    assert frame.loc["big", "tier"] == "healthy" and frame.loc["big", "tier_since"] == "2026-01"
    assert frame.loc["big", "last_month_margin_pico"] == BIG * 10**10 - USD and frame.loc["big", "mom_margin_change_pico"] == 0
    assert str(frame.loc["big", "mom_margin_pct_change"]) == "0.00"
    assert (frame.loc["gap", "tier"], frame.loc["gap", "tier_since"], frame.loc["gap", "mom_margin_change_pico"]) == ("healthy", "2026-02", 9 * USD)
    assert frame.loc["gap", "mom_margin_pct_change"] is None
    assert (frame.loc["refund", "tier"], frame.loc["refund", "tier_since"]) == ("free", "2026-02")
    assert (frame.loc["refund", "last_month_margin_pico"], frame.loc["refund", "prev_month_margin_pico"]) == (-USD, 10 * USD)


def test_tier_history_equals_the_row_by_row_path_beyond_int64(big_book: Store) -> None:
    columns = ["tier_since", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico", "mom_margin_pct_change"]
    for period in (FEB, Period.month("2026-01"), Period.months("2025-12", "2026-02")):
        fast = margins.customer_margins(big_book, period, FX, include_inactive=True)
        frame = margins.customer_margins(big_book, period, FX, include_inactive=True, with_history=False)
        slow = _with_history(frame.copy(), _monthly_by_merge(big_book, FX, None, period.last_month, HealthThresholds()), period.last_month)
        for column in columns:
            assert fast[column].tolist() == slow[column].tolist(), (period, column)


def test_revenue_and_paying_by_month_beyond_int64(big_book: Store) -> None:
    frame = revenue_and_paying_by_month(big_book, FX, "2025-12", "2026-02")
    assert frame["month"].tolist() == ["2025-12", "2026-01", "2026-02"]
    assert frame["revenue_pico"].tolist() == [10 * USD, BIG * 10**10 + 10 * USD, BIG * 10**10 + 10 * USD]
    assert frame["paying_customers"].tolist() == [1, 2, 2]  # refund's February nets to 0: present, not paying


def test_month_totals_beyond_int64_from_int64_customer_months(store: Store, revenue_source: str) -> None:
    # 240 customers with $40,000 in January: each customer-month fits int64, the month total does not
    _revenue(store, [(f"bulk{i:03d}", "2026-01-01", "2026-01-31", 4_000_000) for i in range(240)]
             + [("bulk000", "2026-02-01", "2026-02-28", 4_000_000), ("bulk000", "2026-02-01", "2026-02-28", -1_000_000)], revenue_source)
    frame = revenue_and_paying_by_month(store, FX, "2026-01", "2026-02")
    assert frame["revenue_pico"].tolist() == [240 * 40_000 * USD, 30_000 * USD] and frame["revenue_pico"].tolist()[0] > 2**63
    assert frame["paying_customers"].tolist() == [240, 1]


def test_period_margins_equal_customer_margins_without_history(store: Store, tmp_path: Path) -> None:
    build_fixture(store, fixture_catalog(tmp_path / "catalog"))
    period = Period.month("2026-01")
    full = margins.customer_margins(store, period, FX, include_inactive=True, with_history=False).sort_values("customer_id")
    part = period_margins(store, period, FX, include_inactive=True).sort_values("customer_id")
    shared = [c for c in part.columns if c in full.columns]
    assert len(shared) >= 18 and "tier" in shared and "margin_pico" in shared
    for column in shared:
        assert full[column].tolist() == part[column].tolist(), column
    assert set(part["customer_id"]) == set(full["customer_id"]) and "margin_pct" not in part


def test_read_keeps_text_columns_as_objects(store: Store, tmp_path: Path) -> None:
    build_fixture(store, fixture_catalog(tmp_path / "catalog"))
    frame = read(store, "SELECT customer_id, amount_minor, period_end FROM revenue_entries ORDER BY uid")
    assert frame["customer_id"].dtype == object and frame["amount_minor"].dtype == np.int64
    assert frame["customer_id"].tolist()[:3] == ["acme", "acme", "acme"] and frame["amount_minor"].tolist()[:2] == [10000, -3000]
    empty = read(store, "SELECT customer_id FROM revenue_entries WHERE 1 = 0")
    assert empty.empty and list(empty.columns) == ["customer_id"]


def test_cheaper_month_span_tests_equal_the_definition(store: Store) -> None:
    from walleta.analytics.sources import _END, _SINGLE_MONTH_RULE
    from walleta.revenue_rollup import MULTI_MONTH as _MULTI_MONTH, SINGLE_MONTH as _SINGLE_MONTH

    ends = [None, "", "2026-01-01", "2026-01-15", "2026-01-31", "2026-02-01", "2025-12-31", "2026-01", "2026-02", "2026-01-15T10:00", "x"]
    pairs = [(s, e) for s in ("2026-01-01", "2026-01-15", "2026-01-31", "2025-12-31") for e in ends]
    values = ", ".join("(CAST(? AS TEXT), CAST(? AS TEXT))" for _ in pairs)
    _, rows = store.fetch(
        f"WITH r(period_start, period_end) AS (VALUES {values}) SELECT period_start, period_end, "
        f"CASE WHEN {_SINGLE_MONTH_RULE} THEN 1 ELSE 0 END, CASE WHEN {_SINGLE_MONTH} THEN 1 ELSE 0 END, "
        f"CASE WHEN {_MULTI_MONTH} THEN 1 ELSE 0 END, {_END} FROM r",
        [v for pair in pairs for v in pair],
    )
    assert len(rows) == len(pairs) and sum(r[2] for r in rows) == 27  # 17 of the 44 span months (an end "x" sorts after every date)
    for start, end, rule, single, multi, effective_end in rows:
        assert rule == single == 1 - multi, (start, end)
        if multi:
            assert effective_end == end  # so the range test may compare period_end itself


def test_pct_of_positive_equals_pct_row_by_row() -> None:
    """The batch form gives pct's exact value, sign and exponent (negative zero included) for
    every pair with a positive denominator and None otherwise, in int64 and beyond."""
    rng = np.random.default_rng(11)
    small = [int(v) for v in rng.integers(-10**14, 10**14, 400)]
    pairs = list(zip(small, [int(v) for v in rng.integers(-5, 10**14, 400)]))
    pairs += [(-1, 10**9), (1, 8), (1, 800), (-1, 800), (0, 5), (5, 0), (7, -3), (2**62, 3), (-(2**62), 7), (10**18, 2**62)]
    pairs += [(k, 40_000) for k in range(-3, 4)] + [(1, 2 * 10**6), (3, 2 * 10**6), (-3, 2 * 10**6)]  # exact midpoints
    beyond = pairs + [(-(2**70), 7), (10**21, 3), (3, 2**70)]  # not int64: every pair through pct
    for chosen in (pairs, beyond, pairs[:5]):  # int64 numpy path (with pairs too big for it), Python ints, short path
        got = pct_of_positive([n for n, _ in chosen], [d for _, d in chosen])
        assert [str(v) for v in got] == [str(pct(n, d)) if d > 0 else "None" for n, d in chosen]
    got = [str(v) for v in pct_of_positive([n for n, _ in pairs], [d for _, d in pairs])]
    assert "-0.00" in got and "None" in got and len(set(got)) > 300


def test_exact_integer_helpers_stay_exact_at_every_size() -> None:
    from walleta.analytics.exact import SAFE, exact_ints, exact_sums

    assert exact_ints([1, -2]).dtype == np.int64 and exact_ints([]).dtype == np.int64
    wide = exact_ints([SAFE, 1])
    assert wide.dtype == object and wide.tolist() == [SAFE, 1]
    unsigned = exact_ints(np.array([2**64 - 1, 3], dtype=np.uint64))  # must not wrap to -1
    assert unsigned.dtype == object and unsigned.tolist() == [2**64 - 1, 3]
    rng = np.random.default_rng(5)
    for bound in (10**6, 2**61, 2**62 - 1):  # int64 sums, then the 32-bit-halves path
        values = rng.integers(-bound, bound, 500, dtype=np.int64)
        slots = rng.integers(0, 7, 500)
        expected = [sum(int(v) for v, s in zip(values, slots) if s == k) for k in range(7)]
        assert [int(v) for v in exact_sums(slots, 7, values)] == expected
    python_ints = np.array([2**70, -(2**70), 5], dtype=object)
    assert exact_sums(np.array([0, 0, 1]), 2, python_ints).tolist() == [0, 5]

    from walleta.analytics.exact import exact_ints_filled

    assert exact_ints_filled((3, None, -4)).tolist() == [3, 0, -4]  # a column of fetched rows
    assert exact_ints_filled((2**70, None)).tolist() == [2**70, 0]
    assert exact_ints_filled(pd.Series([1, None, 7], dtype=object)).tolist() == [1, 0, 7]
    assert exact_ints_filled(pd.Series([1, None], dtype="Int64")).tolist() == [1, 0]
    int64 = pd.Series([SAFE + 1, 2], dtype=np.int64)
    assert exact_ints_filled(int64).dtype == np.int64 and exact_ints_filled(int64).tolist() == [SAFE + 1, 2]


def test_costs_beyond_float_precision_stay_exact_beside_revenue_only_customers(store: Store, tmp_path: Path, revenue_source: str) -> None:
    # Aligning usage with revenue used to go through a pandas outer merge, which turns an int64
    # column with a missing row into float64: a cost above 2^53 pico-dollars ($9,007) lost digits.
    cost = 2_000_000_000_001 * 10**6  # m-small: 10^6 pico-dollars per input token
    _usage(store, fixture_catalog(tmp_path / "catalog"), [("whale", "2026-02-03", 2_000_000_000_001)])
    _revenue(store, [("payer", "2026-02-01", "2026-02-28", 1000)], revenue_source)
    for frame in (period_margins(store, FEB, FX), margins.customer_margins(store, FEB, FX)):
        rows = frame.set_index("customer_id")
        assert rows.loc["whale", "ai_cost_pico"] == cost and rows.loc["whale", "margin_pico"] == -cost
        assert rows.loc["payer", "revenue_pico"] == 10 * USD and rows.loc["payer", "ai_cost_pico"] == 0
        assert all(type(v) is int for v in frame["ai_cost_pico"].tolist() + frame["revenue_pico"].tolist())
    for monthly in (monthly_customer_margins(store, FX, None, "2026-02"), _monthly_by_merge(store, FX, None, "2026-02", HealthThresholds())):
        rows = monthly.set_index("customer_id")
        assert rows.loc["whale", "ai_cost_pico"] == cost and rows.loc["payer", "revenue_pico"] == 10 * USD
