"""Which customer an OpenAI project, API key or user belongs to.

Usage from the OpenAI organization API (and from dashboard exports) knows projects, API keys
and users, not customers. The `customer_mappings` table maps them:

    source            key                  customer_id
    openai_api_key    key_abc              acme
    openai_project    proj_123             globex
    openai_user       user-xyz             initech
    stripe_customer   cus_9s6XKzkNRiz8i3   acme        (used by the Stripe import)

Resolution for a usage row: its API key's mapping, else its project's, else its user's, else
the customer "(unmapped)". Unmapped usage is kept and shown under that name, never dropped.
When a mapping changes, `remap_provider_events` re-resolves every stored provider event and
rebuilds the rollups, so history follows the mapping.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..exact_merge import merge_filled
from ..schema import PROVIDER_EVENTS
from ..store import Store

__all__ = [
    "UNMAPPED",
    "MAPPING_SOURCES",
    "RESOLUTION_ORDER",
    "normalise_source",
    "load_mappings",
    "resolve_customers",
    "set_mappings",
    "delete_mapping",
    "remap_provider_events",
    "mapping_overview",
]

UNMAPPED = "(unmapped)"
MAPPING_SOURCES = ("openai_project", "openai_api_key", "openai_user", "stripe_customer")
# (mapping source, usage column), most specific first.
RESOLUTION_ORDER: tuple[tuple[str, str], ...] = (
    ("openai_api_key", "api_key_id"),
    ("openai_project", "project_id"),
    ("openai_user", "user_id"),
)
_SOURCE_ALIASES = {
    "project": "openai_project",
    "project_id": "openai_project",
    "openai_project_id": "openai_project",
    "api_key": "openai_api_key",
    "api_key_id": "openai_api_key",
    "key": "openai_api_key",
    "openai_key": "openai_api_key",
    "user": "openai_user",
    "user_id": "openai_user",
    "openai_user_id": "openai_user",
    "stripe": "stripe_customer",
    "stripe_customer_id": "stripe_customer",
}


def normalise_source(value: str) -> str | None:
    """'Project' -> 'openai_project', 'api key' -> 'openai_api_key'; None if not a mapping source."""
    cleaned = "_".join(value.strip().lower().replace("-", " ").split())
    if cleaned in MAPPING_SOURCES:
        return cleaned
    return _SOURCE_ALIASES.get(cleaned)


def load_mappings(store: Store, cur: Any = None) -> dict[str, dict[str, str]]:
    """source -> {key: customer_id} for every stored mapping."""
    statement = "SELECT source, key, customer_id FROM customer_mappings"
    if cur is not None:
        cur.execute(statement)
        rows = cur.fetchall()
    else:
        rows = store.query(statement).itertuples(index=False, name=None)
    out: dict[str, dict[str, str]] = {}
    for source, key, customer in rows:
        out.setdefault(source, {})[key] = customer
    return out


def resolve_customers(frame: pd.DataFrame, mappings: dict[str, dict[str, str]]) -> np.ndarray:
    """The customer of each usage row (columns api_key_id, project_id, user_id); see module doc."""
    out = np.full(len(frame), None, dtype=object)
    for source, column in RESOLUTION_ORDER:
        table = mappings.get(source)
        if not table or column not in frame.columns:
            continue
        found = frame[column].map(table).to_numpy(dtype=object)
        fill = pd.isna(out) & ~pd.isna(found)
        out[fill] = found[fill]
    out[pd.isna(out)] = UNMAPPED
    return out


def set_mappings(store: Store, rows: list[tuple[str, str, str]], *, method: str = "manual", cur: Any) -> int:
    """Insert or replace (source, key, customer_id) mappings; returns how many changed."""
    changed = 0
    for source, key, customer in rows:
        normalised = normalise_source(source)
        if normalised is None:
            raise InputError(f"unknown mapping source {source!r}: use one of {', '.join(MAPPING_SOURCES)}")
        if not key.strip() or not customer.strip():
            raise InputError("a mapping needs a key and a customer_id")
        cur.execute(store.sql("SELECT customer_id FROM customer_mappings WHERE source = ? AND key = ?"), [normalised, key.strip()])
        existing = cur.fetchone()
        if existing is not None and existing[0] == customer.strip():
            continue
        cur.execute(
            store.sql(
                "INSERT INTO customer_mappings (source, key, customer_id, confirmed, method) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (source, key) DO UPDATE SET customer_id = excluded.customer_id, confirmed = 1, method = excluded.method"
            ),
            [normalised, key.strip(), customer.strip(), method],
        )
        changed += 1
    return changed


def delete_mapping(store: Store, source: str, key: str, *, cur: Any) -> bool:
    """Remove one mapping; True if it existed."""
    normalised = normalise_source(source) or source
    cur.execute(store.sql("DELETE FROM customer_mappings WHERE source = ? AND key = ?"), [normalised, key])
    return bool(cur.rowcount)


def _resolved_sql() -> str:
    parts = [
        f"(SELECT m.customer_id FROM customer_mappings m WHERE m.source = '{source}' AND m.key = usage_events.{column})"
        for source, column in RESOLUTION_ORDER
    ]
    return f"COALESCE({', '.join(parts)}, '{UNMAPPED}')"


def remap_provider_events(store: Store, *, cur: Any) -> int:
    """Re-resolve the customer of every stored provider event (API / export usage) from the
    current mappings; rebuild the rollups when any changed. Returns the number of rows changed."""
    resolved = _resolved_sql()
    cur.execute(f"UPDATE usage_events SET customer_id = {resolved} WHERE {PROVIDER_EVENTS} AND customer_id <> {resolved}")
    changed = int(cur.rowcount or 0)
    if changed:
        store.rebuild_rollups(cur=cur)
    return changed


def mapping_overview(store: Store) -> pd.DataFrame:
    """Every project, API key and user seen in provider usage, with its mapping and usage.

    Columns: source, key, customer_id (the key's own mapping, or '(unmapped)'), usage_goes_to
    (the customers its usage is attributed to now, e.g. through its project's mapping),
    requests, cost_usd (text, exact to the cent), unpriced_events. Mapped keys without usage
    are listed too.
    """
    from ..money import pico_to_usd

    frames = []
    for source, column in RESOLUTION_ORDER:
        usage = store.query(
            f"SELECT {column} AS key, customer_id AS goes_to, CAST(SUM(requests) AS BIGINT) AS requests, "
            f"CAST(SUM(COALESCE(cost_pico, 0)) AS BIGINT) AS cost_pico, "
            f"CAST(SUM(CASE WHEN cost_pico IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_events "
            f"FROM usage_events WHERE {PROVIDER_EVENTS} AND {column} <> '' GROUP BY {column}, customer_id"
        )
        usage.insert(0, "source", source)
        frames.append(usage)
    seen = pd.concat(frames, ignore_index=True)
    if seen.empty:
        seen = pd.DataFrame(columns=["source", "key", "goes_to", "requests", "cost_pico", "unpriced_events"])
    grouped = seen.groupby(["source", "key"], as_index=False, sort=False).agg(
        usage_goes_to=("goes_to", lambda values: ", ".join(sorted(set(values)))),
        requests=("requests", "sum"),
        cost_pico=("cost_pico", lambda values: sum(int(v) for v in values)),
        unpriced_events=("unpriced_events", "sum"),
    )
    openai_sources = ", ".join(f"'{source}'" for source, _ in RESOLUTION_ORDER)  # (a literal '%' trips psycopg's placeholders)
    mapped = store.query(f"SELECT source, key, customer_id FROM customer_mappings WHERE source IN ({openai_sources})")
    fill = {"customer_id": UNMAPPED, "usage_goes_to": "", "requests": 0, "cost_pico": 0, "unpriced_events": 0}
    table = merge_filled(grouped, mapped, ["source", "key"], "outer", fill)
    for column in ("requests", "unpriced_events"):
        table[column] = table[column].astype("int64")
    table["cost_pico"] = [int(v) for v in table["cost_pico"].tolist()]
    cent = pico_to_usd(10**10)
    table["cost_usd"] = [str(pico_to_usd(v).quantize(cent)) for v in table["cost_pico"]]
    table = table.sort_values(["source", "cost_pico"], ascending=[True, False], key=lambda c: c if c.name != "cost_pico" else c.map(int)).reset_index(drop=True)
    return table.loc[:, ["source", "key", "customer_id", "usage_goes_to", "requests", "cost_usd", "unpriced_events"]]
