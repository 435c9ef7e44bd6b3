"""Schema upgrades, one function per version step.

Policy: the schema version is stored in `walleta_meta.schema_version`. On open, tables that do
not exist yet are created (additive changes need no step), then each step whose version is above
the stored one runs in order, inside the same transaction that records the new version. A
database newer than the code is refused with `SchemaError` rather than guessed at. Steps must be
written in SQL that runs on SQLite and PostgreSQL. Version 1 is the first published schema.
"""

from __future__ import annotations

from typing import Any, Callable

from . import generations
from .schema import PROVIDER_EVENTS

__all__ = ["MIGRATIONS", "steps_after"]

Step = Callable[[Any, str], None]

# version -> the step that upgrades a database at version-1 to it.
MIGRATIONS: dict[int, Step] = {}


def steps_after(version: int) -> list[Step]:
    """The upgrade steps to run, in order, for a database at `version`."""
    return [MIGRATIONS[v] for v in sorted(MIGRATIONS) if v > version]


# -- version 2 (issue 6): the customer x month rollup and the rollup time indexes ----------------


# Frozen here: the rollup measure columns from version 2 to version 5 (unchanged in between).
ROLLUP_MEASURES_V2_V5: tuple[str, ...] = (
    "events", "requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "input_audio_tokens", "output_audio_tokens", "input_image_tokens", "output_image_tokens",
    "images", "characters", "tool_calls", "errors", "cost_pico", "provider_cost_pico", "unpriced_events",
    "unpriced_requests", "unpriced_tokens",
)

# rollup -> (index, time column) as version 2 created them (schema 5 drops them again).
V2_TIME_INDEXES: dict[str, tuple[str, str]] = {
    "rollup_customer_month_model": ("ix_rollup_customer_month_model_month", "month"),
    "rollup_customer_month_feature": ("ix_rollup_customer_month_feature_month", "month"),
    "rollup_customer_day": ("ix_rollup_customer_day_day", "day"),
    "rollup_feature_model_day": ("ix_rollup_feature_model_day_day", "day"),
    "rollup_project_model_day": ("ix_rollup_project_model_day_day", "day"),
    "rollup_customer_month": ("ix_rollup_customer_month_month", "month"),
}


def _v2_customer_month_rollup(cur: Any, dialect: str) -> None:
    """Index every rollup on its time key; fill the new `rollup_customer_month` (created empty
    by `create_all`) from `rollup_customer_month_model`, which holds the same sums per model."""
    for name, (index, column) in V2_TIME_INDEXES.items():
        cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {name} ({column})")
    measures = ", ".join(ROLLUP_MEASURES_V2_V5)
    sums = ", ".join(f"CAST(SUM({m}) AS BIGINT)" for m in ROLLUP_MEASURES_V2_V5)
    cur.execute("DELETE FROM rollup_customer_month")
    cur.execute(
        f"INSERT INTO rollup_customer_month (customer_id, month, {measures}) "
        f"SELECT customer_id, month, {sums} FROM rollup_customer_month_model GROUP BY customer_id, month"
    )


MIGRATIONS[2] = _v2_customer_month_rollup


# -- version 3: identifier columns are TEXT everywhere ---------------------------------------------

# (table, column) pairs that were VARCHAR(255) at version 2 and hold a user-supplied identifier
# (a customer, feature, model, project or service-tier name, a mapping key, a Stripe id).
# Frozen here: later schema changes do not change what this step does.
V3_TEXT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rollup_customer_month_model", "customer_id"),
    ("rollup_customer_month_model", "month"),
    ("rollup_customer_month_model", "model"),
    ("rollup_customer_month_feature", "customer_id"),
    ("rollup_customer_month_feature", "month"),
    ("rollup_customer_month_feature", "feature"),
    ("rollup_customer_day", "customer_id"),
    ("rollup_customer_day", "day"),
    ("rollup_feature_model_day", "feature"),
    ("rollup_feature_model_day", "model"),
    ("rollup_feature_model_day", "day"),
    ("rollup_project_model_day", "project_id"),
    ("rollup_project_model_day", "model"),
    ("rollup_project_model_day", "day"),
    ("rollup_project_model_day", "service_tier"),
    ("rollup_customer_month", "customer_id"),
    ("rollup_customer_month", "month"),
    ("customers", "customer_id"),
    ("customer_mappings", "key"),
    ("stripe_customers", "stripe_customer_id"),
    ("stripe_subscription_items", "item_id"),
)


def _v3_identifier_columns_text(cur: Any, dialect: str) -> None:
    """PostgreSQL: widen every column of `V3_TEXT_COLUMNS` from VARCHAR(255) to TEXT (a catalog
    change: PostgreSQL rewrites neither the table nor its indexes). SQLite does not enforce
    VARCHAR lengths, so there is nothing to change there; only the version moves."""
    if dialect != "postgresql":
        return
    for table, column in V3_TEXT_COLUMNS:
        cur.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE TEXT')


MIGRATIONS[3] = _v3_identifier_columns_text


# -- version 4: raw events indexed by time instead of by (customer, time) ----------------------------


def _v4_event_time_index(cur: Any, dialect: str) -> None:
    """Replace `ix_usage_events_customer_ts` by `ix_usage_events_ts` (see `schema.UsageEvent`):
    one index build over the stored events, after which every write is cheaper."""
    cur.execute("DROP INDEX IF EXISTS ix_usage_events_customer_ts")
    cur.execute("CREATE INDEX IF NOT EXISTS ix_usage_events_ts ON usage_events (ts_us)")


MIGRATIONS[4] = _v4_event_time_index


# -- version 5: every rollup keyed by time first --------------------------------------------------

# Frozen here: the rollups' primary keys as version 5 defines them, in order.
V5_KEYS: dict[str, tuple[str, ...]] = {
    "rollup_customer_month_model": ("month", "customer_id", "model"),
    "rollup_customer_month_feature": ("month", "customer_id", "feature"),
    "rollup_customer_day": ("day", "customer_id"),
    "rollup_feature_model_day": ("day", "feature", "model"),
    "rollup_project_model_day": ("day", "project_id", "model", "service_tier", "batch"),
    "rollup_customer_month": ("month", "customer_id"),
}


def _v5_rollup_ddl(table: str, keys: tuple[str, ...], dialect: str) -> str:
    columns = [f"{k} {'INTEGER' if k == 'batch' else 'TEXT'} NOT NULL" for k in keys]
    columns += [f"{m} BIGINT DEFAULT '0' NOT NULL" for m in ROLLUP_MEASURES_V2_V5]
    suffix = " WITHOUT ROWID" if dialect == "sqlite" else ""
    return f"CREATE TABLE {table} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})){suffix}"


def _v5_rollups_time_first(cur: Any, dialect: str) -> None:
    """Rebuild every rollup with its time column first in the primary key (pages read periods:
    one contiguous range instead of a time-index entry plus a primary-key seek per row, 3-7x
    faster at 10M events) and drop the version-2 time indexes. Rows are copied as they are
    (the sums do not change); one pass over each rollup, not over the raw events."""
    for name, keys in V5_KEYS.items():
        cur.execute(f"DROP INDEX IF EXISTS {V2_TIME_INDEXES[name][0]}")
        staged = f"{name}_v5"
        cur.execute(_v5_rollup_ddl(staged, keys, dialect))
        columns = ", ".join((*keys, *ROLLUP_MEASURES_V2_V5))
        cur.execute(f"INSERT INTO {staged} ({columns}) SELECT {columns} FROM {name} ORDER BY {', '.join(keys)}")
        cur.execute(f"DROP TABLE {name}")
        cur.execute(f"ALTER TABLE {staged} RENAME TO {name}")
        if dialect == "postgresql":  # keep the constraint name create_all gives a new database
            cur.execute(f"ALTER TABLE {name} RENAME CONSTRAINT {staged}_pkey TO {name}_pkey")


MIGRATIONS[5] = _v5_rollups_time_first


# -- version 6: the bill read by day ------------------------------------------------------------------


def _v6_billed_costs_day_index(cur: Any, dialect: str) -> None:
    """Index `billed_costs` by day with the columns reconciliation reads (see `schema.BilledCost`):
    a month's bill becomes one index range instead of a scan of every billed line."""
    cur.execute("CREATE INDEX IF NOT EXISTS ix_billed_costs_day ON billed_costs (day, project_id, line_item, currency, amount_pico)")


MIGRATIONS[6] = _v6_billed_costs_day_index


# -- version 7: change counters -------------------------------------------------------------------


def _v7_change_counters(cur: Any, dialect: str) -> None:
    """Give the database its `store_id` (`walleta.generations`). The version itself is the point:
    readers keep data derived from months whose change counters did not move, so a Walleta that
    does not bump the counters (schema 6 and older) must refuse to write this database, which
    it does for any newer schema version. `Store.init_schema` bumps `generation:all` after any
    upgrade."""
    generations.ensure_store_id(cur, dialect)


MIGRATIONS[7] = _v7_change_counters


# -- version 8: provider usage indexed on its own ----------------------------------------------------


def _v8_provider_events_index(cur: Any, dialect: str) -> None:
    """The partial index of provider usage (see `schema.UsageEvent`): one pass over the stored
    events; the usage log's rows are not in it."""
    cur.execute(f"CREATE INDEX IF NOT EXISTS ix_usage_events_provider ON usage_events (source) WHERE {PROVIDER_EVENTS}")


MIGRATIONS[8] = _v8_provider_events_index
