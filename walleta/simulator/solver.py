"""Solvers: the price that reaches a target gross margin, break-even, and margin-vs-price curves.

A *knob* is one number of one plan, named by a path: `base_fee`, `seats.price`,
`allocation.overage_per_1m`, `allocation.included`, `payg.markup_pct`, `payg.per_1m.output`,
`credits.pack.price`, `credits.price_per_credit`, `credits.overage_per_credit`,
`credits.included`, `credits.burn[0].per_1k.output`, `meters[0].unit_amount_decimal`,
`meters[0].tiers[1].unit_amount_decimal`, `meters[0].tiers[0].flat_amount`, `minimum.amount`.

Criteria, for the customers assigned to the plan (the assignment is computed once at today's
plan values and then held fixed, so a price change never moves a customer):

- book: total margin / total revenue >= target, i.e. revenue x (1 - target) >= AI cost;
- q-customer (median q=0.5, p90 q=0.9, p95 q=0.95): at least ceil(q x customers) customers
  reach the target on their own margin over the simulated months (a customer with neither
  revenue nor cost counts as reaching it). For a flat fee this is the price at which the
  customer at the q-th quantile of AI cost reaches the target;
- break-even: the book criterion with target 0.

Revenue never falls as a price knob rises (and never rises as an allocation grows), and AI cost
does not depend on prices, so each criterion is monotone in the knob. The solver searches the
grid of multiples of `step` (one cent for money knobs in major units; 1e-6 of a minor unit for
Stripe per-unit amounts; 1 for counts) by doubling then bisection, and returns the smallest
value that meets the criterion (the largest, for allocations): one step less does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from math import ceil
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..fx import FxTable
from ._num import exact_sums_by, ratio
from .engine import Book, Money, UsageData, assign_plans, evaluate_plan, money_for, prepare
from .plans import Plan, PlanError, Scenario

__all__ = ["Knob", "knob_for", "default_knob", "get_value", "with_value", "Solver", "Solution", "solve", "margin_curve", "QUANTILES"]

QUANTILES = {"median": Decimal("0.5"), "p90": Decimal("0.9"), "p95": Decimal("0.95")}
_STEP = re.compile(r"([a-z_0-9]+)(?:\[(\d+)\])?$")
_MAJOR_MONEY = {"base_fee", "seats.price", "minimum.amount", "credits.pack.price"}
_MAJOR_PRICE = {"allocation.overage_per_1m", "credits.price_per_credit", "credits.overage_per_credit"}
_DECREASING = {"allocation.included", "credits.included"}
_LIMIT = Decimal(10) ** 12  # no knob is searched beyond this value


@dataclass(frozen=True)
class Knob:
    """A plan number the solver may move: where it is, its grid step and its direction."""

    plan: str
    path: str
    step: Decimal
    increasing: bool  # True: revenue never falls as the value rises
    integer: bool = False


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)


def knob_for(plan: Plan, path: str, step: Decimal | None = None, exponent: int = 2) -> Knob:
    """Describe the knob at `path` of `plan` (PlanError when it is not a knob). `exponent`: the
    currency's minor-unit digits (fixed amounts move in whole minor units)."""
    value = get_value(plan, path)  # validates the path
    generic = _generic(path)
    if generic in _MAJOR_MONEY:
        default, integer = Decimal(1).scaleb(-exponent), False
    elif generic in _MAJOR_PRICE or generic.startswith("payg.per_1m.") or generic == "payg.markup_pct":
        default, integer = Decimal("0.01"), False
    elif generic in ("meters.unit_amount_decimal", "meters.tiers.unit_amount_decimal"):
        default, integer = Decimal("0.000001"), False
    elif generic == "meters.tiers.flat_amount":
        default, integer = Decimal(1), False
    elif generic in _DECREASING:
        default, integer = Decimal(1), True
    elif generic.startswith("credits.burn.per_1k.") or generic in ("credits.burn.per_request", "credits.burn.cost_multiplier"):
        default, integer = Decimal("0.0001"), False
    else:
        raise PlanError(f"{plan.name}.{path}", "is not a price the solver can move")
    if value is None:
        raise PlanError(f"{plan.name}.{path}", "is not set in this plan")
    return Knob(plan=plan.name, path=path, step=step or default, increasing=generic not in _DECREASING, integer=integer)


def default_knob(plan: Plan) -> str:
    """The plan's main price: base fee, markup, credit pack or credit price, seat price, overage,
    first paid tier, list price (in that order of preference)."""
    if plan.payg is not None and plan.payg.markup_pct is not None:
        return "payg.markup_pct"
    if plan.base_fee > 0 or not (plan.credits or plan.allocation or plan.meters or plan.seats or plan.payg):
        return "base_fee"
    if plan.credits is not None and plan.credits.pack is not None:
        return "credits.pack.price"
    if plan.credits is not None and plan.credits.price_per_credit is not None:
        return "credits.price_per_credit"
    if plan.seats is not None:
        return "seats.price"
    if plan.allocation is not None:
        return "allocation.overage_per_1m"
    if plan.meters:
        meter = plan.meters[0]
        if meter.billing_scheme == "per_unit":
            return "meters[0].unit_amount_decimal"
        paid = next((i for i, t in enumerate(meter.tiers) if t.unit_amount_decimal > 0), len(meter.tiers) - 1)
        return f"meters[0].tiers[{paid}].unit_amount_decimal"
    if plan.payg is not None and plan.payg.per_1m:
        return f"payg.per_1m.{next(iter(plan.payg.per_1m))}"
    return "base_fee"


def _walk(obj: Any, parts: list[str], where: str) -> tuple[Any, str | int]:
    """Follow all but the last path part; returns (container, last key)."""
    for part in parts[:-1]:
        obj = _child(obj, part, where)
    return obj, parts[-1]


def _child(obj: Any, part: str, where: str) -> Any:
    match = _STEP.match(part)
    if not match:
        raise PlanError(where, f"cannot read {part!r}")
    name, index = match.group(1), match.group(2)
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, _MISSING)
    if value is _MISSING or value is None:
        raise PlanError(where, f"the plan has no {name}")
    if index is not None:
        try:
            value = value[int(index)]
        except (IndexError, TypeError) as exc:
            raise PlanError(where, f"{name} has no item {index}") from exc
    return value


_MISSING = object()


def get_value(plan: Plan, path: str) -> Any:
    """The value at a knob path of a plan."""
    parts = path.split(".")
    container, last = _walk(plan, parts, f"{plan.name}.{path}")
    return _child(container, str(last), f"{plan.name}.{path}")


def _set(obj: Any, parts: list[str], value: Any, where: str) -> Any:
    match = _STEP.match(parts[0])
    if not match:
        raise PlanError(where, f"cannot set {parts[0]!r}")
    name, index = match.group(1), match.group(2)
    if isinstance(obj, dict):
        current = obj.get(name)
    else:
        current = getattr(obj, name)
    if index is not None:
        items = list(current)
        items[int(index)] = value if len(parts) == 1 else _set(items[int(index)], parts[1:], value, where)
        new = tuple(items)
    else:
        new = value if len(parts) == 1 else _set(current, parts[1:], value, where)
    if isinstance(obj, dict):
        return {**obj, name: new}
    return replace(obj, **{name: new})


def with_value(plan: Plan, path: str, value: Decimal | int) -> Plan:
    """A copy of the plan with the knob at `path` set to `value`."""
    get_value(plan, path)
    generic = _generic(path)
    stored: Decimal | int = int(value) if generic in _DECREASING else Decimal(value)
    return _set(plan, path.split("."), stored, f"{plan.name}.{path}")


# ---------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """One knob value's outcome on the plan's customers."""

    value: Decimal
    revenue_pico: int
    cost_pico: int
    customer_revenue: np.ndarray  # Python ints
    customer_cost: np.ndarray


class Solver:
    """Evaluates one plan knob on the plan's customers (assignment held fixed)."""

    def __init__(self, scenario: Scenario, data: UsageData | Book, plan: str, path: str | None = None, *, fx: FxTable | None = None, step: Decimal | None = None) -> None:
        self.book = data if isinstance(data, Book) else prepare(data)
        self.scenario = scenario
        self.money: Money = money_for(scenario.currency, fx)
        self.plan = scenario.plan(plan)
        self.knob = knob_for(self.plan, path or default_knob(self.plan), step, self.money.exponent)
        names = [p.name for p in scenario.plans]
        choice, _ = assign_plans(scenario, self.book, self.money)
        self.cells = np.flatnonzero(choice[self.book.cust] == names.index(plan))
        local, self.local_cust = np.unique(self.book.cust[self.cells], return_inverse=True)
        self.customers = len(local)
        self._cache: dict[Decimal, Evaluation] = {}

    @property
    def current(self) -> Decimal:
        """Today's value of the knob in the plan file."""
        return Decimal(get_value(self.plan, self.knob.path))

    def evaluate(self, value: Decimal) -> Evaluation:
        """Revenue and AI cost of the plan's customers with the knob at `value`."""
        if value not in self._cache:
            plan = with_value(self.plan, self.knob.path, value)
            outcome = evaluate_plan(plan, self.book, self.cells, self.money)
            revenue = self.money.to_pico(outcome.revenue_minor)
            per_revenue = np.array(exact_sums_by(revenue, self.local_cust, self.customers), dtype=object)
            per_cost = np.array(exact_sums_by(outcome.cost_pico, self.local_cust, self.customers), dtype=object)
            self._cache[value] = Evaluation(value, int(per_revenue.sum()), int(per_cost.sum()), per_revenue, per_cost)
        return self._cache[value]

    def meets(self, value: Decimal, target: Decimal, quantile: Decimal | None) -> bool:
        """True when the knob at `value` reaches `target` for the book (quantile None) or for
        at least ceil(quantile x customers) customers."""
        ev = self.evaluate(value)
        num, den = ratio(1 - target)
        if quantile is None:
            return ev.revenue_pico * num >= ev.cost_pico * den and (ev.revenue_pico > 0 or ev.cost_pico == 0)
        reached = int(np.count_nonzero(ev.customer_revenue * num >= ev.customer_cost * den))
        return reached >= ceil(quantile * self.customers)

    def _value(self, k: int) -> Decimal:
        return Decimal(k) * self.knob.step

    def search(self, target: Decimal, quantile: Decimal | None = None) -> tuple[Decimal | None, str]:
        """The grid value that just reaches the target; (None, reason) when none does."""
        ok: Callable[[int], bool] = lambda k: self.meets(self._value(k), target, quantile)  # noqa: E731
        start = max(int(self.current / self.knob.step), 1)
        limit = int(_LIMIT / self.knob.step)
        if self.knob.increasing:
            if ok(0):
                return Decimal(0), "reached at 0"
            lo, hi = 0, start
            while not ok(hi):  # double until reached; invariant: not ok(lo)
                if hi > limit:
                    return None, "not reachable by this price (AI cost too high at any price, or revenue does not depend on it)"
                lo, hi = hi, hi * 2
            while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
                mid = (lo + hi) // 2
                if ok(mid):
                    hi = mid
                else:
                    lo = mid
            return self._value(hi), "ok"
        if not ok(0):
            return None, "not reachable even with nothing included"
        hi = start
        while ok(hi):
            if hi > limit:
                return None, "the target is met however much is included"
            hi *= 2
        lo = 0
        while hi - lo > 1:  # invariant: ok(lo), not ok(hi)
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return self._value(lo), "ok"


@dataclass
class Solution:
    """Solver answers for one plan knob: one row per criterion."""

    plan: str
    path: str
    current: Decimal
    target: Decimal
    table: pd.DataFrame  # criterion, target, value, note


def solve(scenario: Scenario, data: UsageData | Book, plan: str, path: str | None = None, *, target: Decimal, fx: FxTable | None = None, step: Decimal | None = None) -> Solution:
    """Price for `target` margin for the book, the median, p90 and p95 customer, and break-even."""
    solver = Solver(scenario, data, plan, path, fx=fx, step=step)
    rows = []
    for label, quantile, goal in [("book", None, target), *[(f"{k} customer", q, target) for k, q in QUANTILES.items()], ("break-even", None, Decimal(0))]:
        value, note = solver.search(goal, quantile)
        rows.append({"criterion": label, "target_margin": goal, "value": value, "note": note})
    return Solution(plan=plan, path=solver.knob.path, current=solver.current, target=target, table=pd.DataFrame(rows))


def _customer_margin_at(ev: Evaluation, quantile: Decimal) -> Decimal | None:
    """The margin reached by at least ceil(q x customers) customers (None: below -100%/no revenue)."""
    margins = []
    for revenue, cost in zip(ev.customer_revenue, ev.customer_cost):
        if revenue > 0:
            margins.append(Decimal(int(revenue - cost)) / Decimal(int(revenue)))
        else:
            margins.append(Decimal("Infinity") if cost == 0 else Decimal("-Infinity"))
    if not margins:
        return None
    margins.sort(reverse=True)
    chosen = margins[max(ceil(quantile * len(margins)) - 1, 0)]
    return chosen.quantize(Decimal("0.0001")) if chosen.is_finite() else None


def margin_curve(scenario: Scenario, data: UsageData | Book, plan: str, path: str | None = None, *, values: list[Decimal] | None = None, points: int = 21, fx: FxTable | None = None, target: Decimal | None = None) -> pd.DataFrame:
    """Margin against the knob's value: book margin and the margin the median, p90 and p95
    customer reach, at `points` values from 0 to twice today's value (or the given values)."""
    solver = Solver(scenario, data, plan, path, fx=fx)
    if values is None:
        top = max(solver.current * 2, solver.knob.step * (points - 1))
        values = [(top * i / (points - 1)).quantize(solver.knob.step) for i in range(points)]
    rows = []
    for value in values:
        ev = solver.evaluate(Decimal(value))
        row: dict[str, Any] = {
            "value": Decimal(value),
            "revenue_pico": ev.revenue_pico,
            "ai_cost_pico": ev.cost_pico,
            "margin_pct": None if ev.revenue_pico == 0 else (Decimal(ev.revenue_pico - ev.cost_pico) / ev.revenue_pico).quantize(Decimal("0.0001")),
        }
        for label, quantile in QUANTILES.items():
            row[f"{label}_customer_margin_pct"] = _customer_margin_at(ev, quantile)
        if target is not None:
            num, den = ratio(1 - target)
            reached = int(np.count_nonzero(ev.customer_revenue * num >= ev.customer_cost * den))
            row["customers_at_target_pct"] = (Decimal(reached) / max(solver.customers, 1)).quantize(Decimal("0.0001"))
        rows.append(row)
    return pd.DataFrame(rows)
