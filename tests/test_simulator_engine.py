"""The simulation engine on hand-computed books; properties and the per-customer reference.

Every expected amount below is worked out in the comment next to it (cents unless noted;
1 USD = 10**12 pico-dollars, so 1 cent = 10**10 pico).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walleta.fx import FxTable
from walleta.simulator.engine import UsageData, money_for, simulate
from walleta.simulator.plans import (
    Allocation,
    Assignment,
    BurnRule,
    Cap,
    CreditPack,
    Credits,
    Meter,
    Minimum,
    Payg,
    Plan,
    PlanError,
    Rule,
    Scenario,
    Seats,
    Tier,
    loads_scenario,
)
from walleta.simulator.reference import simulate_reference

CENT = 10**10
USD = 10**12


def usage(*rows: dict, by_model: list[dict] | None = None, months: tuple[str, ...] = ()) -> UsageData:
    """A usage book from compact rows (missing measures are 0)."""
    base = {"requests": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cost_pico": 0, "current_plan": "", "seats": None}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["seats"] = pd.array(frame["seats"].tolist(), dtype="Int64")
    if "baseline_revenue_pico" in frame.columns:
        frame["baseline_revenue_pico"] = pd.array(frame["baseline_revenue_pico"].tolist(), dtype="Int64")
    detail = None
    if by_model is not None:
        detail = pd.DataFrame([{"requests": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "cost_pico": 0, **r} for r in by_model])
    return UsageData(cells=frame, by_model=detail, months=months)


def one_plan(plan: Plan, currency: str = "USD") -> Scenario:
    return Scenario(name="t", plans=(plan,), assignment=Assignment(method="single", default=plan.name), currency=currency)


def cell(result, customer: str, month: str) -> pd.Series:
    rows = result.cells[(result.cells["customer_id"] == customer) & (result.cells["month"] == month)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_flat_fee_and_seats_and_change_against_today():
    plan = Plan(name="P", base_fee=D("49.00"), seats=Seats(price=D("5.00"), included=2, default_seats=1))
    data = usage(
        {"customer_id": "a", "month": "2026-01", "seats": 5, "baseline_revenue_pico": 50 * USD, "cost_pico": 7 * USD},
        {"customer_id": "b", "month": "2026-01", "seats": None, "baseline_revenue_pico": None},
    )
    result = simulate(one_plan(plan), data)
    a, b = cell(result, "a", "2026-01"), cell(result, "b", "2026-01")
    assert a["revenue_minor"] == 4900 + 3 * 500  # 5 seats, 2 included
    assert a["revenue_pico"] == 6400 * CENT
    assert a["margin_pico"] == 64 * USD - 7 * USD
    assert a["revenue_change_pico"] == 14 * USD  # $64 against $50 today
    assert a["margin_change_pico"] == 14 * USD  # same cost
    assert b["revenue_minor"] == 4900  # unknown seats -> default 1, within the included 2
    assert not b["baseline_known"] and b["revenue_change_pico"] == 0
    totals = result.totals.set_index("plan")
    assert totals.loc["TOTAL", "revenue_pico"] == (6400 + 4900) * CENT
    assert totals.loc["TOTAL", "baseline_revenue_pico"] == 50 * USD  # only the known one
    assert result.customers.set_index("customer_id").loc["a", "outcome"] == "pays more"
    assert result.customers.set_index("customer_id").loc["b", "outcome"] == "unknown"
    assert any("no known baseline" in n for n in result.notes)


@pytest.mark.parametrize(
    "tokens, seats, per_seat, expected",
    [
        ((600_001, 400_000), 1, False, 0),  # 1 token over: 1 x 250 / 1e6 = 0.00025 cents -> 0
        ((2_500_000, 1_000_000), 1, False, 625),  # 2.5M over x $2.50 = $6.25
        ((2_500_000, 1_000_000), 3, True, 125),  # 3M included (per seat): 0.5M over -> $1.25
        ((1_000_000, 0), 1, False, 0),  # exactly the allocation
    ],
)
def test_allocation_overage(tokens, seats, per_seat, expected):
    plan = Plan(name="P", allocation=Allocation(included=1_000_000, overage_per_1m=D("2.50"), per_seat=per_seat))
    data = usage({"customer_id": "a", "month": "2026-01", "input_tokens": tokens[0], "output_tokens": tokens[1], "seats": seats})
    assert cell(simulate(one_plan(plan), data), "a", "2026-01")["allocation_minor"] == expected


def test_hard_cap_mid_month():
    # 4M tokens in February (28 days) against a 1M cap: a quarter is served, hit on day ceil(28/4) = 7.
    plan = Plan(name="P", allocation=Allocation(included=500_000, overage_per_1m=D("2.00")), cap=Cap(measure="tokens", limit=D(1_000_000)))
    data = usage(
        {"customer_id": "a", "month": "2026-02", "input_tokens": 3_000_000, "cached_input_tokens": 1_000_000, "output_tokens": 1_000_000, "requests": 400, "cost_pico": 8 * USD},
        {"customer_id": "b", "month": "2026-03", "input_tokens": 3_000_000, "cost_pico": 3 * USD},
        {"customer_id": "c", "month": "2026-03", "input_tokens": 999_999, "cost_pico": 1 * USD},
    )
    result = simulate(one_plan(plan), data)
    a = cell(result, "a", "2026-02")
    assert a["capped"] and a["cap_day"] == 7
    assert a["ai_cost_pico"] == 2 * USD and a["unserved_cost_pico"] == 6 * USD
    assert a["allocation_minor"] == 100  # served 1M: 0.5M over x $2
    assert a["revenue_lost_pico"] == 600 * CENT  # uncapped: 3.5M over = $7; lost $6
    b = cell(result, "b", "2026-03")
    assert b["capped"] and b["cap_day"] == 11  # ceil(31 x 1/3)
    assert b["ai_cost_pico"] == 1 * USD
    assert not cell(result, "c", "2026-03")["capped"]
    first = result.customers.set_index("customer_id").loc["a", "first_cap"]
    assert first == "2026-02 day 7"


def test_cost_and_per_seat_caps():
    by_cost = Plan(name="P", cap=Cap(measure="ai_cost_usd", limit=D("2.00")))
    per_seat = Plan(name="P", cap=Cap(measure="tokens", limit=D(500_000), per_seat=True))
    data = usage({"customer_id": "a", "month": "2026-02", "input_tokens": 4_000_000, "cost_pico": 8 * USD, "seats": 2})
    assert cell(simulate(one_plan(by_cost), data), "a", "2026-02")["ai_cost_pico"] == 2 * USD
    capped = cell(simulate(one_plan(per_seat), data), "a", "2026-02")
    assert capped["ai_cost_pico"] == 2 * USD and capped["cap_day"] == 7  # 1M of 4M served


def test_monthly_minimum_true_up():
    plan = Plan(name="P", payg=Payg(per_1m={"output": D("10.00")}), minimum=Minimum(amount=D("100.00")))
    data = usage(
        {"customer_id": "a", "month": "2026-01", "output_tokens": 3_000_000},  # $30 -> true-up $70
        {"customer_id": "a", "month": "2026-02", "output_tokens": 12_000_000},  # $120 -> none
    )
    result = simulate(one_plan(plan), data)
    assert cell(result, "a", "2026-01")["true_up_minor"] == 7000
    assert cell(result, "a", "2026-01")["revenue_minor"] == 10000
    assert cell(result, "a", "2026-02")["true_up_minor"] == 0
    assert cell(result, "a", "2026-02")["revenue_minor"] == 12000


def test_quarterly_minimum_pro_rata_to_active_months():
    # $300 per 3 months; windows Jan-Mar and Apr-Jun. Active Jan, Feb, Mar and May.
    plan = Plan(name="P", payg=Payg(per_1m={"output": D("1.00")}), minimum=Minimum(amount=D("300.00"), period_months=3))
    months = ("2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06")
    data = usage(
        {"customer_id": "a", "month": "2026-01", "output_tokens": 50_000_000},  # $50
        {"customer_id": "a", "month": "2026-02", "output_tokens": 150_000_000},  # $150
        {"customer_id": "a", "month": "2026-03", "output_tokens": 20_000_000},  # $20
        {"customer_id": "a", "month": "2026-05", "output_tokens": 30_000_000},  # $30
        months=months,
    )
    result = simulate(one_plan(plan), data)
    # Jan-Mar: $220 against $300 -> $80 on March. Apr-Jun: one active month -> $100 due; $30 -> $70 on May.
    assert [cell(result, "a", m)["true_up_minor"] for m in ("2026-01", "2026-02", "2026-03", "2026-05")] == [0, 0, 8000, 7000]


def test_pay_as_you_go_markup_and_list_prices():
    markup = Plan(name="P", payg=Payg(markup_pct=D("60")))
    data = usage({"customer_id": "a", "month": "2026-01", "cost_pico": 1_234_567_890_123, "input_tokens": 2_000_000, "cached_input_tokens": 500_000, "output_tokens": 250_000})
    # $1.234567890123 x 1.6 = 197.53... cents -> 198
    assert cell(simulate(one_plan(markup), data), "a", "2026-01")["revenue_minor"] == 198
    listed = Plan(name="P", payg=Payg(per_1m={"input": D("1.00"), "cached_input": D("0.10"), "output": D("4.00")}))
    # 1.5M uncached x $1 = 150; 0.5M cached x $0.10 = 5; 0.25M output x $4 = 100
    assert cell(simulate(one_plan(listed), data), "a", "2026-01")["payg_minor"] == 255


COMBINED = Plan(
    name="Hybrid",
    base_fee=D("10.00"),
    allocation=Allocation(included=1_000_000, overage_per_1m=D("2.00")),
    meters=(Meter(name="req", measure="requests", billing_scheme="tiered", tiers_mode="volume", tiers=(Tier(100, D(1)), Tier(None, D("0.5")))),),
    payg=Payg(markup_pct=D("10")),
    minimum=Minimum(amount=D("30.00")),
    cap=Cap(measure="tokens", limit=D(5_000_000)),
)


def test_combined_plan():
    data = usage(
        {"customer_id": "a", "month": "2026-03", "input_tokens": 1_500_000, "output_tokens": 500_000, "requests": 150, "cost_pico": 3 * USD},
        {"customer_id": "a", "month": "2026-04", "input_tokens": 8_000_000, "output_tokens": 2_000_000, "requests": 1000, "cost_pico": 20 * USD},
    )
    result = simulate(one_plan(COMBINED), data)
    march = cell(result, "a", "2026-03")
    # base 1000 + overage 1M x $2 = 200 + 150 requests at the volume tier 0.5 = 75 + $3 x 1.1 = 330
    # = 1605, below the $30 minimum -> true-up 1395.
    assert [march[f"{c}_minor"] for c in ("fee", "allocation", "meters", "payg", "true_up")] == [1000, 200, 75, 330, 1395]
    assert march["revenue_minor"] == 3000
    april = cell(result, "a", "2026-04")
    # 10M tokens against a 5M cap: half served (day ceil(30/2) = 15): 5M tokens, 500 requests, $10.
    # base 1000 + 4M x $2 = 800 + 500 x 0.5 = 250 + $10 x 1.1 = 1100 -> 3150 (above the minimum).
    assert april["capped"] and april["cap_day"] == 15
    assert [april[f"{c}_minor"] for c in ("fee", "allocation", "meters", "payg", "true_up")] == [1000, 800, 250, 1100, 0]
    assert april["revenue_minor"] == 3150
    assert april["ai_cost_pico"] == 10 * USD and april["unserved_cost_pico"] == 10 * USD
    # uncapped: 1000 + 1800 + 500 + 2200 = 5500 -> lost 2350
    assert april["revenue_lost_pico"] == 2350 * CENT


def test_credits_in_the_engine():
    plan = Plan(
        name="C",
        base_fee=D("5.00"),
        credits=Credits(
            burn=(BurnRule(match="gpt-a*", per_1k={"output": D(1)}), BurnRule(match="*", per_request=D("0.5"))),
            included=100,
            pack=CreditPack(100, D("2.00")),
        ),
    )
    data = usage(
        {"customer_id": "a", "month": "2026-01", "output_tokens": 150_000, "requests": 20},
        {"customer_id": "a", "month": "2026-02", "output_tokens": 120_000},
        by_model=[
            {"customer_id": "a", "month": "2026-01", "model": "gpt-a-1", "output_tokens": 150_000},  # 150 credits
            {"customer_id": "a", "month": "2026-01", "model": "other", "requests": 20},  # 10 credits
            {"customer_id": "a", "month": "2026-02", "model": "gpt-a-1", "output_tokens": 120_000},  # 120 credits
        ],
    )
    result = simulate(one_plan(plan), data)
    jan, feb = cell(result, "a", "2026-01"), cell(result, "a", "2026-02")
    # January: 160 burned, 100 included, one pack ($2) for the other 60; 40 purchased credits left.
    assert jan["credits_burned_micro"] == 160_000_000 and jan["credits_purchased_micro"] == 100_000_000
    assert jan["revenue_minor"] == 700
    # February: 120 burned = 100 included + 20 of the purchased ones; no purchase.
    assert feb["credits_purchased_micro"] == 0 and feb["revenue_minor"] == 500
    assert feb["credits_balance_end_micro"] == 20_000_000


def test_credit_burn_by_model_needs_usage_by_model():
    plan = Plan(name="C", credits=Credits(burn=(BurnRule(),), burn_by="model", topup="none", on_exhausted="block"))
    with pytest.raises(PlanError, match="needs usage by model"):
        simulate(one_plan(plan), usage({"customer_id": "a", "month": "2026-01"}))


def _choice_scenario(method: str, **assignment) -> Scenario:
    a = Plan(name="A", base_fee=D("10.00"), allocation=Allocation(included=1_000_000, overage_per_1m=D("5.00")))
    b = Plan(name="B", base_fee=D("30.00"))
    twin = replace(a, name="A2")
    capped = Plan(name="Tiny", base_fee=D("1.00"), cap=Cap(measure="tokens", limit=D(100_000)))
    return Scenario(name="choice", plans=(a, b, twin, capped), assignment=Assignment(method=method, **assignment))


def test_cheapest_plan_for_each_customer():
    data = usage(
        {"customer_id": "light", "month": "2026-01", "input_tokens": 500_000},  # A $10 (Tiny caps it)
        {"customer_id": "heavy", "month": "2026-01", "input_tokens": 10_000_000},  # A = 10 + 45 = $55 > B $30
        {"customer_id": "tiny", "month": "2026-01", "input_tokens": 50_000},  # Tiny $1 never caps it
    )
    result = simulate(_choice_scenario("cheapest"), data)
    chosen = result.customers.set_index("customer_id")["plan"].to_dict()
    assert chosen == {"light": "A", "heavy": "B", "tiny": "Tiny"}  # ties (A vs A2) go to the first


def test_rule_and_current_plan_assignment():
    data = usage(
        {"customer_id": "big", "month": "2026-01", "input_tokens": 8_000_000, "current_plan": "Pro"},
        {"customer_id": "big", "month": "2026-02", "input_tokens": 4_000_000, "current_plan": "Pro"},  # average 6M
        {"customer_id": "small", "month": "2026-01", "input_tokens": 100, "current_plan": "Pro"},
        {"customer_id": "old", "month": "2026-01", "input_tokens": 100, "current_plan": "Legacy"},
    )
    rules = (Rule(plan="B", measure="tokens", min=D(5_000_000)), Rule(plan="A2", current_plan=("Legacy",)))
    result = simulate(_choice_scenario("rule", rules=rules, default="A"), data)
    assert result.customers.set_index("customer_id")["plan"].to_dict() == {"big": "B", "old": "A2", "small": "A"}
    mapped = simulate(_choice_scenario("current_plan", map={"Pro": "B", "Legacy": "A"}), data)
    assert mapped.customers.set_index("customer_id")["plan"].to_dict() == {"big": "B", "old": "A", "small": "B"}
    with pytest.raises(PlanError, match="customers on Legacy have no plan"):
        simulate(_choice_scenario("current_plan", map={"Pro": "B"}), data)


def test_scenario_currency_is_converted_with_the_fx_table():
    fx = FxTable(rates={"EUR": D("1.08")}, as_of={"EUR": "2026-01-01"})
    plan = Plan(name="P", base_fee=D("10.00"))
    result = simulate(one_plan(plan, "EUR"), usage({"customer_id": "a", "month": "2026-01"}), fx)
    row = cell(result, "a", "2026-01")
    assert row["revenue_minor"] == 1000 and row["revenue_pico"] == 1080 * CENT  # EUR 10.00 x 1.08
    with pytest.raises(PlanError, match="no exchange rate for EUR"):
        simulate(one_plan(plan, "EUR"), usage({"customer_id": "a", "month": "2026-01"}))


# ---------------------------------------------------------------------------------------------
# Properties, and agreement with the plain per-customer implementation
# ---------------------------------------------------------------------------------------------

MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")
MODELS = ("m-big", "m-small")


@st.composite
def books(draw):
    customers = draw(st.integers(1, 4))
    rows, detail = [], []
    for c in range(customers):
        seats = draw(st.one_of(st.none(), st.integers(0, 12)))
        for month in MONTHS:
            if not draw(st.booleans()) and month != MONTHS[0]:
                continue
            totals = {"requests": 0, "input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "cost_pico": 0}
            for model in MODELS:
                inputs = draw(st.integers(0, 5_000_000))
                row = {
                    "requests": draw(st.integers(0, 3000)),
                    "input_tokens": inputs,
                    "cached_input_tokens": draw(st.integers(0, inputs)),
                    "output_tokens": draw(st.integers(0, 2_000_000)),
                    "cost_pico": draw(st.integers(0, 40 * USD)),
                }
                detail.append({"customer_id": f"c{c}", "month": month, "model": model, **row})
                totals = {k: totals[k] + row[k] for k in totals}
            rows.append({"customer_id": f"c{c}", "month": month, "seats": seats, "current_plan": draw(st.sampled_from(["X", "Y"])), **totals})
    return usage(*rows, by_model=detail, months=MONTHS)


money_text = st.integers(0, 50_000).map(lambda v: D(v) / 100)


@st.composite
def plans(draw, name: str = "P"):
    kwargs: dict = {"name": name, "base_fee": draw(money_text)}
    if draw(st.booleans()):
        kwargs["seats"] = Seats(price=draw(money_text), included=draw(st.integers(0, 5)), default_seats=draw(st.integers(0, 3)))
    if draw(st.booleans()):
        kwargs["allocation"] = Allocation(included=draw(st.integers(0, 4_000_000)), overage_per_1m=draw(money_text), measure=draw(st.sampled_from(["tokens", "output_tokens", "requests"])), per_seat=draw(st.booleans()))
    if draw(st.booleans()):
        ups = sorted(draw(st.sets(st.integers(1, 3_000_000), min_size=1, max_size=3)))
        tiers = tuple(Tier(u, D(draw(st.integers(0, 100))) / 1000, D(draw(st.integers(0, 500)))) for u in [*ups, None])
        kwargs["meters"] = (Meter(name="m", measure=draw(st.sampled_from(["tokens", "requests", "seats"])), billing_scheme="tiered", tiers_mode=draw(st.sampled_from(["graduated", "volume"])), tiers=tiers),)
    if draw(st.booleans()):
        kwargs["payg"] = Payg(markup_pct=D(draw(st.integers(-100, 300))), per_1m={"output": draw(money_text)})
    cap_allowed = True
    if draw(st.booleans()):
        on_exhausted = draw(st.sampled_from(["topup", "block", "overage"]))
        cap_allowed = on_exhausted != "block"
        kwargs["credits"] = Credits(
            burn=(BurnRule(match="m-big", per_1k={"input": D("0.3"), "output": D(2)}), BurnRule(match="*", per_request=D("0.01"), cost_multiplier=D("1.5"))),
            burn_by="model",
            included=draw(st.integers(0, 5000)),
            included_expiry_months=draw(st.integers(1, 3)),
            topup="packs",
            pack=CreditPack(draw(st.integers(1, 3000)), draw(money_text)),
            purchased_expiry_months=draw(st.one_of(st.none(), st.integers(1, 3))),
            on_exhausted=on_exhausted,
            overage_per_credit=D(draw(st.integers(0, 50))) / 1000,
            credit_value_usd=D("0.01"),
        )
    if draw(st.booleans()):
        kwargs["minimum"] = Minimum(amount=draw(money_text), period_months=draw(st.integers(1, 3)))
    if cap_allowed and draw(st.booleans()):
        measure = draw(st.sampled_from(["tokens", "requests", "ai_cost_usd"]))
        limit = D(draw(st.integers(0, 8_000))) / 100 if measure == "ai_cost_usd" else D(draw(st.integers(0, 6_000_000)))
        kwargs["cap"] = Cap(measure=measure, limit=limit, per_seat=draw(st.booleans()))
    return Plan(**kwargs)


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(data=books(), plan=plans())
def test_engine_matches_the_per_customer_reference(data, plan):
    scenario = one_plan(plan)
    result = simulate(scenario, data)
    expected = simulate_reference(scenario, data, money_for("USD", None))
    for row in result.cells.itertuples():
        want = expected[(row.customer_id, row.month)]
        assert (int(row.revenue_minor), int(row.ai_cost_pico), bool(row.capped), int(row.cap_day), int(row.revenue_lost_pico)) == (
            want["revenue_minor"], want["cost_pico"], want["capped"], want["cap_day"], want["revenue_lost_minor"] * CENT
        )


@FAST
@given(data=books(), first=plans("X"), second=plans("Y"))
def test_cheapest_assignment_matches_the_reference(data, first, second):
    scenario = Scenario(name="c", plans=(first, second), assignment=Assignment(method="cheapest"))
    result = simulate(scenario, data)
    expected = simulate_reference(scenario, data, money_for("USD", None))
    assert {(r.customer_id, r.month): (r.plan, int(r.revenue_minor)) for r in result.cells.itertuples()} == {k: (v["plan"], v["revenue_minor"]) for k, v in expected.items()}


@FAST
@given(data=books(), plan=plans())
def test_revenue_is_never_negative(data, plan):
    result = simulate(one_plan(plan), data)
    assert (result.cells["revenue_minor"] >= 0).all()
    assert (result.cells[[f"{c}_minor" for c in ("fee", "seats", "allocation", "meters", "payg", "credits", "true_up")]] >= 0).all().all()


@FAST
@given(data=books(), plan=plans(), cap=st.sampled_from([Cap("tokens", D(1_000_000)), Cap("ai_cost_usd", D("3.50")), Cap("requests", D(500), per_seat=True)]))
def test_a_cap_never_raises_cost(data, plan, cap):
    if plan.credits is not None and plan.credits.on_exhausted == "block":
        plan = replace(plan, credits=replace(plan.credits, on_exhausted="topup"))
    uncapped = simulate(one_plan(replace(plan, cap=None)), data).cells["ai_cost_pico"]
    capped = simulate(one_plan(replace(plan, cap=cap)), data).cells["ai_cost_pico"]
    assert (capped <= uncapped).all()
    assert (capped >= 0).all()


RAISES = [
    lambda p: replace(p, base_fee=p.base_fee + D("0.01")),
    lambda p: replace(p, allocation=replace(p.allocation, overage_per_1m=p.allocation.overage_per_1m + D("0.37"))) if p.allocation else p,
    lambda p: replace(p, payg=replace(p.payg, markup_pct=p.payg.markup_pct + 5)) if p.payg else p,
    lambda p: replace(p, meters=tuple(replace(m, tiers=tuple(replace(t, unit_amount_decimal=t.unit_amount_decimal + D("0.001")) for t in m.tiers)) for m in p.meters)),
    lambda p: replace(p, credits=replace(p.credits, pack=replace(p.credits.pack, price=p.credits.pack.price + 1))) if p.credits else p,
    lambda p: replace(p, seats=replace(p.seats, price=p.seats.price + 1)) if p.seats else p,
    lambda p: replace(p, minimum=replace(p.minimum, amount=p.minimum.amount + 10)) if p.minimum else p,
]


@FAST
@given(data=books(), plan=plans(), raise_price=st.sampled_from(RAISES))
def test_a_higher_price_never_lowers_revenue_without_customer_choice(data, plan, raise_price):
    """Per customer over the simulated months (a true-up moves between a window's months, so a
    single month can move either way; the window and customer totals cannot fall)."""
    before = simulate(one_plan(plan), data).customers.set_index("customer_id")["revenue_minor"]
    after = simulate(one_plan(raise_price(plan)), data).customers.set_index("customer_id")["revenue_minor"]
    assert (after >= before).all()


def test_demo_plan_files_run_on_a_small_book():
    scenario = loads_scenario((__import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "plans" / "token-allocation.yaml").read_text())
    data = usage({"customer_id": "a", "month": "2026-01", "current_plan": "Pro", "input_tokens": 30_000_000})
    row = cell(simulate(scenario, data), "a", "2026-01")
    assert row["revenue_minor"] == 9900 + 2750  # 10M over 20M included x $2.75


# -- values at the plan bounds: exact results or a clear PlanError, never an int64 overflow ------


def test_cost_cap_beyond_int64_pico_caps_nothing():
    # $10^15 per seat is beyond int64 pico-dollars: nothing can reach it, nothing is capped.
    plan = Plan(name="P", base_fee=D("10.00"), cap=Cap(measure="ai_cost_usd", limit=D(10**15), per_seat=True))
    data = usage({"customer_id": "a", "month": "2026-02", "input_tokens": 4_000_000, "cost_pico": 8 * USD, "seats": 10**6})
    a = cell(simulate(one_plan(plan), data), "a", "2026-02")
    assert not a["capped"] and a["ai_cost_pico"] == 8 * USD and a["revenue_minor"] == 1000


def test_price_with_18_decimals_is_exact():
    # $1.000000000000000001 per 1M: the divisor is beyond int64, the result is still exact (300 cents).
    plan = Plan(name="P", allocation=Allocation(included=0, overage_per_1m=D("1.000000000000000001")))
    data = usage({"customer_id": "a", "month": "2026-01", "input_tokens": 3_000_000})
    assert cell(simulate(one_plan(plan), data), "a", "2026-01")["allocation_minor"] == 300


@pytest.mark.parametrize("credits, words", [
    (Credits(burn=(BurnRule(),), burn_by="total", included=10**12, included_per_seat=True, topup="none", on_exhausted="block"),
     "credits: the included credits per customer and month exceeds 4,611,686,018,427 credits"),
    (Credits(burn=(BurnRule(per_1k={"input": D(10**15)}),), burn_by="total", topup="none", on_exhausted="block"),
     "credits: the credit burn per customer and month exceeds 4,611,686,018,427 credits"),
    (Credits(burn=(BurnRule(per_1k={"input": D(1000)}),), burn_by="total", topup="per_credit", price_per_credit=D(10**12)),
     "credits: the credit charges per customer would exceed the simulator's exact range"),
])
def test_credit_amounts_beyond_the_ledger_are_a_plan_error(credits, words):
    data = usage({"customer_id": "a", "month": "2026-01", "input_tokens": 1_000_000, "seats": 10**7})
    with pytest.raises(PlanError) as caught:
        simulate(one_plan(Plan(name="C", credits=credits)), data)
    assert words in str(caught.value)
