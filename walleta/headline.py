"""Headline numbers for a period: revenue, AI cost, gross margin, unpriced usage.

Read from the rollups only (the revenue entries while the revenue rollup is stale), so it stays
fast on any number of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .analytics.sources import revenue_totals
from .fx import FxTable
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
    """Totals over whole months (YYYY-MM, inclusive; None = unbounded): AI cost, unpriced
    requests and customers with usage from the customer x month rollup; revenue as the pages
    recognise it (`analytics.sources.revenue_totals`: the revenue rollup, or the entries while it
    is stale), converted where the FX table has a rate."""
    lo, hi = first_month or "0000-00", last_month or "9999-99"
    _, rows = store.fetch(
        "SELECT CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT), CAST(COALESCE(SUM(unpriced_requests), 0) AS BIGINT), "
        "COUNT(DISTINCT customer_id), MIN(month), MAX(month) FROM rollup_customer_month WHERE month >= ? AND month <= ?",
        [lo, hi],
    )
    cost, unpriced, customers, first_used, last_used = rows[0]
    revenue = revenue_totals(store, fx, first_month, last_month, by=("month",))
    unconverted = {code.strip() for text in revenue["unconverted_currencies"] for code in str(text).split(",") if code.strip()}
    return Headline(
        first_month=first_used,
        last_month=last_used,
        revenue_pico=sum(int(v) for v in revenue["revenue_pico"]),
        cost_pico=int(cost),
        unpriced_requests=int(unpriced),
        unconverted_currencies=tuple(sorted(unconverted)),
        customers=int(customers),
    )
