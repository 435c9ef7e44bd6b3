"""Margin per customer for a period, with health tiers, since-when and month-over-month change.

Definitions (all money in integer USD pico-dollars until display):
- revenue: recognised revenue of the period's months (`walleta.revenue` rule), converted with
  the FX table; amounts in currencies without a rate are listed in `unconverted_revenue` and
  are NOT in `revenue_pico`.
- ai_cost: priced AI cost from the rollups. Unpriced usage is never counted as $0: it is
  reported in `unpriced_requests` / `unpriced_tokens` and the cost is a lower bound.
- margin = revenue - ai_cost; margin_pct = 100 * margin / revenue and cost_pct_of_revenue =
  100 * ai_cost / revenue (both None when revenue <= 0).

Health tiers (first rule that applies; thresholds configurable with `HealthThresholds`):
- `no_usage`: revenue but no requests at all;
- `unconverted`: usage, and revenue in a currency the FX table cannot convert (the margin
  cannot be judged until a rate is added);
- `free`: requests but no revenue (free plan, trial);
- `unpriced`: revenue and requests, but none of the requests could be priced;
- `losing`: net revenue below zero, or margin below `at_risk` (0%);
- `healthy`: margin >= `healthy` (50%) of revenue; `moderate`: >= `moderate` (20%);
  `at_risk`: >= `at_risk` (0%);
- `inactive`: neither revenue nor usage (listed only with include_inactive=True);
- `unattributed`: the pseudo-customer for usage without a customer id (never hidden).
Comparisons are exact (integers), so 50.00% is healthy.

`tier_since`: the first month of the unbroken run of months, ending with the period's last month,
in which the customer's monthly tier equals its tier for the period (None when the last month's
tier differs, which can happen for multi-month periods). Month-over-month: margin of the
period's last month vs the month before (`mom_margin_change_pico`, and the change of margin %
in percentage points).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fx import FxTable
from ..schema import UNATTRIBUTED
from ..store import Store
from . import closed_months
from .columns import aligned, object_column, union_positions
from .exact import exact_ints_filled, exact_sums
from .display import pct, pct_of_positive
from .period import Period, previous_month
from .tier_history import customer_month_rows, since_and_change, tier_history
from .sources import (
    UNKNOWN,
    customer_attributes,
    revenue_by_customer,
    revenue_by_customer_month,
    revenue_totals,
    usage_by_customer,
)

__all__ = [
    "HealthThresholds",
    "TIERS",
    "classify_tier",
    "customer_margins",
    "period_margins",
    "monthly_customer_margins",
    "tier_summary",
    "MARGIN_COLUMNS",
]

TIERS = ("healthy", "moderate", "at_risk", "losing", "free", "no_usage", "unpriced", "unconverted", "inactive", "unattributed")

MARGIN_COLUMNS = [
    "customer_id", "name", "plan", "signup_date", "period", "revenue_pico", "unconverted_revenue", "ai_cost_pico",
    "margin_pico", "margin_pct", "cost_pct_of_revenue", "requests", "total_tokens", "input_tokens",
    "cached_input_tokens", "output_tokens", "reasoning_tokens", "unpriced_requests", "unpriced_tokens", "tier",
    "tier_since", "last_month", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico",
    "mom_margin_pct_change",
]


@dataclass(frozen=True)
class HealthThresholds:
    """Margin (as a fraction of revenue) at or above which a customer is in each tier."""

    healthy: Decimal = Decimal("0.50")
    moderate: Decimal = Decimal("0.20")
    at_risk: Decimal = Decimal("0")

    def __post_init__(self) -> None:
        if not (self.healthy >= self.moderate >= self.at_risk):
            raise InputError("health thresholds must satisfy healthy >= moderate >= at_risk")

    @classmethod
    def from_percentages(cls, healthy: str | int, moderate: str | int, at_risk: str | int = 0) -> "HealthThresholds":
        """Thresholds given in percent, e.g. (50, 20, 0)."""
        return cls(Decimal(str(healthy)) / 100, Decimal(str(moderate)) / 100, Decimal(str(at_risk)) / 100)


def classify_tier(
    revenue_pico: int,
    cost_pico: int,
    requests: int,
    unpriced_requests: int = 0,
    thresholds: HealthThresholds | None = None,
    *,
    unconverted: bool = False,
) -> str:
    """The health tier of one customer-period (see the module docstring for the rules)."""
    result = _tiers(
        np.array([revenue_pico], dtype=object), np.array([cost_pico], dtype=object),
        np.array([requests], dtype=np.int64), np.array([unpriced_requests], dtype=np.int64), thresholds or HealthThresholds(),
        np.array([unconverted], dtype=bool),
    )
    return str(result[0])


def _tiers(
    revenue: np.ndarray,
    cost: np.ndarray,
    requests: np.ndarray,
    unpriced: np.ndarray,
    thresholds: HealthThresholds,
    unconverted: np.ndarray | None = None,
) -> np.ndarray:
    """Vectorised tiers; revenue and cost are object arrays of Python ints (exact comparisons)."""
    revenue = revenue.astype(object)
    margin = revenue - cost.astype(object)
    used = requests > 0
    unconverted = np.zeros(len(revenue), dtype=bool) if unconverted is None else unconverted.astype(bool)
    any_revenue = (revenue != 0).astype(bool) | unconverted
    positive = (revenue > 0).astype(bool)

    def at_least(threshold: Decimal) -> np.ndarray:
        num, den = threshold.as_integer_ratio()
        return (margin * den >= revenue * num).astype(bool)

    conditions = [
        ~used & ~any_revenue,
        ~used,
        unconverted,
        ~any_revenue,
        (requests == unpriced),
        ~positive,
        at_least(thresholds.healthy),
        at_least(thresholds.moderate),
        at_least(thresholds.at_risk),
    ]
    choices = ["inactive", "no_usage", "unconverted", "free", "unpriced", "losing", "healthy", "moderate", "at_risk"]
    return np.select(conditions, choices, default="losing").astype(object)


def monthly_customer_margins(
    store: Store, fx: FxTable | None, first_month: str | None, last_month: str, thresholds: HealthThresholds | None = None
) -> pd.DataFrame:
    """Revenue, cost, margin and tier per customer and month (months with revenue or usage).

    Columns: customer_id, month, revenue_pico, ai_cost_pico, margin_pico, requests,
    unpriced_requests, tier; sorted by (customer_id, month). Reads `rollup_customer_month` and
    the revenue rollup (or the entries while it is stale)."""
    thresholds = thresholds or HealthThresholds()
    fast = customer_month_rows(store, fx, first_month, last_month, thresholds)
    return fast if fast is not None else _monthly_by_merge(store, fx, first_month, last_month, thresholds)


def _monthly_by_merge(store: Store, fx: FxTable | None, first_month: str | None, last_month: str,
                      thresholds: HealthThresholds) -> pd.DataFrame:
    """`monthly_customer_margins` row by row (usage and converted revenue per customer-month
    merged): the path for rates that are not a whole number of pico-dollars per minor unit, and
    the reference the fast paths are tested against."""
    usage = usage_by_customer(store, first_month or "0000-01", last_month, by_month=True,
                              measures=("requests", "cost_pico", "unpriced_requests"))
    revenue = revenue_by_customer_month(store, fx, first_month, last_month)
    revenue = revenue_by_customer(revenue, ["customer_id", "month"])[["customer_id", "month", "revenue_pico", "unconverted_revenue"]] if not revenue.empty else None
    # Object columns: an outer merge would turn int64 columns with a missing row into float64.
    frame = usage.rename(columns={"cost_pico": "ai_cost_pico"}).astype({"requests": object, "ai_cost_pico": object, "unpriced_requests": object})
    if revenue is not None:
        frame = frame.merge(revenue, on=["customer_id", "month"], how="outer")
    else:
        frame["revenue_pico"] = 0
        frame["unconverted_revenue"] = ""
    frame = _fill_ints(frame, ["requests", "unpriced_requests"], ["revenue_pico", "ai_cost_pico"])
    frame["unconverted_revenue"] = frame["unconverted_revenue"].fillna("")
    frame["margin_pico"] = frame["revenue_pico"] - frame["ai_cost_pico"]
    frame["tier"] = _tiers(frame["revenue_pico"].to_numpy(), frame["ai_cost_pico"].to_numpy(), frame["requests"].to_numpy(),
                           frame["unpriced_requests"].to_numpy(), thresholds, (frame["unconverted_revenue"] != "").to_numpy())
    frame.loc[frame["customer_id"] == UNATTRIBUTED, "tier"] = "unattributed"
    columns = ["customer_id", "month", "revenue_pico", "ai_cost_pico", "margin_pico", "requests", "unpriced_requests", "tier"]
    return frame[columns].sort_values(["customer_id", "month"]).reset_index(drop=True)


def _fill_ints(frame: pd.DataFrame, counts: list[str], money: list[str]) -> pd.DataFrame:
    """Missing counts -> 0 (int64); missing money -> 0 as Python ints (object columns)."""
    for column in counts:
        frame[column] = frame[column].fillna(0).astype(np.int64)
    for column in money:
        values = frame[column].to_numpy(dtype=object)
        frame[column] = pd.Series([0 if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in values],
                                  index=frame.index, dtype=object)
    return frame


def customer_margins(
    store: Store,
    period: Period,
    fx: FxTable | None,
    *,
    thresholds: HealthThresholds | None = None,
    include_inactive: bool = False,
    include_unattributed: bool = True,
    with_history: bool = True,
) -> pd.DataFrame:
    """Margin per customer over the whole months of `period`; columns `MARGIN_COLUMNS`.

    One row per customer with revenue or usage in the period (plus, with `include_inactive`,
    every customer in the customers table). Sorted by margin, lowest first. Reads the
    customer-month rollup, the revenue rollup (or the entries while it is stale) and the
    customers table only. With
    `with_history=False` the since-when and month-over-month columns are left empty (None),
    which skips reading the months before the period. A period of closed months is remembered
    while its months and the customers table do not change (`closed_months.remember_closed`).
    """
    thresholds = thresholds or HealthThresholds()
    period = period.whole_months()
    args = (period.first_month, period.last_month, closed_months.fx_key(fx), thresholds, include_inactive, include_unattributed, with_history)
    return closed_months.remember_closed(
        store, "margins.customer_margins", args, period.last_month,
        lambda: _customer_margins(store, period, fx, thresholds, include_inactive, include_unattributed, with_history),
        extra=closed_months.customers_digest, revenue=True)


def _customer_margins(store: Store, period: Period, fx: FxTable | None, thresholds: HealthThresholds, include_inactive: bool,
                      include_unattributed: bool, with_history: bool) -> pd.DataFrame:
    """`customer_margins` of whole-month `period`, computed now."""
    last = period.last_month
    frame = period_margins(store, period, fx, thresholds=thresholds, include_inactive=include_inactive,
                           include_unattributed=include_unattributed)
    revenue = frame["revenue_pico"].tolist()
    frame["margin_pct"] = pct_of_positive(frame["margin_pico"].tolist(), revenue)
    frame["cost_pct_of_revenue"] = pct_of_positive(frame["ai_cost_pico"].tolist(), revenue)
    if with_history:
        fast = tier_history(store, fx, last, thresholds)
        if fast is not None:
            frame = since_and_change(frame, fast[0], fast[1], last)
        else:
            frame = _with_history(frame, monthly_customer_margins(store, fx, None, last, thresholds), last)
    else:
        frame["last_month"] = last
        for column in ("tier_since", "last_month_margin_pico", "prev_month_margin_pico", "mom_margin_change_pico", "mom_margin_pct_change"):
            frame[column] = None
    return _by_margin(frame[MARGIN_COLUMNS])


def _by_margin(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by margin (lowest first), then customer id; exact on Python-int margins."""
    try:
        margin = np.array(frame["margin_pico"].tolist(), dtype=np.int64)
    except OverflowError:
        return frame.sort_values(["margin_pico", "customer_id"], key=_sort_key).reset_index(drop=True)
    names, _ = pd.factorize(frame["customer_id"].to_numpy(dtype=object), sort=True)
    return frame.take(np.lexsort((names, margin))).reset_index(drop=True)


# The usage sums a margin row shows (MARGIN_COLUMNS); reading fewer columns is cheaper at scale.
_PERIOD_MEASURES = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico",
                    "unpriced_requests", "unpriced_tokens")


def period_margins(
    store: Store,
    period: Period,
    fx: FxTable | None,
    *,
    thresholds: HealthThresholds | None = None,
    include_inactive: bool = False,
    include_unattributed: bool = True,
) -> pd.DataFrame:
    """The per-customer part of `customer_margins` that plan and cohort views sum: one row per
    customer over the whole months of `period` with customer_id, name, plan, signup_date,
    period, revenue_pico, unconverted_revenue, ai_cost_pico, margin_pico (Python ints), the
    usage counts, total_tokens and tier. Unsorted; no percentages, since-when or
    month-over-month columns (computing those per customer is most of the cost)."""
    thresholds = thresholds or HealthThresholds()
    period = period.whole_months()
    first, last = period.first_month, period.last_month
    usage = usage_by_customer(store, first, last, measures=_PERIOD_MEASURES)
    revenue = revenue_totals(store, fx, first, last)
    attributes = customer_attributes(store)
    ids, (in_usage, in_revenue, in_attributes) = union_positions(
        [usage["customer_id"], revenue["customer_id"], attributes["customer_id"]], listed=3 if include_inactive else 2)
    frame = pd.DataFrame({"customer_id": object_column(ids)})
    for column in _PERIOD_MEASURES:
        values = aligned(usage[column].to_numpy(), in_usage, 0)
        if column == "cost_pico":
            frame["ai_cost_pico"] = object_column(values.tolist())  # money: Python ints
        else:
            frame[column] = values
    frame["revenue_pico"] = object_column(aligned(revenue["revenue_pico"].to_numpy(dtype=object), in_revenue, 0).tolist())
    for column in ("unconverted_revenue", "unconverted_currencies"):
        frame[column] = object_column(aligned(revenue[column].to_numpy(dtype=object), in_revenue, ""))
    for column, missing in (("name", ""), ("plan", UNKNOWN), ("signup_date", "")):
        frame[column] = object_column(aligned(attributes[column].to_numpy(dtype=object), in_attributes, missing))
    frame["period"] = period.label()
    frame["margin_pico"] = object_column([r - c for r, c in zip(frame["revenue_pico"].tolist(), frame["ai_cost_pico"].tolist())])
    frame["total_tokens"] = frame["input_tokens"] + frame["output_tokens"]
    tiers = _tiers(frame["revenue_pico"].to_numpy(), frame["ai_cost_pico"].to_numpy(), frame["requests"].to_numpy(),
                   frame["unpriced_requests"].to_numpy(), thresholds, (frame["unconverted_revenue"] != "").to_numpy())
    frame["tier"] = object_column(tiers)
    unattributed = (frame["customer_id"] == UNATTRIBUTED).to_numpy()
    frame.loc[unattributed, "tier"] = "unattributed"
    frame.loc[unattributed, "plan"] = ""
    if not include_unattributed:
        frame = frame[~unattributed]
    return frame


def _sort_key(column: pd.Series) -> pd.Series:
    if column.dtype == object and column.map(lambda v: isinstance(v, int)).all():
        return column.map(int)
    return column


def _with_history(frame: pd.DataFrame, history: pd.DataFrame, last: str) -> pd.DataFrame:
    """Add tier_since and the month-over-month columns from the monthly history."""
    previous = previous_month(last)
    frame["last_month"] = last
    picked = history[history["month"].isin([last, previous])]
    for month, suffix in ((last, "now"), (previous, "before")):
        rows = picked[picked["month"] == month][["customer_id", "margin_pico", "revenue_pico"]]
        rows = rows.rename(columns={"margin_pico": f"_margin_{suffix}", "revenue_pico": f"_revenue_{suffix}"})
        frame = frame.merge(rows, on="customer_id", how="left")
        frame = _fill_ints(frame, [], [f"_margin_{suffix}", f"_revenue_{suffix}"])
    frame["last_month_margin_pico"] = frame["_margin_now"]
    frame["prev_month_margin_pico"] = frame["_margin_before"]
    frame["mom_margin_change_pico"] = frame["_margin_now"] - frame["_margin_before"]
    frame["mom_margin_pct_change"] = pd.Series(
        [
            pct(m1, r1) - pct(m0, r0) if r1 > 0 and r0 > 0 else None  # type: ignore[operator]
            for m1, r1, m0, r0 in zip(frame["_margin_now"], frame["_revenue_now"], frame["_margin_before"], frame["_revenue_before"])
        ],
        index=frame.index,
        dtype=object,
    )
    frame["tier_since"] = pd.Series(_tier_since(frame, history, last), index=frame.index, dtype=object)
    return frame.drop(columns=["_margin_now", "_revenue_now", "_margin_before", "_revenue_before"])


def _tier_since(frame: pd.DataFrame, history: pd.DataFrame, last: str) -> list[str | None]:
    """First month of the run of monthly tiers equal to the period tier, ending at `last`."""
    if history.empty:
        return [None] * len(frame)
    months = sorted(set(history["month"]))
    months = [m for m in months if m <= last]
    if not months or months[-1] != last:
        months.append(last)
    grid = history.pivot(index="customer_id", columns="month", values="tier").reindex(columns=months)
    grid = grid.reindex(frame["customer_id"].tolist()).fillna("inactive")
    # A month missing from the history between two present months is an inactive month.
    all_months = _contiguous(months[0], last)
    grid = grid.reindex(columns=all_months, fill_value="inactive").fillna("inactive")
    values = grid.to_numpy(dtype=object)
    target = frame["tier"].to_numpy(dtype=object)[:, None]
    mismatch = values != target
    count = values.shape[1]
    last_mismatch = np.where(mismatch.any(axis=1), count - 1 - np.argmax(mismatch[:, ::-1], axis=1), -1)
    since = last_mismatch + 1
    return [all_months[i] if i < count else None for i in since]


def _contiguous(first: str, last: str) -> list[str]:
    from .period import month_range

    return month_range(first, last)


def tier_summary(margins: pd.DataFrame) -> pd.DataFrame:
    """Customers, revenue, cost and margin per tier (from `customer_margins`), in tier order.

    Columns: tier, customers, revenue_pico, ai_cost_pico, margin_pico (Python ints),
    unpriced_requests. Summed exactly with numpy (the app calls it on every rerun)."""
    columns = ["tier", "customers", "revenue_pico", "ai_cost_pico", "margin_pico", "unpriced_requests"]
    if margins.empty:
        return pd.DataFrame(columns=columns)
    codes, tiers = pd.factorize(margins["tier"].to_numpy(dtype=object))
    order = sorted(range(len(tiers)), key=lambda i: (TIERS.index(tiers[i]) if tiers[i] in TIERS else len(TIERS), i))
    sums = {name: exact_sums(codes, len(tiers), exact_ints_filled(margins[name]))[order]
            for name in ("revenue_pico", "ai_cost_pico", "margin_pico", "unpriced_requests")}
    return pd.DataFrame({
        "tier": pd.Series([tiers[i] for i in order], dtype=object),
        "customers": np.bincount(codes, minlength=len(tiers))[order].astype(np.int64),
        **{name: object_column([int(v) for v in sums[name]]) for name in ("revenue_pico", "ai_cost_pico", "margin_pico")},
        "unpriced_requests": pd.Series([int(v) for v in sums["unpriced_requests"]], dtype=np.int64),
    })
