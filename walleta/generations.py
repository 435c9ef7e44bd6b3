"""Change counters for derived data, so a reader can keep what it derived from months that did
not change (issue 6: `walleta.analytics.closed_months`).

Each counter is a `walleta_meta` row `generation:<label>` holding an integer that only grows, bumped
in the same transaction as the write it counts:
- `generation:<YYYY-MM>`: every write to `rollup_customer_month` rows of that month (new or
  replaced usage, deleted events; `Store._upsert_rollup`). A usage write updates every usage
  rollup from the same events, so this counter stands for the day rollups of the month too;
- `generation:all`: every write that may touch any month (rollup rebuild after re-pricing or
  re-mapping, schema upgrades);
- `generation:revenue`: every rebuild of the revenue rollup (`walleta.revenue_rollup.refresh`).
`store_id` (a random id written when the schema is created or upgraded) tells two databases
apart. A reader compares the `fingerprint` it read BEFORE reading the data with the fingerprint
now: equal means nothing it read has changed since (a write in between can only make the
fingerprint differ, never hide). Writes that bypass Walleta (hand-written SQL on the rollup
tables, which are derived data) are not counted; revenue entries are covered by the revenue
rollup's own triggers (a stale revenue rollup is never cached on), the customers table and the
bill by digests (`analytics.closed_months`).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .store import Store

__all__ = ["PREFIX", "STORE_ID_KEY", "bump", "ensure_store_id", "fingerprint", "data_stamp"]

PREFIX = "generation:"
STORE_ID_KEY = "store_id"
_BUMP = ("INSERT INTO walleta_meta (key, value) VALUES (?, '1') "
         "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(walleta_meta.value AS BIGINT) + 1 AS TEXT)")


def bump(cur: Any, dialect: str, labels: Iterable[str]) -> None:
    """Add one to the counters `generation:<label>` (in sorted order: concurrent writers lock the
    rows in one order) inside the caller's transaction."""
    statement = _BUMP.replace("?", "%s") if dialect == "postgresql" else _BUMP
    for label in sorted(set(labels)):
        cur.execute(statement, [PREFIX + label])


def ensure_store_id(cur: Any, dialect: str) -> None:
    """Give the database a random `store_id` if it has none (inside the caller's transaction)."""
    statement = "INSERT INTO walleta_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
    cur.execute(statement.replace("?", "%s") if dialect == "postgresql" else statement, [STORE_ID_KEY, uuid.uuid4().hex])


def fingerprint(store: "Store", before_month: str) -> tuple[str, ...] | None:
    """What a reader of months before `before_month` (usage rollup and revenue rollup) depends on:
    the store id, the `all` and `revenue` counters and the counter of every month before it.
    None when the database has no store id (opened read-only before any upgrade): do not cache."""
    _, rows = store.fetch("SELECT key, value FROM walleta_meta WHERE key = ? OR (key >= ? AND key < ?)",
                          [STORE_ID_KEY, PREFIX, PREFIX[:-1] + ";"])
    values = dict(rows)
    if STORE_ID_KEY not in values:
        return None
    months = sorted(k for k in values if k.startswith(PREFIX) and k[len(PREFIX):] < before_month and k[len(PREFIX):][:1].isdigit())
    parts = [values[STORE_ID_KEY], values.get(PREFIX + "all", "0"), values.get(PREFIX + "revenue", "0")]
    return tuple(parts + [f"{k}={values[k]}" for k in months])


def data_stamp(store: "Store") -> str:
    """A short text that changes whenever Walleta writes data a page shows: every change counter
    above (usage writes per month, rebuilds, revenue rollup refreshes) and the revenue rollup's
    state, the newest import run, and the row counts of the small tables (customers, mappings,
    revenue entries, billed costs). Two statements over small tables (one row per month counter,
    no scan of a rollup or of events), so a caller can take it on every read (the app keys its
    cached results on it). In-place edits of customers or mappings keep the counts: the app adds
    its own counter for edits made through it."""
    from .revenue_rollup import STATE_KEY as REVENUE_STATE  # imported here: revenue_rollup imports this module

    _, meta = store.fetch(
        "SELECT key, value FROM walleta_meta WHERE key = ? OR key = ? OR (key >= ? AND key < ?) ORDER BY key",
        [STORE_ID_KEY, REVENUE_STATE, PREFIX, PREFIX[:-1] + ";"],
    )
    _, small = store.fetch(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM import_runs), (SELECT COALESCE(MAX(finished_us), 0) FROM import_runs), "
        "(SELECT COUNT(*) FROM import_runs), (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM customer_mappings), "
        "(SELECT COUNT(*) FROM revenue_entries), (SELECT COUNT(*) FROM billed_costs)"
    )
    counters = hashlib.blake2b(repr([tuple(row) for row in meta]).encode(), digest_size=8).hexdigest()
    return ":".join([counters, *(str(int(value)) for value in small[0])])
