"""Per-plan sums for `breakdowns.plan_breakdown`, without the per-customer margin frame (issue 6).

`plan_breakdown` used to sum `margins.period_margins`, which builds a full per-customer frame
(twelve usage measures, names, signup dates, pandas merges) only to count and add it up per plan.
This reads just what the plan view needs, per customer: AI cost, requests and unpriced requests
(`rollup_customer_month`, summed in numpy, exactly), revenue (`revenue_totals`) and the plan
(`customers`); classifies each customer with the same tier rule (`margins._tiers`, default
thresholds) and sums per plan. Same customers as `period_margins`: everyone with a usage row or a
revenue row in the period's whole months, the unattributed pseudo-customer under
`(unattributed)`; plan `(unknown)` without a customer record, `(no plan)` when it is empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..schema import UNATTRIBUTED
from ..store import Store
from .columns import INT, TEXT, scan
from .exact import exact_sums
from .feature_allocation import positions
from .margins import HealthThresholds, _tiers
from .period import Period
from .sources import NO_PLAN, UNKNOWN, revenue_totals

__all__ = ["plan_totals", "PLAN_SUM_COLUMNS"]

PLAN_SUM_COLUMNS = ["plan", "customers", "paying_customers", "losing_customers", "revenue_pico", "ai_cost_pico", "requests",
                    "unpriced_requests", "unconverted_revenue"]
_USAGE = ("cost_pico", "requests", "unpriced_requests")


def plan_totals(store: Store, period: Period, fx: FxTable | None) -> dict[str, list | np.ndarray]:
    """Per-plan columns, one value per plan in plan order: PLAN_SUM_COLUMNS. Counts and requests
    as int64 arrays (object if beyond), plan names, revenue and AI cost (Python ints) and
    unconverted_revenue (the customers' unconverted amounts joined with '; ' in customer-id order,
    '' when none) as lists. No plans when the period has neither usage nor revenue."""
    period = period.whole_months()
    usage_ids, usage = _usage(store, period)
    revenue = revenue_totals(store, fx, period.first_month, period.last_month)
    revenue_ids = revenue["customer_id"].tolist() if not revenue.empty else []
    ids = usage_ids.tolist()
    at_revenue = positions(ids, revenue_ids)
    new = at_revenue < 0  # revenue without usage: appended
    at_revenue[new] = np.arange(len(ids), len(ids) + int(new.sum()), dtype=np.int64)
    ids += [c for c, absent in zip(revenue_ids, new.tolist()) if absent]
    if not ids:
        return {c: [] for c in PLAN_SUM_COLUMNS}
    at_usage = np.arange(len(usage_ids), dtype=np.int64)
    n = len(ids)
    measures = {}
    for name in _USAGE:
        values = usage[name]
        column = np.zeros(n, dtype=values.dtype)
        column[at_usage] = values
        measures[name] = column
    money = np.zeros(n, dtype=object)
    money[at_revenue] = [int(v) for v in revenue["revenue_pico"].tolist()] if revenue_ids else []
    unconverted = np.full(n, "", dtype=object)
    if revenue_ids:
        unconverted[at_revenue] = revenue["unconverted_revenue"].tolist()
    tiers = _tiers(money, measures["cost_pico"].astype(object), measures["requests"], measures["unpriced_requests"], HealthThresholds(),
                   np.asarray(unconverted != "", dtype=bool))
    plans = _plans(store, ids)
    unattributed = np.array([c == UNATTRIBUTED for c in ids], dtype=bool)
    plans[unattributed] = "(unattributed)"
    losing = np.asarray(tiers == "losing", dtype=bool) & ~unattributed
    paying = np.asarray(money > 0, dtype=bool)
    return _per_plan(plans, money, measures, paying, losing, unconverted, ids)


def _usage(store: Store, period: Period) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Customer ids (unique) and their usage measures summed over the period's months."""
    rows = scan(store, [("customer_id", "customer_id", TEXT), *[(m, m, INT) for m in _USAGE]],
                "FROM rollup_customer_month WHERE month >= ? AND month <= ?", [period.first_month, period.last_month])
    ids = rows["customer_id"]
    if period.first_month == period.last_month:  # one month: one row per customer (primary key)
        return ids, {m: rows[m] for m in _USAGE}
    code, names = pd.factorize(ids)
    return np.asarray(names, dtype=object), {m: exact_sums(code, len(names), rows[m]) for m in _USAGE}


def _plans(store: Store, ids: list[str]) -> np.ndarray:
    """The customers table's plan for each of `ids` ((unknown) without a record, (no plan) when
    empty or NULL)."""
    rows = scan(store, [("customer_id", "customer_id", TEXT), ("plan", "plan", TEXT)], "FROM customers")
    plans = np.full(len(ids), UNKNOWN, dtype=object)
    at = positions(ids, rows["customer_id"])
    found = at >= 0
    known = rows["plan"][found]
    known[known == ""] = NO_PLAN
    plans[at[found]] = known
    return plans


def _per_plan(plans: np.ndarray, money: np.ndarray, measures: dict[str, np.ndarray], paying: np.ndarray, losing: np.ndarray,
              unconverted: np.ndarray, ids: list[str]) -> dict[str, list | np.ndarray]:
    """Sum the per-customer arrays per plan (sorted by plan); unconverted texts joined in
    customer-id order."""
    first_code, seen = pd.factorize(plans)
    names = sorted(str(p) for p in seen)
    code = positions(names, list(seen))[first_code]
    k = len(names)
    texts: dict[int, list[str]] = {}
    listed = np.flatnonzero(np.asarray(unconverted != "", dtype=bool)).tolist()
    for i in sorted(listed, key=lambda i: ids[i]):
        texts.setdefault(int(code[i]), []).append(unconverted[i])
    return {
        "plan": names,
        "customers": np.bincount(code, minlength=k).astype(np.int64),
        "paying_customers": np.bincount(code[paying], minlength=k).astype(np.int64),
        "losing_customers": np.bincount(code[losing], minlength=k).astype(np.int64),
        "revenue_pico": [int(v) for v in exact_sums(code, k, money)],
        "ai_cost_pico": [int(v) for v in exact_sums(code, k, measures["cost_pico"])],
        "requests": exact_sums(code, k, measures["requests"]),
        "unpriced_requests": exact_sums(code, k, measures["unpriced_requests"]),
        "unconverted_revenue": ["; ".join(texts.get(i, [])) for i in range(k)],
    }
