"""The simulation engine: real monthly usage x a pricing scenario -> revenue, AI cost and margin.

Pure and vectorised: frames in, frames out. Input is a `UsageData` (one row per active customer
per month, plus optional usage by model and by feature for credit burn rules); `load_usage`
in `walleta.simulator.loader` builds one from a Store, tests and benches build them directly.

Per plan and customer-month, in this order:

1. Hard cap. With a `cap`, usage u of the capped measure beyond the month's limit L is not
   served: the month is served in the proportion L / u (every measure, the AI cost and the
   credit burn alike: the month's mix is assumed uniform). Credits with `on_exhausted: block`
   cap the same way at balance / burn. Cost saved = cost - served cost; the day the cap is hit
   is estimated from the month's pace: ceil(days_in_month x L / u).
2. Charges on served usage, each one line rounded once to the minor unit (halves up): base fee;
   seats beyond the included ones; allocation overage (units beyond the included allocation x
   price per 1M); each metered Stripe price (`tiers`); pay-as-you-go (AI cost x (1 + markup),
   and list prices per 1M tokens by class, one line per class); credit top-ups or overage.
3. Minimum commitment: per customer and window of `period_months` months (windows aligned on
   the first simulated month), the commitment pro rata to the customer's active months in the
   window, minus the window's charges, if positive, is added as true-up to the window's last
   active month.
4. Revenue lost to the cap: charges on the full usage minus charges on the served usage.

Revenue is computed in the scenario's currency (minor units) and converted to USD pico-dollars
with the FX table (half-even), so it can be set against AI cost (pico-dollars) and today's
revenue. Margin = revenue - AI cost of the served usage.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Callable

import numpy as np
import pandas as pd

from ..fx import FxTable
from ..money import minor_unit_exponent
from ._num import DOWN, HALF_EVEN, HALF_UP, UP, _round_div, exact_sums_by, mul_div, ratio, scale_by
from .credits import MICRO, burn_micro_array, micro_credits, rule_index, run_ledger
from .plans import Credits, Plan, PlanError, Scenario
from .tiers import meter_amount_array

__all__ = [
    "UsageData",
    "Book",
    "Money",
    "PlanOutcome",
    "SimulationResult",
    "prepare",
    "money_for",
    "evaluate_plan",
    "assign_plans",
    "simulate",
    "CELL_MEASURES",
    "DETAIL_MEASURES",
    "COMPONENTS",
]

PICO = 10**12
CELL_MEASURES = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_pico")
DETAIL_MEASURES = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost_pico")
COMPONENTS = ("fee", "seats", "allocation", "meters", "payg", "credits", "true_up")
_CLASS_MEASURE = {"input": "uncached_input_tokens", "cached_input": "cached_input_tokens", "output": "output_tokens"}


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


@dataclass
class UsageData:
    """The engine's input.

    cells: one row per active customer per month: `customer_id`, `month` (YYYY-MM), and
      optionally `current_plan`, `seats` (nullable), `days_in_month`, the measures
      `requests, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_pico`
      (missing = 0), `baseline_revenue_pico` (today's revenue in USD pico-dollars; <NA> when
      unknown), `baseline_cost_pico` (default: cost_pico), `unpriced_requests`.
    by_model / by_feature: `customer_id, month, model|feature` + DETAIL_MEASURES, for credit
      burn rules by model or feature.
    months: the simulated months in order (default: those in `cells`).
    notes: facts about the data to show with the results (unpriced usage, unconverted revenue).
    """

    cells: pd.DataFrame
    by_model: pd.DataFrame | None = None
    by_feature: pd.DataFrame | None = None
    months: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Detail:
    cell: np.ndarray  # index of the cell each row belongs to
    name_code: np.ndarray
    names: list[str]
    quantities: list[np.ndarray]  # uncached input, cached input, output, requests, cost_pico


@dataclass
class Book:
    """UsageData as aligned integer arrays (cells sorted by customer, then month)."""

    customer_ids: np.ndarray  # per customer
    months: tuple[str, ...]
    cust: np.ndarray  # per cell: customer code
    month: np.ndarray  # per cell: month code
    month_text: np.ndarray
    current_plan: np.ndarray  # per customer
    measures: dict[str, np.ndarray]
    seats: np.ndarray  # -1 = unknown
    days: np.ndarray
    baseline_revenue: np.ndarray
    baseline_known: np.ndarray
    baseline_cost: np.ndarray
    detail: dict[str, _Detail] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Number of customer-month cells."""
        return len(self.cust)


def _int_column(frame: pd.DataFrame, name: str, default: int = 0) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), default, dtype=np.int64)
    return frame[name].fillna(default).to_numpy(dtype=np.int64)


def _days_in(months: np.ndarray) -> np.ndarray:
    if not len(months):
        return np.zeros(0, dtype=np.int64)
    codes, names = pd.factorize(np.asarray(months, dtype=object))
    lengths = np.array([calendar.monthrange(int(m[:4]), int(m[5:7]))[1] for m in names], dtype=np.int64)
    return lengths[codes]


def _codes(series: pd.Series, index: pd.Index) -> np.ndarray:
    """Positions of a column's values in `index` (-1 when absent), factorising first so that
    only the distinct values are looked up."""
    codes, uniques = pd.factorize(series.astype(str))
    positions = index.get_indexer(np.asarray(uniques, dtype=object))
    return np.where(codes >= 0, positions[codes], -1).astype(np.int64)


def prepare(data: UsageData) -> Book:
    """Validate and index a UsageData once, so many plans can be evaluated on it."""
    cells = data.cells
    for column in ("customer_id", "month"):
        if column not in cells.columns:
            raise PlanError("usage", f"the usage frame needs a {column!r} column")
    raw_cust, customer_ids = pd.factorize(cells["customer_id"].astype(str), sort=True)
    month_codes, month_values = pd.factorize(cells["month"].astype(str))
    present = sorted(str(m) for m in month_values)
    months = tuple(data.months) if data.months else tuple(present)
    outside = [m for m in present if m not in set(months)]
    if outside:
        raise PlanError("usage", f"month {outside[0]} is outside the simulated months")
    raw_month = pd.Index(list(months), dtype=object).get_indexer(np.asarray(month_values, dtype=object))[month_codes].astype(np.int64)
    order = np.lexsort((raw_month, raw_cust))
    cust, month = raw_cust[order].astype(np.int64), raw_month[order]
    key = cust * max(len(months), 1) + month
    if len(key) > 1 and (np.diff(key) == 0).any():
        raise PlanError("usage", "the usage frame has more than one row for a customer and month")

    def column(name: str, default: int = 0) -> np.ndarray:
        return _int_column(cells, name, default)[order]

    month_text = np.array(months, dtype=object)[month] if len(month) else np.zeros(0, dtype=object)
    measures = {m: column(m) for m in CELL_MEASURES}
    measures["tokens"] = measures["input_tokens"] + measures["output_tokens"]
    measures["uncached_input_tokens"] = measures["input_tokens"] - measures["cached_input_tokens"]
    seats = column("seats", -1)
    days = column("days_in_month") if "days_in_month" in cells.columns else _days_in(month_text)
    if "baseline_revenue_pico" in cells.columns:
        raw = cells["baseline_revenue_pico"]
        known = raw.notna().to_numpy()[order]
        baseline = raw.fillna(0).to_numpy(dtype=np.int64)[order]
    else:
        known = np.zeros(len(cells), dtype=bool)
        baseline = np.zeros(len(cells), dtype=np.int64)
    baseline_cost = column("baseline_cost_pico") if "baseline_cost_pico" in cells.columns else measures["cost_pico"].copy()
    current_plan = np.full(len(customer_ids), "", dtype=object)
    if "current_plan" in cells.columns:
        plan_codes, plan_names = pd.factorize(cells["current_plan"].fillna("").astype(str))
        plans_by_cell = np.asarray(plan_names, dtype=object)[plan_codes[order]]
        current_plan[cust[::-1]] = plans_by_cell[::-1]  # the first cell's plan per customer
    book = Book(
        customer_ids=np.asarray(customer_ids, dtype=object),
        months=months,
        cust=cust,
        month=month,
        month_text=month_text,
        current_plan=current_plan,
        measures=measures,
        seats=seats,
        days=days,
        baseline_revenue=baseline,
        baseline_known=known,
        baseline_cost=baseline_cost,
        notes=tuple(data.notes),
    )
    grid = np.full((len(customer_ids), len(months)), -1, dtype=np.int64)
    grid[book.cust, book.month] = np.arange(book.size)
    customer_index, month_index = pd.Index(book.customer_ids, dtype=object), pd.Index(list(months), dtype=object)
    for kind, frame in (("model", data.by_model), ("feature", data.by_feature)):
        if frame is not None:
            book.detail[kind] = _detail(frame, kind, grid, customer_index, month_index)
    return book


def _detail(frame: pd.DataFrame, kind: str, grid: np.ndarray, customers: pd.Index, months: pd.Index) -> _Detail:
    cust = _codes(frame["customer_id"], customers)
    month = _codes(frame["month"], months)
    inside = (cust >= 0) & (month >= 0)
    cell = np.full(len(frame), -1, dtype=np.int64)
    cell[inside] = grid[cust[inside], month[inside]]
    keep = cell >= 0
    if not keep.all():
        frame = frame[keep]
    code, names = pd.factorize(frame[kind].astype(str))
    inputs = _int_column(frame, "input_tokens")
    cached = _int_column(frame, "cached_input_tokens")
    return _Detail(
        cell=cell[keep],
        name_code=code.astype(np.int64),
        names=[str(n) for n in names],
        quantities=[inputs - cached, cached, _int_column(frame, "output_tokens"), _int_column(frame, "requests"), _int_column(frame, "cost_pico")],
    )


@dataclass(frozen=True)
class Money:
    """The scenario currency and its USD rate (USD per major unit)."""

    currency: str
    exponent: int
    usd_per_unit: Decimal

    def minor(self, amount: Decimal) -> int:
        """Major units (exact in minor units) -> integer minor units."""
        return int(amount.scaleb(self.exponent))

    def to_pico(self, minor: np.ndarray) -> np.ndarray:
        """Minor units of the currency -> USD pico-dollars (half-even), like walleta.fx."""
        num, den = ratio(Fraction(self.usd_per_unit) * PICO / 10**self.exponent)
        return mul_div(minor, num, den, HALF_EVEN)

    def pico_ratio(self) -> Fraction:
        """Minor units of the currency per USD pico-dollar."""
        return Fraction(10**self.exponent) / (Fraction(self.usd_per_unit) * PICO)


def money_for(currency: str, fx: FxTable | None) -> Money:
    """The Money context for a scenario currency (USD needs no FX table)."""
    code = currency.upper()
    if code == "USD":
        return Money(code, 2, Decimal(1))
    if fx is None or not fx.has(code):
        raise PlanError("currency", f"no exchange rate for {code}: add it to the FX table (data/fx_rates.csv)")
    return Money(code, minor_unit_exponent(code), fx.rates[code])


# ---------------------------------------------------------------------------------------------
# One plan on a set of cells
# ---------------------------------------------------------------------------------------------


@dataclass
class PlanOutcome:
    """A plan evaluated on a set of cells (arrays aligned with `cells`, a sorted index array)."""

    cells: np.ndarray
    components: dict[str, np.ndarray]  # minor units per component (COMPONENTS)
    revenue_minor: np.ndarray
    cost_pico: np.ndarray  # AI cost of the served usage
    capped: np.ndarray
    cap_day: np.ndarray  # 0 = not capped
    unserved_cost_pico: np.ndarray
    revenue_lost_minor: np.ndarray
    credits: dict[str, np.ndarray] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()


@dataclass
class _View:
    """A subset of cells with a local customer x month grid."""

    idx: np.ndarray
    cust: np.ndarray  # local customer code per cell
    month: np.ndarray
    customers: int
    months: int


def _view(book: Book, idx: np.ndarray) -> _View:
    if len(idx) == book.size:  # the whole book: customer codes are already dense
        return _View(idx=idx, cust=book.cust, month=book.month, customers=len(book.customer_ids), months=len(book.months))
    local, inverse = np.unique(book.cust[idx], return_inverse=True)
    return _View(idx=idx, cust=inverse.astype(np.int64), month=book.month[idx], customers=len(local), months=len(book.months))


def _grid(view: _View, values: np.ndarray) -> np.ndarray:
    grid = np.zeros((view.customers, view.months), dtype=np.int64)
    grid[view.cust, view.month] = values
    return grid


def _cell_burn(plan_credits: Credits, book: Book, view: _View) -> tuple[np.ndarray, tuple[str, ...]]:
    """Micro-credits burned per cell of the view (full usage), and names no rule matched."""
    n = len(view.idx)
    if plan_credits.burn_by == "total":
        m = book.measures
        q = [m["uncached_input_tokens"][view.idx], m["cached_input_tokens"][view.idx], m["output_tokens"][view.idx], m["requests"][view.idx], m["cost_pico"][view.idx]]
        return micro_credits(burn_micro_array(q, plan_credits.burn[0], plan_credits.credit_value_usd), "the credit burn"), ()
    detail = book.detail.get(plan_credits.burn_by)
    if detail is None:
        raise PlanError("credits.burn_by", f"burn by {plan_credits.burn_by} needs usage by {plan_credits.burn_by} (UsageData.by_{plan_credits.burn_by})")
    position = np.full(book.size, -1, dtype=np.int64)
    position[view.idx] = np.arange(n)
    local = position[detail.cell]
    rows = local >= 0
    rules = rule_index(detail.names, plan_credits.burn)
    row_rule = rules[detail.name_code]
    burn = np.zeros(n, dtype=np.int64)
    for r, rule in enumerate(plan_credits.burn):
        chosen = rows & (row_rule == r)
        if chosen.any():
            amounts = burn_micro_array([q[chosen] for q in detail.quantities], rule, plan_credits.credit_value_usd)
            totals = micro_credits(exact_sums_by(np.asarray(amounts), local[chosen], n), "the credit burn")
            burn = micro_credits(burn + totals, "the credit burn")  # both below LEDGER_LIMIT: the sum fits int64
    unmatched_codes = np.unique(detail.name_code[rows & (row_rule < 0)])
    return burn, tuple(detail.names[c] for c in unmatched_codes)


def _true_up(plan: Plan, view: _View, charges: np.ndarray, money: Money) -> np.ndarray:
    """Minimum-commitment true-up per cell (see the module docs)."""
    result = np.zeros(len(view.idx), dtype=np.int64)
    if plan.minimum is None:
        return result
    period = plan.minimum.period_months
    commit = money.minor(plan.minimum.amount)
    windows = -(-view.months // period)
    key = view.cust * windows + view.month // period
    slots = view.customers * windows
    sums = np.zeros(slots, dtype=np.int64)
    np.add.at(sums, key, charges.astype(np.int64))
    active = np.bincount(key, minlength=slots)
    last = np.full(slots, -1, dtype=np.int64)
    last[key] = np.arange(len(key))  # cells are in month order within a customer: the last wins
    due = mul_div(active, commit, period, HALF_UP)
    short = np.maximum(due - sums, 0)
    has = last >= 0
    result[last[has]] = short[has]
    return result


def _charges(plan: Plan, q: dict[str, np.ndarray], seats: np.ndarray, money: Money, credit_revenue: np.ndarray | None) -> dict[str, np.ndarray]:
    """Each component's charge per cell in minor units (before the minimum)."""
    n = len(seats)
    zero = np.zeros(n, dtype=np.int64)
    out = {name: zero for name in COMPONENTS}
    out["fee"] = np.full(n, money.minor(plan.base_fee), dtype=np.int64)
    if plan.seats is not None:
        out["seats"] = np.maximum(seats - plan.seats.included, 0) * money.minor(plan.seats.price)
    if plan.allocation is not None:
        a = plan.allocation
        included = a.included * (seats if a.per_seat else 1)
        over = np.maximum(q[a.measure] - included, 0)
        num, den = ratio(Fraction(a.overage_per_1m) * 10**money.exponent / 10**6)
        out["allocation"] = mul_div(over, num, den, HALF_UP)
    if plan.meters:
        total = zero
        for meter in plan.meters:
            total = total + meter_amount_array(q[meter.measure], meter)
        out["meters"] = total
    if plan.payg is not None:
        total = zero
        if plan.payg.markup_pct is not None:
            num, den = ratio((1 + Fraction(plan.payg.markup_pct) / 100) * money.pico_ratio())
            total = total + mul_div(q["cost_pico"], num, den, HALF_UP)
        for cls, price in plan.payg.per_1m.items():
            num, den = ratio(Fraction(price) * 10**money.exponent / 10**6)
            total = total + mul_div(q[_CLASS_MEASURE[cls]], num, den, HALF_UP)
        out["payg"] = total
    if credit_revenue is not None:
        out["credits"] = credit_revenue
    return out


def _served(q: dict[str, np.ndarray], capped: np.ndarray, num: np.ndarray, den: np.ndarray) -> dict[str, np.ndarray]:
    """Usage measures scaled to the served share num/den on capped cells (floored; cost half-even)."""
    if not capped.any():
        return q
    out = {}
    for name, values in q.items():
        if name == "seats":
            out[name] = values
            continue
        scaled = values.copy()
        rounding = HALF_EVEN if name == "cost_pico" else DOWN
        scaled[capped] = scale_by(values[capped], num[capped], den[capped], rounding)
        out[name] = scaled
    return out


def _cap_share(plan: Plan, q: dict[str, np.ndarray], seats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells over the plan's hard cap, and the served share num/den (limit / usage) per cell."""
    assert plan.cap is not None
    usage = q["cost_pico"] if plan.cap.measure == "ai_cost_usd" else q[plan.cap.measure]
    limit_each = int(plan.cap.limit * PICO) if plan.cap.measure == "ai_cost_usd" else int(plan.cap.limit)
    factor = seats if plan.cap.per_seat else np.ones(len(seats), dtype=np.int64)
    if usage.dtype == object:
        limit = np.array([limit_each * int(s) for s in factor], dtype=object)
    else:
        # int64 usage is never above the int64 maximum: a larger limit is the same as that maximum
        top = np.iinfo(np.int64).max
        limit_each = min(limit_each, top)
        per = np.asarray(factor, dtype=np.int64)
        over = per > (top // limit_each if limit_each else top)
        limit = np.where(over, top, np.where(over, 0, per) * limit_each)
    capped = usage > limit
    return capped, np.where(capped, limit, 1), np.where(capped, usage, 1)


def evaluate_plan(plan: Plan, book: Book, idx: np.ndarray, money: Money) -> PlanOutcome:
    """Evaluate one plan on the cells `idx` (sorted indices into the book)."""
    view = _view(book, idx)
    n = len(idx)
    whole = n == book.size  # idx is then 0..size-1: use the book's arrays as they are (never modified)
    q = {name: (values if whole else values[idx]) for name, values in book.measures.items()}
    seat_default = plan.seats.default_seats if plan.seats is not None else 1
    raw_seats = book.seats if whole else book.seats[idx]
    seats = np.where(raw_seats >= 0, raw_seats, seat_default)
    q["seats"] = seats
    days = book.days if whole else book.days[idx]
    capped = np.zeros(n, dtype=bool)
    num = np.ones(n, dtype=np.int64)
    den = np.ones(n, dtype=np.int64)
    credit_arrays: dict[str, np.ndarray] = {}
    unmatched: tuple[str, ...] = ()
    burn = grant = None
    if plan.credits is not None:
        burn, unmatched = _cell_burn(plan.credits, book, view)
        factor = seats if plan.credits.included_per_seat else np.ones(n, dtype=np.int64)
        per_cell_grant = micro_credits(factor.astype(object) * (plan.credits.included * MICRO), "the included credits")
        grant = _grid(view, per_cell_grant)
    if plan.cap is not None:
        capped, num, den = _cap_share(plan, q, seats)
    ledger = None
    if plan.credits is not None and plan.credits.on_exhausted == "block":
        ledger = run_ledger(plan.credits, _grid(view, burn), grant, money.exponent)
        shortfall = ledger.shortfall[view.cust, view.month]
        capped = shortfall > 0
        num = np.where(capped, burn - shortfall, 1)
        den = np.where(capped, burn, 1)
    cap_day = np.zeros(n, dtype=np.int64)
    if capped.any():
        cap_day[capped] = np.maximum(scale_by(days[capped], num[capped], den[capped], UP), 1)
    served = _served(q, capped, num, den)

    def charges_for(measures: dict[str, np.ndarray], scaled_burn: bool) -> tuple[dict[str, np.ndarray], object]:
        run = ledger
        if plan.credits is not None and plan.credits.on_exhausted != "block":
            cell_burn = burn
            if scaled_burn and capped.any():
                cell_burn = burn.copy()
                cell_burn[capped] = scale_by(burn[capped], num[capped], den[capped], UP)
            run = run_ledger(plan.credits, _grid(view, cell_burn), grant, money.exponent)
        credit_revenue = None if run is None else run.revenue_minor[view.cust, view.month]
        parts = _charges(plan, measures, seats, money, credit_revenue)
        subtotal = sum(parts.values())
        parts["true_up"] = _true_up(plan, view, subtotal, money)
        return parts, run

    components, ledger = charges_for(served, True)
    revenue = sum(components.values())
    lost = np.zeros(n, dtype=np.int64)
    if capped.any():
        full, _ = charges_for(q, False)
        lost = np.maximum(sum(full.values()) - revenue, 0)
    if ledger is not None:
        at = (view.cust, view.month)
        for name in ("granted", "burned", "purchased", "expired_included", "expired_purchased", "breakage_minor", "balance_end"):
            credit_arrays[name] = getattr(ledger, name)[at]
    return PlanOutcome(
        cells=idx,
        components=components,
        revenue_minor=np.asarray(revenue),
        cost_pico=served["cost_pico"],
        capped=capped,
        cap_day=cap_day,
        unserved_cost_pico=q["cost_pico"] - served["cost_pico"],
        revenue_lost_minor=lost,
        credits=credit_arrays,
        unmatched=unmatched,
    )


# ---------------------------------------------------------------------------------------------
# Assignment
# ---------------------------------------------------------------------------------------------


def _by_current_plan(scenario: Scenario, book: Book) -> np.ndarray:
    names = [p.name for p in scenario.plans]
    mapping = scenario.assignment.map
    chosen = []
    missing: set[str] = set()
    for current in book.current_plan:
        target = mapping.get(current) or (current if current in names else None) or scenario.assignment.default
        if target is None:
            missing.add(current or "(no plan)")
            target = names[0]
        chosen.append(names.index(target))
    if missing:
        raise PlanError("assignment", f"customers on {', '.join(sorted(missing))} have no plan: add assignment.map entries or assignment.default")
    return np.array(chosen, dtype=np.int64)


def _by_rule(scenario: Scenario, book: Book) -> np.ndarray:
    names = [p.name for p in scenario.plans]
    count = len(book.customer_ids)
    months_active = np.bincount(book.cust, minlength=count)
    sums = {}
    for rule in scenario.assignment.rules:
        if rule.measure and rule.measure not in sums:
            values = np.maximum(book.seats, 0) if rule.measure == "seats" else book.measures[rule.measure]
            sums[rule.measure] = np.array(exact_sums_by(values, book.cust, count), dtype=object)
    seats = np.full(count, -1, dtype=np.int64)
    seats[book.cust[::-1]] = book.seats[::-1]
    result = np.full(count, -1, dtype=np.int64)
    for rule in scenario.assignment.rules:
        ok = result < 0
        if rule.current_plan:
            ok &= np.isin(book.current_plan, list(rule.current_plan))
        if rule.measure is not None:
            total = sums[rule.measure]
            if rule.min is not None:
                n, d = ratio(rule.min)
                ok &= np.array([t * d >= n * m for t, m in zip(total, months_active)], dtype=bool)
            if rule.max is not None:
                n, d = ratio(rule.max)
                ok &= np.array([t * d < n * m for t, m in zip(total, months_active)], dtype=bool)
        if rule.seats_min is not None:
            ok &= seats >= rule.seats_min
        if rule.seats_max is not None:
            ok &= (seats >= 0) & (seats < rule.seats_max)
        result[ok] = names.index(rule.plan)
    if (result < 0).any():
        if scenario.assignment.default is None:
            raise PlanError("assignment.default", f"{int((result < 0).sum())} customers match no rule; add a default plan")
        result[result < 0] = names.index(scenario.assignment.default)
    return result


def _cheapest(scenario: Scenario, book: Book, outcomes: dict[int, PlanOutcome], money: Money) -> np.ndarray:
    """Per customer, the candidate plan with the lowest revenue over the simulated months among
    those that never cap the customer (all candidates if each caps it); ties go to the first."""
    count = len(book.customer_ids)
    best = np.full(count, -1, dtype=np.int64)
    best_total = np.zeros(count, dtype=object)
    best_capped = np.ones(count, dtype=bool)
    for p, outcome in outcomes.items():
        totals = np.array(exact_sums_by(money.to_pico(outcome.revenue_minor), book.cust[outcome.cells], count), dtype=object)
        capped_any = np.zeros(count, dtype=bool)
        capped_any[book.cust[outcome.cells][outcome.capped]] = True
        cheaper = np.asarray(totals < best_total, dtype=bool)
        better = (best < 0) | (best_capped & ~capped_any) | ((best_capped == capped_any) & cheaper)
        best[better] = p
        best_total[better] = totals[better]
        best_capped[better] = capped_any[better]
    return best


def assign_plans(scenario: Scenario, book: Book, money: Money, evaluate: Callable[[int], PlanOutcome] | None = None) -> tuple[np.ndarray, dict[int, PlanOutcome]]:
    """Plan index per customer, and any full-book plan outcomes computed on the way."""
    method = scenario.assignment.method
    if method == "single":
        names = [p.name for p in scenario.plans]
        return np.full(len(book.customer_ids), names.index(scenario.assignment.default or names[0]), dtype=np.int64), {}
    if method == "current_plan":
        return _by_current_plan(scenario, book), {}
    if method == "rule":
        return _by_rule(scenario, book), {}
    names = [p.name for p in scenario.plans]
    candidates = [names.index(c) for c in scenario.assignment.candidates] or list(range(len(names)))
    all_cells = np.arange(book.size)
    outcomes = {p: evaluate(p) if evaluate else evaluate_plan(scenario.plans[p], book, all_cells, money) for p in candidates}
    return _cheapest(scenario, book, outcomes, money), outcomes


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """What a scenario does to the book.

    cells: one row per customer per month. customers: one row per customer (sums over the
    months). totals: one row per plan and a final "TOTAL" row. Money columns: `*_pico` are USD
    pico-dollars (ints), `*_minor` are minor units of the scenario currency; `margin_pct` is a
    Decimal fraction (0.25 = 25%) or None when revenue is 0.
    """

    scenario: Scenario
    currency: str
    months: tuple[str, ...]
    cells: pd.DataFrame
    customers: pd.DataFrame
    totals: pd.DataFrame
    notes: tuple[str, ...] = ()


def margin_fractions(margins: np.ndarray, revenues: np.ndarray) -> list[Decimal | None]:
    """margin / revenue per element as Decimals with 4 places, rounded half-even (None: no revenue)."""
    margins, revenues = np.asarray(margins), np.asarray(revenues)
    if margins.dtype != object and revenues.dtype != object and len(margins) and int(np.abs(margins).max()) < 2**62 // 10_000:
        sign = np.where(revenues < 0, -1, 1)
        den = np.where(revenues != 0, revenues * sign, 1)
        quotients = _round_div(margins.astype(np.int64) * sign * 10_000, den, HALF_EVEN).tolist()
        return [None if r == 0 else Decimal(q).scaleb(-4) for q, r in zip(quotients, revenues.tolist())]
    out: list[Decimal | None] = []
    for margin, revenue in zip(margins.tolist(), revenues.tolist()):
        if revenue == 0:
            out.append(None)
            continue
        sign = -1 if revenue < 0 else 1
        quotient, remainder = divmod(int(margin) * sign * 10_000, int(revenue) * sign)
        if 2 * remainder > abs(revenue) or (2 * remainder == abs(revenue) and quotient % 2):
            quotient += 1
        out.append(Decimal(quotient).scaleb(-4))
    return out


def margin_fraction(margin: int, revenue: int) -> Decimal | None:
    """margin / revenue as a Decimal with 4 places, rounded half-even (None when there is no revenue)."""
    return margin_fractions(np.array([int(margin)], dtype=object), np.array([int(revenue)], dtype=object))[0]


def _labels(values: np.ndarray) -> pd.Categorical:
    """A categorical of text labels (few distinct values, many rows)."""
    codes, names = pd.factorize(values)
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))


def _stack(outcomes: list[tuple[PlanOutcome, np.ndarray]], size: int, getter: Callable[[PlanOutcome], np.ndarray], dtype: object = np.int64) -> np.ndarray:
    """One array over the book from each plan outcome's chosen cells (`mask` = index array)."""
    values = [getter(o)[chosen] for o, chosen in outcomes]
    use_object = any(v.dtype == object for v in values)
    result = np.zeros(size, dtype=object if use_object else dtype)
    for (outcome, chosen), picked in zip(outcomes, values):
        result[outcome.cells[chosen]] = picked
    return result


def simulate(scenario: Scenario, data: UsageData | Book, fx: FxTable | None = None) -> SimulationResult:
    """Run a scenario on the book: assign plans, evaluate them, compare with the baseline."""
    book = data if isinstance(data, Book) else prepare(data)
    money = money_for(scenario.currency, fx)
    choice, precomputed = assign_plans(scenario, book, money)
    cell_plan = choice[book.cust]
    picked: list[tuple[PlanOutcome, np.ndarray]] = []
    notes = list(book.notes)
    for p, plan in enumerate(scenario.plans):
        cells = np.flatnonzero(cell_plan == p)
        if not len(cells):
            continue
        if p in precomputed:
            outcome = precomputed[p]
            chosen = np.flatnonzero(cell_plan[outcome.cells] == p)
        else:
            outcome = evaluate_plan(plan, book, cells, money)
            chosen = np.arange(len(cells))
        picked.append((outcome, chosen))
        if outcome.unmatched:
            notes.append(f"plan {plan.name}: no burn rule matches {', '.join(outcome.unmatched)}; that usage burns no credits")
    size = book.size
    revenue_minor = _stack(picked, size, lambda o: o.revenue_minor)
    revenue = money.to_pico(revenue_minor)
    cost = _stack(picked, size, lambda o: o.cost_pico)
    known = book.baseline_known
    baseline_revenue = np.where(known, book.baseline_revenue, 0)
    baseline_cost = np.where(known, book.baseline_cost, 0)
    columns: dict[str, np.ndarray] = {
        # Repeated labels as categoricals: no per-row string conversion for large books.
        "customer_id": pd.Categorical.from_codes(book.cust, categories=pd.Index(book.customer_ids, dtype=object)),
        "month": pd.Categorical.from_codes(book.month, categories=pd.Index(list(book.months), dtype=object)),
        "current_plan": _labels(book.current_plan[book.cust]),
        "plan": pd.Categorical.from_codes(cell_plan, categories=pd.Index([p.name for p in scenario.plans], dtype=object)),
        "revenue_minor": revenue_minor,
        "revenue_pico": revenue,
        "ai_cost_pico": cost,
        "margin_pico": revenue - cost,
        "baseline_known": known,
        "baseline_revenue_pico": baseline_revenue,
        "baseline_cost_pico": baseline_cost,
        "baseline_margin_pico": baseline_revenue - baseline_cost,
    }
    # Change figures only where today's revenue is known (else 0, and baseline_known False).
    columns["revenue_change_pico"] = np.where(known, revenue - baseline_revenue, 0)
    columns["margin_change_pico"] = np.where(known, (revenue - cost) - (baseline_revenue - baseline_cost), 0)
    columns["capped"] = _stack(picked, size, lambda o: o.capped, bool).astype(bool)
    columns["cap_day"] = _stack(picked, size, lambda o: o.cap_day)
    columns["unserved_cost_pico"] = _stack(picked, size, lambda o: o.unserved_cost_pico)
    columns["revenue_lost_pico"] = money.to_pico(_stack(picked, size, lambda o: o.revenue_lost_minor))
    for name in COMPONENTS:
        columns[f"{name}_minor"] = _stack(picked, size, lambda o, n=name: o.components[n])
    empty = lambda o: np.zeros(len(o.cells), dtype=np.int64)  # noqa: E731
    for name in ("burned", "purchased", "expired_included", "expired_purchased", "balance_end"):
        columns[f"credits_{name}_micro"] = _stack(picked, size, lambda o, n=name: o.credits[n] if n in o.credits else empty(o))
    columns["breakage_minor"] = _stack(picked, size, lambda o: o.credits["breakage_minor"] if "breakage_minor" in o.credits else empty(o))
    columns["tokens"] = book.measures["tokens"]
    columns["requests"] = book.measures["requests"]
    unknown = int((~known).sum())
    if unknown:
        notes.append(f"{unknown} customer-months have no known baseline revenue (currency without an FX rate); they are left out of the change figures")
    customers = _customer_table(book, columns)
    totals = _totals(book, columns, customers, cell_plan, [p.name for p in scenario.plans])
    frame = pd.DataFrame(columns)
    return SimulationResult(scenario=scenario, currency=money.currency, months=book.months, cells=frame, customers=customers, totals=totals, notes=tuple(notes))


_SUMMED = (
    "revenue_minor",
    "revenue_pico",
    "ai_cost_pico",
    "margin_pico",
    "baseline_revenue_pico",
    "baseline_cost_pico",
    "baseline_margin_pico",
    "revenue_change_pico",
    "margin_change_pico",
    "unserved_cost_pico",
    "revenue_lost_pico",
    "true_up_minor",
    "breakage_minor",
)


def _sums(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Exact per-group sums as int64 when they fit, else Python ints."""
    return exact_sums_by(values, groups, count)


def _customer_table(book: Book, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-customer sums, margin, winner/loser and first cap hit."""
    count = len(book.customer_ids)
    cust = book.cust
    table: dict[str, object] = {"customer_id": book.customer_ids, "current_plan": book.current_plan}
    plan = np.empty(count, dtype=object)
    plan[cust[::-1]] = np.asarray(columns["plan"], dtype=object)[::-1]
    table["plan"] = plan
    table["months"] = np.bincount(cust, minlength=count)
    sums = {name: _sums(columns[name], cust, count) for name in _SUMMED}
    known_all = np.bincount(cust, weights=None, minlength=count) == np.bincount(cust[columns["baseline_known"]], minlength=count)
    capped = columns["capped"]
    first_cap = np.full(count, "", dtype=object)
    hit = np.flatnonzero(capped)[::-1]  # reversed so that the earliest month is written last
    for i in hit:
        first_cap[cust[i]] = f"{columns['month'][i]} day {columns['cap_day'][i]}"
    revenue, margin = sums["revenue_pico"], sums["margin_pico"]
    base_revenue, base_margin = sums["baseline_revenue_pico"], sums["baseline_margin_pico"]
    change = sums["revenue_change_pico"]
    outcome = np.where(~known_all, "unknown", np.where(change > 0, "pays more", np.where(change < 0, "pays less", "same")))
    table.update(
        {
            "revenue_pico": revenue,
            "ai_cost_pico": sums["ai_cost_pico"],
            "margin_pico": margin,
            "margin_pct": margin_fractions(margin, revenue),
            "baseline_revenue_pico": base_revenue,
            "baseline_margin_pico": base_margin,
            "baseline_margin_pct": margin_fractions(base_margin, base_revenue),
            "revenue_change_pico": change,
            "margin_change_pico": sums["margin_change_pico"],
            "outcome": outcome.astype(object),
            "capped_months": np.bincount(cust[capped], minlength=count),
            "first_cap": first_cap,
            "unserved_cost_pico": sums["unserved_cost_pico"],
            "revenue_lost_pico": sums["revenue_lost_pico"],
            "true_up_minor": sums["true_up_minor"],
            "breakage_minor": sums["breakage_minor"],
            "revenue_minor": sums["revenue_minor"],
            "baseline_cost_pico": sums["baseline_cost_pico"],
            "baseline_known": known_all,
        }
    )
    return pd.DataFrame(table)


def _totals(book: Book, columns: dict[str, np.ndarray], customers: pd.DataFrame, cell_plan: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Totals per plan (in plan order, plans with customers) and a TOTAL row (exact Python ints)."""
    count = len(names)
    sums = {name: exact_sums_by(columns[name], cell_plan, count) for name in _SUMMED}
    customer_plan = customers["plan"].to_numpy(dtype=object)
    outcome = customers["outcome"].to_numpy(dtype=object)
    capped = customers["capped_months"].to_numpy() > 0
    rows = []
    used = [p for p in range(count) if (cell_plan == p).any()]
    for p in [*used, None]:
        chosen = np.ones(len(customer_plan), dtype=bool) if p is None else customer_plan == names[p]
        row: dict[str, object] = {
            "plan": "TOTAL" if p is None else names[p],
            "customers": int(chosen.sum()),
            "customer_months": int(len(cell_plan) if p is None else (cell_plan == p).sum()),
        }
        for name in _SUMMED:
            row[name] = sum(sums[name][q] for q in used) if p is None else sums[name][p]
        row["margin_pct"] = margin_fraction(row["margin_pico"], row["revenue_pico"])  # type: ignore[arg-type]
        row["baseline_margin_pct"] = margin_fraction(row["baseline_margin_pico"], row["baseline_revenue_pico"])  # type: ignore[arg-type]
        row["pays_more"] = int((chosen & (outcome == "pays more")).sum())
        row["pays_less"] = int((chosen & (outcome == "pays less")).sum())
        row["capped_customers"] = int((chosen & capped).sum())
        rows.append(row)
    return pd.DataFrame(rows)
