"""Per-customer reads of the customer rollups by primary-key seeks, for the fast paths of trends
(top customers) and customer anomalies (issue 6).

Why: the customer rollups are keyed (day, customer_id) and (month, customer_id). A SQLite
`GROUP BY customer_id` over a period sorts every row of it (a temp B-tree: ~2 us a row, ~150 ms for
30 days at 10k customers). Both views only need a few customers exactly, so they
1. bound every customer's cost over the period from above with `rollup_customer_month` (one row
   per customer and month: the months the period touches hold every day of it), and
2. read the few customers that can matter exactly from `rollup_customer_day`, naming their days
   (`day IN (...) AND customer_id IN (...)`: one seek per day and customer, no sort).

Soundness rests on one invariant of the write path: a rollup cost is never negative (events are
priced with non-negative rates and non-negative token counts; an unpriced event counts 0), so a
customer's cost over part of a month is at most its cost over the month.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Sequence

from ..store import Store

__all__ = ["days_of", "customer_day_rows", "month_costs", "MAX_PARAMS"]

MAX_PARAMS = 900  # bound values per statement (old SQLite allows 999)


def days_of(start: date, end: date) -> list[str]:
    """Every YYYY-MM-DD day from `start` to `end` inclusive."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def customer_day_rows(store: Store, select: str, customers: Sequence[str], days: Sequence[str], group: str = "") -> list[tuple]:
    """Rows of `SELECT {select} FROM rollup_customer_day WHERE day IN (days) AND customer_id IN
    (customers) {group}`, in chunks that keep each statement under MAX_PARAMS bound values. With
    a `group` clause, every group must lie inside one chunk of customers (group by customer)."""
    out: list[tuple] = []
    if not customers or not days:
        return out
    day_step = min(len(days), MAX_PARAMS // 2)
    customer_step = max(1, MAX_PARAMS - day_step)
    if group and day_step < len(days):
        raise ValueError("grouped seeks need every day in one statement")
    for d in range(0, len(days), day_step):
        day_chunk = list(days[d:d + day_step])
        for c in range(0, len(customers), customer_step):
            chunk = list(customers[c:c + customer_step])
            _, rows = store.fetch(
                f"SELECT {select} FROM rollup_customer_day WHERE day IN ({', '.join('?' for _ in day_chunk)}) "
                f"AND customer_id IN ({', '.join('?' for _ in chunk)}) {group}",
                [*day_chunk, *chunk],
            )
            out.extend(rows)
    return out


def month_costs(store: Store, first_month: str, last_month: str, exclude: str) -> dict[str, int]:
    """Each customer's cost (pico-dollars, Python int) summed over months [first, last] of
    `rollup_customer_month`, `exclude` left out. Read in key order and summed in Python (a GROUP
    BY would sort every row)."""
    _, rows = store.fetch(
        "SELECT customer_id, cost_pico FROM rollup_customer_month WHERE month >= ? AND month <= ? AND customer_id <> ?",
        [first_month, last_month, exclude],
    )
    out: dict[str, int] = {}
    get = out.get
    for customer, cost in rows:
        out[customer] = get(customer, 0) + int(cost or 0)
    return out
