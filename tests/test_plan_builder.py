"""The app's plan builder: form rows -> the scenario data the simulator validates."""

from decimal import Decimal

import pytest

from walleta.errors import InputError
from walleta.plan_builder import Extras, PlanRow, Tier, build_scenario, per_1m_to_unit_amount


def test_flat_plans_keep_current_plan_assignment_with_a_default():
    data = build_scenario("Raise Pro", "flat", [PlanRow("Starter", base_fee="29"), PlanRow("Pro", base_fee="149.50")])
    assert data["assignment"] == {"method": "current_plan", "default": "Pro"}
    assert data["plans"] == [{"name": "Starter", "base_fee": "29"}, {"name": "Pro", "base_fee": "149.5"}]
    assert data["currency"] == "USD" and data["name"] == "Raise Pro"


def test_allocation_converts_millions_of_tokens_exactly():
    data = build_scenario("a", "allocation", [PlanRow("Pro", base_fee="99", included_m_tokens="2.5", overage_per_1m="3")])
    assert data["plans"][0]["allocation"] == {"included": 2_500_000, "overage_per_1m": "3", "measure": "tokens"}


def test_allocation_needs_both_numbers():
    with pytest.raises(InputError, match=r"plan 1 \(Pro\).*included tokens and the overage"):
        build_scenario("a", "allocation", [PlanRow("Pro", base_fee="99", included_m_tokens="2")])


def test_credits_with_and_without_packs():
    rows = [PlanRow("Free", included_credits="300"), PlanRow("Pro", base_fee="99", included_credits="9000", pack_credits="2000", pack_price="20")]
    data = build_scenario("c", "credits", rows, extras=Extras(credit_value_usd="0.01", burn_multiplier="2.5"))
    free, pro = data["plans"]
    assert free["credits"]["topup"] == "none" and free["credits"]["on_exhausted"] == "block"
    assert pro["credits"]["pack"] == {"credits": 2000, "price": "20"}
    assert pro["credits"]["burn"] == [{"match": "*", "cost_multiplier": "2.5"}]
    assert pro["credits"]["credit_value_usd"] == "0.01"
    capped = build_scenario("c", "credits", rows, extras=Extras(cap_measure="tokens", cap_limit="5"))
    assert "cap" not in capped["plans"][0]  # blocking credits are the cap
    assert capped["plans"][1]["cap"] == {"measure": "tokens", "limit": "5000000"}


def test_tiers_are_one_metered_plan_in_stripe_units():
    tiers = [Tier("1", "0", flat_fee="19"), Tier("20", "3"), Tier("", "2.5")]
    data = build_scenario("t", "tiers", [], tiers=tiers, extras=Extras(tiers_mode="volume"))
    assert data["assignment"] == {"method": "single", "default": "Usage"}
    meter = data["plans"][0]["meters"][0]
    assert meter["tiers_mode"] == "volume" and meter["measure"] == "tokens"
    assert meter["tiers"] == [
        {"up_to": 1_000_000, "unit_amount_decimal": "0", "flat_amount": "1900"},
        {"up_to": 20_000_000, "unit_amount_decimal": "0.0003"},
        {"up_to": "inf", "unit_amount_decimal": "0.00025"},
    ]


def test_payg_markup_for_everybody():
    data = build_scenario("p", "payg", [], extras=Extras(markup_pct="60"))
    assert data["plans"] == [{"name": "Pay as you go", "payg": {"markup_pct": "60"}}]


def test_extras_cap_and_minimum_apply_to_every_plan():
    extras = Extras(cap_measure="tokens", cap_limit="1.5", minimum="49")
    data = build_scenario("x", "flat", [PlanRow("A", base_fee="10"), PlanRow("B", base_fee="20")], extras=extras)
    for plan in data["plans"]:
        assert plan["cap"] == {"measure": "tokens", "limit": "1500000"}
        assert plan["minimum"] == {"amount": "49", "period_months": 1}
    cost_cap = build_scenario("y", "flat", [PlanRow("A", base_fee="10")], extras=Extras(cap_measure="ai_cost_usd", cap_limit="250"))
    assert cost_cap["plans"][0]["cap"] == {"measure": "ai_cost_usd", "limit": "250"}


def test_cheapest_assignment_and_single_plan():
    rows = [PlanRow("Light", base_fee="19"), PlanRow("Scale", base_fee="399")]
    assert build_scenario("c", "flat", rows, extras=Extras(assignment="cheapest"))["assignment"] == {"method": "cheapest"}
    assert build_scenario("s", "flat", rows[:1])["assignment"] == {"method": "single", "default": "Light"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([PlanRow("A", base_fee="abc")], "not a number"),
        ([PlanRow("A", base_fee="-5")], "zero or more"),
        ([PlanRow(" ")], "add at least one plan"),
        ([PlanRow("A", included_m_tokens="0.0000001", overage_per_1m="1")], "whole number of tokens"),
    ],
)
def test_bad_values_are_named(rows, message):
    mechanism = "allocation" if rows[0].included_m_tokens else "flat"
    with pytest.raises(InputError, match=message):
        build_scenario("bad", mechanism, rows)


def test_per_1m_to_unit_amount():
    assert per_1m_to_unit_amount(Decimal("3")) == "0.0003"
    assert per_1m_to_unit_amount(Decimal("0.15")) == "0.000015"
    assert per_1m_to_unit_amount(Decimal("0")) == "0"


def test_the_simulator_accepts_every_mechanism():
    plans = pytest.importorskip("walleta.simulator.plans")
    rows = [PlanRow("Free", base_fee="0", included_m_tokens="1", overage_per_1m="0", included_credits="300"),
            PlanRow("Pro", base_fee="99", included_m_tokens="20", overage_per_1m="2.75", included_credits="9000", pack_credits="2000", pack_price="20")]
    for mechanism in ("flat", "allocation", "credits"):
        scenario = plans.scenario_from_dict(build_scenario(mechanism, mechanism, rows, extras=Extras(cap_measure="tokens", cap_limit="50")))
        assert [p.name for p in scenario.plans] == ["Free", "Pro"]
        assert scenario.plans[1].cap is not None
    tiered = plans.scenario_from_dict(build_scenario("t", "tiers", [], tiers=[Tier("1", "0", "19"), Tier("", "3")]))
    assert tiered.plans[0].meters[0].tiers[1].up_to is None
    payg = plans.scenario_from_dict(build_scenario("p", "payg", [], extras=Extras(markup_pct="60")))
    assert payg.plans[0].payg.markup_pct == Decimal("60")
