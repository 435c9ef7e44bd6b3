"""`generations.data_stamp`: the app keys every cached result on it, so it must change with every
kind of write a page shows (and stay put otherwise), without reading the data itself."""

from __future__ import annotations

import pandas as pd
import pytest

from walleta.catalog import Catalog
from walleta.events import prepare_events
from walleta.generations import data_stamp
from walleta.revenue_rollup import ensure_fresh
from walleta.sources.mapping import set_mappings
from walleta.sources.report import begin_run
from walleta.store import Store

from .analytics_fixture import fixture_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return fixture_catalog(tmp_path_factory.mktemp("catalog"))


def _usage(store: Store, catalog: Catalog, day: str, request_id: str, tokens: int = 1_000_000) -> None:
    row = {"ts_us": int(pd.Timestamp(day, tz="UTC").value // 1000), "customer_id": "a", "feature": "chat", "model": "m-small",
           "input_tokens": tokens, "output_tokens": 0, "requests": 1, "request_id": request_id}
    store.write_events(prepare_events(pd.DataFrame([row]), catalog, source="test"))


def _revenue(store: Store, uid: str, amount: int) -> None:
    entry = {"uid": uid, "customer_id": "a", "period_start": "2026-01-01", "period_end": "2026-01-31", "amount_minor": amount,
             "currency": "USD", "kind": "subscription", "document_id": "", "description": "", "source": "test"}
    with store.transaction() as cur:
        store.upsert("revenue_entries", [entry], ["uid"], cur=cur)
        ensure_fresh(cur, store.dialect)


@pytest.fixture
def stamps(store: Store) -> list[str]:
    """Stamps seen so far; `_changed` asserts each new one is new."""
    return [data_stamp(store)]


def _changed(store: Store, stamps: list[str]) -> None:
    now = data_stamp(store)
    assert now not in stamps
    assert data_stamp(store) == now  # nothing written: the same stamp
    stamps.append(now)


def test_usage_writes_change_the_stamp_and_skipped_duplicates_do_not(store: Store, catalog: Catalog, stamps: list[str]) -> None:
    _usage(store, catalog, "2026-02-10", "r1")
    _changed(store, stamps)
    _usage(store, catalog, "2026-02-10", "r1")  # the same event again: skipped, nothing changed
    assert data_stamp(store) == stamps[-1]
    _usage(store, catalog, "2026-02-11", "r2")  # the same month again
    _changed(store, stamps)
    _usage(store, catalog, "2026-01-05", "r3")  # late usage in an earlier month
    _changed(store, stamps)
    store.rebuild_rollups()  # what re-pricing and re-mapping end with
    _changed(store, stamps)


def test_revenue_customers_mappings_bills_and_imports_change_the_stamp(store: Store, stamps: list[str]) -> None:
    _revenue(store, "e1", 1_000)
    _changed(store, stamps)
    _revenue(store, "e1", 2_000)  # the same entry corrected in place: same count, new amount
    _changed(store, stamps)
    store.upsert("customers", [{"customer_id": "a", "name": "A", "plan": "pro", "signup_date": "", "email": "",
                                "stripe_customer_id": "", "seats": None, "source": "test"}], ["customer_id"])
    _changed(store, stamps)
    with store.transaction() as cur:
        set_mappings(store, [("project", "proj_1", "a")], cur=cur)
    _changed(store, stamps)
    store.upsert("billed_costs", [{"uid": "b1", "day": "2026-01-05", "project_id": "proj_1", "api_key_id": "", "line_item": "m-small, input",
                                   "amount_pico": 10**12, "currency": "USD", "quantity": None, "quantity_unit": "", "source": "test"}], ["uid"])
    _changed(store, stamps)
    with store.transaction() as cur:
        begin_run(store, cur, "test", "usage")
    _changed(store, stamps)


def test_the_stamp_reads_no_rollup_and_no_event(sqlite_url: str) -> None:
    """It runs on every cached read of the app: small tables and counters only."""
    from walleta.store import open_store

    from .sql_trace import traced

    store = open_store(sqlite_url)
    try:
        with traced(store) as seen:
            data_stamp(store)
    finally:
        store.close()
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2
    assert not [s for s in reads if "rollup_" in s or "usage_events" in s]
