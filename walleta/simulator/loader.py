"""Build the engine's input from a Store: rollups + revenue + customers for a month range.

- Usage per customer per month comes from `rollup_customer_month_model` (summed over models);
  usage by model and by feature from the two customer-month rollups (for credit burn rules).
  Raw events are never read.
- Today's revenue per customer per month is `walleta.revenue.monthly_revenue` (service periods
  spread over months) converted to USD pico-dollars with the FX table; a currency without a
  rate leaves that customer-month's baseline unknown (listed in the notes, never summed in).
- A customer-month is simulated when the customer used the product or paid for it that month.
  Usage not attributed to a customer, and unpriced usage, are reported in the notes.
"""

from __future__ import annotations

import calendar
import pandas as pd

from ..exact_merge import merge_filled
from ..fx import FxTable, load_fx
from ..money import format_usd
from ..revenue import monthly_revenue
from ..schema import UNATTRIBUTED
from ..store import Store
from .engine import CELL_MEASURES, DETAIL_MEASURES, UsageData

__all__ = ["load_usage", "month_bounds"]

_CELL_SQL = ", ".join(f"CAST(SUM({m}) AS BIGINT) AS {m}" for m in (*CELL_MEASURES, "unpriced_requests"))
_DETAIL_SQL = ", ".join(f"CAST(SUM({m}) AS BIGINT) AS {m}" for m in DETAIL_MEASURES)


def month_bounds(store: Store) -> tuple[str | None, str | None]:
    """The first and last month with usage (or, without usage, with revenue)."""
    first = store.scalar("SELECT MIN(month) FROM rollup_customer_month_model")
    last = store.scalar("SELECT MAX(month) FROM rollup_customer_month_model")
    if first is None:
        first = store.scalar("SELECT MIN(period_start) FROM revenue_entries")
        last = store.scalar("SELECT MAX(period_start) FROM revenue_entries")
        first, last = (first[:7] if first else None), (last[:7] if last else None)
    return first, last


def _months(start: str, end: str) -> tuple[str, ...]:
    months = []
    year, month = int(start[:4]), int(start[5:7])
    while f"{year:04d}-{month:02d}" <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(months)


def _baseline(store: Store, start: str, end: str, fx: FxTable) -> tuple[pd.DataFrame, list[str]]:
    last_day = f"{end}-{calendar.monthrange(int(end[:4]), int(end[5:7]))[1]:02d}"
    entries = store.query(
        "SELECT customer_id, period_start, period_end, amount_minor, currency, kind FROM revenue_entries "
        "WHERE period_start <= ? AND (period_end >= ? OR period_end IS NULL OR period_end = '')",
        [last_day, f"{start}-01"],
    )
    if entries.empty:
        return pd.DataFrame(columns=["customer_id", "month", "baseline_revenue_pico", "baseline_known"]), []
    monthly = monthly_revenue(entries, fx)
    monthly = monthly[(monthly["month"] >= start) & (monthly["month"] <= end)]
    missing = sorted(set(monthly.loc[monthly["revenue_pico"].isna(), "currency"]))
    monthly = monthly.assign(known=monthly["revenue_pico"].notna(), value=monthly["revenue_pico"].fillna(0).map(int))
    grouped = monthly.groupby(["customer_id", "month"], as_index=False).agg(baseline_revenue_pico=("value", "sum"), baseline_known=("known", "all"))
    notes = [f"revenue in {', '.join(missing)} has no FX rate: those customer-months have no baseline"] if missing else []
    return grouped, notes


def load_usage(
    store: Store,
    *,
    start: str | None = None,
    end: str | None = None,
    fx: FxTable | None = None,
    detail: bool = True,
) -> UsageData:
    """Read the simulator's input for months `start`..`end` (YYYY-MM, inclusive; default: all
    months with usage). `detail` also reads usage by model and by feature."""
    first, last = month_bounds(store)
    start, end = start or first, end or last
    if not start or not end:
        return UsageData(cells=pd.DataFrame(columns=["customer_id", "month"]), notes=("the database holds no usage or revenue",))
    fx = fx or load_fx()
    usage = store.query(
        f"SELECT customer_id, month, {_CELL_SQL} FROM rollup_customer_month_model "
        "WHERE month >= ? AND month <= ? GROUP BY customer_id, month",
        [start, end],
    )
    notes: list[str] = []
    stray = usage[usage["customer_id"] == UNATTRIBUTED]
    if not stray.empty:
        notes.append(f"usage not attributed to a customer ({format_usd(int(stray['cost_pico'].sum()))} of AI cost) is left out")
    usage = usage[usage["customer_id"] != UNATTRIBUTED]
    unpriced = int(usage["unpriced_requests"].sum()) if not usage.empty else 0
    if unpriced:
        notes.append(f"{unpriced:,} requests could not be priced: their AI cost is missing from the margins")
    baseline, fx_notes = _baseline(store, start, end, fx)
    notes.extend(fx_notes)
    measures = (*CELL_MEASURES, "unpriced_requests")
    fill = {**{m: 0 for m in measures}, "baseline_revenue_pico": 0, "baseline_known": True}
    cells = merge_filled(usage, baseline, ["customer_id", "month"], "outer", fill)
    for column in measures:
        cells[column] = cells[column].fillna(0).astype("int64")
    known = cells["baseline_known"].fillna(True).astype(bool)
    values = cells["baseline_revenue_pico"].fillna(0).astype("int64")
    cells["baseline_revenue_pico"] = pd.array([int(v) if k else None for v, k in zip(values, known)], dtype="Int64")
    cells = cells.drop(columns=["baseline_known"])
    customers = store.query("SELECT customer_id, plan, seats FROM customers")
    cells = cells.merge(customers.rename(columns={"plan": "current_plan"}), on="customer_id", how="left")
    cells["current_plan"] = cells["current_plan"].fillna("").astype(str)
    cells["seats"] = pd.array([None if pd.isna(s) else int(s) for s in cells["seats"]], dtype="Int64")
    cells["days_in_month"] = [calendar.monthrange(int(m[:4]), int(m[5:7]))[1] for m in cells["month"]]
    by_model = by_feature = None
    if detail:
        by_model = store.query(
            f"SELECT customer_id, month, model, {_DETAIL_SQL} FROM rollup_customer_month_model "
            "WHERE month >= ? AND month <= ? AND customer_id <> ? GROUP BY customer_id, month, model",
            [start, end, UNATTRIBUTED],
        )
        by_feature = store.query(
            f"SELECT customer_id, month, feature, {_DETAIL_SQL} FROM rollup_customer_month_feature "
            "WHERE month >= ? AND month <= ? AND customer_id <> ? GROUP BY customer_id, month, feature",
            [start, end, UNATTRIBUTED],
        )
    end_day = f"{end}-{calendar.monthrange(int(end[:4]), int(end[5:7]))[1]:02d}"
    last_usage = store.scalar("SELECT MAX(day) FROM rollup_customer_day WHERE day <= ?", [end_day])
    if last_usage and last_usage[:7] == end and last_usage < end_day:
        notes.append(f"usage data end on {last_usage}: {end} is a partial month")
    return UsageData(cells=cells, by_model=by_model, by_feature=by_feature, months=_months(start, end), notes=tuple(notes))
