"""The fast paths of the trends, customer-anomaly and reconciliation views (issue 6, page speed)
against brute-force computations from the events themselves and against the grouped queries
they replace, on SQLite and PostgreSQL:

- exact top-k customers (month-rollup bounds + day seeks): ties, partial edge months, customers
  whose month is large but whose days in the period are few, the unattributed customer;
- trend by plan per month (one seek-driven statement per plan): customers missing from the
  customers table, an empty plan, the unattributed customer, a plan without usage;
- customer anomalies (only customers that can be flagged are read);
- reconciliation lines (vectorised join, more cases in test_reconciliation_vector.py) equal to the frame path.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from walleta.analytics import anomalies, reconciliation, trends
from walleta.analytics.period import Period
from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.schema import UNATTRIBUTED
from walleta.store import Store, open_store

from .analytics_fixture import USD, build_fixture, fixture_catalog
from .pgserver import scoped_database_url

# 45 "burst" customers spend a lot on 2-5 January only: their January bound is large, their cost
# in a period from 20 January small, so exact top-k must read past its first batch of 40.
BURSTS = [f"b{i:02d}" for i in range(45)]
REGULARS = [f"r{i:02d}" for i in range(14)]
TIES = ["tie_a", "tie_b"]  # identical usage: equal cost, ranked by id
PLANS = {**{c: ("Pro" if i % 3 == 0 else "Starter" if i % 3 == 1 else "") for i, c in enumerate(REGULARS)},
         **{c: "Business" for c in BURSTS[:30]}, "tie_a": "Pro", "tie_b": "Pro", "ghost_plan_owner": "Enterprise"}
# b30..b44 and the unattributed customer are not in the customers table -> '(unknown)' / '(unattributed)'.


def _events() -> pd.DataFrame:
    rng = random.Random(6)
    rows = []
    days = pd.date_range("2026-01-01", "2026-03-31", freq="D").strftime("%Y-%m-%d").tolist()
    for customer in BURSTS:
        for day in ("2026-01-02", "2026-01-05"):
            rows.append((customer, day, "m-big", rng.randint(400_000, 900_000), rng.randint(10_000, 90_000)))
        rows.append((customer, rng.choice(days[19:]), "m-small", rng.randint(1_000, 50_000), 0))
    for rank, customer in enumerate(REGULARS):
        for day in rng.sample(days, 25):
            rows.append((customer, day, rng.choice(["m-small", "m-big"]), rng.randint(10_000, 200_000) // (rank + 1), rng.randint(0, 20_000)))
    for customer in TIES:
        for day in ("2026-01-21", "2026-02-14", "2026-03-03"):
            rows.append((customer, day, "m-big", 150_000, 15_000))
    for day in rng.sample(days, 20):
        rows.append((None, day, "m-small", rng.randint(10_000, 500_000), 0))  # unattributed
    rows.append(("r05", "2026-02-10", "gpt-99-unknown", 70_000, 1_000))  # unpriced: in the period, cost 0
    return pd.DataFrame([
        {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000) + 3_600_000_000, "customer_id": customer, "feature": "chat",
         "model": model, "input_tokens": tokens, "output_tokens": out, "requests": 1, "project_id": "proj_x" if i % 2 else "",
         "request_id": f"fast_{i}"}
        for i, (customer, day, model, tokens, out) in enumerate(rows)
    ])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def book(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Catalog, pd.DataFrame]]:
    folder = tmp_path_factory.mktemp("fast")
    url = scoped_database_url(request, request.param, folder)
    store = open_store(url)
    catalog = fixture_catalog(folder / "catalog")
    prepared = prepare_events(_events(), catalog, source="test")
    store.write_events(prepared)
    store.upsert("customers", [{"customer_id": c, "name": c.upper(), "plan": p, "signup_date": "", "email": "", "stripe_customer_id": "",
                                "seats": None, "source": "test"} for c, p in PLANS.items()], ["customer_id"])
    events = pd.DataFrame({"customer_id": prepared["customer_id"].to_numpy(dtype=object), "day": prepared["day"].to_numpy(dtype=object),
                           "cost": [0 if pd.isna(v) else int(v) for v in prepared["cost_pico"]],
                           "requests": prepared["requests"].to_numpy()})
    yield store, catalog, events
    store.close()


def _brute_top(events: pd.DataFrame, period: Period, k: int) -> list[str]:
    inside = events[(events["day"] >= period.first_day) & (events["day"] <= period.last_day) & (events["customer_id"] != UNATTRIBUTED)]
    totals = inside.groupby("customer_id")["cost"].sum()
    return sorted(totals.index, key=lambda c: (-int(totals[c]), c))[:k]


PERIODS = [Period.days("2026-01-20", "2026-02-10"), Period.days("2026-01-06", "2026-03-31"), Period.days("2026-02-14", "2026-02-14"),
           Period.days("2026-01-21", "2026-03-03"), Period.days("2026-02-01", "2026-02-27")]


@pytest.mark.parametrize("period", PERIODS, ids=lambda p: p.label)
def test_top_customers_equal_brute_force(book: tuple[Store, Catalog, pd.DataFrame], period: Period) -> None:
    store, _, events = book
    for k in (1, 2, 3, 5, 14, 16, 80):
        expected = _brute_top(events, period, k)
        assert trends.top_customers(store, period, k) == expected, k
        assert trends._top_by_bounds(store, period, k) in (expected, None), k  # both exact paths, when they apply
        assert trends._top_by_threshold(store, period, k) in (expected, None), k
    assert trends._top_by_bounds(store, period, 3) is not None


def test_top_customers_ties_rank_by_id_and_bursts_are_read_past(book: tuple[Store, Catalog, pd.DataFrame]) -> None:
    store, _, events = book
    day = Period.days("2026-01-21", "2026-01-21")  # the tied customers spend the same that day
    ranked = trends.top_customers(store, day, 100)
    assert ranked == _brute_top(events, day, 100)
    at = ranked.index("tie_a")
    assert ranked[at + 1] == "tie_b"
    assert trends.top_customers(store, day, at + 1)[-1] == "tie_a"  # the tie straddles k: the smaller id wins
    late = Period.days("2026-01-20", "2026-01-31")  # 45 burst customers have a January bound above their cost here
    assert len(BURSTS) > 40
    for k in (1, 3, 10):
        assert trends.top_customers(store, late, k) == _brute_top(events, late, k)
    assert UNATTRIBUTED not in trends.top_customers(store, late, 100)


def test_trend_by_top_customers_adds_up(book: tuple[Store, Catalog, pd.DataFrame]) -> None:
    store, _, events = book
    period = Period.days("2026-01-20", "2026-02-10")
    frame = trends.trend(store, period, grain="day", by="customer", top=3)
    chosen = _brute_top(events, period, 3)
    assert set(frame["customer"]) <= {*chosen, trends.OTHER_CUSTOMERS}
    inside = events[(events["day"] >= period.first_day) & (events["day"] <= period.last_day)]
    assert sum(frame["ai_cost_pico"]) == int(inside["cost"].sum())
    for customer in chosen:
        expected = inside[inside["customer_id"] == customer].groupby("day")["cost"].sum()
        got = frame[frame["customer"] == customer].set_index("bucket")["ai_cost_pico"]
        assert {d: int(v) for d, v in expected.items()} == {d: int(v) for d, v in got.items()}
    assert frame["bucket"].dtype == object and frame["customer"].dtype == object


def _plan_label(customer: str) -> str:
    if customer == UNATTRIBUTED:
        return "(unattributed)"
    if customer not in PLANS:
        return "(unknown)"
    return PLANS[customer] or "(no plan)"


def test_trend_by_plan_per_month_equals_brute_force(book: tuple[Store, Catalog, pd.DataFrame]) -> None:
    store, _, events = book
    period = Period.months("2026-01", "2026-03")
    frame = trends.trend(store, period, grain="month", by="plan")
    brute = events.assign(month=events["day"].str[:7], plan=[_plan_label(c) for c in events["customer_id"]])
    expected = brute.groupby(["month", "plan"]).agg(cost=("cost", "sum"), requests=("requests", "sum"))
    got = frame.set_index(["bucket", "plan"])
    assert sorted(got.index) == sorted(expected.index)
    for key, row in expected.iterrows():
        assert (got.loc[key, "ai_cost_pico"], got.loc[key, "requests"]) == (int(row["cost"]), int(row["requests"])), key
    assert {"(unknown)", "(unattributed)", "(no plan)", "Business", "Pro", "Starter"} <= set(frame["plan"])
    assert "Enterprise" not in set(frame["plan"])  # a plan whose only customer has no usage
    # Same rows as the grouped join it replaces (the reference SQL).
    reference = trends._assemble(trends._by_plan(store, "rollup_customer_month", "month", "2026-01", "2026-03"), ["plan"], "month", True, period)
    pd.testing.assert_frame_equal(frame, reference)


def test_trend_by_plan_without_unknown_customers(book: tuple[Store, Catalog, pd.DataFrame]) -> None:
    store, _, _ = book
    period = Period.month("2026-02")
    frame = trends.trend(store, period, grain="month", by="plan")
    reference = trends._assemble(trends._by_plan(store, "rollup_customer_month", "month", "2026-02", "2026-02"), ["plan"], "month", True, period)
    pd.testing.assert_frame_equal(frame, reference)
    assert trends.trend(store, Period.month("2030-01"), grain="month", by="plan").empty


@pytest.mark.parametrize("as_of", ["2026-01-08", "2026-02-01", "2026-02-03", "2026-03-31"])
def test_customer_anomalies_equal_the_full_scan(book: tuple[Store, Catalog, pd.DataFrame], as_of: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, events = book
    cases = [dict(min_excess_pico=5 * USD), dict(min_excess_pico=USD // 100), dict(min_excess_pico=0),
             dict(min_excess_pico=USD // 10, min_ratio=Decimal("1.5"), window_days=3, baseline_days=10)]
    fast = [anomalies.customer_anomalies(store, as_of=as_of, **case) for case in cases]
    monkeypatch.setattr(anomalies, "_candidate_sums", lambda *args, **kwargs: None)  # the grouped scan of every customer
    slow = [anomalies.customer_anomalies(store, as_of=as_of, **case) for case in cases]
    for a, b in zip(fast, slow):
        pd.testing.assert_frame_equal(a, b)
    if as_of == "2026-01-08":  # the burst customers' 2 and 5 January: new spend
        assert set(BURSTS) <= set(fast[0]["customer_id"])
    # Brute force: the flagged customers of the first case have >= $5 in the 7-day window.
    end = pd.Timestamp(as_of)
    window = events[(events["day"] > (end - pd.Timedelta(days=7)).strftime("%Y-%m-%d")) & (events["day"] <= as_of)]
    recent = window[window["customer_id"] != UNATTRIBUTED].groupby("customer_id")["cost"].sum()
    assert all(int(recent[c]) >= 5 * USD for c in fast[0]["customer_id"])


def test_reconciliation_lines_equal_the_frame_path(book: tuple[Store, Catalog, pd.DataFrame], tmp_path: Path) -> None:
    store, catalog, _ = book
    store.upsert("billed_costs", [
        {"uid": f"bill_{i}", "day": d, "project_id": p, "api_key_id": "", "line_item": item, "amount_pico": a, "currency": cur,
         "quantity": None, "quantity_unit": "", "source": "test"}
        for i, (d, p, item, a, cur) in enumerate([
            ("2026-02-10", "proj_x", "m-big, input", 3 * USD, "USD"), ("2026-02-10", "", "m-small-2025-01-01, input", USD, "usd"),
            ("2026-02-11", "proj_gone", "m-big, output_tokens", 2 * USD, "USD"), ("2026-02-12", "proj_x", "m-big, input", 5 * USD, "EUR"),
            ("2026-02-12", "proj_x", "m-big, cached_input_tokens", 0, "USD"), ("2026-04-15", "proj_x", "m-big, input", USD, "USD")])],
        ["uid"])
    # February: both sides; January: usage without a bill; April: a bill without usage; 2030: nothing.
    for period in (Period.month("2026-02"), Period.days("2026-02-09", "2026-02-12"), Period.month("2026-01"), Period.month("2026-04"),
                   Period.month("2030-01")):
        fast = reconciliation._joined_fast(store, period, catalog)
        slow = reconciliation._joined_frames(store, period, catalog)
        if fast is None:
            assert period == Period.month("2030-01") and slow.empty  # nothing at all: the frame path answers
            continue
        slow = slow.astype({c: object for c in slow.columns if isinstance(slow[c].dtype, pd.StringDtype)})
        pd.testing.assert_frame_equal(fast, slow)
        assert fast.attrs == slow.attrs
    assert reconciliation.reconciliation_lines(store, Period.month("2026-02"), catalog).attrs["other_currencies"] == (1, ["EUR"])


def test_reconciliation_fast_path_on_the_hand_computed_book(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'book.db'}")
    catalog = fixture_catalog(tmp_path / "catalog")
    build_fixture(store, catalog)
    period = Period.month("2026-01")
    fast = reconciliation._joined_fast(store, period, catalog)
    slow = reconciliation._joined_frames(store, period, catalog)
    assert fast is not None
    slow = slow.astype({c: object for c in slow.columns if isinstance(slow[c].dtype, pd.StringDtype)})
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.attrs == slow.attrs and fast.attrs["other_currencies"][0] >= 1
    store.close()


def test_reconciliation_summary_sums_money_beyond_int64(book: tuple[Store, Catalog, pd.DataFrame]) -> None:
    store, catalog, _ = book
    big = 2**63 + 5
    lines = pd.DataFrame({
        "day": pd.Series(["2026-02-01", "2026-02-01", "2026-02-02", "2026-02-03"], dtype=object),
        "project_id": pd.Series(["p1", "p1", "p1", "p_bill_only"], dtype=object),
        "line_model": pd.Series(["m-big"] * 4, dtype=object),
        "token_class": pd.Series(["input", "output", "input", "input"], dtype=object),
        "estimated_pico": pd.Series([big, 1, 3 * 2**61, 0], dtype=object),
        "tokens": pd.Series([1, 1, 1, 0], dtype=object),
        "requests": [1, 0, 1, 0], "unpriced_requests": [0, 0, 0, 0], "unpriced_tokens": [0, 0, 0, 0],
        "billed_pico": pd.Series([big + 10**17, 0, 3 * 2**61, 7 * USD], dtype=object),
    })
    summary = reconciliation.reconciliation_summary(store, Period.month("2026-02"), catalog, lines=lines).set_index("component")
    assert summary.loc["billed (OpenAI Costs API)", "amount_pico"] == big + 10**17 + 3 * 2**61 + 7 * USD
    assert summary.loc["estimated from usage", "amount_pico"] == big + 1 + 3 * 2**61
    assert summary.loc["billed with no logged usage", "amount_pico"] == 7 * USD
    assert summary.loc["drift on logged projects", "amount_pico"] == 10**17 - 1  # 1 February only (beyond 0.5%); the 2nd matches
