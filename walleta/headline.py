"""Headline numbers for a period: revenue, AI cost, gross margin, unpriced usage.

Read from the rollups and the revenue entries only, so it stays fast on any number of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .fx import FxTable
from .revenue import monthly_revenue
from .store import Store

__all__ = ["Headline", "headline"]


@dataclass(frozen=True)
class Headline:
    """Totals for months [first_month, last_month]; money in USD pico-dollars."""

    first_month: str | None
    last_month: str | None
    revenue_pico: int
    cost_pico: int
    unpriced_requests: int
    unconverted_currencies: tuple[str, ...]
    customers: int

    @property
    def margin_pico(self) -> int:
        """Revenue minus AI cost."""
        return self.revenue_pico - self.cost_pico

    @property
    def margin_pct(self) -> Decimal | None:
        """Gross margin as a fraction of revenue (None when there is no revenue)."""
        if self.revenue_pico == 0:
            return None
        return Decimal(self.margin_pico) / Decimal(self.revenue_pico)


def headline(store: Store, fx: FxTable, first_month: str | None = None, last_month: str | None = None) -> Headline:
    """Totals over whole months (YYYY-MM, inclusive; None = unbounded)."""
    lo, hi = first_month or "0000-00", last_month or "9999-99"
    usage = store.query(
        "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS cost, "
        "CAST(COALESCE(SUM(unpriced_requests), 0) AS BIGINT) AS unpriced, COUNT(DISTINCT customer_id) AS customers, "
        "MIN(month) AS first_month, MAX(month) AS last_month "
        "FROM rollup_customer_month_model WHERE month >= ? AND month <= ?",
        [lo, hi],
    ).iloc[0]
    entries = store.query("SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries")
    revenue = 0
    unconverted: set[str] = set()
    if not entries.empty:
        monthly = monthly_revenue(entries, fx)
        in_range = monthly[(monthly["month"] >= lo) & (monthly["month"] <= hi)]
        revenue = sum(int(v) for v in in_range["revenue_pico"] if v is not None)
        unconverted = {c for c, v in zip(in_range["currency"], in_range["revenue_pico"]) if v is None}
    return Headline(
        first_month=usage["first_month"],
        last_month=usage["last_month"],
        revenue_pico=revenue,
        cost_pico=int(usage["cost"]),
        unpriced_requests=int(usage["unpriced"]),
        unconverted_currencies=tuple(sorted(unconverted)),
        customers=int(usage["customers"]),
    )
