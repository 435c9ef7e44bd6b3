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
from . import closed_months
from .columns import INT, TEXT, scan_many
from .display import div_round, pct
from .feature_allocation import allocate_by_basis
from .period import Period, month_range
from .plan_totals import plan_totals
from .sources import read, revenue_totals, usage_sql

__all__ = [
    "Allocation",
    "ALLOCATION_RULES",
    "NO_USAGE_ROW",
    "allocate_exact",
    "feature_breakdown",
    "feature_costs",
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


def _usage_columns(key: str, names: list[str], measures: dict[str, np.ndarray], label: str) -> tuple[dict[str, object], list[int]]:
    """The columns the feature and model views share, one value per name (unsorted): key, period,
    ai_cost_pico (Python ints), cost_share_pct, requests, cost_per_request_pico (cost / priced
    requests), total_tokens, the token columns and the unpriced counts; and the costs. Columns are
    built as lists and arrays and made into one DataFrame at the end (`_frame`): assigning them
    one by one to a DataFrame costs more than computing them."""
    costs = [int(v) for v in measures["cost_pico"].tolist()]
    total = sum(costs)
    priced = (measures["requests"] - measures["unpriced_requests"]).astype(np.int64)
    columns: dict[str, object] = {
        key: names,
        "period": [label] * len(names),
        "ai_cost_pico": costs,
        "cost_share_pct": [pct(c, total) for c in costs],
        "requests": measures["requests"],
        "cost_per_request_pico": [div_round(c, r) for c, r in zip(costs, priced.tolist())],
        "total_tokens": measures["input_tokens"] + measures["output_tokens"],
    }
    columns.update({m: measures[m] for m in (*TOKEN_COLUMNS, "unpriced_requests", "unpriced_tokens")})
    return columns, costs


_OBJECT_COLUMNS = frozenset({"feature", "model", "plan", "ai_cost_pico", "cost_per_request_pico", "allocated_revenue_pico", "revenue_pico",
                             "margin_pico"})


def _frame(columns: dict[str, object], order: list[int], names: list[str]) -> pd.DataFrame:
    """Rows `order` of `columns` as a DataFrame with the columns `names`: keys and money as object
    columns of Python ints / str, counts as int64 arrays, text as pandas strings, the rest inferred
    (what the per-column assignments of the views used to produce)."""
    data: dict[str, object] = {}
    for name in names:
        values = columns[name]
        if isinstance(values, np.ndarray):
            data[name] = values[np.array(order, dtype=np.int64)] if len(order) else values[:0]
        else:
            picked = [values[i] for i in order]  # type: ignore[index]
            data[name] = pd.Series(picked, dtype=object) if name in _OBJECT_COLUMNS else picked
    return pd.DataFrame(data)


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
    columns = [("customer_id", "customer_id", TEXT), ("feature", "feature", TEXT), ("basis", basis_column, INT)]
    # One read per month (one key range each), side by side; a month has one row per (customer,
    # feature): the rollup's primary key.
    months = month_range(period.first_month, period.last_month)
    parts = scan_many(store, [(columns, "FROM rollup_customer_month_feature WHERE month = ?", [month]) for month in months])
    rows = {name: np.concatenate([part[name] for part in parts]) for name, _, _ in columns}
    allocated, left = allocate_by_basis(rows["customer_id"], rows["feature"], rows["basis"], ids, amounts, unique_pairs=len(months) == 1)
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
    rollup_customer_month_feature and the revenue rollup (or the entries). Closed months are
    remembered while they do not change (`closed_months.remember_closed`).
    """
    allocation = allocation or Allocation()
    period = period.whole_months()
    weights = tuple(sorted((str(k), str(v)) for k, v in allocation.weights.items()))
    args = (period.first_month, period.last_month, closed_months.fx_key(fx), allocation.rule, weights)
    return closed_months.remember_closed(store, "breakdowns.feature", args, period.last_month,
                                         lambda: _feature_breakdown(store, period, fx, allocation), revenue=True)


def _feature_breakdown(store: Store, period: Period, fx: FxTable | None, allocation: Allocation) -> pd.DataFrame:
    """`feature_breakdown` of whole-month `period`, read at once."""
    usage = _feature_usage(store, period)
    names = usage["feature"].tolist()
    allocated, _ = _allocate(store, period, fx, allocation, names)
    known = set(names)
    names += [f for f in allocated if f not in known]
    if not names:
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    extra = len(names) - len(usage)
    measures = {m: np.array([0 if v is None else int(v) for v in usage[m].tolist()] + [0] * extra, dtype=np.int64 if m != "cost_pico" else object)
                for m in _MEASURES}
    columns, costs = _usage_columns("feature", names, measures, period.label())
    shares = [allocated.get(f, 0) for f in names]
    margins = [r - c for r, c in zip(shares, costs)]
    columns["allocated_revenue_pico"] = shares
    columns["margin_pico"] = margins
    columns["margin_pct"] = [pct(m, r) if r > 0 else None for m, r in zip(margins, shares)]
    columns["allocation_rule"] = [allocation.describe()] * len(names)
    order = sorted(range(len(names)), key=lambda i: (names[i] == NO_USAGE_ROW, -costs[i], names[i]))
    return _frame(columns, order, FEATURE_COLUMNS)


MODEL_COLUMNS = [
    "model", "period", "ai_cost_pico", "cost_share_pct", "requests", "cost_per_request_pico", "total_tokens",
    *TOKEN_COLUMNS, "unpriced_requests", "unpriced_tokens", "price_status",
]


FEATURE_COST_COLUMNS = FEATURE_COLUMNS[:FEATURE_COLUMNS.index("allocated_revenue_pico")]


def feature_costs(store: Store, period: Period) -> pd.DataFrame:
    """Cost and usage per feature over the exact days of `period`, without revenue (one grouped
    read of rollup_feature_model_day): what "top features" needs, where `feature_breakdown` also
    allocates revenue over every customer x feature of the months.

    Columns: FEATURE_COST_COLUMNS (the usage columns of `feature_breakdown`, same values over
    whole months). Sorted by AI cost, highest first."""
    usage = _feature_usage(store, period)
    if usage.empty:
        return pd.DataFrame(columns=FEATURE_COST_COLUMNS)
    names = usage["feature"].tolist()
    columns, costs = _usage_columns("feature", names, {m: usage[m].to_numpy() for m in _MEASURES}, period.label())
    order = sorted(range(len(names)), key=lambda i: (-costs[i], names[i]))
    return _frame(columns, order, FEATURE_COST_COLUMNS)


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
    names = usage["model"].tolist()
    columns, costs = _usage_columns("model", names, {m: usage[m].to_numpy() for m in _MEASURES}, period.label())
    columns["price_status"] = ["priced" if u == 0 else "unpriced" if u >= r else "partly unpriced"
                               for u, r in zip(usage["unpriced_requests"].tolist(), usage["requests"].tolist())]
    order = sorted(range(len(names)), key=lambda i: (-costs[i], names[i]))
    return _frame(columns, order, MODEL_COLUMNS)


PLAN_COLUMNS = [
    "plan", "period", "customers", "paying_customers", "losing_customers", "revenue_pico", "unconverted_revenue",
    "ai_cost_pico", "margin_pico", "margin_pct", "cost_pct_of_revenue", "ai_cost_per_customer_pico", "requests",
    "unpriced_requests",
]


def plan_breakdown(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """Revenue, AI cost and margin per plan over the whole months of `period`.

    Columns: PLAN_COLUMNS. `customers` counts customers with revenue or usage; `paying` those with
    revenue > 0; `losing` those in the losing tier. The plan is the customers table's current
    plan ('(unknown)' for usage without a customer record). Sorted by revenue, highest first.
    Closed months are remembered while they and every customer's plan do not change."""
    whole = period.whole_months()
    return closed_months.remember_closed(store, "breakdowns.plan", (whole.first_month, whole.last_month, closed_months.fx_key(fx)),
                                         whole.last_month, lambda: _plan_breakdown(store, whole, fx),
                                         extra=closed_months.customers_digest, revenue=True)


def _plan_breakdown(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """`plan_breakdown` of whole-month `period`, read at once."""
    columns = plan_totals(store, period, fx)
    plans, revenue, cost = columns["plan"], columns["revenue_pico"], columns["ai_cost_pico"]
    if not len(plans):
        return pd.DataFrame(columns=PLAN_COLUMNS)
    columns["period"] = [period.whole_months().label()] * len(plans)
    columns["margin_pico"] = [r - c for r, c in zip(revenue, cost)]
    columns["margin_pct"] = [pct(r - c, r) if r > 0 else None for r, c in zip(revenue, cost)]
    columns["cost_pct_of_revenue"] = [pct(c, r) if r > 0 else None for r, c in zip(revenue, cost)]
    columns["ai_cost_per_customer_pico"] = [div_round(c, int(n)) for c, n in zip(cost, columns["customers"])]
    order = sorted(range(len(plans)), key=lambda i: (-revenue[i], plans[i]))  # type: ignore[index]
    return _frame(columns, order, PLAN_COLUMNS)
