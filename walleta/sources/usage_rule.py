"""The rule that keeps provider-reported usage and logged usage from being added together.

Two kinds of usage describe the same OpenAI calls:

- **attribution sources**: the usage log (`log`), usage CSV files (`csv`) and the demo (`demo`).
  They know the customer and feature of every call; they are what analytics attribute.
- **provider sources**: the OpenAI Usage API (`openai_api`) and OpenAI dashboard activity
  exports (`openai_export`). They know project, API key, user and model, not customers; they
  are the reconciliation record.

The rule, per UTC day:

1. Every provider bucket is always stored whole in `openai_usage_buckets` (reconciliation).
2. If any attribution-source event exists on a day, that day's usage in `usage_events` comes
   from the attribution sources only; provider usage for the day is not in `usage_events`.
3. Otherwise the day is filled from the provider buckets (priced, mapped to customers through
   `walleta.sources.mapping`, unmapped keys under "(unmapped)"), preferring `openai_api` over
   `openai_export` when both cover the day.

`apply_usage_rule` enforces it for a range of days and is called by every importer that adds
usage (API import, activity export import, usage CSV import). It is idempotent: a second call
changes nothing. The live usage log (`walleta.capture`) calls `apply_rule_to_logged_days` the
first time each process writes to a day, so a day the API import filled earlier is handed to the
log at once instead of being counted twice until the next import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import Catalog
from ..events import prepare_events
from ..schema import EVENT_COLUMNS, NO_FEATURE, PROVIDER_SOURCES  # PROVIDER_SOURCES: in order of preference
from ..store import Store
from .mapping import load_mappings, resolve_customers

__all__ = [
    "ATTRIBUTION_SOURCES",
    "NON_EVENT_ENDPOINTS",
    "PROVIDER_SOURCES",
    "RuleResult",
    "apply_rule_to_logged_days",
    "apply_usage_rule",
    "buckets_to_events",
]

ATTRIBUTION_SOURCES = ("log", "csv", "demo")
NON_EVENT_ENDPOINTS = ("vector_stores",)  # storage bytes: reconciliation only, not usage events
_EVENT_FIELDS = (
    "uid", "ts_us", "model", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
    "input_audio_tokens", "output_audio_tokens", "input_image_tokens", "output_image_tokens", "requests", "images",
    "image_size", "characters", "audio_seconds", "tool_calls", "service_tier", "batch", "project_id", "api_key_id", "user_id",
)
_COMPARED = tuple(c for c in EVENT_COLUMNS if c != "import_id")


@dataclass(frozen=True)
class RuleResult:
    """What applying the rule changed in `usage_events`."""

    added: int
    replaced: int
    removed: int
    provider_days: int
    attributed_days: int

    @property
    def changed(self) -> bool:
        """True when any event was added, replaced or removed."""
        return bool(self.added or self.replaced or self.removed)


def buckets_to_events(buckets: pd.DataFrame, mappings: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Stored bucket rows -> a usage frame for `prepare_events` (uid = bucket uid, ts = bucket start)."""
    frame = buckets.rename(columns={"start_us": "ts_us"}).loc[:, list(_EVENT_FIELDS)].copy()
    frame["customer_id"] = resolve_customers(frame, mappings)
    frame["feature"] = NO_FEATURE
    frame["service_tier"] = frame["service_tier"].replace("", "default")
    frame["source"] = buckets["source"].to_numpy()
    return frame


def _select(cur: Any, store: Store, statement: str, params: list[Any]) -> pd.DataFrame:
    """Rows as an object-dtype frame: integers stay exact Python ints, NULL stays None."""
    cur.execute(store.sql(statement), params)
    columns = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=columns, dtype=object)


def apply_usage_rule(store: Store, catalog: Catalog, *, cur: Any, first_day: str, last_day: str, import_id: int | None = None) -> RuleResult:
    """Make `usage_events` follow the rule for the UTC days first_day..last_day (inclusive).

    Runs inside the caller's transaction (`cur`). New or changed provider events are written
    with `import_id`; unchanged ones are left exactly as they are.
    """
    cur.execute(store.sql("SELECT 1 FROM openai_usage_buckets WHERE day >= ? AND day <= ? LIMIT 1"), [first_day, last_day])
    if cur.fetchone() is None and not _has_provider_events(store, cur, first_day, last_day):
        return RuleResult(0, 0, 0, 0, 0)  # no provider usage in range: nothing to reconcile
    attributed = set(
        _select(
            cur, store,
            f"SELECT DISTINCT day FROM usage_events WHERE {_DAYS_BY_TIME} AND source NOT IN ({_in(PROVIDER_SOURCES)})",
            _days(first_day, last_day),
        )["day"].tolist()
    )
    buckets = _select(
        cur, store,
        f"SELECT * FROM openai_usage_buckets WHERE day >= ? AND day <= ? AND endpoint NOT IN ({_in(NON_EVENT_ENDPOINTS)})",
        [first_day, last_day],
    )
    wanted = _wanted_buckets(buckets, attributed)
    desired = _prepare(wanted, load_mappings(store, cur), catalog, import_id)
    existing = _select(
        cur, store,
        f"SELECT {', '.join(_COMPARED)} FROM usage_events WHERE {_DAYS_BY_TIME} AND source IN ({_in(PROVIDER_SOURCES)})",
        _days(first_day, last_day),
    )
    stale = sorted(set(existing["uid"]) - set(desired["uid"])) if not existing.empty else []
    removed = store.delete_events(stale, cur=cur) if stale else 0
    changed = _changed_rows(desired, existing)
    result = store.write_events(changed, on_conflict="replace", cur=cur) if not changed.empty else None
    provider_days = len(set(wanted["day"])) if not wanted.empty else 0
    return RuleResult(
        added=result.inserted if result else 0,
        replaced=result.replaced if result else 0,
        removed=removed,
        provider_days=provider_days,
        attributed_days=len(attributed),
    )


def apply_rule_to_logged_days(store: Store, catalog: Catalog, days: list[str]) -> RuleResult | None:
    """Apply the rule to `days` (UTC 'YYYY-MM-DD') the usage log has just written to.

    One indexed lookup in `openai_usage_buckets` when no provider usage covers those days (the
    usual case), and returns None; otherwise the rule runs for the covered days in its own
    transaction and its result is returned.
    """
    if not days:
        return None
    wanted = set(days)
    with store.transaction() as cur:
        cur.execute(
            store.sql("SELECT DISTINCT day FROM openai_usage_buckets WHERE day >= ? AND day <= ?"),
            [min(wanted), max(wanted)],
        )
        covered = sorted(wanted & {str(row[0]) for row in cur.fetchall()})
        if not covered:
            return None
        return apply_usage_rule(store, catalog, cur=cur, first_day=covered[0], last_day=covered[-1])


def _has_provider_events(store: Store, cur: Any, first_day: str, last_day: str) -> bool:
    """Provider events only come from buckets; this guards against rows left by older versions."""
    cur.execute(store.sql("SELECT 1 FROM import_runs WHERE source = 'openai_api' OR kind = 'openai-activity' LIMIT 1"))
    if cur.fetchone() is None:
        return False
    cur.execute(
        store.sql(f"SELECT 1 FROM usage_events WHERE {_DAYS_BY_TIME} AND source IN ({_in(PROVIDER_SOURCES)}) LIMIT 1"),
        _days(first_day, last_day),
    )
    return cur.fetchone() is not None


# The days' events by day and by time (`day` is the UTC date of `ts_us`): the time bounds let the
# query use the events' time index instead of reading the whole table.
_DAYS_BY_TIME = "day >= ? AND day <= ? AND ts_us >= ? AND ts_us < ?"


def _days(first_day: str, last_day: str) -> list[Any]:
    """Parameters of `_DAYS_BY_TIME` for the UTC days first_day..last_day (inclusive)."""
    start = datetime.fromisoformat(first_day).replace(tzinfo=timezone.utc)
    end = datetime.fromisoformat(last_day).replace(tzinfo=timezone.utc) + timedelta(days=1)
    return [first_day, last_day, int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000]


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _wanted_buckets(buckets: pd.DataFrame, attributed: set[str]) -> pd.DataFrame:
    """Buckets of days without attribution usage, from the preferred provider source per day."""
    if buckets.empty:
        return buckets
    open_days = buckets[~buckets["day"].isin(attributed)]
    rank = open_days["source"].map({s: i for i, s in enumerate(PROVIDER_SOURCES)}).fillna(len(PROVIDER_SOURCES))
    best = rank.groupby(open_days["day"]).transform("min")
    return open_days[rank == best]


def _prepare(buckets: pd.DataFrame, mappings: dict[str, dict[str, str]], catalog: Catalog, import_id: int | None) -> pd.DataFrame:
    if buckets.empty:
        return pd.DataFrame(columns=list(EVENT_COLUMNS))
    frame = buckets_to_events(buckets, mappings)
    parts = [
        prepare_events(group.drop(columns=["source"]), catalog, source=str(source), import_id=import_id)
        for source, group in frame.groupby("source", sort=True)
    ]
    return pd.concat(parts, ignore_index=True)


def _fingerprints(frame: pd.DataFrame) -> dict[str, str]:
    """uid -> a canonical text of every compared column (None/NA -> '', floats by repr)."""
    columns = []
    for name in _COMPARED:
        values = frame[name].to_numpy(dtype=object) if name in frame.columns else np.full(len(frame), None, dtype=object)
        columns.append(["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else _canon(v) for v in values])
    uids = frame["uid"].tolist()
    return {uid: "\x1f".join(parts) for uid, parts in zip(uids, zip(*columns))}


def _canon(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _changed_rows(desired: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """Desired rows that are new or differ from the stored row with the same uid."""
    if desired.empty:
        return desired
    if existing.empty:
        return desired
    before = _fingerprints(existing)
    after = _fingerprints(desired)
    keep = [before.get(uid) != print_ for uid, print_ in after.items()]
    return desired[np.array(keep, dtype=bool)].reset_index(drop=True)
