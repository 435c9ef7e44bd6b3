"""Re-price stored events after a catalog change (new prices, an override), then rebuild rollups."""

from __future__ import annotations

import pandas as pd

from .catalog import Catalog
from .costing import price_events
from .store import Store

__all__ = ["reprice"]

_PRICING_COLUMNS = (
    "id, model, day, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, "
    "input_audio_tokens, output_audio_tokens, input_image_tokens, output_image_tokens, images, image_size, "
    "image_quality, audio_seconds, characters, tool_calls, requests, service_tier, batch, cost_pico, price_status, price_note"
)


def reprice(store: Store, catalog: Catalog, *, chunk: int = 200_000) -> int:
    """Recompute cost for every event in chunks; returns how many rows changed. One transaction."""
    changed = 0
    with store.transaction() as cur:
        last_id = 0
        while True:
            cur.execute(store.sql(f"SELECT {_PRICING_COLUMNS} FROM usage_events WHERE id > ? ORDER BY id LIMIT ?"), [last_id, chunk])
            rows = cur.fetchall()
            if not rows:
                break
            frame = pd.DataFrame.from_records(rows, columns=[d[0] for d in cur.description])
            last_id = int(frame["id"].iloc[-1])
            priced = price_events(frame, catalog)
            old = frame["cost_pico"].astype("object").where(frame["cost_pico"].notna(), None).tolist()
            new = priced["cost_pico"].astype("object").where(priced["cost_pico"].notna(), None).tolist()
            updates = [
                (None if n is None else int(n), s, note, int(i))
                for i, o, n, s, note, old_note in zip(frame["id"], old, new, priced["price_status"], priced["price_note"], frame["price_note"])
                if (o is None) != (n is None) or (o is not None and int(o) != int(n)) or note != old_note
            ]
            if updates:
                cur.executemany(store.sql("UPDATE usage_events SET cost_pico = ?, price_status = ?, price_note = ? WHERE id = ?"), updates)
            changed += len(updates)
        store.rebuild_rollups(cur=cur)
    return changed
