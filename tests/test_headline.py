"""The Overview's headline totals (`walleta.headline`) read rollups; they must equal the totals
recounted from the raw events and from every revenue entry spread month by month, whether the
revenue rollup is fresh or stale, with a currency the FX table cannot convert (JPY here)."""

from __future__ import annotations

import pytest

from walleta.catalog import Catalog
from walleta.headline import headline
from walleta.revenue import monthly_revenue
from walleta.store import Store

from .analytics_fixture import FX, build_fixture, fixture_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return fixture_catalog(tmp_path_factory.mktemp("catalog"))


def _recount(store: Store, lo: str, hi: str) -> tuple[int, int, int, int, set[str]]:
    cost, unpriced, customers = store.fetch(
        "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT), "
        "CAST(COALESCE(SUM(CASE WHEN cost_pico IS NULL THEN requests ELSE 0 END), 0) AS BIGINT), COUNT(DISTINCT customer_id) "
        "FROM usage_events WHERE month >= ? AND month <= ?", [lo, hi])[1][0]
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    monthly = monthly_revenue(entries, FX)
    chosen = monthly[(monthly["month"] >= lo) & (monthly["month"] <= hi)]
    revenue = sum(int(v) for v in chosen["revenue_pico"] if v is not None)
    unconverted = {c for c, v, a in zip(chosen["currency"], chosen["revenue_pico"], chosen["amount_minor"]) if v is None and a}
    return int(cost), int(unpriced), int(customers), revenue, unconverted


@pytest.mark.parametrize("fresh", [True, False], ids=["revenue-rollup", "entries"])
@pytest.mark.parametrize("months", [("2025-11", "2026-02"), ("2026-01", "2026-01"), ("2026-02", "2026-03")])
def test_headline_equals_a_recount(store: Store, catalog: Catalog, fresh: bool, months: tuple[str, str]) -> None:
    build_fixture(store, catalog, revenue_rollup=fresh)
    lo, hi = months
    got = headline(store, FX, lo, hi)
    cost, unpriced, customers, revenue, unconverted = _recount(store, lo, hi)
    assert (got.cost_pico, got.unpriced_requests, got.customers, got.revenue_pico) == (cost, unpriced, customers, revenue)
    assert set(got.unconverted_currencies) == unconverted
    assert got.revenue_pico > 0 and got.cost_pico > 0


def test_headline_without_bounds_spans_the_months_with_usage(store: Store, catalog: Catalog) -> None:
    build_fixture(store, catalog)
    got = headline(store, FX)
    first, last = store.fetch("SELECT MIN(month), MAX(month) FROM usage_events")[1][0]
    assert (got.first_month, got.last_month) == (first, last)
    assert got.revenue_pico == _recount(store, "0000-00", "9999-99")[3]  # the annual plan's later months count too
