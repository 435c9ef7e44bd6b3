"""A check every revenue write path's tests share: the revenue rollup is fresh and holds exactly
the recognition rule applied to the entries now stored."""

from __future__ import annotations

from walleta.revenue import monthly_revenue
from walleta.revenue_rollup import TABLE, is_fresh
from walleta.store import Store

__all__ = ["rollup_rows", "rule_rows", "assert_revenue_rollup_current"]


def rollup_rows(store: Store) -> dict[tuple[str, str, str], int]:
    """The revenue rollup as {(month, customer_id, currency): amount_minor}."""
    frame = store.query(f"SELECT month, customer_id, currency, amount_minor FROM {TABLE}")
    return {(m, c, k): int(a) for m, c, k, a in frame.itertuples(index=False, name=None)}


def rule_rows(store: Store) -> dict[tuple[str, str, str], int]:
    """The recognition rule applied to every stored entry, summed per (month, customer, currency)."""
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    spread = monthly_revenue(entries)
    sums = spread.groupby(["month", "customer_id", "currency"])["amount_minor"].sum()
    return {key: int(value) for key, value in sums.items()}


def assert_revenue_rollup_current(store: Store) -> None:
    assert is_fresh(store), "a revenue write path left the revenue rollup stale"
    assert rollup_rows(store) == rule_rows(store)
