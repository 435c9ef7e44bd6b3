"""Cohorts and the spread of margin across customers.

- `cohort_margins`: margin per signup cohort (the month of `customers.signup_date`, '(unknown)'
  without one), per plan, or per cohort and plan, over the whole months of a period.
- `cohort_table`: the classic cohort grid: for each signup cohort and each calendar month, the
  active customers, revenue, AI cost and margin, and the months since signup.
- `margin_distribution`: percentiles (default p10, p25, p50, p75, p90) of margin in dollars and
  of margin % across customers with revenue > 0 (margin % is undefined without revenue),
  overall or per plan. Nearest-rank percentiles: the value of the ceil(p x N)-th customer in
  ascending order, so every figure is a real customer's margin (exact, no interpolation).
The unattributed pseudo-customer is left out of all three.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fx import FxTable
from ..schema import UNATTRIBUTED
from ..store import Store
from .display import pct
from .margins import HealthThresholds, customer_margins, monthly_customer_margins, period_margins
from .period import Period
from .sources import UNKNOWN, customer_attributes, group_sum

__all__ = ["cohort_margins", "cohort_table", "margin_distribution", "margin_distribution_of", "COHORT_GROUPINGS"]

COHORT_GROUPINGS = {"cohort": ["cohort"], "plan": ["plan"], "cohort_plan": ["cohort", "plan"]}


def _cohort(signup: pd.Series) -> pd.Series:
    text = signup.fillna("").astype(str)
    return text.where(text.str.match(r"^\d{4}-\d{2}"), "").str[:7].replace("", UNKNOWN)


def _ratios(frame: pd.DataFrame) -> pd.DataFrame:
    revenue = [int(v) for v in frame["revenue_pico"]]
    cost = [int(v) for v in frame["ai_cost_pico"]]
    frame["revenue_pico"] = pd.Series(revenue, index=frame.index, dtype=object)
    frame["ai_cost_pico"] = pd.Series(cost, index=frame.index, dtype=object)
    frame["margin_pico"] = pd.Series([r - c for r, c in zip(revenue, cost)], index=frame.index, dtype=object)
    frame["margin_pct"] = [pct(r - c, r) if r > 0 else None for r, c in zip(revenue, cost)]
    return frame


def cohort_margins(
    store: Store, period: Period, fx: FxTable | None, *, by: str = "cohort", thresholds: HealthThresholds | None = None
) -> pd.DataFrame:
    """Revenue, AI cost and margin per signup cohort, plan, or both, over the period's months.

    Columns: cohort and/or plan, period, customers, paying_customers, losing_customers,
    revenue_pico, ai_cost_pico, margin_pico, margin_pct, margin_per_customer_pico."""
    if by not in COHORT_GROUPINGS:
        raise InputError(f"group cohorts by one of {', '.join(COHORT_GROUPINGS)}")
    keys = COHORT_GROUPINGS[by]
    margins = period_margins(store, period, fx, thresholds=thresholds, include_unattributed=False)
    columns = [*keys, "period", "customers", "paying_customers", "losing_customers", "revenue_pico", "ai_cost_pico",
               "margin_pico", "margin_pct", "margin_per_customer_pico"]
    if margins.empty:
        return pd.DataFrame(columns=columns)
    margins = margins.assign(
        cohort=_cohort(margins["signup_date"]),
        one=1,
        paying=(margins["revenue_pico"].map(int) > 0).astype(np.int64),
        losing=(margins["tier"] == "losing").astype(np.int64),
    )
    out = group_sum(margins, keys, ["one", "paying", "losing", "revenue_pico", "ai_cost_pico"])
    out = out.rename(columns={"one": "customers", "paying": "paying_customers", "losing": "losing_customers"})
    out = _ratios(out)
    out["margin_per_customer_pico"] = pd.Series(
        [m // int(n) if n else None for m, n in zip(out["margin_pico"], out["customers"])], index=out.index, dtype=object
    )
    out["period"] = period.whole_months().label()
    return out[columns].reset_index(drop=True)


def cohort_table(store: Store, period: Period, fx: FxTable | None) -> pd.DataFrame:
    """Signup cohort x calendar month over the period's months.

    Columns: cohort, month, months_since_signup, active_customers (revenue or usage in the month),
    revenue_pico, ai_cost_pico, margin_pico, margin_pct."""
    period = period.whole_months()
    monthly = monthly_customer_margins(store, fx, period.first_month, period.last_month)
    columns = ["cohort", "month", "months_since_signup", "active_customers", "revenue_pico", "ai_cost_pico", "margin_pico", "margin_pct"]
    monthly = monthly[monthly["customer_id"] != UNATTRIBUTED]
    if monthly.empty:
        return pd.DataFrame(columns=columns)
    attributes = customer_attributes(store)[["customer_id", "signup_date"]]
    monthly = monthly.merge(attributes, on="customer_id", how="left").assign(one=1)
    monthly["cohort"] = _cohort(monthly["signup_date"])
    out = group_sum(monthly, ["cohort", "month"], ["one", "revenue_pico", "ai_cost_pico"]).rename(columns={"one": "active_customers"})
    out = _ratios(out)
    out["months_since_signup"] = [
        None if c == UNKNOWN else (int(m[:4]) - int(c[:4])) * 12 + int(m[5:7]) - int(c[5:7]) for c, m in zip(out["cohort"], out["month"])
    ]
    return out[columns].reset_index(drop=True)


def _nearest_rank(ordered: list, share: Decimal) -> object:
    rank = int((share * len(ordered) / 100).to_integral_value(rounding="ROUND_CEILING"))
    return ordered[max(1, min(len(ordered), rank)) - 1]


def margin_distribution(
    store: Store,
    period: Period,
    fx: FxTable | None,
    *,
    by: str | None = None,
    percentiles: Sequence[int] = (10, 25, 50, 75, 90),
) -> pd.DataFrame:
    """Percentiles of margin ($ and %) across paying customers, overall or per plan.

    Columns: [plan], period, percentile, customers, margin_pico, margin_pct."""
    if by not in (None, "plan"):
        raise InputError("margin distribution is overall or by plan")
    margins = customer_margins(store, period, fx, include_unattributed=False, with_history=False)
    return margin_distribution_of(margins, period.whole_months().label(), by=by, percentiles=percentiles)


def margin_distribution_of(
    margins: pd.DataFrame, label: str, *, by: str | None = None, percentiles: Sequence[int] = (10, 25, 50, 75, 90)
) -> pd.DataFrame:
    """`margin_distribution` of a `customer_margins` frame already read (e.g. filtered by plan on
    a page); `label` fills the period column. Paying customers are those with revenue > 0 (the
    unattributed bucket never has revenue)."""
    if by not in (None, "plan"):
        raise InputError("margin distribution is overall or by plan")
    keys = [by] if by else []
    columns = [*keys, "period", "percentile", "customers", "margin_pico", "margin_pct"]
    paying = margins[[int(v) > 0 for v in margins["revenue_pico"].tolist()]] if not margins.empty else margins
    rows = []
    groups = paying.groupby(by, sort=True) if by else [(None, paying)]
    for name, group in groups:
        if group.empty:
            continue
        dollars = sorted(int(v) for v in group["margin_pico"].tolist())
        percents = sorted(group["margin_pct"].tolist())
        for p in percentiles:
            share = Decimal(p)
            rows.append({**({by: name} if by else {}), "period": label, "percentile": int(p),
                         "customers": len(group), "margin_pico": _nearest_rank(dollars, share), "margin_pct": _nearest_rank(percents, share)})
    frame = pd.DataFrame(rows, columns=columns)
    frame["margin_pico"] = frame["margin_pico"].astype(object)
    return frame
