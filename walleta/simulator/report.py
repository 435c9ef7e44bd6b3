"""Presentation of simulator results: display tables and CSV frames (money rounded here, once).

Machine columns name their unit: `*_usd` are US dollars with cents (rounded half-even from
exact pico-dollars), `*_pct` are percentages with two decimals, `*_<currency>` (for example
`true_up_usd` or `true_up_eur`) are amounts in the scenario currency.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

from ..money import PICO_PER_USD, format_usd, minor_to_major
from .engine import SimulationResult

__all__ = [
    "usd",
    "pct",
    "totals_table",
    "totals_frame",
    "customers_frame",
    "cells_frame",
    "caps_table",
    "caps_frame",
    "solution_table",
    "whatif_table",
    "whatif_frame",
    "ranges_table",
    "ranges_frame",
]

_CENT = Decimal("0.01")


def usd(pico: Any) -> Decimal | None:
    """Pico-dollars -> Decimal dollars rounded half-even to the cent (None stays None)."""
    if pico is None or (not isinstance(pico, (int, Decimal)) and pd.isna(pico)):
        return None
    return (Decimal(int(pico)) / PICO_PER_USD).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def pct(fraction: Decimal | None) -> Decimal | None:
    """A margin fraction (0.6553) -> percent with two decimals (65.53)."""
    return None if fraction is None else (fraction * 100).quantize(_CENT)


def _pct_text(fraction: Decimal | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.1f}%"


def totals_table(result: SimulationResult, against: str = "today") -> pd.DataFrame:
    """The summary table for people: one row per plan and TOTAL."""
    t = result.totals
    return pd.DataFrame(
        {
            "plan": t["plan"],
            "customers": t["customers"],
            "revenue": t["revenue_pico"].map(format_usd),
            "AI cost": t["ai_cost_pico"].map(format_usd),
            "margin": t["margin_pico"].map(format_usd),
            "margin %": t["margin_pct"].map(_pct_text),
            f"revenue {against}": t["baseline_revenue_pico"].map(format_usd),
            f"margin % {against}": t["baseline_margin_pct"].map(_pct_text),
            "revenue change": t["revenue_change_pico"].map(format_usd),
            "pay more": t["pays_more"],
            "pay less": t["pays_less"],
            "capped": t["capped_customers"],
        }
    )


def totals_frame(result: SimulationResult) -> pd.DataFrame:
    """The totals as a machine table (USD with cents, percentages)."""
    t = result.totals
    return pd.DataFrame(
        {
            "plan": t["plan"],
            "customers": t["customers"],
            "customer_months": t["customer_months"],
            "revenue_usd": t["revenue_pico"].map(usd),
            "ai_cost_usd": t["ai_cost_pico"].map(usd),
            "margin_usd": t["margin_pico"].map(usd),
            "margin_pct": t["margin_pct"].map(pct),
            "baseline_revenue_usd": t["baseline_revenue_pico"].map(usd),
            "baseline_margin_usd": t["baseline_margin_pico"].map(usd),
            "baseline_margin_pct": t["baseline_margin_pct"].map(pct),
            "revenue_change_usd": t["revenue_change_pico"].map(usd),
            "margin_change_usd": t["margin_change_pico"].map(usd),
            "pays_more": t["pays_more"],
            "pays_less": t["pays_less"],
            "capped_customers": t["capped_customers"],
            "unserved_cost_usd": t["unserved_cost_pico"].map(usd),
            "revenue_lost_usd": t["revenue_lost_pico"].map(usd),
        }
    )


def _major(values: pd.Series, currency: str) -> pd.Series:
    return values.map(lambda v: minor_to_major(int(v), currency))


def customers_frame(result: SimulationResult) -> pd.DataFrame:
    """Per-customer results for CSV."""
    c = result.customers
    cur = result.currency.lower()
    return pd.DataFrame(
        {
            "customer_id": c["customer_id"],
            "current_plan": c["current_plan"],
            "plan": c["plan"],
            "months": c["months"],
            "revenue_usd": c["revenue_pico"].map(usd),
            "ai_cost_usd": c["ai_cost_pico"].map(usd),
            "margin_usd": c["margin_pico"].map(usd),
            "margin_pct": c["margin_pct"].map(pct),
            "baseline_revenue_usd": [usd(v) if k else None for v, k in zip(c["baseline_revenue_pico"], c["baseline_known"])],
            "baseline_margin_usd": [usd(v) if k else None for v, k in zip(c["baseline_margin_pico"], c["baseline_known"])],
            "baseline_margin_pct": [pct(v) if k else None for v, k in zip(c["baseline_margin_pct"], c["baseline_known"])],
            "revenue_change_usd": [usd(v) if k else None for v, k in zip(c["revenue_change_pico"], c["baseline_known"])],
            "margin_change_usd": [usd(v) if k else None for v, k in zip(c["margin_change_pico"], c["baseline_known"])],
            "outcome": c["outcome"],
            "capped_months": c["capped_months"],
            "first_cap": c["first_cap"],
            "unserved_cost_usd": c["unserved_cost_pico"].map(usd),
            "revenue_lost_usd": c["revenue_lost_pico"].map(usd),
            f"revenue_{cur}": _major(c["revenue_minor"], result.currency),
            f"true_up_{cur}": _major(c["true_up_minor"], result.currency),
            f"breakage_{cur}": _major(c["breakage_minor"], result.currency),
        }
    )


def cells_frame(result: SimulationResult) -> pd.DataFrame:
    """Per customer-month results for CSV."""
    c = result.cells
    cur = result.currency.lower()
    frame = pd.DataFrame(
        {
            "customer_id": c["customer_id"],
            "month": c["month"],
            "current_plan": c["current_plan"],
            "plan": c["plan"],
            "revenue_usd": c["revenue_pico"].map(usd),
            "ai_cost_usd": c["ai_cost_pico"].map(usd),
            "margin_usd": c["margin_pico"].map(usd),
            "baseline_revenue_usd": [usd(v) if k else None for v, k in zip(c["baseline_revenue_pico"], c["baseline_known"])],
            "revenue_change_usd": [usd(v) if k else None for v, k in zip(c["revenue_change_pico"], c["baseline_known"])],
            "capped": c["capped"],
            "cap_day": c["cap_day"],
            "unserved_cost_usd": c["unserved_cost_pico"].map(usd),
            "revenue_lost_usd": c["revenue_lost_pico"].map(usd),
            "tokens": c["tokens"],
            "requests": c["requests"],
        }
    )
    for name in ("fee", "seats", "allocation", "meters", "payg", "credits", "true_up"):
        frame[f"{name}_{cur}"] = _major(c[f"{name}_minor"], result.currency)
    frame["credits_burned"] = c["credits_burned_micro"].map(lambda v: Decimal(int(v)) / 10**6)
    frame["credits_purchased"] = c["credits_purchased_micro"].map(lambda v: Decimal(int(v)) / 10**6)
    frame["credits_expired"] = (c["credits_expired_included_micro"] + c["credits_expired_purchased_micro"]).map(lambda v: Decimal(int(v)) / 10**6)
    return frame


def caps_table(result: SimulationResult, limit: int = 10) -> pd.DataFrame:
    """Customers who hit a hard cap, most unserved cost first: when and what it cost them."""
    c = result.customers
    hit = c[c["capped_months"] > 0].sort_values(["unserved_cost_pico", "customer_id"], ascending=[False, True]).head(limit)
    return pd.DataFrame(
        {
            "customer": hit["customer_id"],
            "plan": hit["plan"],
            "months capped": hit["capped_months"],
            "first hit": hit["first_cap"],
            "cost saved": hit["unserved_cost_pico"].map(format_usd),
            "revenue lost": hit["revenue_lost_pico"].map(format_usd),
        }
    )


def solution_table(solutions: list[Any]) -> tuple[pd.DataFrame, list[str]]:
    """Solver answers, one row per plan price (today's value and the value per criterion), and
    footnotes saying why a criterion has no value."""
    rows, notes = [], []
    for s in solutions:
        row: dict[str, Any] = {"plan": s.plan, "price": s.path, "today": s.current}
        reasons = set()
        for record in s.table.to_dict("records"):
            label = "book" if record["criterion"] == "book" else record["criterion"].replace(" customer", "")
            row[label] = record["value"] if record["value"] is not None else "n/a"
            if record["value"] is None:
                reasons.add(record["note"])
        rows.append(row)
        notes.extend(f"{s.plan}.{s.path}: {reason}" for reason in sorted(reasons))
    return pd.DataFrame(rows), notes


def whatif_table(summary: pd.DataFrame) -> pd.DataFrame:
    """What-if summary for people."""
    return pd.DataFrame(
        {
            "what if": summary["what_if"],
            "AI cost change": summary["cost_delta_pico"].map(format_usd),
            "AI cost after": summary["cost_after_pico"].map(format_usd),
            "margin % today": summary["margin_before_pct"].map(_pct_text),
            "margin % after": summary["margin_after_pct"].map(_pct_text),
            "customers affected": summary["customers_affected"],
        }
    )


def ranges_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap intervals for people."""
    def show(measure: str, value: Any) -> str:
        return _pct_text(value) if measure == "margin_pct" else format_usd(value)

    names = {"revenue_pico": "revenue", "ai_cost_pico": "AI cost", "margin_pico": "margin", "margin_pct": "margin %", "delta_pico": "AI cost change"}
    return pd.DataFrame(
        {
            "measure": frame["measure"].map(lambda m: names.get(m, m)),
            "estimate": [show(m, v) for m, v in zip(frame["measure"], frame["estimate"])],
            "low": [show(m, v) for m, v in zip(frame["measure"], frame["low"])],
            "high": [show(m, v) for m, v in zip(frame["measure"], frame["high"])],
        }
    )


def caps_frame(result: SimulationResult) -> pd.DataFrame:
    """Customers who hit a hard cap, as a machine table."""
    c = result.customers
    hit = c[c["capped_months"] > 0].sort_values(["unserved_cost_pico", "customer_id"], ascending=[False, True])
    return pd.DataFrame(
        {
            "customer_id": hit["customer_id"],
            "plan": hit["plan"],
            "capped_months": hit["capped_months"],
            "first_cap": hit["first_cap"],
            "unserved_cost_usd": hit["unserved_cost_pico"].map(usd),
            "revenue_lost_usd": hit["revenue_lost_pico"].map(usd),
        }
    )


def whatif_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """What-if summary as a machine table."""
    return pd.DataFrame(
        {
            "what_if": summary["what_if"],
            "ai_cost_before_usd": summary["cost_before_pico"].map(usd),
            "ai_cost_change_usd": summary["cost_delta_pico"].map(usd),
            "ai_cost_after_usd": summary["cost_after_pico"].map(usd),
            "margin_before_pct": summary["margin_before_pct"].map(pct),
            "margin_after_pct": summary["margin_after_pct"].map(pct),
            "customers_affected": summary["customers_affected"],
        }
    )


def ranges_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap intervals as a machine table (`*_usd` amounts, `margin_pct` in percent)."""
    names = {"revenue_pico": "revenue_usd", "ai_cost_pico": "ai_cost_usd", "margin_pico": "margin_usd", "margin_pct": "margin_pct", "delta_pico": "ai_cost_change_usd"}

    def value(measure: str, v: Any) -> Any:
        return pct(v) if measure == "margin_pct" else usd(v)

    return pd.DataFrame(
        {
            "measure": frame["measure"].map(lambda m: names.get(m, m)),
            "estimate": [value(m, v) for m, v in zip(frame["measure"], frame["estimate"])],
            "low": [value(m, v) for m, v in zip(frame["measure"], frame["low"])],
            "high": [value(m, v) for m, v in zip(frame["measure"], frame["high"])],
            "level": frame["level"],
        }
    )
