"""The revenue rollup (`walleta.revenue_rollup`): what it holds, when it is stale, and that every
revenue view reads the same numbers from it as from the revenue entries themselves.

Books are random (seeded): several currencies (one without a rate, one without minor units),
lower-case codes, refunds, annual plans, kinds that are not revenue, zero amounts, empty or
backwards service periods, amounts whose USD value is beyond int64, customers paying in two
currencies in one month."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from walleta.analytics import breakdowns, margins, trends
from walleta.analytics.margins import HealthThresholds
from walleta.analytics.period import Period
from walleta.analytics.sources import revenue_by_customer_month, revenue_totals
from walleta.analytics.tier_history import revenue_and_paying_by_month, tier_history
from walleta.events import prepare_events
from walleta.fx import FxTable
from walleta.revenue_rollup import FACTS_KEY, STATE_KEY, TABLE, ensure_fresh, facts, is_fresh, refresh
from walleta.store import Store, open_store

from .analytics_fixture import fixture_catalog
from .revenue_checks import rollup_rows, rule_rows

FX = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.08"), "JPY": Decimal("0.0067")}, as_of={})  # no CHF
ALL_FX = FxTable(rates={**FX.rates, "CHF": Decimal("1.13")}, as_of={})  # every currency of the books
FINE_FX = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.0812345678901"), "JPY": Decimal("0.0067")}, as_of={})  # EUR not whole pico
KINDS = ["subscription", "subscription", "refund", "usage", "one_time", "stripe_fee", "credit_purchase"]


def _entries(seed: int, count: int = 70) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        start = date(2025, 11, 1) + timedelta(days=rng.randrange(210))
        end = start + timedelta(days=rng.choice([0, 0, 9, 27, 40, 95, 364, -3]))
        amount = rng.choice([0, 1, 7, 999, 4900, 4900, -4900, 10**15])
        rows.append({
            "uid": f"s{seed}:{i}", "customer_id": f"c{rng.randrange(8)}", "period_start": start.isoformat(),
            "period_end": rng.choice([end.isoformat()] * 6 + [""]), "amount_minor": amount,
            "currency": rng.choice(["USD", "USD", "usd", "EUR", "CHF", "JPY"]), "kind": rng.choice(KINDS),
            "document_id": "", "description": "", "source": "test",
        })
    return rows


def _usage(store: Store, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    frame = pd.DataFrame([
        {"ts_us": int(pd.Timestamp(date(2025, 11, 1) + timedelta(days=rng.randrange(210)), tz="UTC").value // 1000),
         "customer_id": f"c{rng.randrange(10)}", "feature": rng.choice(["chat", "search"]), "model": rng.choice(["m-small", "m-unpriced"]),
         "input_tokens": rng.randrange(1, 3_000_000), "output_tokens": 0, "requests": 1, "request_id": f"u{seed}:{i}"}
        for i in range(120)
    ])
    store.write_events(prepare_events(frame, fixture_catalog(tmp_path / "catalog"), source="test"))


@pytest.mark.parametrize("seed", [1, 2])
def test_rollup_holds_the_recognition_rule_summed_per_month_customer_and_currency(store: Store, seed: int) -> None:
    store.upsert("revenue_entries", _entries(seed), ["uid"])
    assert not is_fresh(store)
    with store.transaction() as cur:
        assert ensure_fresh(cur, store.dialect) is True
        assert ensure_fresh(cur, store.dialect) is False  # fresh now: nothing to do
    expected = rule_rows(store)
    assert rollup_rows(store) == expected and is_fresh(store)
    assert any(k[2] == "JPY" for k in expected) and any(v == 0 for v in expected.values())  # the book has the cases
    assert not any(k[2] == "usd" for k in expected)  # codes upper-cased, as the rule does


def test_any_write_to_the_entries_marks_the_rollup_stale(store: Store) -> None:
    entries = _entries(3, 10)
    store.upsert("revenue_entries", entries, ["uid"])
    with store.transaction() as cur:
        ensure_fresh(cur, store.dialect)
    statements = [
        ("UPDATE revenue_entries SET amount_minor = amount_minor + 1 WHERE uid = ?", [entries[0]["uid"]]),
        ("DELETE FROM revenue_entries WHERE uid = ?", [entries[1]["uid"]]),
        ("INSERT INTO revenue_entries (uid, customer_id, period_start, period_end, amount_minor, currency, kind, document_id, "
         "description, source) VALUES ('new', 'c1', '2026-01-05', '2026-01-05', 100, 'USD', 'usage', '', '', 'test')", []),
    ]
    for statement, params in statements:  # a user's own SQL too: the triggers see every write
        store.execute(statement, params)
        assert not is_fresh(store), statement
        with store.transaction() as cur:
            ensure_fresh(cur, store.dialect)
        assert is_fresh(store) and rollup_rows(store) == rule_rows(store), statement


def test_opening_a_database_from_older_walleta_builds_the_rollup(db_url: str) -> None:
    store = open_store(db_url)
    store.upsert("revenue_entries", _entries(4), ["uid"])
    with store.transaction() as cur:  # as Walleta before the rollup left it: no triggers, no state
        if store.dialect == "postgresql":
            cur.execute("DROP TRIGGER revenue_entries_stale ON revenue_entries")
        else:
            for event in ("insert", "update", "delete"):
                cur.execute(f"DROP TRIGGER revenue_entries_{event}_stale")
        cur.execute(f"DELETE FROM {TABLE}")
        cur.execute(store.sql("DELETE FROM walleta_meta WHERE key = ?"), [STATE_KEY])
    store.close()
    reopened = open_store(db_url)
    assert is_fresh(reopened) and rollup_rows(reopened) == rule_rows(reopened) and rollup_rows(reopened)
    reopened.execute("DELETE FROM revenue_entries WHERE uid = 's4:0'")
    assert not is_fresh(reopened)  # the triggers are back
    reopened.close()


def _views(store: Store, fx: FxTable) -> dict[str, object]:
    """Every revenue-dependent view, for a few periods."""
    out: dict[str, object] = {}
    for period in (Period.month("2026-01"), Period.months("2025-11", "2026-05"), Period.month("2026-03")):
        label = period.label()
        out[f"totals {label}"] = revenue_totals(store, fx, period.first_month, period.last_month)
        out[f"totals by month {label}"] = revenue_totals(store, fx, period.first_month, period.last_month, ["month"])
        out[f"totals by customer-month {label}"] = revenue_totals(store, fx, period.first_month, period.last_month, ["customer_id", "month"])
        out[f"customer months {label}"] = revenue_by_customer_month(store, fx, period.first_month, period.last_month)
        out[f"paying {label}"] = revenue_and_paying_by_month(store, fx, period.first_month, period.last_month)
        out[f"margins {label}"] = margins.customer_margins(store, period, fx, include_inactive=True)
        out[f"tight margins {label}"] = margins.customer_margins(store, period, fx, thresholds=HealthThresholds.from_percentages(90, 60, 10))
        out[f"summary {label}"] = trends.monthly_summary(store, period, fx)
        out[f"features {label}"] = breakdowns.feature_breakdown(store, period, fx)
        out[f"plans {label}"] = breakdowns.plan_breakdown(store, period, fx)
    out["history"] = tier_history(store, fx, "2026-04", HealthThresholds())
    out["monthly margins"] = margins.monthly_customer_margins(store, fx, None, "2026-05")
    return out


def _same(a: object, b: object, name: str) -> None:
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), name
        for x, y in zip(a, b):
            _same(x, y, name)
    elif isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), name
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False, obj=name)
    else:
        assert a == b, name


@pytest.mark.parametrize("seed", [5, 6, 7])
@pytest.mark.parametrize("fx", [FX, ALL_FX, FINE_FX], ids=["no-chf-rate", "every-rate", "fine-rate"])
def test_every_revenue_view_is_the_same_from_the_rollup_as_from_the_entries(store: Store, tmp_path: Path, seed: int, fx: FxTable) -> None:
    _usage(store, tmp_path, seed)
    store.upsert("revenue_entries", _entries(seed), ["uid"])
    assert not is_fresh(store)
    from_entries = _views(store, fx)
    with store.transaction() as cur:
        refresh(cur, store.dialect)
    assert is_fresh(store)
    from_rollup = _views(store, fx)
    assert from_entries.keys() == from_rollup.keys()
    for name, frame in from_entries.items():
        _same(frame, from_rollup[name], name)
    assert max(len(v) for k, v in from_rollup.items() if k.startswith("margins ")) >= 8  # type: ignore[arg-type]
    if fx is ALL_FX:  # the SQL paths of the monthly totals ran (they give up when a rate is missing)
        assert all(from_rollup[k] is not None for k in from_rollup if k.startswith("paying "))
        assert facts(store).mixed_currency_months  # type: ignore[union-attr]  # the books have customer-months in two currencies


def test_a_database_without_revenue_reads_an_empty_fresh_rollup(store: Store, tmp_path: Path) -> None:
    _usage(store, tmp_path, 10)
    known = facts(store)
    assert known is not None and known.currencies == [] and known.rows == 0  # a new database starts fresh
    paying = revenue_and_paying_by_month(store, FX, "2025-11", "2026-05")
    assert paying is not None and paying.empty
    summary = trends.monthly_summary(store, Period.months("2025-11", "2026-05"), FX)
    assert len(summary) == 7 and all(v == 0 for v in summary["revenue_pico"]) and summary["requests"].sum() == 120


def test_facts_describe_the_rollup(store: Store) -> None:
    entries = [e for e in _entries(8) if e["currency"].upper() == "USD"]
    store.upsert("revenue_entries", entries, ["uid"])
    assert facts(store) is None  # stale
    with store.transaction() as cur:
        ensure_fresh(cur, store.dialect)
    known = facts(store)
    assert known is not None and known.currencies == ["USD"] and not known.mixed_currency_months
    assert known.rows == len(rollup_rows(store)) and known.first_entry_month == min(e["period_start"] for e in entries)[:7]
    month, customer, _ = next(iter(rollup_rows(store)))  # a customer-month with USD revenue gets EUR too
    store.upsert("revenue_entries", [{**entries[0], "uid": "eur", "customer_id": customer, "period_start": f"{month}-02",
                                      "period_end": f"{month}-03", "currency": "EUR", "kind": "usage", "amount_minor": 5}], ["uid"])
    with store.transaction() as cur:
        ensure_fresh(cur, store.dialect)
    known = facts(store)
    assert known is not None and known.currencies == ["EUR", "USD"] and known.mixed_currency_months


@pytest.mark.parametrize("seed", [5, 7, 9])
@pytest.mark.parametrize("source", ["rollup", "entries"])
def test_since_when_equals_the_row_by_row_path_on_random_books(store: Store, tmp_path: Path, seed: int, source: str) -> None:
    """The vectorised since-when and month-over-month columns equal the plain month-by-month
    recount, for every month of random books (inactive months, zero-net entries, amounts without
    a rate, revenue beyond int64)."""
    _usage(store, tmp_path, seed)
    store.upsert("revenue_entries", _entries(seed), ["uid"])
    if source == "rollup":
        with store.transaction() as cur:
            ensure_fresh(cur, store.dialect)
    assert is_fresh(store) is (source == "rollup")
    columns = ["tier", "tier_since", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico", "mom_margin_pct_change"]
    for last in ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"):
        fast = margins.customer_margins(store, Period.month(last), FX, include_inactive=True).set_index("customer_id").sort_index()
        plain = margins.customer_margins(store, Period.month(last), FX, include_inactive=True, with_history=False)
        slow = margins._with_history(plain, margins._monthly_by_merge(store, FX, None, last, margins.HealthThresholds()), last).set_index("customer_id").sort_index()
        assert len(fast) >= 8
        for column in columns:
            assert fast[column].tolist() == slow[column].tolist(), (last, column)


def test_facts_from_another_version_count_as_stale(db_url: str) -> None:
    store = open_store(db_url)
    store.upsert("revenue_entries", _entries(12, 10), ["uid"])
    store.close()
    store = open_store(db_url)  # rebuilt on open
    assert is_fresh(store)
    store.set_meta(FACTS_KEY, '{"rows": 1, "something_new": true}')
    assert facts(store) is None  # unreadable facts: read from the entries, never trusted
    store.close()
    store = open_store(db_url)
    assert is_fresh(store) and facts(store).rows == len(rule_rows(store))  # type: ignore[union-attr]
    store.close()
