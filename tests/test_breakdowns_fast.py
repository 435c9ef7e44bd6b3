"""The Features page's faster paths (issue 6) against straightforward reference implementations:

- `feature_allocation.allocate_by_basis` (numpy, float estimate corrected in int64, Python ints
  beyond) equals `allocate_exact` run customer by customer, on random inputs with refunds, ties,
  zero and negative bases, repeated (customer, feature) rows and money beyond int64;
- `columns.scan` (one group_concat row on SQLite) equals the row-by-row read, and falls back when
  a value contains the separator, is NULL, negative or not an integer;
- `feature_breakdown` (every rule) and `plan_breakdown` on SQLite and PostgreSQL equal references
  built from plain GROUP BY reads, `allocate_exact` and `period_margins`, for one and two months.
"""

from __future__ import annotations

import random
import sqlite3
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walleta.analytics import breakdowns
from walleta.analytics.breakdowns import NO_USAGE_ROW, Allocation, allocate_exact
from walleta.analytics.columns import INT, TEXT, _scan_concatenated, _scan_rows, scan, scan_many
from walleta.analytics.feature_allocation import _parts, allocate_by_basis
from walleta.analytics.margins import period_margins
from walleta.analytics.period import Period
from walleta.analytics.sources import group_sum, read, revenue_totals
from walleta.events import prepare_events
from walleta.store import Store

from .analytics_fixture import FX, fixture_catalog

BEYOND = 2**70  # pico-dollars: beyond int64


def _reference_allocation(rows: list[tuple[str, str, int]], revenue: dict[str, int]) -> tuple[dict[str, int], int]:
    """allocate_exact per customer over its features in name order (basis summed per pair, > 0)."""
    basis: dict[str, dict[str, int]] = {}
    for customer, feature, value in rows:
        basis.setdefault(customer, {}).setdefault(feature, 0)
        basis[customer][feature] += value
    result: dict[str, int] = {}
    left = 0
    for customer, amount in revenue.items():
        if amount == 0:
            continue
        mine = sorted((f, b) for f, b in basis.get(customer, {}).items() if b > 0)
        if not mine:
            left += amount
            continue
        for (feature, _), part in zip(mine, allocate_exact(amount, [b for _, b in mine])):
            result[feature] = result.get(feature, 0) + part
    return dict(sorted(result.items())), left


def _random_case(rng: random.Random, scale: str) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """Random basis rows and revenue: refunds, zeros, ties, customers without basis or revenue."""
    features = [f"f{i}" for i in rng.sample(range(30), rng.randint(1, 6))]
    customers = [f"c{i:03d}" for i in range(rng.randint(1, 25))]
    top_revenue = {"small": 10**6, "int64": 2**62 - 1, "wide": BEYOND}[scale]
    top_basis = {"small": 50, "int64": 2**40, "wide": 2**66}[scale]
    rows = []
    for customer in customers:
        tie = rng.randint(1, top_basis)
        for feature in rng.sample(features, rng.randint(0, len(features))):
            value = rng.choice([tie, tie, rng.randint(1, top_basis), 0, -rng.randint(1, 5)])
            rows.append((customer, feature, value))
            if rng.random() < 0.2:  # a second month of the same pair
                rows.append((customer, feature, rng.choice([value, -value, rng.randint(0, top_basis)])))
    revenue = {c: rng.choice([0, rng.randint(1, top_revenue), -rng.randint(1, top_revenue), rng.randint(1, 1000)])
               for c in customers + ["no_usage_1", "no_usage_2"] if rng.random() < 0.85}
    rng.shuffle(rows)
    return rows, revenue


@pytest.mark.parametrize("scale", ["small", "int64", "wide"])
def test_allocate_by_basis_equals_allocate_exact_per_customer(scale: str) -> None:
    rng = random.Random(f"alloc-{scale}")
    for _ in range(150):
        rows, revenue = _random_case(rng, scale)
        expected = _reference_allocation(rows, revenue)
        got = allocate_by_basis(np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=object),
                                np.array([r[2] for r in rows], dtype=object), list(revenue), list(revenue.values()))
        assert got == expected and list(got[0]) == list(expected[0])
        assert sum(got[0].values()) + got[1] == sum(revenue.values())


def test_allocate_by_basis_rows_in_key_order_and_unique_pairs() -> None:
    rng = random.Random(7)
    for _ in range(100):
        rows, revenue = _random_case(rng, "int64")
        pairs = {(c, f): b for c, f, b in rows}
        ordered = sorted((c, f, b) for (c, f), b in pairs.items())
        args = [np.array([r[i] for r in ordered], dtype=object if i < 2 else np.int64) for i in range(3)]
        expected = _reference_allocation(ordered, revenue)
        assert allocate_by_basis(*args, list(revenue), list(revenue.values()), unique_pairs=True) == expected
        split = [r for r in ordered if r[0] < "c010"] + [r for r in ordered if r[0] >= "c010"][::-1]  # customers not in runs
        split_args = [np.array([r[i] for r in split], dtype=object) for i in range(3)]
        assert allocate_by_basis(*split_args, list(revenue), list(revenue.values()), unique_pairs=True) == expected


def test_allocation_ties_go_to_the_first_feature_name() -> None:
    # 10 over three equal bases: 3 each, remainder 1 to 'alpha' (first name), whatever the row order
    got, left = allocate_by_basis(np.array(["c", "c", "c"], dtype=object), np.array(["gamma", "alpha", "beta"], dtype=object),
                                  np.array([5, 5, 5]), ["c", "d"], [10, -7])
    assert got == {"alpha": 4, "beta": 3, "gamma": 3} and left == -7
    got, _ = allocate_by_basis(np.array(["c", "c"], dtype=object), np.array(["b", "a"], dtype=object), np.array([2, 1]), ["c"], [-10])
    assert got == {"a": -3, "b": -7}  # -10 * 1/3 rounds toward zero to -3; the remainder goes to b (largest basis)


def test_quotient_fast_path_is_exact_at_its_bounds() -> None:
    """|R| * b // B near the limits the float estimate is checked against (|R| < 2^62 and
    (|R| / 2^50 + 3) * B < 2^62; here B is up to ~25 rows of `top_b` / 8), against Python ints."""
    rng = np.random.default_rng(11)
    for top_r, top_b in ((2**62 - 1, 2**46), (2**40, 2**58), (10**17, 10**15), (3, 2**57), (2**55, 2**55)):
        n = 4000
        customers = 500
        slot = rng.integers(0, customers, n)
        revenue = rng.integers(-top_r, top_r, customers, dtype=np.int64)
        revenue[:5] = [top_r, -top_r, 1, -1, top_r - 1]
        basis = rng.integers(1, max(2, top_b // 8), n, dtype=np.int64)
        parts = _parts(slot, basis, revenue)
        assert parts.dtype == np.int64, (top_r, top_b)  # the fast path ran
        total = [0] * customers
        for s, b in zip(slot.tolist(), basis.tolist()):
            total[s] += b
        expected = [(-1 if r < 0 else 1) * (abs(r) * b // total[s]) for s, b, r in zip(slot.tolist(), basis.tolist(), revenue[slot].tolist())]
        assert parts.tolist() == expected


def test_quotient_beyond_the_bounds_uses_python_ints() -> None:
    slot = np.array([0, 0, 1])
    parts = _parts(slot, np.array([2**61, 2**61 - 1, 5]), np.array([2**61 + 3, -7]))
    assert parts.dtype == object
    total = 2**62 - 1
    assert parts.tolist() == [(2**61 + 3) * 2**61 // total, (2**61 + 3) * (2**61 - 1) // total, -7]


# -- scan ----------------------------------------------------------------------------------------


def _customers(store: Store, rows: list[tuple[str, str | None, int | None]]) -> None:
    store.upsert("customers", [{"customer_id": c, "name": "", "plan": p, "signup_date": "", "email": "", "stripe_customer_id": "",
                                "seats": s, "source": "test"} for c, p, s in rows], ["customer_id"])


SCAN = [("customer_id", "customer_id", TEXT), ("plan", "plan", TEXT), ("seats", "seats", INT)]


def test_scan_equals_the_row_read(store: Store) -> None:
    big = 2**63 - 1 if store.dialect == "sqlite" else 2**31 - 1  # seats is INTEGER (32-bit) on PostgreSQL
    rows = [("a", "Pro", 3), ("b", "", 0), ("c,d", "Team, EU", big), ("z", "x", 7), ("é", "Plan ü", 12)]  # sorted
    _customers(store, rows)
    got = scan(store, SCAN, "FROM customers WHERE customer_id <> ?", ["nobody"])
    order = np.argsort(got["customer_id"])
    assert [got["customer_id"][i] for i in order] == [r[0] for r in rows]
    assert [got["plan"][i] for i in order] == [r[1] for r in rows]
    assert got["seats"].dtype == np.int64 and [int(got["seats"][i]) for i in order] == [r[2] for r in rows]
    slow = _scan_rows(store, SCAN, "FROM customers WHERE customer_id <> ?", ["nobody"])
    assert all(got[k].tolist() == slow[k].tolist() for k in got)
    if store.dialect == "sqlite":
        assert _scan_concatenated(store, SCAN, "FROM customers", []) is not None  # the fast read applies
    empty = scan(store, SCAN, "FROM customers WHERE customer_id = ?", ["nobody"])
    assert all(len(v) == 0 for v in empty.values()) and empty["seats"].dtype == np.int64


def test_scan_falls_back_on_separators_nulls_and_negatives(store: Store) -> None:
    _customers(store, [("a", "Pro\x1fPlus", 1), ("b", "Free", None), ("c", "Team", -5)])
    columns = [("customer_id", "customer_id", TEXT), ("plan", "NULLIF(plan, 'Free')", TEXT), ("seats", "seats", INT)]
    got = scan(store, columns, "FROM customers")
    by_id = {c: (p, int(s)) for c, p, s in zip(got["customer_id"], got["plan"], got["seats"])}
    assert by_id == {"a": ("Pro\x1fPlus", 1), "b": ("", 0), "c": ("Team", -5)}  # NULL reads as '' and 0
    if store.dialect == "sqlite":
        assert _scan_concatenated(store, columns, "FROM customers", []) is None  # the separator: counts differ
        rest = _scan_concatenated(store, columns[1:], "FROM customers WHERE customer_id <> ?", ["a"])
        assert rest is not None and sorted(rest["plan"].tolist()) == ["", "Team"] and sorted(rest["seats"].tolist()) == [-5, 0]


def test_scan_many_equals_one_scan_per_read_in_order(store: Store) -> None:
    """Reads run side by side come back in the order asked, each equal to its own `scan`,
    including one that falls back to the row read (a value holding the separator) and one with
    other columns; an error in one read is raised."""
    _customers(store, [("a", "Pro", 1), ("b", "Free", None), ("c", "Team\x1fEU", -5), ("d", "Pro", 2**31 - 1)])
    reads = [
        (SCAN, "FROM customers WHERE plan = ?", ["Pro"]),
        (SCAN, "FROM customers WHERE customer_id <> ?", ["a"]),  # c's plan holds the separator
        ([("seats", "seats", INT)], "FROM customers WHERE seats < ?", [0]),
        (SCAN, "FROM customers WHERE plan = ?", ["nobody"]),
    ]
    got = scan_many(store, reads)
    assert len(got) == len(reads)
    for (columns, source, params), found in zip(reads, got):
        expected = scan(store, columns, source, params)
        assert set(found) == set(expected) and all(found[k].tolist() == expected[k].tolist() for k in expected)
    assert sorted(got[0]["customer_id"].tolist()) == ["a", "d"] and got[2]["seats"].tolist() == [-5] and len(got[3]["plan"]) == 0
    assert "Team\x1fEU" in got[1]["plan"].tolist()
    with pytest.raises(Exception, match="no_such_table"):
        scan_many(store, [(SCAN, "FROM customers", []), (SCAN, "FROM no_such_table", [])])


def test_scan_falls_back_when_the_text_is_over_sqlites_length_limit(sqlite_url: str) -> None:
    from walleta.store import open_store

    store = open_store(sqlite_url)
    try:
        _customers(store, [(f"customer_{i:04d}", "Pro", i) for i in range(300)])
        expected = _scan_rows(store, SCAN, "FROM customers", [])
        raw = store.engine.raw_connection()  # the pooled connection the next reads reuse
        try:
            raw.driver_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
        finally:
            raw.close()
        with pytest.raises(sqlite3.DataError):
            _scan_concatenated(store, SCAN, "FROM customers", [])
        got = scan(store, SCAN, "FROM customers")
        assert all(got[k].tolist() == expected[k].tolist() for k in expected) and len(got["seats"]) == 300
    finally:
        store.close()


# -- feature and plan breakdowns on a random book ------------------------------------------------


def _book(store: Store, tmp_path: Path, seed: int) -> None:
    """Random usage in January and February 2026 (ties: equal events), revenue with refunds, a
    customer beyond int64 pico-dollars, revenue without usage, EUR and an unconvertible JPY, usage
    without a customer id, customers with an empty plan or no record."""
    rng = random.Random(seed)
    catalog = fixture_catalog(tmp_path / "catalog")
    customers = [f"cust{i}" for i in range(12)]
    events = []
    for i in range(80):
        customer = rng.choice(customers + [None])
        day = rng.choice(["2026-01-05", "2026-01-20", "2026-02-03", "2026-02-25"])
        tokens = rng.choice([1000, 1000, 250_000, rng.randint(1, 3_000_000)])
        events.append({"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000) + i, "customer_id": customer,
                       "feature": rng.choice(["chat", "search", "agent", "b-feature"]), "model": rng.choice(["m-small", "m-big"]),
                       "input_tokens": tokens, "output_tokens": rng.choice([0, tokens // 3]), "requests": rng.choice([1, 1, 2, 5]),
                       "request_id": f"fast_{seed}_{i}"})
    for i, (feature, day) in enumerate([("search", "2026-01-09"), ("chat", "2026-01-09"), ("agent", "2026-02-09")]):  # a tie
        events.append({"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000) + i, "customer_id": "cust3", "feature": feature,
                       "model": "m-small", "input_tokens": 7777, "output_tokens": 0, "requests": 3, "request_id": f"fast_{seed}_tie{i}"})
    store.write_events(prepare_events(pd.DataFrame(events), catalog, source="test"))
    entries = []
    for i, customer in enumerate(customers + ["only_revenue"]):
        for month, last in (("2026-01", "31"), ("2026-02", "28")):
            amount = 10**15 if customer == "cust3" else rng.choice([0, 2900, 9900, 4900, -1500])
            currency = rng.choice(["USD", "USD", "EUR", "JPY"]) if customer != "cust3" else "USD"
            if amount:
                entries.append({"uid": f"fast_{seed}_{i}_{month}", "customer_id": customer, "period_start": f"{month}-01",
                                "period_end": f"{month}-{last}", "amount_minor": amount, "currency": currency,
                                "kind": "refund" if amount < 0 else "subscription", "document_id": "", "description": "", "source": "test"})
    if entries:
        store.upsert("revenue_entries", entries, ["uid"])
    plans = ["Pro", "Starter", "", "Business"]
    _customers(store, [(c, rng.choice(plans), None) for c in customers[:-2]])


def _reference_feature_allocation(store: Store, period: Period, rule: str) -> dict[str, int]:
    column = "cost_pico" if rule == "cost_share" else "requests"
    basis = read(store, f"SELECT customer_id, feature, CAST(SUM({column}) AS BIGINT) AS b FROM rollup_customer_month_feature "
                        "WHERE month >= ? AND month <= ? GROUP BY customer_id, feature", [period.first_month, period.last_month])
    revenue = revenue_totals(store, FX, period.first_month, period.last_month)
    rows = [(c, f, int(b)) for c, f, b in zip(basis["customer_id"], basis["feature"], basis["b"])]
    result, left = _reference_allocation(rows, {c: int(v) for c, v in zip(revenue["customer_id"], revenue["revenue_pico"])})
    if left:
        result[NO_USAGE_ROW] = left
    return result


def _reference_plan_breakdown(store: Store, period: Period) -> pd.DataFrame:
    """plan_breakdown as it was before issue 6: sums of `period_margins` per plan."""
    margins = period_margins(store, period, FX)
    margins = margins.assign(paying=(margins["revenue_pico"].map(int) > 0).astype(np.int64),
                             losing=(margins["tier"] == "losing").astype(np.int64), one=1)
    margins.loc[margins["tier"] == "unattributed", "plan"] = "(unattributed)"
    sums = group_sum(margins, ["plan"], ["one", "paying", "losing", "revenue_pico", "ai_cost_pico", "requests", "unpriced_requests"])
    unconverted = margins[margins["unconverted_revenue"] != ""].groupby("plan")["unconverted_revenue"].agg("; ".join)
    return pd.DataFrame({
        "plan": sums["plan"].tolist(), "customers": sums["one"].tolist(), "paying_customers": sums["paying"].tolist(),
        "losing_customers": sums["losing"].tolist(), "revenue_pico": [int(v) for v in sums["revenue_pico"]],
        "ai_cost_pico": [int(v) for v in sums["ai_cost_pico"]], "requests": sums["requests"].tolist(),
        "unpriced_requests": sums["unpriced_requests"].tolist(),
        "unconverted_revenue": [unconverted.get(p, "") for p in sums["plan"]],
    })


@pytest.mark.parametrize("seed", [1, 2])
def test_feature_and_plan_breakdowns_equal_the_references(store: Store, tmp_path: Path, seed: int) -> None:
    _book(store, tmp_path, seed)
    for period in (Period.month("2026-01"), Period.month("2026-02"), Period.months("2026-01", "2026-02")):
        for allocation in (Allocation("cost_share"), Allocation("request_share"), Allocation("weights", {"chat": Decimal("2.5"), "zzz": 1})):
            frame = breakdowns.feature_breakdown(store, period, FX, allocation)
            got = {f: int(v) for f, v in zip(frame["feature"], frame["allocated_revenue_pico"]) if int(v) or f == NO_USAGE_ROW}
            if allocation.rule != "weights":
                expected = {f: v for f, v in _reference_feature_allocation(store, period, allocation.rule).items() if v or f == NO_USAGE_ROW}
                assert got == expected, (period, allocation.rule)
            total = sum(int(v) for v in revenue_totals(store, FX, period.first_month, period.last_month)["revenue_pico"])
            assert sum(int(v) for v in frame["allocated_revenue_pico"]) == total
        plans = breakdowns.plan_breakdown(store, period, FX)
        reference = _reference_plan_breakdown(store, period).set_index("plan").sort_index()
        mine = plans.set_index("plan").sort_index()
        assert list(mine.index) == list(reference.index)
        for column in reference.columns:
            assert [int(v) if isinstance(v, (int, np.integer)) else v for v in mine[column]] == reference[column].tolist(), (period, column)
    assert any(int(v) > 2**63 for v in breakdowns.plan_breakdown(store, Period.month("2026-01"), FX)["revenue_pico"])
