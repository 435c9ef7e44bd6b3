"""What a database holds and how fresh it is: the facts behind the app's source indicator,
its empty states and its "stale import" warning. Read-only; rollups and small tables only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .analytics.parallel_reads import fetch_all
from .schema import UNATTRIBUTED
from .sources.mapping import UNMAPPED
from .store import Store

__all__ = ["Coverage", "coverage", "import_history", "stale_sources", "plans", "DAY_US"]

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Coverage:
    """Counts and date range of what is stored (None when there is no usage)."""

    first_day: str | None
    last_day: str | None
    first_month: str | None
    last_month: str | None
    events: int
    requests: int
    usage_customers: int
    unattributed_requests: int  # no customer id, or an unmapped OpenAI project / key / user
    unpriced_requests: int
    customers: int
    revenue_entries: int
    revenue_first_day: str | None
    revenue_last_day: str | None
    revenue_last_start: str | None
    billed_cost_rows: int
    mappings: int
    unconfirmed_mappings: int

    @property
    def has_usage(self) -> bool:
        """True when at least one usage event is stored."""
        return self.events > 0

    @property
    def has_revenue(self) -> bool:
        """True when at least one revenue entry is stored."""
        return self.revenue_entries > 0

    @property
    def is_empty(self) -> bool:
        """Nothing to show at all: no usage and no revenue."""
        return not self.has_usage and not self.has_revenue

    @property
    def months(self) -> tuple[str, str] | None:
        """(first, last) month to report on: the usage months, else the months revenue periods
        start in (an annual plan paid today does not stretch the range a year ahead); None when empty."""
        if self.first_month and self.last_month:
            return self.first_month, self.last_month
        if self.revenue_first_day and self.revenue_last_start:
            return self.revenue_first_day[:7], self.revenue_last_start[:7]
        return None


def coverage(store: Store) -> Coverage:
    """Summarise the store in a handful of small queries over rollups and small tables (one
    scan of the customer x month rollup at most: ~100 ms at 10M events), run side by side."""
    customers, usage, revenue, mappings, counts = fetch_all(store, [  # the longest statement first
        # Usage logged without a customer, and provider usage whose project/key/user is not mapped.
        ("SELECT COUNT(DISTINCT CASE WHEN customer_id NOT IN (?, ?) THEN customer_id END), "
         "CAST(COALESCE(SUM(CASE WHEN customer_id IN (?, ?) THEN requests ELSE 0 END), 0) AS BIGINT) "
         "FROM rollup_customer_month",  # one row per customer-month: ~8x fewer rows than per model
         [UNATTRIBUTED, UNMAPPED, UNATTRIBUTED, UNMAPPED]),
        ("SELECT MIN(day), MAX(day), CAST(COALESCE(SUM(events), 0) AS BIGINT), CAST(COALESCE(SUM(requests), 0) AS BIGINT), "
         "CAST(COALESCE(SUM(unpriced_requests), 0) AS BIGINT) FROM rollup_feature_model_day", []),
        ("SELECT COUNT(*), MIN(period_start), MAX(period_end), MAX(period_start) FROM revenue_entries", []),
        ("SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN confirmed = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM customer_mappings", []),
        ("SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM billed_costs)", []),
    ])
    distinct, unattributed = customers[0]
    first_day, last_day, events, requests, unpriced = usage[0]
    revenue_n, revenue_first, revenue_last, revenue_last_start = revenue[0]
    first_day, last_day = _text(first_day), _text(last_day)
    return Coverage(
        first_day=first_day,
        last_day=last_day,
        first_month=first_day[:7] if first_day else None,
        last_month=last_day[:7] if last_day else None,
        events=int(events),
        requests=int(requests),
        usage_customers=int(distinct or 0),
        unattributed_requests=int(unattributed or 0),
        unpriced_requests=int(unpriced),
        customers=int(counts[0][0] or 0),
        revenue_entries=int(revenue_n or 0),
        revenue_first_day=_text(revenue_first),
        revenue_last_day=_text(revenue_last),
        revenue_last_start=_text(revenue_last_start),
        billed_cost_rows=int(counts[0][1] or 0),
        mappings=int(mappings[0][0] or 0),
        unconfirmed_mappings=int(mappings[0][1] or 0),
    )


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def import_history(store: Store, limit: int = 50) -> pd.DataFrame:
    """The newest imports first: id, source, kind, status, started/finished (UTC), row counts, message."""
    frame = store.query(
        "SELECT id, source, kind, status, started_us, finished_us, rows_read, rows_imported, rows_rejected, message "
        "FROM import_runs ORDER BY id DESC LIMIT ?",
        [int(limit)],
    )
    for name in ("started_us", "finished_us"):
        frame[name.replace("_us", "")] = pd.to_datetime(frame[name], unit="us", utc=True)
    return frame.drop(columns=["started_us", "finished_us"])


def stale_sources(store: Store, now_us: int, max_age_days: int = 2) -> pd.DataFrame:
    """Sources whose newest successful import is older than `max_age_days` (demo excluded).

    Columns: source, last_import (UTC timestamp), age_days (whole days). Sources that have never
    imported successfully are not listed: there is nothing to refresh yet.
    """
    frame = store.query(
        "SELECT source, MAX(COALESCE(finished_us, started_us)) AS last_us FROM import_runs "
        "WHERE status IN ('ok', 'partial') AND source <> 'demo' GROUP BY source ORDER BY source"
    )
    if frame.empty:
        return pd.DataFrame(columns=["source", "last_import", "age_days"])
    frame["age_days"] = [(int(now_us) - int(v)) // DAY_US for v in frame["last_us"]]
    frame["last_import"] = pd.to_datetime(frame["last_us"], unit="us", utc=True)
    stale = frame[frame["age_days"] >= max_age_days]
    return stale[["source", "last_import", "age_days"]].reset_index(drop=True)


def plans(store: Store) -> list[str]:
    """The customers' current plan names, sorted (customers without a plan are left out)."""
    frame = store.query("SELECT DISTINCT plan FROM customers WHERE plan <> '' ORDER BY plan")
    return [str(p) for p in frame["plan"]]
