"""Store.delete_events (used when provider usage yields a day to the usage log) keeps rollups exact."""

from __future__ import annotations

import pandas as pd

from walleta.catalog import load_catalog
from walleta.events import record_events
from walleta.schema import ROLLUPS
from walleta.store import Store


def test_delete_events_subtracts_exactly_what_it_removes(store: Store) -> None:
    frame = pd.DataFrame({
        "ts_us": [1_759_276_800_000_000, 1_759_276_900_000_000, 1_759_363_200_000_000],
        "customer_id": ["acme", "acme", "globex"],
        "model": ["gpt-5-mini", "gpt-5-mini", "mystery-model"],
        "input_tokens": [100, 200, 300],
        "output_tokens": [10, 20, 30],
        "request_id": ["a", "b", "c"],
    })
    record_events(store, frame, load_catalog(), source="openai_api")
    with store.transaction() as cur:
        assert store.delete_events(["req:b", "req:c", "req:missing"], cur=cur) == 2
    assert store.query("SELECT uid FROM usage_events")["uid"].tolist() == ["req:a"]
    for name in ROLLUPS:
        totals = store.query(f"SELECT CAST(SUM(events) AS BIGINT) AS e, CAST(SUM(input_tokens) AS BIGINT) AS t, CAST(SUM(unpriced_events) AS BIGINT) AS u FROM {name}").iloc[0].tolist()
        assert totals == [1, 100, 0], name
    assert store.scalar("SELECT COUNT(*) FROM rollup_customer_day WHERE customer_id = 'globex'") == 0  # emptied keys go
