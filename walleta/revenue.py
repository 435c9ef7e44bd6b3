"""Revenue recognition: entries with a service period -> revenue per customer per month.

Rule: an entry's amount is spread over the days of its service period (`period_start` to
`period_end`, inclusive), and each month gets its share in whole minor units; the remainder of
the integer division goes to the months with the largest fractional shares (largest remainder),
so the monthly parts always add up to the entry exactly. An annual plan paid in January thus
shows one twelfth (by days) in each month it covers. Refunds and credit notes are negative
entries spread the same way. Amounts stay in their currency; conversion is a separate step.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from .fx import FxTable

__all__ = ["spread_by_month", "monthly_revenue"]


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def spread_by_month(amount_minor: int, start: date, end: date) -> dict[str, int]:
    """Split an amount over the months of [start, end] by days, exactly (largest remainder)."""
    if end < start:
        end = start
    days_per_month: dict[str, int] = {}
    current = start
    while current <= end:
        following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        last = min(end, following - timedelta(days=1))
        days_per_month[_month_key(current)] = (last - current).days + 1
        current = following
    total_days = sum(days_per_month.values())
    sign = -1 if amount_minor < 0 else 1
    magnitude = abs(int(amount_minor))
    shares = {m: magnitude * d // total_days for m, d in days_per_month.items()}
    remainders = sorted(days_per_month, key=lambda m: (-(magnitude * days_per_month[m] % total_days), m))
    for month in remainders[: magnitude - sum(shares.values())]:
        shares[month] += 1
    return {m: sign * v for m, v in shares.items()}


def monthly_revenue(entries: pd.DataFrame, fx: FxTable | None = None) -> pd.DataFrame:
    """Revenue entries -> one row per (customer_id, month, currency, kind).

    Input columns: customer_id, period_start, period_end, amount_minor, currency, kind.
    Output columns: customer_id, month, currency, kind, amount_minor, and when `fx` is given,
    revenue_pico (USD pico-dollars; <NA> where the currency has no rate).
    """
    records = []
    for row in entries.itertuples(index=False):
        start = date.fromisoformat(str(row.period_start))
        end = date.fromisoformat(str(row.period_end or row.period_start))
        for month, amount in spread_by_month(int(row.amount_minor), start, end).items():
            records.append((row.customer_id, month, str(row.currency).upper(), row.kind, amount))
    frame = pd.DataFrame.from_records(records, columns=["customer_id", "month", "currency", "kind", "amount_minor"])
    frame = frame.groupby(["customer_id", "month", "currency", "kind"], as_index=False, sort=True)["amount_minor"].sum()
    if fx is not None:
        frame["revenue_pico"] = pd.array(
            [fx.to_usd_pico(a, c) if fx.has(c) else None for a, c in zip(frame["amount_minor"], frame["currency"])],
            dtype="object",
        )
    return frame
