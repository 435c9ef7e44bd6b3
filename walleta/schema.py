"""The canonical database schema: usage events, customers, revenue, mappings, imports, rollups.

Every table lives in `SQLModel.metadata`, so `create_all` builds the whole schema on SQLite and
on PostgreSQL alike. Conventions:

- Timestamps are `ts_us`: integer microseconds since the Unix epoch, UTC. `day` (YYYY-MM-DD)
  and `month` (YYYY-MM) are the UTC calendar keys derived from it at write time.
- AI cost is integer pico-dollars (`*_pico`, see `walleta.money`); `cost_pico` is NULL when the
  event could not be priced, and `price_status`/`price_note` say why.
- Revenue is integer minor units (`amount_minor`) in `currency` (upper-case ISO 4217).
- Token classes follow OpenAI's reporting: `cached_input_tokens`, `cache_write_tokens`,
  `input_audio_tokens` and `input_image_tokens` are parts of `input_tokens`;
  `reasoning_tokens`, `output_audio_tokens` and `output_image_tokens` are parts of `output_tokens`.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text, text
from sqlmodel import Field, SQLModel

__all__ = [
    "SCHEMA_VERSION",
    "PROVIDER_SOURCES",
    "PROVIDER_EVENTS",
    "UNATTRIBUTED",
    "NO_FEATURE",
    "TOKEN_COLUMNS",
    "QUANTITY_COLUMNS",
    "EVENT_COLUMNS",
    "ROLLUP_MEASURES",
    "ROLLUPS",
    "UsageEvent",
    "Customer",
    "CustomerMapping",
    "RevenueEntry",
    "ImportRun",
    "BilledCost",
    "Meta",
    "metadata",
    "rollup_table",
    "REVENUE_ROLLUP",
    "StripeCustomer",
    "StripeSubscriptionItem",
    "MeterPush",
]

# Bump when the schema changes; add the upgrade step to `walleta.migrations.MIGRATIONS`.
SCHEMA_VERSION = 8

# Usage imported from the provider (OpenAI Usage API, usage exports), as opposed to the usage log.
PROVIDER_SOURCES = ("openai_api", "openai_export")
# The rows of provider usage, as SQL. Statements that read only them (customer matching on the
# Data page, re-mapping) use this text as is, so both databases use the partial index below.
PROVIDER_EVENTS = f"source IN ({', '.join(repr(s) for s in PROVIDER_SOURCES)})"  # source IN ('openai_api', 'openai_export')

UNATTRIBUTED = "(unattributed)"
NO_FEATURE = "(none)"

TOKEN_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "output_image_tokens",
)
QUANTITY_COLUMNS = ("images", "characters", "tool_calls", "requests")


class UsageEvent(SQLModel, table=True):
    """One model call (or one pre-aggregated bucket from an API import)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        # Pages read rollups; raw events are read by uid, or by time range (hourly meter windows,
        # the usage rule's days). Schema 4: a time index, not (customer, time): new events arrive
        # in time order, so its inserts append, where a per-customer index took a random page
        # per event (+50% on a bulk write).
        Index("ix_usage_events_ts", "ts_us"),
        # Schema 8: provider usage is a small share of the events (the usage log is the bulk) and
        # the Data page's mapping overview reads only it; a partial index holds just those rows,
        # so a log write never touches it and the page no longer scans every event.
        Index("ix_usage_events_provider", "source", sqlite_where=text(PROVIDER_EVENTS), postgresql_where=text(PROVIDER_EVENTS)),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(sa_type=String(64), unique=True, nullable=False)
    ts_us: int = Field(sa_type=BigInteger, nullable=False)
    day: str = Field(sa_type=String(10), nullable=False)
    month: str = Field(sa_type=String(7), nullable=False)
    customer_id: str = Field(default=UNATTRIBUTED, sa_type=Text, nullable=False)
    feature: str = Field(default=NO_FEATURE, sa_type=Text, nullable=False)
    model: str = Field(sa_type=Text, nullable=False)
    provider: str = Field(default="openai", sa_type=Text, nullable=False)
    input_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    cache_write_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    input_audio_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_audio_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    input_image_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_image_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    images: int = Field(default=0, sa_type=BigInteger, nullable=False)
    image_size: str = Field(default="", sa_type=Text, nullable=False)
    image_quality: str = Field(default="", sa_type=Text, nullable=False)
    audio_seconds: float = Field(default=0.0, sa_type=Float, nullable=False)
    characters: int = Field(default=0, sa_type=BigInteger, nullable=False)
    tool_calls: int = Field(default=0, sa_type=BigInteger, nullable=False)
    requests: int = Field(default=1, sa_type=BigInteger, nullable=False)
    service_tier: str = Field(default="default", sa_type=Text, nullable=False)
    batch: int = Field(default=0, sa_type=Integer, nullable=False)
    project_id: str = Field(default="", sa_type=Text, nullable=False)
    api_key_id: str = Field(default="", sa_type=Text, nullable=False)
    user_id: str = Field(default="", sa_type=Text, nullable=False)
    request_id: str = Field(default="", sa_type=Text, nullable=False)
    latency_ms: Optional[int] = Field(default=None, sa_type=BigInteger)
    status: str = Field(default="ok", sa_type=Text, nullable=False)
    estimated: int = Field(default=0, sa_type=Integer, nullable=False)
    provider_cost_pico: Optional[int] = Field(default=None, sa_type=BigInteger)
    cost_pico: Optional[int] = Field(default=None, sa_type=BigInteger)
    price_status: str = Field(default="unpriced", sa_type=Text, nullable=False)
    price_note: str = Field(default="", sa_type=Text, nullable=False)
    source: str = Field(default="log", sa_type=Text, nullable=False)
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


# Columns a writer supplies, in table order (the surrogate `id` is left to the database).
EVENT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in UsageEvent.__table__.columns if c.name != "id"  # type: ignore[attr-defined]
)


class Customer(SQLModel, table=True):
    """A customer of the user's product, the unit margins are computed for."""

    __tablename__ = "customers"

    customer_id: str = Field(primary_key=True, sa_type=Text)
    name: str = Field(default="", sa_type=Text)
    plan: str = Field(default="", sa_type=Text)
    signup_date: str = Field(default="", sa_type=String(10))
    email: str = Field(default="", sa_type=Text)
    stripe_customer_id: str = Field(default="", sa_type=Text)
    seats: Optional[int] = Field(default=None, sa_type=Integer)
    source: str = Field(default="", sa_type=Text)


class CustomerMapping(SQLModel, table=True):
    """Maps an external key (OpenAI project/API key/user, Stripe customer) to a customer."""

    __tablename__ = "customer_mappings"

    source: str = Field(primary_key=True, sa_type=String(32))
    key: str = Field(primary_key=True, sa_type=Text)
    customer_id: str = Field(sa_type=Text, nullable=False)
    confirmed: int = Field(default=1, sa_type=Integer)
    method: str = Field(default="manual", sa_type=Text)


class RevenueEntry(SQLModel, table=True):
    """Money a customer paid (or was refunded) for a service period, in minor units."""

    __tablename__ = "revenue_entries"
    __table_args__ = (Index("ix_revenue_customer", "customer_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(sa_type=String(128), unique=True, nullable=False)
    customer_id: str = Field(sa_type=Text, nullable=False)
    period_start: str = Field(sa_type=String(10), nullable=False)
    period_end: str = Field(sa_type=String(10), nullable=False)
    amount_minor: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=String(3), nullable=False)
    kind: str = Field(default="subscription", sa_type=Text, nullable=False)
    document_id: str = Field(default="", sa_type=Text, nullable=False)
    description: str = Field(default="", sa_type=Text, nullable=False)
    source: str = Field(default="csv", sa_type=Text, nullable=False)
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


class BilledCost(SQLModel, table=True):
    """The OpenAI Costs API's billed amount for one day, project and line item."""

    __tablename__ = "billed_costs"
    # Schema 6: reconciliation reads one period's bill (day range); the index covers the columns
    # it reads, so a month is one index range instead of a scan of every billed line.
    __table_args__ = (Index("ix_billed_costs_day", "day", "project_id", "line_item", "currency", "amount_pico"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(sa_type=String(255), unique=True, nullable=False)
    day: str = Field(sa_type=String(10), nullable=False)
    project_id: str = Field(default="", sa_type=Text, nullable=False)
    api_key_id: str = Field(default="", sa_type=Text, nullable=False)
    line_item: str = Field(default="", sa_type=Text, nullable=False)
    amount_pico: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(default="USD", sa_type=String(3), nullable=False)
    quantity: Optional[float] = Field(default=None, sa_type=Float)
    quantity_unit: str = Field(default="", sa_type=Text, nullable=False)
    source: str = Field(default="openai_costs", sa_type=Text, nullable=False)
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


class ImportRun(SQLModel, table=True):
    """Bookkeeping for one import: what, when, how it ended, and its high-water mark."""

    __tablename__ = "import_runs"

    id: Optional[int] = Field(default=None, primary_key=True)
    source: str = Field(sa_type=Text, nullable=False)
    kind: str = Field(default="", sa_type=Text, nullable=False)
    started_us: int = Field(sa_type=BigInteger, nullable=False)
    finished_us: Optional[int] = Field(default=None, sa_type=BigInteger)
    status: str = Field(default="running", sa_type=Text, nullable=False)
    rows_read: int = Field(default=0, sa_type=BigInteger)
    rows_imported: int = Field(default=0, sa_type=BigInteger)
    rows_rejected: int = Field(default=0, sa_type=BigInteger)
    cursor: str = Field(default="", sa_type=Text)
    content_hash: str = Field(default="", sa_type=Text)
    message: str = Field(default="", sa_type=Text)


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself (schema version, last rebuild)."""

    __tablename__ = "walleta_meta"

    key: str = Field(primary_key=True, sa_type=String(64))
    value: str = Field(default="", sa_type=Text)


metadata = SQLModel.metadata

# ---------------------------------------------------------------------------------------------
# Rollups: small pre-aggregated tables kept up to date on every write path, so that no page
# scans raw events (see ../shared/reference/perf-baseline.md). Each has the same measures.
# ---------------------------------------------------------------------------------------------

ROLLUP_MEASURES: tuple[str, ...] = (
    "events",
    "requests",
    *TOKEN_COLUMNS,
    "images",
    "characters",
    "tool_calls",
    "errors",
    "cost_pico",
    "provider_cost_pico",
    "unpriced_events",
    "unpriced_requests",
    "unpriced_tokens",
)

# name -> key columns, in primary-key order. Cardinality stays near (dimension x time bucket),
# not event count. Schema 5: every key starts with its time column, so a period's rows are one
# contiguous range of the table (every page reads a period), and new usage, which is recent,
# lands at the end of the tree. A question about one customer names its months or days
# (`month IN (...) AND customer_id = ?`): one primary-key seek per month or day.
ROLLUPS: dict[str, tuple[str, ...]] = {
    "rollup_customer_month_model": ("month", "customer_id", "model"),
    "rollup_customer_month_feature": ("month", "customer_id", "feature"),
    "rollup_customer_day": ("day", "customer_id"),
    "rollup_feature_model_day": ("day", "feature", "model"),
    "rollup_project_model_day": ("day", "project_id", "model", "service_tier", "batch"),
}


def _build_rollup(name: str, keys: tuple[str, ...]) -> Table:
    # Key columns are TEXT like the usage_events columns they copy (schema 3): a customer,
    # feature or model name of any length rolls up (VARCHAR(255) failed whole batches on PostgreSQL).
    key_columns = [
        Column(k, Integer if k == "batch" else Text, primary_key=True, nullable=False)
        for k in keys
    ]
    measure_columns = [
        Column(m, BigInteger, nullable=False, server_default="0") for m in ROLLUP_MEASURES
    ]
    # SQLite: WITHOUT ROWID stores rows in primary-key order (one B-tree instead of table + key
    # index), so an upsert touches one tree and a period's rows are consecutive pages.
    return Table(name, metadata, *key_columns, *measure_columns, sqlite_with_rowid=False)


_ROLLUP_TABLES = {name: _build_rollup(name, keys) for name, keys in ROLLUPS.items()}


def rollup_table(name: str) -> Table:
    """The SQLAlchemy table of a rollup by name."""
    return _ROLLUP_TABLES[name]


# ---------------------------------------------------------------------------------------------
# issue 5: Stripe import (customers, subscription items) and meter pushes.
# New tables only (create_all adds them to an existing database; no migration step needed).
# ---------------------------------------------------------------------------------------------


class StripeCustomer(SQLModel, table=True):
    """A Stripe customer as last imported (for matching to usage customers)."""

    __tablename__ = "stripe_customers"

    stripe_customer_id: str = Field(primary_key=True, sa_type=Text)
    name: str = Field(default="", sa_type=Text, nullable=False)
    email: str = Field(default="", sa_type=Text, nullable=False)
    # The value of the `walleta_customer_id` metadata key, when set in Stripe.
    walleta_customer_id: str = Field(default="", sa_type=Text, nullable=False)
    metadata_json: str = Field(default="{}", sa_type=Text, nullable=False)
    currency: str = Field(default="", sa_type=String(3), nullable=False)
    created: int = Field(default=0, sa_type=BigInteger, nullable=False)
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


class StripeSubscriptionItem(SQLModel, table=True):
    """One item of a non-canceled Stripe subscription (snapshot replaced on every import)."""

    __tablename__ = "stripe_subscription_items"

    item_id: str = Field(primary_key=True, sa_type=Text)
    subscription_id: str = Field(sa_type=Text, nullable=False)
    stripe_customer_id: str = Field(sa_type=Text, nullable=False)
    status: str = Field(sa_type=Text, nullable=False)
    price_id: str = Field(default="", sa_type=Text, nullable=False)
    product_id: str = Field(default="", sa_type=Text, nullable=False)
    plan_name: str = Field(default="", sa_type=Text, nullable=False)
    currency: str = Field(default="", sa_type=String(3), nullable=False)
    # Exact decimal text in minor units (Stripe's unit_amount_decimal); "" for tiered prices.
    unit_amount_decimal: str = Field(default="", sa_type=Text, nullable=False)
    quantity: int = Field(default=1, sa_type=BigInteger, nullable=False)
    billing_interval: str = Field(default="", sa_type=Text, nullable=False)
    interval_count: int = Field(default=1, sa_type=Integer, nullable=False)
    usage_type: str = Field(default="", sa_type=Text, nullable=False)
    billing_scheme: str = Field(default="", sa_type=Text, nullable=False)
    # JSON list of {"percent_off": "20", "amount_off": 500, "currency": "usd", "end": ts|null}
    discounts_json: str = Field(default="[]", sa_type=Text, nullable=False)
    current_period_start: int = Field(default=0, sa_type=BigInteger, nullable=False)
    current_period_end: int = Field(default=0, sa_type=BigInteger, nullable=False)
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


class MeterPush(SQLModel, table=True):
    """One meter event accepted by Stripe; written right after each successful send."""

    __tablename__ = "meter_pushes"
    __table_args__ = (Index("ix_meter_pushes_meter_window", "event_name", "window_start"),)

    identifier: str = Field(primary_key=True, sa_type=String(255))
    event_name: str = Field(sa_type=Text, nullable=False)
    customer_id: str = Field(sa_type=Text, nullable=False)
    stripe_customer_id: str = Field(sa_type=Text, nullable=False)
    window_kind: str = Field(sa_type=String(8), nullable=False)  # "day" or "hour"
    window_start: int = Field(sa_type=BigInteger, nullable=False)  # unix seconds, UTC
    value: int = Field(sa_type=BigInteger, nullable=False)
    sent_us: int = Field(sa_type=BigInteger, nullable=False)
    api: str = Field(default="v1", sa_type=String(8), nullable=False)
    note: str = Field(default="", sa_type=Text, nullable=False)



# ---------------------------------------------------------------------------------------------
# Issue 4: OpenAI organization usage buckets (the reconciliation record of API / export usage)
# ---------------------------------------------------------------------------------------------


class OpenAIUsageBucket(SQLModel, table=True):
    """One result row of the OpenAI Usage API (or of a dashboard activity export) for one bucket.

    Kept whole and always, as the provider's own account of usage. Rows are copied into
    `usage_events` (source 'openai_api' / 'openai_export', priced, mapped to customers) only
    for UTC days that have no usage from the usage log, CSV files or the demo; see
    `walleta.sources.usage_rule`. `uid` is `openai:<endpoint>:<bucket start>:<group key>`
    (`openai_export:...` for export rows); a re-fetched bucket replaces the stored one.
    """

    __tablename__ = "openai_usage_buckets"
    __table_args__ = (Index("ix_openai_usage_buckets_day", "day"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(sa_type=String(512), unique=True, nullable=False)
    source: str = Field(default="openai_api", sa_type=String(32), nullable=False)
    endpoint: str = Field(sa_type=String(64), nullable=False)
    start_us: int = Field(sa_type=BigInteger, nullable=False)
    end_us: int = Field(sa_type=BigInteger, nullable=False)
    day: str = Field(sa_type=String(10), nullable=False)
    project_id: str = Field(default="", sa_type=Text, nullable=False)
    api_key_id: str = Field(default="", sa_type=Text, nullable=False)
    user_id: str = Field(default="", sa_type=Text, nullable=False)
    model: str = Field(default="", sa_type=Text, nullable=False)
    service_tier: str = Field(default="", sa_type=Text, nullable=False)
    batch: int = Field(default=0, sa_type=Integer, nullable=False)
    input_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    cache_write_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    input_audio_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_audio_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    input_image_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    output_image_tokens: int = Field(default=0, sa_type=BigInteger, nullable=False)
    requests: int = Field(default=0, sa_type=BigInteger, nullable=False)
    images: int = Field(default=0, sa_type=BigInteger, nullable=False)
    image_size: str = Field(default="", sa_type=Text, nullable=False)
    characters: int = Field(default=0, sa_type=BigInteger, nullable=False)
    audio_seconds: float = Field(default=0.0, sa_type=Float, nullable=False)
    tool_calls: int = Field(default=0, sa_type=BigInteger, nullable=False)
    usage_bytes: int = Field(default=0, sa_type=BigInteger, nullable=False)
    attributes: str = Field(default="", sa_type=Text, nullable=False)  # other group fields, JSON
    raw: str = Field(default="", sa_type=Text, nullable=False)  # the result object as received, JSON
    import_id: Optional[int] = Field(default=None, sa_type=BigInteger)


BUCKET_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in OpenAIUsageBucket.__table__.columns if c.name != "id"  # type: ignore[attr-defined]
)


# ---------------------------------------------------------------------------------------------
# Issue 6: analytics at scale.
# - `rollup_customer_month`: one row per customer and month (the margins, cohorts and
#   concentration views read ~1 row per customer-month instead of one per model or feature).
# - Schema 2-4 indexed the time key of every rollup led by another column; schema 5 leads every
#   rollup's primary key with its time column instead (see ROLLUPS), so there is no such index.
# ---------------------------------------------------------------------------------------------

ROLLUPS["rollup_customer_month"] = ("month", "customer_id")
_ROLLUP_TABLES["rollup_customer_month"] = _build_rollup("rollup_customer_month", ROLLUPS["rollup_customer_month"])


# - `rollup_revenue_month`: recognised revenue per month, customer and currency (minor units),
#   derived from `revenue_entries` by the recognition rule; see `walleta.revenue_rollup` for how
#   it is kept fresh. Not an event rollup: not in ROLLUPS, never rebuilt from usage.
REVENUE_ROLLUP = Table(
    "rollup_revenue_month",
    metadata,
    Column("month", Text, primary_key=True, nullable=False),
    Column("customer_id", Text, primary_key=True, nullable=False),
    Column("currency", Text, primary_key=True, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
