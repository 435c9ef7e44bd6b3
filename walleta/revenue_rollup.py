"""Recognised revenue per (month, customer, currency): the revenue rollup.

`rollup_revenue_month` holds, for every month, customer and currency, the sum of the monthly
parts that the recognition rule (`walleta.revenue.monthly_revenue`: spread over the service
period by days, non-revenue kinds left out) gives the customer's revenue entries, in the
currency's minor units. Pages read a period's revenue as one primary-key range of this table
instead of re-deriving it from every entry on every call. FX conversion, thresholds and every
other user setting are applied by the readers; nothing here depends on them.

Freshness. Every path that writes revenue entries (revenue CSV import, Stripe import, customer
matching, demo data) calls `ensure_fresh` at the end of its transaction, which rebuilds the table
and marks it fresh when a write marked it stale; so does opening a database (`Store.init_schema`). As a safety net, triggers on `revenue_entries` mark it stale on any insert, update or
delete, including a user's own SQL; readers check `is_fresh` and compute from the entries
themselves while it is stale. A missed refresh costs speed, never a wrong number.

Rebuild cost: entries whose service period lies in one month are summed in SQL (the rule gives
them to that month whole, checked per kind by `counted_kinds`); only multi-month entries (annual
plans) are spread in Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

from . import generations
from .revenue import monthly_revenue

__all__ = [
    "TABLE",
    "STATE_KEY",
    "refresh",
    "ensure_fresh",
    "is_fresh",
    "facts",
    "RollupFacts",
    "install_triggers",
    "counted_kinds",
    "SINGLE_MONTH",
    "MULTI_MONTH",
    "MULTI_MONTH_RANGE",
]

TABLE = "rollup_revenue_month"
STATE_KEY = "revenue_rollup"
FACTS_KEY = "revenue_rollup_facts"
FRESH, STALE = "fresh", "stale"

# An entry spans several months exactly when its end is set, after its start and in another
# month (an end that is NULL, empty or before the start means the start, i.e. one month).
MULTI_MONTH = "COALESCE(period_end, '') > period_start AND SUBSTR(period_end, 1, 7) <> SUBSTR(period_start, 1, 7)"
SINGLE_MONTH = f"NOT ({MULTI_MONTH})"
MULTI_MONTH_RANGE = f"period_start <= ? AND {MULTI_MONTH} AND period_end >= ?"  # params: last day, first day

_MARK_STALE = f"UPDATE walleta_meta SET value = '{STALE}' WHERE key = '{STATE_KEY}' AND value <> '{STALE}'"
_SQLITE_TRIGGERS = {
    f"revenue_entries_{event.lower()}_stale": f"AFTER {event} ON revenue_entries BEGIN {_MARK_STALE}; END"
    for event in ("INSERT", "UPDATE", "DELETE")
}
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION walleta_revenue_rollup_stale() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN {_MARK_STALE}; RETURN NULL; END $$"
)
_PG_TRIGGER = "revenue_entries_stale"


def _sql(statement: str, dialect: str) -> str:
    return statement.replace("?", "%s") if dialect == "postgresql" else statement


@lru_cache(maxsize=64)
def counted_kinds(kinds: tuple[str, ...]) -> tuple[frozenset[str], bool]:
    """Ask `monthly_revenue` which of `kinds` it counts, with a one-unit, one-day probe per kind.

    Returns (kinds counted, identity): identity is False if the rule changed the amount of a
    single-month entry (then single-month entries cannot simply be summed per month)."""
    if not kinds:
        return frozenset(), True
    probe = pd.DataFrame(
        {
            "customer_id": [f"probe{i}" for i in range(len(kinds))],
            "period_start": "2000-01-15",
            "period_end": "2000-01-15",
            "amount_minor": 1,
            "currency": "USD",
            "kind": list(kinds),
        }
    )
    result = monthly_revenue(probe)
    counted = frozenset(result["kind"]) if not result.empty else frozenset()
    identity = result.empty or (
        set(result["month"]) == {"2000-01"} and all(int(a) == 1 for a in result["amount_minor"]) and len(result) == len(counted)
    )
    return counted, identity


def install_triggers(cur: Any, dialect: str) -> None:
    """Create the triggers that mark the rollup stale on any write to `revenue_entries`, unless
    they exist (checked first: replacing a PostgreSQL function while another connection opens
    the same database can fail with 'tuple concurrently updated')."""
    if dialect == "postgresql":
        cur.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal", [_PG_TRIGGER])
        if cur.fetchone() is None:
            cur.execute(_PG_FUNCTION)
            cur.execute(
                f"CREATE TRIGGER {_PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON revenue_entries "
                "FOR EACH STATEMENT EXECUTE FUNCTION walleta_revenue_rollup_stale()"
            )
        return
    for name, body in _SQLITE_TRIGGERS.items():
        cur.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def refresh(cur: Any, dialect: str) -> int:
    """Rebuild `rollup_revenue_month` from every revenue entry and mark it fresh, inside the
    caller's transaction (`cur`). Returns the number of rows written."""
    cur.execute(f"DELETE FROM {TABLE}")
    cur.execute("SELECT DISTINCT kind FROM revenue_entries")
    counted, identity = counted_kinds(tuple(sorted(str(row[0]) for row in cur.fetchall())))
    columns = "customer_id, period_start, period_end, amount_minor, currency, kind"
    if identity and counted:
        marks = ", ".join("?" for _ in counted)
        month = "SUBSTR(period_start, 1, 7)"
        cur.execute(
            _sql(
                f"INSERT INTO {TABLE} (month, customer_id, currency, amount_minor) "
                f"SELECT {month}, customer_id, UPPER(currency), CAST(SUM(amount_minor) AS BIGINT) FROM revenue_entries "
                f"WHERE kind IN ({marks}) AND {SINGLE_MONTH} GROUP BY {month}, customer_id, UPPER(currency)",
                dialect,
            ),
            sorted(counted),
        )
    spread_sql = f"SELECT {columns} FROM revenue_entries" + (f" WHERE {MULTI_MONTH}" if identity else "")
    cur.execute(spread_sql)
    rows = cur.fetchall()
    if rows:
        entries = pd.DataFrame.from_records(rows, columns=columns.split(", "))
        spread = monthly_revenue(entries)
        if not spread.empty:
            sums = spread.groupby(["month", "customer_id", "currency"], as_index=False, sort=True)["amount_minor"].sum()
            values = [(m, c, k, int(a)) for m, c, k, a in zip(sums["month"], sums["customer_id"], sums["currency"], sums["amount_minor"])]
            cur.executemany(
                _sql(
                    f"INSERT INTO {TABLE} (month, customer_id, currency, amount_minor) VALUES (?, ?, ?, ?) "
                    f"ON CONFLICT (month, customer_id, currency) DO UPDATE SET amount_minor = {TABLE}.amount_minor + excluded.amount_minor",
                    dialect,
                ),
                values,
            )
    facts = _facts(cur)
    upsert = _sql("INSERT INTO walleta_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", dialect)
    cur.execute(upsert, [FACTS_KEY, json.dumps(facts.__dict__, sort_keys=True)])
    cur.execute(upsert, [STATE_KEY, FRESH])
    generations.bump(cur, dialect, ["revenue"])
    return facts.rows


def _facts(cur: Any) -> "RollupFacts":
    cur.execute(f"SELECT currency, COUNT(*) FROM {TABLE} GROUP BY currency")
    per_currency = {str(code): int(count) for code, count in cur.fetchall()}
    cur.execute(f"SELECT 1 FROM {TABLE} GROUP BY month, customer_id HAVING COUNT(*) > 1 LIMIT 1")
    mixed = cur.fetchone() is not None
    cur.execute("SELECT MIN(period_start) FROM revenue_entries")
    first = cur.fetchone()[0]
    return RollupFacts(rows=sum(per_currency.values()), currencies=sorted(per_currency), mixed_currency_months=mixed,
                       first_entry_month=str(first)[:7] if first else None)


def ensure_fresh(cur: Any, dialect: str) -> bool:
    """Rebuild the rollup inside the caller's transaction if anything marked it stale (or it was
    never built). Call at the end of every transaction that writes revenue entries. Returns True
    when it rebuilt."""
    cur.execute(_sql("SELECT key, value FROM walleta_meta WHERE key IN (?, ?)", dialect), [STATE_KEY, FACTS_KEY])
    if _parse_facts(dict(cur.fetchall())) is not None:
        return False
    refresh(cur, dialect)
    return True


@dataclass(frozen=True)
class RollupFacts:
    """Facts about the rollup, computed by `refresh` and valid exactly while it is fresh, so
    readers can pick a plan without scanning: its row count, the currencies in it, whether some
    customer-month has revenue in more than one currency, and the first month of any revenue
    entry (of any kind, counted or not)."""

    rows: int
    currencies: list[str]
    mixed_currency_months: bool
    first_entry_month: str | None


def facts(store: Any) -> RollupFacts | None:
    """The rollup's facts when it is fresh (it equals what `refresh` would build now), else None."""
    _, rows = store.fetch("SELECT key, value FROM walleta_meta WHERE key IN (?, ?)", [STATE_KEY, FACTS_KEY])
    return _parse_facts(dict(rows))


def _parse_facts(values: dict[str, str]) -> RollupFacts | None:
    """The facts from the two meta values; None unless fresh and readable (facts written by
    another version count as stale: the next refresh rewrites them)."""
    if values.get(STATE_KEY) != FRESH or FACTS_KEY not in values:
        return None
    try:
        return RollupFacts(**json.loads(values[FACTS_KEY]))
    except (TypeError, ValueError):
        return None


def is_fresh(store: Any) -> bool:
    """True when `rollup_revenue_month` equals what `refresh` would build now."""
    return facts(store) is not None
