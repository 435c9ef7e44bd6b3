"""One customer's features, models and largest days, against hand-computed sums."""

from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.costing import price_events
from walleta.customer_detail import customer_features, customer_largest_days, customer_models
from walleta.events import record_events


def _ts(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc).timestamp()) * 1_000_000


EVENTS = pd.DataFrame(
    {
        "ts_us": [_ts("2026-01-03"), _ts("2026-01-03", 15), _ts("2026-01-09"), _ts("2026-02-01"), _ts("2026-01-05"), _ts("2025-12-31")],
        "customer_id": ["acme", "acme", "acme", "acme", "beta", "acme"],
        "feature": ["chat", "search", "chat", "chat", "chat", "chat"],
        "model": ["gpt-4.1-mini", "gpt-4.1-mini", "gpt-4.1", "gpt-4.1", "gpt-4.1", "gpt-4.1"],
        "input_tokens": [1000, 2000, 3000, 4000, 5000, 6000],
        "cached_input_tokens": [100, 0, 0, 0, 0, 0],
        "output_tokens": [10, 20, 30, 40, 50, 60],
        "requests": [1, 2, 3, 4, 5, 6],
    }
)


@pytest.fixture
def filled(store):
    record_events(store, EVENTS, load_catalog(), source="test")
    return store


def _costs() -> list[int]:
    frame = EVENTS.assign(day=[datetime.fromtimestamp(t / 1e6, timezone.utc).date().isoformat() for t in EVENTS["ts_us"]])
    return [int(c) for c in price_events(frame, load_catalog())["cost_pico"]]


def test_features_sum_the_customer_months_and_share_exactly(filled):
    cost = _costs()
    frame = customer_features(filled, "acme", "2026-01", "2026-01").set_index("feature")
    assert list(frame.index) == sorted(frame.index, key=lambda f: -frame.loc[f, "cost_pico"])
    assert frame.loc["chat", "requests"] == 1 + 3 and frame.loc["search", "requests"] == 2
    assert frame.loc["chat", "cost_pico"] == cost[0] + cost[2]
    assert frame.loc["search", "cost_pico"] == cost[1]
    assert sum(frame["cost_share"]) == Decimal(1)
    assert frame.loc["chat", "cached_input_tokens"] == 100


def test_models_span_several_months(filled):
    cost = _costs()
    frame = customer_models(filled, "acme", "2026-01", "2026-02").set_index("model")
    assert frame.loc["gpt-4.1", "cost_pico"] == cost[2] + cost[3]
    assert frame.loc["gpt-4.1", "input_tokens"] == 7000
    assert "beta" not in frame.index


def test_largest_days_are_ordered_and_limited(filled):
    cost = _costs()
    frame = customer_largest_days(filled, "acme", "2026-01", "2026-02", limit=2)
    assert len(frame) == 2
    expected = sorted([("2026-01-03", cost[0] + cost[1]), ("2026-01-09", cost[2]), ("2026-02-01", cost[3])], key=lambda r: (-r[1], r[0]))[:2]
    assert list(zip(frame["day"], frame["cost_pico"])) == expected
    assert "2025-12-31" not in set(frame["day"])


def test_unknown_customer_gives_empty_tables_with_columns(filled):
    assert customer_features(filled, "nobody", "2026-01", "2026-02").empty
    assert "cost_share" in customer_models(filled, "nobody", "2026-01", "2026-02").columns
    assert customer_largest_days(filled, "nobody", "2026-01", "2026-02").empty


def test_a_range_longer_than_the_seek_limit_gives_the_same_answer(filled):
    """Ranges over 900 days are read as one time range instead of a seek per day: same rows."""
    short = customer_largest_days(filled, "acme", "2025-12", "2026-02", limit=10)
    long = customer_largest_days(filled, "acme", "2024-01", "2026-12", limit=10)  # 1,096 days
    assert list(zip(long["day"], long["cost_pico"])) == list(zip(short["day"], short["cost_pico"]))
    assert len(long) == 4
    features = customer_features(filled, "acme", "1940-01", "2026-12")  # 1,044 months
    assert features.set_index("feature")["requests"].to_dict() == {"chat": 1 + 3 + 4 + 6, "search": 2}


def test_one_customer_is_read_by_primary_key_seeks(sqlite_url):
    """The rollups are keyed (time, customer, ...): a one-customer question names its months and
    days, so SQLite seeks the primary key per (month or day, customer) instead of scanning every
    customer's rows of the range (SQLite only: PostgreSQL plans from table statistics)."""
    from walleta.store import open_store

    from sqlalchemy import event

    store = open_store(sqlite_url)
    record_events(store, EVENTS, load_catalog(), source="test")
    statements: list[str] = []
    store.engine.pool.dispose()  # the next connection traces the SQL it runs
    event.listen(store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
    customer_features(store, "acme", "2026-01", "2026-02")
    customer_largest_days(store, "acme", "2026-01", "2026-02")
    reads = [s for s in statements if "FROM rollup_customer" in s]
    assert len(reads) == 2, statements
    for sql in reads:  # traced with the values in place
        details = " ".join(store.query("EXPLAIN QUERY PLAN " + sql)["detail"])
        assert "USING PRIMARY KEY" in details and "customer_id=?" in details, details


# -- one customer's months (the drill-down chart) ----------------------------------------------------


@pytest.mark.parametrize("fresh", [True, False], ids=["revenue-rollup", "entries"])
def test_customer_months_are_that_customers_rows_of_the_monthly_margins(db_url, tmp_path, fresh):
    """Every customer of the analytics fixture (multi-currency and unconverted revenue, refunds,
    an annual plan, unpriced usage, revenue without usage): its months equal its rows of
    `monthly_customer_margins`, bounded or from the first month with data."""
    from walleta.analytics.margins import monthly_customer_margins
    from walleta.customer_detail import customer_months
    from walleta.store import open_store

    from .analytics_fixture import FX, build_fixture, fixture_catalog

    store = open_store(db_url)
    build_fixture(store, fixture_catalog(tmp_path), revenue_rollup=fresh)
    columns = ["month", "revenue_pico", "ai_cost_pico", "margin_pico", "requests", "unpriced_requests"]
    for first, last in [(None, "2026-12"), ("2026-01", "2026-02"), ("2026-02", "2026-02")]:
        every = monthly_customer_margins(store, FX, first, last)
        assert len(every) > 0
        for customer in sorted(set(every["customer_id"])):
            expected = every[every["customer_id"] == customer][columns].reset_index(drop=True)
            got = customer_months(store, FX, customer, first, last)
            assert got[columns].astype(object).values.tolist() == expected.astype(object).values.tolist(), (customer, first, last)
    assert customer_months(store, FX, "nobody", None, "2026-12").empty
    store.close()
