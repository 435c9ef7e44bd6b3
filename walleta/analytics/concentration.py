"""Cost concentration: how much of the AI cost the top customers drive, the Lorenz curve, Gini.

Population: customers with AI cost > 0 over the whole months of the period (from
rollup_customer_month); the unattributed pseudo-customer is left out (its cost is reported by
margins and reconciliation). Top k% = the ceil(k% x N) customers with the highest cost (at
least one). The Lorenz curve orders customers from the lowest cost to the highest and gives, at
each customer share, the share of cost they make up. Gini = 2 sum(i x_i) / (N sum x) - (N + 1) / N
with x sorted ascending and i = 1..N (0 = everyone costs the same; near 1 = one customer is all
the cost), computed exactly from integers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Sequence

import pandas as pd

from ..schema import UNATTRIBUTED
from ..store import Store
from .display import pct
from .sources import read
from .period import Period

__all__ = ["customer_costs", "top_shares", "lorenz_curve", "gini", "concentration_summary"]


def customer_costs(store: Store, period: Period) -> list[int]:
    """AI cost per customer (> 0) over the period's whole months, ascending, as Python ints."""
    period = period.whole_months()
    frame = read(store, 
        "SELECT customer_id, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM rollup_customer_month "
        "WHERE month >= ? AND month <= ? AND customer_id <> ? GROUP BY customer_id",
        [period.first_month, period.last_month, UNATTRIBUTED],
    )
    return sorted(int(v) for v in frame["cost"] if int(v) > 0)


def _top_count(share_pct: Decimal, customers: int) -> int:
    scaled = share_pct * customers / 100
    count = int(scaled.to_integral_value(rounding="ROUND_CEILING"))
    return max(1, min(customers, count)) if customers else 0


def top_shares(store: Store, period: Period, shares: Sequence[str | int] = (1, 5, 10), *, costs: list[int] | None = None) -> pd.DataFrame:
    """Share of AI cost from the top `shares` percent of customers.

    Columns: top_pct, customers_in_top, customers, ai_cost_pico (of the top group), total_cost_pico,
    share_of_cost_pct."""
    costs = customer_costs(store, period) if costs is None else costs
    descending = costs[::-1]
    total = sum(costs)
    rows = []
    for share in shares:
        share_pct = Decimal(str(share))
        count = _top_count(share_pct, len(costs))
        top = sum(descending[:count])
        rows.append({"top_pct": share_pct, "customers_in_top": count, "customers": len(costs), "ai_cost_pico": top,
                     "total_cost_pico": total, "share_of_cost_pct": pct(top, total)})
    frame = pd.DataFrame(rows, columns=["top_pct", "customers_in_top", "customers", "ai_cost_pico", "total_cost_pico", "share_of_cost_pct"])
    for column in ("ai_cost_pico", "total_cost_pico"):
        frame[column] = frame[column].astype(object)
    return frame


def lorenz_curve(store: Store, period: Period, points: int = 100, *, costs: list[int] | None = None) -> pd.DataFrame:
    """Lorenz curve at `points` + 1 evenly spaced customer shares (0% .. 100%).

    Columns: customer_share_pct, cost_share_pct. At customer share p, the ceil(p x N) cheapest
    customers' share of the total cost."""
    costs = customer_costs(store, period) if costs is None else costs
    total = sum(costs)
    cumulative = [0]
    for value in costs:
        cumulative.append(cumulative[-1] + value)
    rows = []
    for step in range(points + 1):
        share = Decimal(step) * 100 / points
        count = int((share * len(costs) / 100).to_integral_value(rounding="ROUND_CEILING")) if costs else 0
        rows.append({"customer_share_pct": share.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN),
                     "cost_share_pct": pct(cumulative[count], total) if total else None})
    return pd.DataFrame(rows, columns=["customer_share_pct", "cost_share_pct"])


def _gini(costs: list[int]) -> Decimal | None:
    n, total = len(costs), sum(costs)
    if n == 0 or total == 0:
        return None
    weighted = sum(i * x for i, x in enumerate(costs, start=1))
    value = Decimal(2 * weighted) / Decimal(n * total) - Decimal(n + 1) / Decimal(n)
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


def gini(store: Store, period: Period, *, costs: list[int] | None = None) -> pd.DataFrame:
    """One row: customers, total_cost_pico, gini (4 decimals; None without cost)."""
    costs = customer_costs(store, period) if costs is None else costs
    frame = pd.DataFrame([{"customers": len(costs), "total_cost_pico": sum(costs), "gini": _gini(costs)}])
    frame["total_cost_pico"] = frame["total_cost_pico"].astype(object)
    return frame


def concentration_summary(store: Store, period: Period) -> pd.DataFrame:
    """One row: period, customers, total_cost_pico, top_1_pct_share, top_5_pct_share,
    top_10_pct_share (percent of cost), gini. One rollup read."""
    costs = customer_costs(store, period)
    shares = top_shares(store, period, (1, 5, 10), costs=costs)
    row = {
        "period": period.whole_months().label(),
        "customers": len(costs),
        "total_cost_pico": sum(costs),
        **{f"top_{int(t)}_pct_share": s for t, s in zip(shares["top_pct"], shares["share_of_cost_pct"])},
        "gini": _gini(costs),
    }
    frame = pd.DataFrame([row])
    frame["total_cost_pico"] = frame["total_cost_pico"].astype(object)
    return frame
