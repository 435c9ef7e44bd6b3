"""A plain per-customer Python implementation of the engine, one month at a time.

It follows the rules stated in `walleta.simulator.engine` line by line with Python integers
and Fractions, with no numpy. It exists to check the vectorised engine (tests compare the two on
generated books) and as the baseline of `bench/simulator.py`. It is much slower; do not use it
for real books.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable

import pandas as pd

from .credits import MICRO, burn_micro_scalar, run_ledger_scalar
from .engine import Money, UsageData, _days_in  # noqa: PLC2701 - shared helper
from .plans import Plan, Scenario, matches
from .tiers import meter_amount

__all__ = ["CustomerMonth", "evaluate_customer", "simulate_reference"]

PICO = 10**12


@dataclass
class CustomerMonth:
    """One customer's usage in one month (month_index: position in the simulated months)."""

    month_index: int
    measures: dict[str, int]
    seats: int | None
    days: int
    detail: dict[str, list[tuple[str, tuple[int, int, int, int, int]]]]


def _half_up(value: Fraction) -> int:
    return (value.numerator * 2 + value.denominator) // (2 * value.denominator)


def _half_even(value: Fraction) -> int:
    quotient, remainder = divmod(value.numerator, value.denominator)
    twice = 2 * remainder
    if twice > value.denominator or (twice == value.denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _burn(plan: Plan, cm: CustomerMonth) -> int:
    credits = plan.credits
    assert credits is not None
    if credits.burn_by == "total":
        m = cm.measures
        q = (m["input_tokens"] - m["cached_input_tokens"], m["cached_input_tokens"], m["output_tokens"], m["requests"], m["cost_pico"])
        return burn_micro_scalar(q, credits.burn[0], credits.credit_value_usd)
    total = 0
    for name, q in cm.detail.get(credits.burn_by, []):
        rule = next((r for r in credits.burn if matches(r.match, name)), None)
        if rule is not None:
            total += burn_micro_scalar(q, rule, credits.credit_value_usd)
    return total


def _charges(plan: Plan, m: dict[str, int], seats: int, money: Money, credit_revenue: int) -> int:
    exp = money.exponent
    total = int(plan.base_fee.scaleb(exp))
    if plan.seats is not None:
        total += max(seats - plan.seats.included, 0) * int(plan.seats.price.scaleb(exp))
    if plan.allocation is not None:
        a = plan.allocation
        over = max(m[a.measure] - a.included * (seats if a.per_seat else 1), 0)
        total += _half_up(over * Fraction(a.overage_per_1m) * 10**exp / 10**6)
    for meter in plan.meters:
        total += meter_amount(m[meter.measure], meter)
    if plan.payg is not None:
        if plan.payg.markup_pct is not None:
            total += _half_up(m["cost_pico"] * (1 + Fraction(plan.payg.markup_pct) / 100) * money.pico_ratio())
        classes = {"input": "uncached_input_tokens", "cached_input": "cached_input_tokens", "output": "output_tokens"}
        for cls, price in plan.payg.per_1m.items():
            total += _half_up(m[classes[cls]] * Fraction(price) * 10**exp / 10**6)
    return total + credit_revenue


def evaluate_customer(plan: Plan, months: list[CustomerMonth], month_count: int, money: Money) -> list[dict[str, Any]]:
    """One customer on one plan: per active month, revenue (minor), served cost, cap facts."""
    seat_default = plan.seats.default_seats if plan.seats is not None else 1
    rows = []
    for cm in months:
        m = dict(cm.measures)
        m["tokens"] = m["input_tokens"] + m["output_tokens"]
        m["uncached_input_tokens"] = m["input_tokens"] - m["cached_input_tokens"]
        seats = cm.seats if cm.seats is not None else seat_default
        m["seats"] = seats
        rows.append({"cm": cm, "m": m, "seats": seats, "share": Fraction(1), "capped": False})
    burns = [_burn(plan, row["cm"]) if plan.credits is not None else 0 for row in rows]
    grants = [
        (plan.credits.included * MICRO * (row["seats"] if plan.credits.included_per_seat else 1)) if plan.credits is not None else 0
        for row in rows
    ]

    def grid(values: list[int]) -> list[int]:
        out = [0] * month_count
        for row, value in zip(rows, values):
            out[row["cm"].month_index] = value
        return out

    if plan.cap is not None:
        for row in rows:
            usage = row["m"]["cost_pico"] if plan.cap.measure == "ai_cost_usd" else row["m"][plan.cap.measure]
            each = int(plan.cap.limit * PICO) if plan.cap.measure == "ai_cost_usd" else int(plan.cap.limit)
            limit = each * (row["seats"] if plan.cap.per_seat else 1)
            if usage > limit:
                row["capped"], row["num"], row["den"] = True, limit, usage
    block = None
    if plan.credits is not None and plan.credits.on_exhausted == "block":
        block = run_ledger_scalar(plan.credits, grid(burns), grid(grants), money.exponent)
        for row, burn in zip(rows, burns):
            short = block["shortfall"][row["cm"].month_index]
            if short > 0:
                row["capped"], row["num"], row["den"] = True, burn - short, burn
    for row in rows:
        if row["capped"]:
            share = Fraction(row["num"], row["den"])
            served = {k: (v if k == "seats" else int(v * share)) for k, v in row["m"].items()}
            served["cost_pico"] = _half_even(row["m"]["cost_pico"] * share)
            row["served"] = served
            row["cap_day"] = max(_ceil(row["cm"].days * share), 1)
        else:
            row["served"], row["cap_day"] = row["m"], 0

    def totals(use_served: bool) -> list[int]:
        credit_revenue = [0] * len(rows)
        if plan.credits is not None:
            ledger = block
            if plan.credits.on_exhausted != "block":
                values = [
                    _ceil(b * Fraction(row["num"], row["den"])) if (use_served and row["capped"]) else b
                    for row, b in zip(rows, burns)
                ]
                ledger = run_ledger_scalar(plan.credits, grid(values), grid(grants), money.exponent)
            assert ledger is not None
            credit_revenue = [ledger["revenue_minor"][row["cm"].month_index] for row in rows]
        subtotal = [
            _charges(plan, row["served"] if use_served else row["m"], row["seats"], money, cr)
            for row, cr in zip(rows, credit_revenue)
        ]
        return [s + t for s, t in zip(subtotal, _true_up(plan, rows, subtotal, month_count, money))]

    served_total = totals(True)
    full_total = totals(False) if any(row["capped"] for row in rows) else served_total
    return [
        {
            "month_index": row["cm"].month_index,
            "revenue_minor": s,
            "cost_pico": row["served"]["cost_pico"],
            "capped": row["capped"],
            "cap_day": row["cap_day"],
            "revenue_lost_minor": max(f - s, 0),
        }
        for row, s, f in zip(rows, served_total, full_total)
    ]


def _true_up(plan: Plan, rows: list[dict[str, Any]], subtotal: list[int], month_count: int, money: Money) -> list[int]:
    result = [0] * len(rows)
    if plan.minimum is None:
        return result
    period = plan.minimum.period_months
    commit = int(plan.minimum.amount.scaleb(money.exponent))
    windows: dict[int, list[int]] = {}
    for position, row in enumerate(rows):
        windows.setdefault(row["cm"].month_index // period, []).append(position)
    for members in windows.values():
        due = _half_up(Fraction(commit * len(members), period))
        result[members[-1]] = max(due - sum(subtotal[i] for i in members), 0)
    return result


def _customer_months(data: UsageData) -> tuple[list[str], dict[str, list[CustomerMonth]], dict[str, str]]:
    cells = data.cells.sort_values(["customer_id", "month"], kind="stable")
    months = list(data.months) if data.months else sorted(set(cells["month"].astype(str)))
    position = {m: i for i, m in enumerate(months)}
    detail: dict[tuple[str, str], dict[str, list[tuple[str, tuple[int, int, int, int, int]]]]] = {}
    for kind, frame in (("model", data.by_model), ("feature", data.by_feature)):
        if frame is None:
            continue
        for row in frame.itertuples(index=False):
            q = (int(row.input_tokens) - int(row.cached_input_tokens), int(row.cached_input_tokens), int(row.output_tokens), int(row.requests), int(row.cost_pico))
            detail.setdefault((str(row.customer_id), str(row.month)), {}).setdefault(kind, []).append((str(getattr(row, kind)), q))
    per_customer: dict[str, list[CustomerMonth]] = {}
    current: dict[str, str] = {}
    days = _days_in(cells["month"].astype(str).to_numpy(dtype=object))
    names = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico")
    for i, row in enumerate(cells.to_dict("records")):
        customer, month = str(row["customer_id"]), str(row["month"])
        seats = row.get("seats")
        cm = CustomerMonth(
            month_index=position[month],
            measures={n: int(row.get(n, 0) or 0) for n in names},
            seats=None if seats is None or pd.isna(seats) else int(seats),
            days=int(row["days_in_month"]) if "days_in_month" in row else int(days[i]),
            detail=detail.get((customer, month), {}),
        )
        per_customer.setdefault(customer, []).append(cm)
        current.setdefault(customer, str(row.get("current_plan", "") or ""))
    return months, per_customer, current


def simulate_reference(scenario: Scenario, data: UsageData, money: Money, plans: Iterable[Plan] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """Every customer-month under its assigned plan: {(customer, month): {plan, revenue_minor,
    cost_pico, capped, cap_day, revenue_lost_minor}}. Assignment by current plan, single, or
    cheapest (rules are not needed by the checks and are not reproduced here)."""
    months, per_customer, current = _customer_months(data)
    names = [p.name for p in scenario.plans]
    method = scenario.assignment.method
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for customer, cms in per_customer.items():
        if method == "cheapest":
            candidates = [scenario.plan(c) for c in scenario.assignment.candidates] or list(scenario.plans)
            best = None
            for plan in candidates:
                rows = evaluate_customer(plan, cms, len(months), money)
                total = sum(_half_even(Fraction(r["revenue_minor"]) * Fraction(money.usd_per_unit) * PICO / 10**money.exponent) for r in rows)
                key = (any(r["capped"] for r in rows), total)
                if best is None or key < best[0]:
                    best = (key, plan, rows)
            assert best is not None
            plan, rows = best[1], best[2]
        else:
            if method == "single":
                chosen = scenario.assignment.default or names[0]
            else:
                now = current[customer]
                chosen = scenario.assignment.map.get(now) or (now if now in names else None) or scenario.assignment.default or names[0]
            plan = scenario.plan(chosen)
            rows = evaluate_customer(plan, cms, len(months), money)
        for row in rows:
            result[(customer, months[row["month_index"]])] = {"plan": plan.name, **{k: v for k, v in row.items() if k != "month_index"}}
    return result
