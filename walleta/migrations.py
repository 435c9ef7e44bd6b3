"""Schema upgrades, one function per version step.

Policy: the schema version is stored in `walleta_meta.schema_version`. On open, tables that do
not exist yet are created (additive changes need no step), then each step whose version is above
the stored one runs in order, inside the same transaction that records the new version. A
database newer than the code is refused with `SchemaError` rather than guessed at. Steps must be
written in SQL that runs on SQLite and PostgreSQL. Version 1 is the first published schema.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["MIGRATIONS", "steps_after"]

Step = Callable[[Any, str], None]

# version -> the step that upgrades a database at version-1 to it.
MIGRATIONS: dict[int, Step] = {}


def steps_after(version: int) -> list[Step]:
    """The upgrade steps to run, in order, for a database at `version`."""
    return [MIGRATIONS[v] for v in sorted(MIGRATIONS) if v > version]


# -- version 2 (issue 6): the customer x month rollup and the rollup time indexes ----------------


def _v2_customer_month_rollup(cur: Any, dialect: str) -> None:
    """Index every rollup on its time key; fill the new `rollup_customer_month` (created empty
    by `create_all`) from `rollup_customer_month_model`, which holds the same sums per model."""
    from .schema import ROLLUP_MEASURES, ROLLUP_TIME_INDEXES

    for name, (index, column) in ROLLUP_TIME_INDEXES.items():
        cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {name} ({column})")
    measures = ", ".join(ROLLUP_MEASURES)
    sums = ", ".join(f"CAST(SUM({m}) AS BIGINT)" for m in ROLLUP_MEASURES)
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
