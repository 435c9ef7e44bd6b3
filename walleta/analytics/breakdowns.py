"""Cost and margin per feature, per model and per plan.

Per feature and per model: AI cost, share of the period's cost, requests, cost per request
(cost / priced requests, rounded half-even to the pico-dollar), tokens by class, and unpriced
usage in its own columns (never as $0).

Feature margin needs revenue on features, which no invoice states, so it is allocated by a
rule the user picks (`Allocation`), stated in the `allocation_rule` column:
- `cost_share` (default): each customer's revenue for the period is split across the features
  that customer used, in proportion to that customer's AI cost per feature. A feature used
  mostly by free customers gets little revenue; one used by big payers gets more.
- `request_share`: the same, in proportion to the customer's requests per feature.
- `weights`: the period's total revenue is split across features by fixed weights the user
  gives (normalised to sum to 1), whoever used them. Features without a weight get none.
Revenue of customers with no basis in the period (no priced cost for cost_share, no requests for
request_share) cannot be split and is shown on its own row, `(revenue without usage)`, so the
rows always add up to the period's revenue. Allocation is exact in pico-dollars: each part is
rounded toward zero and the remainder (under one pico-dollar per feature) goes to the largest part.

Per plan: customers, paying customers, revenue, AI cost, margin, margin %, cost per customer.
Feature views use whole months when revenue is involved (`feature_breakdown`); `model_breakdown`
honours exact days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fx import FxTable
from ..schema import TOKEN_COLUMNS
from ..store import Store
from .columns import INT, TEXT, scan
from .display import div_round, pct
from .feature_allocation import allocate_by_basis
from .period import Period
from .plan_totals import plan_totals
from .sources import read, group_sum, revenue_totals, usage_sql

__all__ = [
    "Allocation",
    "ALLOCATION_RULES",
    "NO_USAGE_ROW",
    "allocate_exact",
    "feature_breakdown",
    "model_breakdown",
    "plan_breakdown",
]

ALLOCATION_RULES = ("cost_share", "request_share", "weights")
NO_USAGE_ROW = "(revenue without usage)"
_MEASURES = ("requests", *TOKEN_COLUMNS, "cost_pico", "unpriced_requests", "unpriced_tokens")


@dataclass(frozen=True)
class Allocation:
    """How revenue is allocated to features: rule + (for `weights`) feature -> weight."""

    rule: str = "cost_share"
    weights: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule not in ALLOCATION_RULES:
            raise InputError(f"unknown allocation rule {self.rule!r}: use one of {', '.join(ALLOCATION_RULES)}")
        if self.rule == "weights":
            if not self.weights or any(Decimal(str(w)) < 0 for w in self.weights.values()) or sum(Decimal(str(w)) for w in self.weights.values()) <= 0:
                raise InputError("the weights rule needs non-negative feature weights with a positive sum")

    @classmethod
    def parse(cls, text: str) -> "Allocation":
        """'cost_share', 'request_share' or 'weights:chat=2,search=1'."""
        text = (text or "cost_share").strip()
        if not text.startswith("weights"):
            return cls(text)
        _, _, spec = text.partition(":")
        weights: dict[str, Decimal] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            try:
                weights[name.strip()] = Decimal(value.strip())
            except Exception as exc:  # noqa: BLE001 - decimal raises several types
                raise InputError(f"bad weight {part!r}: use feature=number") from exc
        return cls("weights", weights)

    def describe(self) -> str:
        """The rule in one sentence (shown in reports next to the numbers)."""
        if self.rule == "cost_share":
            return "each customer's revenue split across the features it used, by its AI cost per feature"
        if self.rule == "request_share":
            return "each customer's revenue split across the features it used, by its requests per feature"
        parts = ", ".join(f"{k}={v}" for k, v in sorted(self.weights.items()))
        return f"total revenue split by fixed feature weights ({parts})"


def allocate_exact(total: int, basis: list[int]) -> list[int]:
    """Split `total` in proportion to non-negative integer `basis`, exactly: each part is rounded
    toward zero and the remainder goes to the largest basis (the first on ties). All zeros ->
    ValueError."""
    weight = sum(basis)
    if weight <= 0:
        raise ValueError("allocation basis sums to zero")
    sign = -1 if total < 0 else 1
    parts = [sign * (abs(total) * b // weight) for b in basis]
    largest = max(range(len(basis)), key=lambda i: (basis[i], -i))
    parts[largest] += total - sum(parts)
    return parts


def _feature_usage(store: Store, period: Period) -> pd.DataFrame:
    return read(store, 
        f"SELECT feature, {usage_sql(_MEASURES)} FROM rollup_feature_model_day WHERE day >= ? AND day <= ? GROUP BY feature",
        [period.first_day, period.last_day],
    )


def _with_unit_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """cost share, cost per (priced) request; cost as Python ints."""
    costs = [int(v) for v in frame["cost_pico"]]
    total = sum(costs)
    frame["ai_cost_pico"] = pd.Series(costs, index=frame.index, dtype=object)
    frame["cost_share_pct"] = [pct(c, total) for c in costs]
    priced = (frame["requests"] - frame["unpriced_requests"]).astype(np.int64)
    frame["cost_per_request_pico"] = pd.Series([div_round(c, int(r)) for c, r in zip(costs, priced)], index=frame.index, dtype=object)
    frame["total_tokens"] = frame["input_tokens"] + frame["output_tokens"]
    return frame.drop(columns=["cost_pico"])


def _allocate(store: Store, period: Period, fx: FxTable | None, allocation: Allocation, features: list[str]) -> tuple[dict[str, int], int]:
    """Allocated revenue per feature (plus NO_USAGE_ROW), and the period's total revenue."""
    revenue = revenue_totals(store, fx, period.first_month, period.last_month)
    ids = revenue["customer_id"].tolist() if not revenue.empty else []
    amounts = [int(v) for v in revenue["revenue_pico"].tolist()] if not revenue.empty else []
    total = sum(amounts)
    result: dict[str, int] = {}
    if allocation.rule == "weights":
        scale = _common_scale(allocation.weights.values())
        names = sorted(allocation.weights)
        if total:
            parts = allocate_exact(total, [int(Decimal(str(allocation.weights[n])) * scale) for n in names])
            result.update(zip(names, parts))
        return result, total
    basis_column = "cost_pico" if allocation.rule == "cost_share" else "requests"
    rows = scan(store, [("customer_id", "customer_id", TEXT), ("feature", "feature", TEXT), ("basis", basis_column, INT)],
                "FROM rollup_customer_month_feature WHERE month >= ? AND month <= ?", [period.first_month, period.last_month])
    # one month of the rollup has one row per (customer, feature): its primary key
    allocated, left = allocate_by_basis(rows["customer_id"], rows["feature"], rows["basis"], ids, amounts,
                                        unique_pairs=period.first_month == period.last_month)
    result.update(allocated)
    if left:
        result[NO_USAGE_ROW] = left
    return result, total


def _common_scale(weights: object) -> int:
    places = max((max(0, -Decimal(str(w)).normalize().as_tuple().exponent) for w in weights), default=0)  # type: ignore[attr-defined]
    return 10**places


FEATURE_COLUMNS = [
    "feature", "period", "ai_cost_pico", "cost_share_pct", "requests", "cost_per_request_pico", "total_tokens",
    *TOKEN_COLUMNS, "unpriced_requests", "unpriced_tokens", "allocated_revenue_pico", "margin_pico", "margin_pct",
    "allocation_rule",
]


def feature_breakdown(
    store: Store, period: Period, fx: FxTable | None, allocation: Allocation | None = None
) -> pd.DataFrame:
    """Cost, usage and allocated revenue per feature over the whole months of `period`.

    Columns: FEATURE_COLUMNS (money in pico-dollars; margin_pct = 100 * margin / allocated
    revenue, None when that is <= 0). Sorted by AI cost, highest first; the
    `(revenue without usage)` row, when present, comes last. Reads rollup_feature_model_day,
    rollup_customer_month_feature and the revenue entries.
    """
    allocation = allocation or Allocation()
    period = period.whole_months()
    usage = _feature_usage(store, period)
    allocated, _ = _allocate(store, period, fx, allocation, usage["feature"].tolist())
    extra = [f for f in allocated if f not in set(usage["feature"])]
    if extra:
        filler = pd.DataFrame({"feature": extra, **{m: 0 for m in _MEASURES}})
        usage = pd.concat([usage, filler], ignore_index=True) if not usage.empty else filler
    if usage.empty:
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    for m in _MEASURES:
        usage[m] = usage[m].fillna(0).astype(np.int64) if m != "cost_pico" else usage[m].fillna(0)
    usage = _with_unit_columns(usage)
    usage["period"] = period.label()
    usage["allocated_revenue_pico"] = pd.Series([allocated.get(f, 0) for f in usage["feature"]], index=usage.index, dtype=object)
    usage["margin_pico"] = usage["allocated_revenue_pico"] - usage["ai_cost_pico"]
    usage["margin_pct"] = [pct(m, r) if r > 0 else None for m, r in zip(usage["margin_pico"], usage["allocated_revenue_pico"])]
    usage["allocation_rule"] = allocation.describe()
    usage["_last"] = usage["feature"] == NO_USAGE_ROW
    usage["_cost"] = [int(v) for v in usage["ai_cost_pico"]]
    usage = usage.sort_values(["_last", "_cost", "feature"], ascending=[True, False, True])
    return usage[FEATURE_COLUMNS].reset_index(drop=True)


MODEL_COLUMNS = [
    "model", "period", "ai_cost_pico", "cost_share_pct", "requests", "cost_per_request_pico", "total_tokens",
    *TOKEN_COLUMNS, "unpriced_requests", "unpriced_tokens", "price_status",
]


def model_breakdown(store: Store, period: Period) -> pd.DataFrame:
    """Cost and usage per model over the exact days of `period` (from rollup_feature_model_day).

    Columns: MODEL_COLUMNS; price_status is 'priced', 'unpriced' (no request priced) or
    'partly unpriced'. Sorted by AI cost, highest first."""
    usage = read(store, 
        f"SELECT model, {usage_sql(_MEASURES)} FROM rollup_feature_model_day WHERE day >= ? AND day <= ? GROUP BY model",
        [period.first_day, period.last_day],
    )
    if usage.empty:
        return pd.DataFrame(columns=MODEL_COLUMNS)
    usage = _with_unit_columns(usage)
    usage["period"] = period.label()
    usage["price_status"] = np.select(
        [usage["unpriced_requests"] == 0, usage["unpriced_requests"] >= usage["requests"]], ["priced", "unpriced"], "partly unpriced"
    )
    usage["_cost"] = [int(v) for v in usage["ai_cost_pico"]]
    usage = usage.sort_values(["_cost", "model"], ascending=[False, True])
    return usage[MODEL_COLUMNS].reset_index(drop=True)


PLAN_COLUMNS = [
    "plan", "period", "customers", "paying_customers", "losing_customers", "revenue_pico", "unconverted_revenue",
    "ai_cost_pico", "margin_pico", "margin_pct", "cost_pct_of_revenue", "ai_cost_per_customer_pico", "requests",
    "unpriced_requests",
]


def plan_breakdown(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """Revenue, AI cost and margin per plan over the whole months of `period`.

    Columns: PLAN_COLUMNS. `customers` counts customers with revenue or usage; `paying` those with
    revenue > 0; `losing` those in the losing tier. The plan is the customers table's current
    plan ('(unknown)' for usage without a customer record). Sorted by revenue, highest first."""
    sums = plan_totals(store, period, fx)
    if sums.empty:
        return pd.DataFrame(columns=PLAN_COLUMNS)
    revenue = [int(v) for v in sums["revenue_pico"]]
    cost = [int(v) for v in sums["ai_cost_pico"]]
    sums["revenue_pico"] = pd.Series(revenue, index=sums.index, dtype=object)
    sums["ai_cost_pico"] = pd.Series(cost, index=sums.index, dtype=object)
    sums["margin_pico"] = pd.Series([r - c for r, c in zip(revenue, cost)], index=sums.index, dtype=object)
    sums["margin_pct"] = [pct(r - c, r) if r > 0 else None for r, c in zip(revenue, cost)]
    sums["cost_pct_of_revenue"] = [pct(c, r) if r > 0 else None for r, c in zip(revenue, cost)]
    sums["ai_cost_per_customer_pico"] = [div_round(c, int(n)) for c, n in zip(cost, sums["customers"])]
    sums["period"] = period.whole_months().label()
    sums["_revenue"] = revenue
    return sums.sort_values(["_revenue", "plan"], ascending=[False, True])[PLAN_COLUMNS].reset_index(drop=True)
