"""Solvers: prices that reach a target margin (to the cent), break-even, curves, knob paths.

Checks recompute margins with `simulate` (not with the solver's own evaluation) at the answer
and one grid step short of it.
"""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd
import pytest

from walleta.simulator.engine import UsageData, simulate
from walleta.simulator.plans import Allocation, Assignment, Meter, Payg, Plan, PlanError, Scenario, Tier
from walleta.simulator.solver import default_knob, get_value, margin_curve, solve, with_value

USD = 10**12
COSTS = [10 * USD + 3 * 10**9, 20 * USD, 30 * USD, 40 * USD, 100 * USD]  # $10.003, 20, 30, 40, 100


def book(costs: list[int], tokens: int = 0) -> UsageData:
    cells = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(len(costs))],
            "month": "2026-01",
            "cost_pico": costs,
            "input_tokens": tokens,
        }
    )
    return UsageData(cells=cells)


def single(plan: Plan) -> Scenario:
    return Scenario(name="s", plans=(plan,), assignment=Assignment(method="single", default=plan.name))


def book_margin_ok(scenario: Scenario, data: UsageData, target: D) -> bool:
    totals = simulate(scenario, data).totals.set_index("plan").loc["TOTAL"]
    return int(totals["revenue_pico"]) * (1 - target) >= int(totals["ai_cost_pico"])


def customers_ok(scenario: Scenario, data: UsageData, target: D) -> int:
    customers = simulate(scenario, data).customers
    return int(sum(int(r) * (1 - target) >= int(c) for r, c in zip(customers["revenue_pico"], customers["ai_cost_pico"])))


def test_flat_fee_for_target_margin_book_quantiles_and_break_even():
    plan = Plan(name="Flat", base_fee=D("50.00"))
    scenario, data = single(plan), book(COSTS)
    table = solve(scenario, data, "Flat", target=D("0.6")).table.set_index("criterion")["value"]
    # book: 5 x fee x 0.4 >= $200.003 -> fee >= $100.0015 -> $100.01
    assert table["book"] == D("100.01")
    # median: 3 of 5 customers must reach 60%: the $30 customer -> fee >= $75
    assert table["median customer"] == D("75.00")
    # p90 and p95: ceil(4.5) = ceil(4.75) = 5 customers: the $100 one -> $250
    assert table["p90 customer"] == D("250.00")
    assert table["p95 customer"] == D("250.00")
    # break-even: 5 x fee >= $200.003 -> $40.01
    assert table["break-even"] == D("40.01")
    for value, ok in ((D("100.01"), True), (D("100.00"), False)):
        assert book_margin_ok(single(with_value(plan, "base_fee", value)), data, D("0.6")) is ok
    assert customers_ok(single(with_value(plan, "base_fee", D("75.00"))), data, D("0.6")) == 3
    assert customers_ok(single(with_value(plan, "base_fee", D("74.99"))), data, D("0.6")) == 2


@pytest.mark.parametrize("target", [D("0.6"), D("0.25"), D("0")])
def test_markup_within_one_cent_of_the_target(target):
    plan = Plan(name="PAYG", payg=Payg(markup_pct=D("10")))
    data = book([1_234_567_891_234_567, 987_654_321_987_654, 5000 * USD + 1])  # about $7,222 of cost
    value = solve(single(plan), data, "PAYG", target=target).table.set_index("criterion").loc["book", "value"]
    # Closed form before rounding: markup = 1 / (1 - target) - 1. Each line is rounded to the cent
    # (at most half a cent on ~$7,000), which can move the answer by one 0.01-point step at most.
    closed = (1 / (1 - target) - 1) * 100
    assert abs(value - closed) <= D("0.02")
    assert book_margin_ok(single(with_value(plan, "payg.markup_pct", value)), data, target)
    assert not book_margin_ok(single(with_value(plan, "payg.markup_pct", value - D("0.01"))), data, target)


def test_overage_price_within_one_cent():
    plan = Plan(name="A", base_fee=D("5.00"), allocation=Allocation(included=1_000_000, overage_per_1m=D("1.00")))
    data = book([7 * USD, 9 * USD], tokens=4_000_000)
    value = solve(single(plan), data, "A", "allocation.overage_per_1m", target=D("0.5")).table.set_index("criterion").loc["book", "value"]
    # revenue = 2 x (5 + 3 x p) >= 2 x (7 + 9) ... per customer: 10 + 6p >= 32 -> p >= 3.6667 -> 3.67
    assert value == D("3.67")
    assert book_margin_ok(single(with_value(plan, "allocation.overage_per_1m", value)), data, D("0.5"))
    assert not book_margin_ok(single(with_value(plan, "allocation.overage_per_1m", value - D("0.01"))), data, D("0.5"))


def test_largest_allocation_that_keeps_the_margin():
    plan = Plan(name="A", base_fee=D("20.00"), allocation=Allocation(included=1_000_000, overage_per_1m=D("5.00")))
    data = book([15 * USD], tokens=10_000_000)
    value = solve(single(plan), data, "A", "allocation.included", target=D("0.5")).table.set_index("criterion").loc["book", "value"]
    # Need revenue >= $30, i.e. overage >= 1000 cents at 0.0005 cents a token. 1,999,000 tokens
    # over is 999.5 cents, rounded half up to 1000; 1,998,999 over is 999.4995 -> 999. So at most
    # 10M - 1,999,000 = 8,001,000 tokens can be included.
    assert value == 8_001_000
    assert book_margin_ok(single(with_value(plan, "allocation.included", 8_001_000)), data, D("0.5"))
    assert not book_margin_ok(single(with_value(plan, "allocation.included", 8_001_001)), data, D("0.5"))


def test_unreachable_targets_say_why():
    plan = Plan(name="Cap", allocation=Allocation(included=0, overage_per_1m=D("1.00")))
    table = solve(single(plan), book([5 * USD]), "Cap", "allocation.overage_per_1m", target=D("0.5")).table
    assert table["value"].isna().all()
    assert table["note"].str.contains("not reachable").all()


def test_margin_curve_rises_with_price():
    plan = Plan(name="Flat", base_fee=D("50.00"))
    curve = margin_curve(single(plan), book(COSTS), "Flat", points=5, target=D("0.6"))
    assert curve["value"].tolist() == [D("0.00"), D("25.00"), D("50.00"), D("75.00"), D("100.00")]
    margins = [m for m in curve["margin_pct"] if m is not None]
    assert margins == sorted(margins)
    assert curve["customers_at_target_pct"].tolist()[-1] == D("0.8")  # at $100: all but the $100 customer
    assert curve.loc[3, "median_customer_margin_pct"] == D("0.6")  # $75 fee, $30 customer: 60%


def test_knob_paths():
    plan = Plan(name="M", meters=(Meter(name="t", measure="tokens", billing_scheme="tiered", tiers_mode="graduated", tiers=(Tier(10, D(0)), Tier(None, D("0.5")))),))
    assert default_knob(plan) == "meters[0].tiers[1].unit_amount_decimal"
    changed = with_value(plan, "meters[0].tiers[1].unit_amount_decimal", D("0.75"))
    assert get_value(changed, "meters[0].tiers[1].unit_amount_decimal") == D("0.75")
    assert get_value(plan, "meters[0].tiers[1].unit_amount_decimal") == D("0.5")  # the original is untouched
    with pytest.raises(PlanError):
        get_value(plan, "allocation.overage_per_1m")
    with pytest.raises(PlanError):
        solve(single(plan), book(COSTS), "M", "meters[0].name", target=D("0.5"))
