"""What pages derive from closed months is kept in memory while nothing it was read from changes
(`walleta.generations`, `analytics.closed_months`): the since-when history of the months before
the period's last month, and the trend rows of closed months.

Every kind of write (usage in the last month, late usage in a closed month, a deleted event, a
rollup rebuild, a revenue import) and every setting (thresholds, FX table) is followed by a
check that the cached answer equals the history reduced from every month at once, and that the
margins table equals the row-by-row path. The counters show the cache is used when only the last
month changed and not reused when a closed month did."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walleta import generations
from walleta.analytics import breakdowns, closed_months, margins, reconciliation, trends
from walleta.analytics.margins import HealthThresholds, _monthly_by_merge, _with_history, monthly_customer_margins
from walleta.analytics.period import Period
from walleta.analytics.closed_months import cache_clear
from walleta.analytics.tier_history import _customer_months, _per_customer, tier_history
from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.fx import FxTable
from walleta.revenue_rollup import ensure_fresh, facts
from walleta.store import Store, open_store

from .analytics_fixture import FX, fixture_catalog

LAST = "2026-02"
MONTHS = ["2025-11", "2025-12", "2026-01", "2026-02"]
CUSTOMERS = ["a", "b", "c", "d", "e"]
THRESHOLDS = HealthThresholds()
SINCE_COLUMNS = ["tier", "tier_since", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico", "mom_margin_pct_change"]


def cache_info() -> dict[str, int]:
    """The memory's counters for the since-when history of closed months."""
    return closed_months.cache_info("tier_history")


class Book:
    """Writes with unique ids: usage events (m-small, $1 per 1M input tokens) and revenue."""

    def __init__(self, store: Store, catalog: Catalog, seed: int) -> None:
        self.store, self.catalog, self.rng, self.serial = store, catalog, random.Random(seed), 0

    def usage(self, month: str, count: int = 6, day: int | None = None) -> None:
        rows = []
        for _ in range(count):
            self.serial += 1
            day_text = f"{month}-{day or self.rng.randint(1, 28):02d}"
            rows.append({"ts_us": int(pd.Timestamp(day_text, tz="UTC").value // 1000), "customer_id": self.rng.choice(CUSTOMERS + [None]),
                         "feature": "chat", "model": self.rng.choice(["m-small", "m-unknown"]), "input_tokens": self.rng.randint(0, 40) * 250_000,
                         "output_tokens": 0, "requests": 1, "request_id": f"cache_{self.serial}"})
        self.store.write_events(prepare_events(pd.DataFrame(rows), self.catalog, source="test"))

    def revenue(self, month: str, count: int = 3) -> None:
        entries = []
        for _ in range(count):
            self.serial += 1
            amount = self.rng.choice([500, 1_000, 2_500, -300, 0])
            entries.append({"uid": f"cache_{self.serial}", "customer_id": self.rng.choice(CUSTOMERS), "period_start": f"{month}-01",
                            "period_end": f"{month}-28", "amount_minor": amount, "currency": self.rng.choice(["USD", "USD", "EUR", "CHF"]),
                            "kind": "refund" if amount < 0 else "subscription", "document_id": "", "description": "", "source": "test"})
        with self.store.transaction() as cur:
            self.store.upsert("revenue_entries", entries, ["uid"], cur=cur)
            ensure_fresh(cur, self.store.dialect)


def _plans(store: Store, plans: dict[str, str]) -> None:
    store.upsert("customers", [{"customer_id": c, "name": c.upper(), "plan": p, "signup_date": "2025-10-01", "email": "",
                                "stripe_customer_id": "", "seats": None, "source": "test"} for c, p in plans.items()], ["customer_id"])


@pytest.fixture
def book(store: Store, tmp_path: Path) -> Book:
    cache_clear()
    _plans(store, {"a": "Pro", "b": "Pro", "c": "Free", "d": ""})  # e has usage but no customer record
    book = Book(store, fixture_catalog(tmp_path / "catalog"), seed=7)
    for month in MONTHS:
        book.usage(month)
        book.revenue(month)
    book.usage(LAST, count=2, day=1)  # the first day of the last month: the trends' split point
    book.usage("2026-01", count=2, day=31)  # and the day before it
    return book


def _reduced_at_once(store: Store, fx: FxTable, thresholds: HealthThresholds) -> pd.DataFrame:
    """The history frame from every month in one reduction (no cache, no folding)."""
    months = tier_history(store, fx, LAST, thresholds)[1]  # type: ignore[index]
    rows = _customer_months(store, fx, months, thresholds, facts(store))
    assert rows is not None
    return _per_customer(*rows[:6], len(months) - 1)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got, expected = (f.sort_values("customer_id").reset_index(drop=True) for f in (got, expected))
    assert list(got.columns) == list(expected.columns)
    for column in got.columns:
        a, b = got[column].tolist(), expected[column].tolist()
        same = [x == y or (isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y)) for x, y in zip(a, b)]
        assert len(a) == len(b) and all(same), (column, a, b)


def _check(store: Store, fx: FxTable = FX, thresholds: HealthThresholds = THRESHOLDS) -> int:
    """Check every remembered view against its direct computation; returns how many times the
    since-when history of the months before LAST was computed (0: from memory, 1: read)."""
    misses = cache_info()["misses"]
    history, months = tier_history(store, fx, LAST, thresholds)  # type: ignore[misc]
    read = cache_info()["misses"] - misses
    assert months[-1] == LAST and len(history) >= 3
    _assert_same(history, _reduced_at_once(store, fx, thresholds))
    period = Period.month(LAST)
    fast = margins.customer_margins(store, period, fx, thresholds=thresholds, include_inactive=True).set_index("customer_id")
    plain = margins.customer_margins(store, period, fx, thresholds=thresholds, include_inactive=True, with_history=False)
    slow = _with_history(plain, _monthly_by_merge(store, fx, None, LAST, thresholds), LAST).set_index("customer_id")
    for column in SINCE_COLUMNS:
        assert fast[column].to_dict() == slow.loc[fast.index, column].to_dict(), column
    _check_trends(store)
    _check_breakdowns(store, fx)
    return read
    for first in (None, "2025-12", LAST):  # the monthly table from the scans equals the merged rows
        scanned, merged = (f(store, fx, first, LAST, thresholds) for f in (monthly_customer_margins, _monthly_by_merge))
        assert list(scanned.columns) == list(merged.columns) and len(scanned) == len(merged) > 0
        for column in scanned.columns:
            assert scanned[column].tolist() == merged[column].tolist(), (first, column)


def _check_trends(store: Store) -> None:
    """Trends with remembered closed months equal one read of the whole period."""
    days = Period.days("2025-11-20", "2026-02-20")
    for by in ("model", "feature", None):
        got = trends.trend(store, days, grain="day", by=by)
        key = f", {by}" if by else ""
        _, rows = store.fetch(f"SELECT day{key}, CAST(SUM(cost_pico) AS BIGINT), CAST(SUM(requests) AS BIGINT) FROM rollup_feature_model_day "
                              f"WHERE day >= ? AND day <= ? GROUP BY day{key}", ["2025-11-20", "2026-02-20"])
        expected = {tuple(r[:-2]): (int(r[-2] or 0), int(r[-1] or 0)) for r in rows}
        columns = ["bucket", by] if by else ["bucket"]
        seen = {tuple(r[:-2]): (r[-2], r[-1]) for r in got[columns + ["ai_cost_pico", "requests"]].itertuples(index=False, name=None)}
        assert seen == expected and expected, by
    months = Period.months("2025-11", LAST)
    summary, whole_summary = trends.monthly_summary(store, months, FX), trends._summary(store, months, FX)
    assert summary.to_dict("records") == whole_summary.to_dict("records") and len(summary) == 4
    assert [str(d) for d in summary.dtypes] == [str(d) for d in whole_summary.dtypes]
    got = trends.trend(store, months, grain="month", by="plan")
    whole = trends._assemble(trends._by_plan(store, "rollup_customer_month", "month", "2025-11", LAST), ["plan"], "month", True, months)
    assert got.to_dict("records") == whole.to_dict("records") and {"Pro", "Free", "(no plan)", "(unknown)"} <= set(got["plan"])


def _check_breakdowns(store: Store, fx: FxTable) -> None:
    """Feature and plan breakdowns of a closed month (remembered) equal one read of it."""
    january = Period.month("2026-01")
    for allocation in (breakdowns.Allocation(), breakdowns.Allocation("request_share")):
        got = breakdowns.feature_breakdown(store, january, fx, allocation)
        assert got.to_dict("records") == breakdowns._feature_breakdown(store, january, fx, allocation).to_dict("records") and len(got)
    got = breakdowns.plan_breakdown(store, january, fx)
    assert got.to_dict("records") == breakdowns._plan_breakdown(store, january, fx).to_dict("records") and len(got)
    for inactive in (False, True):
        got = margins.customer_margins(store, january, fx, include_inactive=inactive)
        direct = margins._customer_margins(store, january, fx, THRESHOLDS, inactive, True, True)
        assert got.to_dict("records") == direct.to_dict("records") and len(got)


def test_cached_history_equals_the_whole_reduction_after_every_kind_of_write(book: Book) -> None:
    store = book.store
    assert _check(store) == 1
    assert _check(store) == 0 and cache_info()["hits"] >= 2  # nothing changed: served from memory

    book.usage(LAST)  # live usage lands in the last month: the closed months stay cached
    book.usage(LAST)
    assert _check(store) == 0

    book.usage("2025-12")  # late usage in a closed month
    assert _check(store) == 1

    uid = store.scalar("SELECT uid FROM usage_events WHERE month = ? ORDER BY uid LIMIT 1", ["2026-01"])
    with store.transaction() as cur:
        assert store.delete_events([uid], cur=cur) == 1
    assert _check(store) == 1

    store.rebuild_rollups()  # re-pricing or re-mapping: every month may differ
    assert _check(store) == 1

    book.revenue("2026-01")  # a revenue import rebuilds the revenue rollup
    assert _check(store) == 1

    book.revenue(LAST)  # even revenue of the last month only: the rollup is rebuilt whole
    assert _check(store) == 1

    plan_misses = closed_months.cache_info("trends.monthly_by_plan")["misses"]
    with store.transaction() as cur:  # a plan changed by hand: the months by plan are read again
        cur.execute(store.sql("UPDATE customers SET plan = ? WHERE customer_id = ?"), ["Free", "a"])
    assert _check(store) == 0  # (the since-when history does not depend on plans)
    assert closed_months.cache_info("trends.monthly_by_plan")["misses"] == plan_misses + 1
    digest = closed_months.customers_digest(store)
    with store.transaction() as cur:  # a name changed by hand: shown on the Customers page
        cur.execute(store.sql("UPDATE customers SET name = ? WHERE customer_id = ?"), ["Acme Renamed", "b"])
    assert closed_months.customers_digest(store) != digest
    assert _check(store) == 0


def test_settings_have_their_own_cached_histories(book: Book) -> None:
    store = book.store
    strict = HealthThresholds.from_percentages(80, 60, 10)
    richer = FxTable(rates={"USD": Decimal(1), "EUR": Decimal("1.50"), "CHF": Decimal("1.10")}, as_of={})
    settings = ((FX, THRESHOLDS), (FX, strict), (richer, THRESHOLDS), (richer, strict))
    for fx, thresholds in settings:
        assert _check(store, fx, thresholds) == 1
    for fx, thresholds in reversed(settings):
        assert _check(store, fx, thresholds) == 0


def test_nothing_is_cached_while_the_revenue_rollup_is_stale(book: Book) -> None:
    store = book.store
    with store.transaction() as cur:  # a hand-written change to the entries marks the rollup stale
        cur.execute(store.sql("UPDATE revenue_entries SET amount_minor = amount_minor + 100 WHERE customer_id = ?"), ["a"])
    assert facts(store) is None
    assert _check(store) == 1 and _check(store) == 1 and cache_info()["entries"] == 0


def test_two_databases_never_share_a_cached_history(tmp_path: Path) -> None:
    cache_clear()
    catalog = fixture_catalog(tmp_path / "catalog")
    stores = [open_store(f"sqlite:///{tmp_path / name}.db") for name in ("one", "two")]
    for seed, store in enumerate(stores):
        _plans(store, {"a": "Pro", "b": "Pro", "c": "Free", "d": ""})
        book = Book(store, catalog, seed=seed)
        for month in MONTHS:
            book.usage(month)
            book.revenue(month)
    assert [_check(store) for store in stores + stores] == [1, 1, 0, 0]  # each database read once, then its own entry
    assert closed_months.cache_info("trends.monthly_by_plan")["entries"] == 2
    ids = {store.get_meta(generations.STORE_ID_KEY) for store in stores}
    assert len(ids) == 2 and None not in ids


def test_generation_counters(store: Store, tmp_path: Path) -> None:
    book = Book(store, fixture_catalog(tmp_path / "catalog"), seed=3)
    assert store.get_meta(generations.STORE_ID_KEY)
    book.usage("2026-01")
    before = generations.fingerprint(store, "2026-03")
    assert generations.fingerprint(store, "2026-02") == generations.fingerprint(store, "2026-01") + ("generation:2026-01=1",)
    book.usage("2026-02")  # a later month: no change to what months before February depend on
    assert generations.fingerprint(store, "2026-02") == before
    assert generations.fingerprint(store, "2026-03") != before
    store.rebuild_rollups()
    assert store.get_meta("generation:all") == "1"
    book.revenue("2026-01")
    book.revenue("2026-01")
    assert store.get_meta("generation:revenue") is not None and int(store.get_meta("generation:revenue") or 0) >= 2


def _bill(store: Store, lines: dict[str, tuple[str, str, int]]) -> None:
    store.upsert("billed_costs", [{"uid": uid, "day": day, "project_id": "", "api_key_id": "", "line_item": item, "amount_pico": amount,
                                   "currency": "USD", "quantity": None, "quantity_unit": "", "source": "test"}
                                  for uid, (day, item, amount) in lines.items()], ["uid"])


def test_reconciliation_lines_are_remembered_for_closed_months_only(book: Book) -> None:
    store, catalog = book.store, book.catalog
    january, name = Period.month("2026-01"), "reconciliation.lines"
    _bill(store, {"b1": ("2026-01-05", "m-small, input", 3 * 10**12), "b2": ("2026-01-09", "m-small, input", 10**12)})

    def check(expect_hit: bool) -> None:
        before = closed_months.cache_info(name)
        got = reconciliation.reconciliation_lines(store, january, catalog)
        after = closed_months.cache_info(name)
        assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == ((1, 0) if expect_hit else (0, 1))
        expected = reconciliation._joined(store, january, catalog)
        assert got.to_dict("records") == expected.to_dict("records") and len(got) >= 2

    check(False)
    check(True)
    book.usage(LAST)  # live usage after the period: still remembered
    check(True)
    _bill(store, {"b2": ("2026-01-09", "m-small, input", 2 * 10**12)})  # a re-imported bill line
    check(False)
    with store.transaction() as cur:  # a bill line edited by hand
        cur.execute(store.sql("UPDATE billed_costs SET line_item = ? WHERE uid = ?"), ["m-small, output", "b1"])
    check(False)
    book.usage("2026-01")  # late usage in the period
    check(False)
    check(True)
    small = next(i for i, row in enumerate(catalog.rows) if row.model == "m-small")
    rows = list(catalog.rows)
    rows[small] = dataclasses.replace(rows[small], input=(rows[small].input or 0) // 2)
    cheaper = dataclasses.replace(catalog, rows=rows)
    assert closed_months.catalog_key(cheaper) != closed_months.catalog_key(catalog)
    before = closed_months.cache_info(name)["misses"]
    assert reconciliation.reconciliation_lines(store, january, cheaper).to_dict("records") == reconciliation._joined(store, january, cheaper).to_dict("records")
    assert closed_months.cache_info(name)["misses"] == before + 1
    live = closed_months.cache_info(name)["entries"]
    reconciliation.reconciliation_lines(store, Period.month(LAST), catalog)
    assert closed_months.cache_info(name)["entries"] == live  # the live month is never remembered


def test_a_remembered_frame_changed_by_a_caller_stays_as_computed(book: Book) -> None:
    store, january = book.store, Period.month("2026-01")
    first = breakdowns.plan_breakdown(store, january, FX)
    expected = first.to_dict("records")
    first.loc[:, "revenue_pico"] = 0  # a caller writing into its frame
    first["extra"] = 1
    again = breakdowns.plan_breakdown(store, january, FX)
    assert closed_months.cache_info("breakdowns.plan")["hits"] >= 1
    assert again.to_dict("records") == expected and "extra" not in again


def test_memory_is_bounded_by_entries_and_values(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_clear()
    monkeypatch.setattr(closed_months, "CELLS", 250)
    rows = [(i, i * 2) for i in range(50)]  # 100 values each
    for n in range(4):
        assert closed_months.remember(store, "bound", (n,), "2026-01", lambda: list(rows)) == rows
    assert closed_months.cache_info("bound")["entries"] == 2  # the two most recent fit in 250 values
    assert closed_months.remember(store, "bound", (3,), "2026-01", lambda: []) == rows  # still remembered
    assert closed_months.remember(store, "bound", (0,), "2026-01", lambda: []) == []  # evicted: computed again
    monkeypatch.setattr(closed_months, "SIZE", 1)
    closed_months.remember(store, "bound", (9,), "2026-01", lambda: [1])
    assert closed_months.cache_info()["entries"] == 1
