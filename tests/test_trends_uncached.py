"""Trends when nothing is remembered (issue 6): the numpy assembly, the whole-period read split
into its closed and open parts, and statements read side by side (`parallel_reads`) give exactly
the frames of the reference path, on SQLite and PostgreSQL.

Reference path: one grouped statement per trend over the whole period (the feature x model day
rollup; the customer day rollup joined to the customers table for plans; for the top customers,
every customer's day rows with the rest summed per day), assembled by the plain-Python assembly
the numpy one replaced (`_reference_assemble`, kept here verbatim).

The book: several plans, a customer without a plan, a customer missing from the customers table
('(unknown)'), usage without a customer ('(unattributed)'), an unpriced model, a plan without
usage, and a whale whose two days (31 January and 1 February, one ISO week, two months) cost
5e18 pico-dollars each, so its week sums exceed int64 and must come back as exact Python ints.
Periods start and end mid-week, span months, are single days, whole months, or empty.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from walleta.analytics import closed_months, parallel_reads, trends
from walleta.analytics.period import Period
from walleta.analytics.trends import OTHER_CUSTOMERS, _TREND_MEASURES, bucket_of
from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.schema import UNATTRIBUTED
from walleta.store import Store, open_store

from .analytics_fixture import fixture_catalog
from .pgserver import scoped_database_url

INT64_MAX = 2**63 - 1
WHALE_COST = 5 * 10**18  # pico-dollars a day: two days in one week pass int64
PLANS = {"alpha": "Pro", "beta": "Starter", "gamma": "", "delta": "Pro", "whale": "Business", "idle": "Enterprise", "eps": "Starter"}
USERS = ["alpha", "beta", "gamma", "delta", "eps", "ghost", None]  # ghost: not in the customers table; None: unattributed
SUMS = ", ".join(f"CAST(SUM({m}) AS BIGINT)" for m in _TREND_MEASURES)


def _reference_assemble(rows: list[tuple], keys: list[str], grain: str, monthly: bool, period: Period) -> pd.DataFrame:
    """The assembly before the numpy one (plain Python, verbatim): rows summed per (bucket,
    *keys) exactly, sorted by bucket, cost (highest first) and keys."""
    if not rows:
        return pd.DataFrame(columns=["bucket", *keys, "days_in_bucket", "ai_cost_pico", "requests", "total_tokens"])
    width = len(keys)
    buckets: dict[str, str] = {}
    sums: dict[tuple, list[int]] = {}
    for row in rows:
        day = row[0]
        bucket = buckets.get(day)
        if bucket is None:
            bucket = buckets[day] = day if monthly else bucket_of(day, grain)
        key = (bucket, *row[1:1 + width])
        values = [0 if v is None else int(v) for v in row[1 + width:]]
        found = sums.get(key)
        if found is None:
            sums[key] = values
        else:
            for i, v in enumerate(values):
                found[i] += v
    cost_at = _TREND_MEASURES.index("cost_pico")
    ordered = sorted(sums.items(), key=lambda kv: (kv[0][0], -kv[1][cost_at], *kv[0][1:]))
    in_period: dict[str, int] = {}
    for i in range(period.day_count):
        label = bucket_of(date.fromordinal(period.start.toordinal() + i).isoformat(), grain)
        in_period[label] = in_period.get(label, 0) + 1
    data: dict[str, object] = {"bucket": pd.Series([k[0] for k, _ in ordered], dtype=object)}
    for i, name in enumerate(keys):
        data[name] = pd.Series([k[1 + i] for k, _ in ordered], dtype=object)
    data["days_in_bucket"] = np.array([in_period[k[0]] for k, _ in ordered], dtype=np.int64)
    data["ai_cost_pico"] = pd.Series([v[cost_at] for _, v in ordered], dtype=object)
    measures = {m: [v[i] for _, v in ordered] for i, m in enumerate(_TREND_MEASURES) if m != "cost_pico"}
    measures["total_tokens"] = [a + b for a, b in zip(measures["input_tokens"], measures["output_tokens"])]
    for name in ["requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "total_tokens",
                 "unpriced_requests", "unpriced_tokens"]:
        try:
            data[name] = np.array(measures[name], dtype=np.int64)
        except OverflowError:
            data[name] = np.array(measures[name], dtype=object)
    return pd.DataFrame(data)


# -- the assembly alone -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_numpy_assembly_equals_the_plain_python_one(seed: int) -> None:
    rng = random.Random(seed)
    period = Period.days("2026-01-14", "2026-03-05")  # Wednesday to Thursday
    days = [date.fromordinal(period.start.toordinal() + i).isoformat() for i in range(period.day_count)]
    huge = seed % 3 == 0  # values near and beyond int64 (sums must be exact Python ints)
    rows = []
    for _ in range(rng.randint(1, 300)):
        values = [rng.choice([None, 0, rng.randint(0, 10**6), rng.randint(-10**5, 10**5)]) for _ in _TREND_MEASURES]
        if huge:
            values[rng.randrange(len(values))] = rng.choice([INT64_MAX, 2**62 + rng.randint(0, 9), 2**64 + 3, -(2**63)])
        key = rng.choice(["m-a", "m-b", "m-c", "(other customers)", "zz"])
        rows.append((rng.choice(days), key, *values))
    rows += [rows[0], rows[-1]]  # repeated keys: summed
    for grain in ("day", "week", "month"):
        for keys in ([], ["model"]):
            trimmed = [r if keys else (r[0], *r[2:]) for r in rows]
            got = trends._assemble(trimmed, keys, grain, False, period)
            pd.testing.assert_frame_equal(got, _reference_assemble(trimmed, keys, grain, False, period))
            assert all(type(v) is int for v in got["ai_cost_pico"])
    months = [(d[:7], *rest) for d, *rest in rows]
    whole = Period.months("2026-01", "2026-03")
    pd.testing.assert_frame_equal(trends._assemble(months, ["plan"], "month", True, whole),
                                  _reference_assemble(months, ["plan"], "month", True, whole))


def test_assembly_of_tied_costs_and_no_rows() -> None:
    period = Period.days("2026-02-02", "2026-02-08")
    rows = [("2026-02-03", "b", 1, 0, 0, 0, 0, 5, 0, 0), ("2026-02-03", "a", 2, 0, 0, 0, 0, 5, 0, 0), ("2026-02-04", "c", 1, 0, 0, 0, 0, 9, 0, 0)]
    got = trends._assemble(rows, ["model"], "week", False, period)
    assert got["model"].tolist() == ["c", "a", "b"]  # cost first, then the key
    pd.testing.assert_frame_equal(got, _reference_assemble(rows, ["model"], "week", False, period))
    pd.testing.assert_frame_equal(trends._assemble([], ["model"], "day", False, period), _reference_assemble([], ["model"], "day", False, period))


# -- a book on both databases -----------------------------------------------------------------------


def _events() -> pd.DataFrame:
    rng = random.Random(61)
    days = pd.date_range("2026-01-05", "2026-03-20", freq="D").strftime("%Y-%m-%d").tolist()
    rows = []
    for _ in range(260):
        model = rng.choice(["m-small", "m-big", "m-big", "gpt-99-unknown"])
        rows.append((rng.choice(USERS), rng.choice(days), rng.choice(["chat", "search", "embed"]), model,
                     rng.randint(1_000, 400_000), rng.randint(0, 50_000), rng.randint(1, 4)))
    return _frame(rows, "t")


def _frame(rows: list[tuple], prefix: str) -> pd.DataFrame:
    return pd.DataFrame([
        {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000) + (i % 20) * 3_600_000_000, "customer_id": customer, "feature": feature,
         "model": model, "input_tokens": tokens, "cached_input_tokens": 0 if customer == "whale" else tokens // 4, "output_tokens": out,
         "reasoning_tokens": out // 3, "requests": requests, "project_id": "", "request_id": f"{prefix}_{i}"}
        for i, (customer, day, feature, model, tokens, out, requests) in enumerate(rows)
    ])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def book(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("uncached")
    store = open_store(scoped_database_url(request, request.param, folder))
    catalog: Catalog = fixture_catalog(folder / "catalog")
    store.write_events(prepare_events(_events(), catalog, source="test"))
    # The whale: m-big input costs $5 per 1M tokens (5e6 pico a token) from 16 January.
    for i, day in enumerate(("2026-01-31", "2026-02-01")):
        whale = prepare_events(_frame([("whale", day, "chat", "m-big", WHALE_COST // 5_000_000, 0, 1)], f"whale{i}"), catalog, source="test")
        assert int(whale["cost_pico"].iloc[0]) == WHALE_COST
        store.write_events(whale)
    store.upsert("customers", [{"customer_id": c, "name": c.upper(), "plan": p, "signup_date": "", "email": "", "stripe_customer_id": "",
                                "seats": None, "source": "test"} for c, p in PLANS.items()], ["customer_id"])
    yield store
    store.close()


def _reference(store: Store, period: Period, grain: str, by: str | None, top: int | None) -> pd.DataFrame:
    """The trend from one grouped statement over the whole period, assembled in plain Python."""
    span = [period.first_day, period.last_day]
    if by in (None, "model", "feature"):
        keys = f"day, {by}" if by else "day"
        rows = store.fetch(f"SELECT {keys}, {SUMS} FROM rollup_feature_model_day WHERE day >= ? AND day <= ? GROUP BY {keys}", span)[1]
    elif by == "plan":
        rows = store.fetch(
            f"SELECT r.day, {trends.plan_sql()}, {SUMS.replace('SUM(', 'SUM(r.')} FROM rollup_customer_day r "
            "LEFT JOIN customers c ON c.customer_id = r.customer_id WHERE r.day >= ? AND r.day <= ? GROUP BY 1, 2", span)[1]
    else:
        rows = store.fetch(f"SELECT day, customer_id, {SUMS} FROM rollup_customer_day WHERE day >= ? AND day <= ? GROUP BY day, customer_id", span)[1]
        if top is not None:
            rows = _top_and_other(rows, top)
    return _reference_assemble(rows, [by] if by else [], grain, False, period)


def _top_and_other(rows: list[tuple], top: int) -> list[tuple]:
    """The `top` customers' rows (by cost in the period, ties by id, unattributed excluded) and,
    per day, everyone else's sums as '(other customers)' when some measure is not 0."""
    cost_at = 2 + _TREND_MEASURES.index("cost_pico")
    totals: dict[str, int] = {}
    for row in rows:
        if row[1] != UNATTRIBUTED:
            totals[row[1]] = totals.get(row[1], 0) + int(row[cost_at])
    chosen = set(sorted(totals, key=lambda c: (-totals[c], c))[:top])
    out = [row for row in rows if row[1] in chosen]
    other: dict[str, list[int]] = {}
    for row in rows:
        if row[1] not in chosen:
            found = other.setdefault(row[0], [0] * len(_TREND_MEASURES))
            for i, v in enumerate(row[2:]):
                found[i] += int(v)
    out += [(day, OTHER_CUSTOMERS, *values) for day, values in other.items() if any(values)]
    return out


PERIODS = [
    Period.days("2026-01-21", "2026-02-26"),  # Wednesday to Thursday, across months, both whale days
    Period.days("2026-02-04", "2026-03-12"),  # Wednesday to Thursday, no whale
    Period.months("2026-01", "2026-03"),  # whole months: the customer-month rollup for plans and customers
    Period.month("2026-02"),
    Period.days("2026-03-05", "2026-03-05"),
    Period.days("2026-03-10", "2026-04-22"),  # ends after the last usage
    Period.days("2030-01-01", "2030-02-15"),  # nothing at all
    Period.month("2030-01"),
]
VIEWS = [(None, None), ("model", None), ("feature", None), ("plan", None), ("customer", None), ("customer", 2)]


@pytest.mark.parametrize("period", PERIODS, ids=lambda p: p.label)
def test_trends_equal_the_reference_path(book: Store, period: Period) -> None:
    for by, top in VIEWS:  # the whale's cost over January and February passes int64 (top customers: walleta.wide_sums)
        for grain in ("day", "week", "month"):
            expected = _reference(book, period, grain, by, top)
            closed_months.cache_clear()
            cold = trends.trend(book, period, grain=grain, by=by, top=top)
            warm = trends.trend(book, period, grain=grain, by=by, top=top)  # closed months from memory
            for got in (cold, warm):
                pd.testing.assert_frame_equal(got, expected, obj=f"{by} {top} {grain}")


def test_reads_one_after_another_equal_reads_side_by_side(book: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    period, year = Period.days("2026-01-07", "2026-03-18"), Period.months("2026-01", "2026-03")
    views = [(period, "day", "model"), (period, "week", "feature"), (year, "month", "plan"), (period, "week", "plan"),
             (period, "day", "customer")]
    side_by_side = []
    for p, grain, by in views:
        closed_months.cache_clear()
        side_by_side.append(trends.trend(book, p, grain=grain, by=by, top=None))
    monkeypatch.setattr(parallel_reads, "WORKERS", 1)
    for (p, grain, by), parallel in zip(views, side_by_side):
        closed_months.cache_clear()
        pd.testing.assert_frame_equal(trends.trend(book, p, grain=grain, by=by, top=None), parallel)


def test_whale_weeks_are_exact_python_ints(book: Store) -> None:
    period = Period.days("2026-01-28", "2026-02-04")
    closed_months.cache_clear()
    for by in (None, "model", "plan", "customer"):
        frame = trends.trend(book, period, grain="week", by=by, top=None)
        big = [v for v in frame["ai_cost_pico"] if v > INT64_MAX]
        assert big and all(type(v) is int for v in frame["ai_cost_pico"]), by
        if by in ("plan", "customer"):
            row = frame[(frame[by] == ("Business" if by == "plan" else "whale")) & (frame["bucket"] == "2026-01-26")]
            assert row["ai_cost_pico"].tolist() == [2 * WHALE_COST]
            assert row["input_tokens"].dtype == np.int64 and int(row["input_tokens"].iloc[0]) == 2 * WHALE_COST // 5_000_000
    by_month = trends.trend(book, Period.months("2026-01", "2026-02"), grain="month", by="plan")
    business = by_month[by_month["plan"] == "Business"]
    assert business["ai_cost_pico"].tolist() == [WHALE_COST, WHALE_COST]  # one whale day a month: int64 in SQL, summed exactly


def test_plan_labels_and_unpriced_usage(book: Store) -> None:
    closed_months.cache_clear()
    frame = trends.trend(book, Period.months("2026-01", "2026-03"), grain="month", by="plan")
    assert {"Pro", "Starter", "Business", "(no plan)", "(unknown)", "(unattributed)"} == set(frame["plan"])  # no 'Enterprise': no usage
    assert frame["unpriced_requests"].sum() > 0 and frame["unpriced_tokens"].sum() > 0
    assert frame["days_in_bucket"].tolist() == [{"2026-01": 31, "2026-02": 28, "2026-03": 31}[b] for b in frame["bucket"]]
    week = trends.trend(book, Period.days("2026-02-04", "2026-02-12"), grain="week", by="model")
    assert sorted(set(zip(week["bucket"], week["days_in_bucket"]))) == [("2026-02-02", 5), ("2026-02-09", 4)]  # cut weeks


# -- parallel_reads ---------------------------------------------------------------------------------


def test_day_ranges_cover_the_period_in_order() -> None:
    assert parallel_reads.day_ranges("2026-01-30", "2026-02-02", 2) == [("2026-01-30", "2026-01-31"), ("2026-02-01", "2026-02-02")]
    assert parallel_reads.day_ranges("2026-01-30", "2026-02-02", 3) == [("2026-01-30", "2026-01-31"), ("2026-02-01", "2026-02-01"),
                                                                       ("2026-02-02", "2026-02-02")]
    assert parallel_reads.day_ranges("2026-03-05", "2026-03-05", 2) == [("2026-03-05", "2026-03-05")]
    assert parallel_reads.day_ranges("2026-01-01", "2026-12-31", 1) == [("2026-01-01", "2026-12-31")]


def test_fetch_all_keeps_the_order_and_raises_the_first_error(book: Store) -> None:
    jobs = [(f"SELECT COUNT(*) + {i} FROM rollup_customer_day WHERE day >= ?", ["2026-02-01"]) for i in range(7)]
    serial = [book.fetch(statement, params)[1] for statement, params in jobs]
    assert parallel_reads.fetch_all(book, jobs) == serial
    assert [rows[0][0] for rows in serial] == [serial[0][0][0] + i for i in range(7)]
    with pytest.raises(Exception) as raised:
        parallel_reads.fetch_all(book, [jobs[0], ("SELECT no_such_column FROM rollup_customer_day", []), jobs[1]])
    assert "no_such_column" in str(raised.value)
    assert parallel_reads.fetch_all(book, jobs[:2]) == serial[:2]  # connections still usable


def test_fetch_all_on_an_in_memory_database_runs_one_after_another() -> None:
    store = open_store("sqlite://")
    try:
        assert parallel_reads.fetch_all(store, [("SELECT 1", []), ("SELECT 2", [])]) == [[(1,)], [(2,)]]
    finally:
        store.close()
