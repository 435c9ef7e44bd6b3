"""Plan files: YAML and JSON round trips, exact numbers, validation errors that name the field."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from walleta.simulator.plans import (
    PlanError,
    dumps_scenario,
    load_scenario,
    loads_scenario,
    save_scenario,
)

PLANS_DIR = Path(__file__).resolve().parent.parent / "data" / "plans"

COMBINED = """
name: Everything at once
currency: USD
assignment: {method: current_plan, map: {Starter: Hybrid}, default: Hybrid}
plans:
  - name: Hybrid
    description: all components
    base_fee: 49.90
    seats: {price: "5.00", included: 2, default_seats: 1}
    allocation: {included: 1000000, overage_per_1m: 2.5, measure: tokens}
    meters:
      - name: out
        measure: output_tokens
        tiers_mode: graduated
        tiers:
          - {up_to: 1000, unit_amount_decimal: "0.1", flat_amount: 100}
          - {up_to: inf, unit_amount_decimal: "0.05"}
      - {name: pkg, measure: requests, unit_amount: 30, transform_quantity: {divide_by: 100, round: up}}
    payg: {markup_pct: "12.5", per_1m: {output: "1.10"}}
    credits:
      included: 100
      included_expiry_months: 3
      burn_by: feature
      burn:
        - {match: "doc*", per_1k: {input: "0.2", output: "1"}, per_request: "0.01"}
        - {match: "*", cost_multiplier: "1.5"}
      pack: {credits: 500, price: "5.00"}
      purchased_expiry_months: 6
    minimum: {amount: "100.00", period_months: 3}
    cap: {measure: tokens, limit: 50000000, per_seat: true}
"""


def test_yaml_numbers_are_exact_decimals():
    scenario = loads_scenario(COMBINED)
    plan = scenario.plan("Hybrid")
    assert plan.base_fee == D("49.90")  # a YAML float, read from its text
    assert plan.allocation.overage_per_1m == D("2.5")
    assert plan.meters[0].tiers[1].up_to is None
    assert plan.meters[0].tiers[0].flat_amount == D(100)
    assert plan.meters[1].transform_quantity.divide_by == 100
    assert plan.payg.markup_pct == D("12.5")
    assert plan.credits.burn[1].cost_multiplier == D("1.5")
    assert plan.credits.credit_value_usd == D("0.01")  # USD pack: $5 / 500 credits
    assert plan.minimum.period_months == 3
    assert plan.cap.per_seat is True
    assert scenario.assignment.map == {"Starter": "Hybrid"}


@pytest.mark.parametrize("fmt, suffix", [("yaml", ".yaml"), ("json", ".json")])
def test_round_trip_through_files(tmp_path, fmt, suffix):
    scenario = loads_scenario(COMBINED)
    path = save_scenario(scenario, tmp_path / f"scenario{suffix}")
    again = load_scenario(path)
    assert again == scenario
    assert loads_scenario(dumps_scenario(scenario, fmt=fmt), fmt=fmt) == scenario


def test_every_demo_plan_file_loads():
    files = sorted(PLANS_DIR.glob("*.yaml"))
    assert len(files) >= 6
    names = {load_scenario(f).name for f in files}
    assert len(names) == len(files)


def test_a_single_plan_file_is_a_scenario_for_everybody():
    scenario = loads_scenario("name: Solo\nbase_fee: '10.00'\n")
    assert scenario.assignment.method == "single"
    assert scenario.plans[0].base_fee == D("10.00")


@pytest.mark.parametrize(
    "body, field, words",
    [
        ("plans: [{name: A, base_fee: '9.999'}]", "plans[0] (A).base_fee", "more than 2 decimal places"),
        ("plans: [{name: A, base_fee: '-1'}]", "plans[0] (A).base_fee", ">= 0"),
        ("plans: [{name: A, colour: red}]", "plans[0] (A).colour", "unknown field"),
        (
            "plans: [{name: A, meters: [{measure: tokens, tiers_mode: graduated, tiers: [{up_to: 10}, {up_to: 10}, {up_to: inf}]}]}]",
            "plans[0] (A).meters[0].tiers[1].up_to",
            "greater than the previous",
        ),
        (
            "plans: [{name: A, meters: [{measure: tokens, tiers_mode: volume, tiers: [{up_to: 10}]}]}]",
            "plans[0] (A).meters[0].tiers[0].up_to",
            "up_to: inf",
        ),
        (
            "plans: [{name: A, meters: [{measure: tokens, tiers_mode: volume, transform_quantity: {divide_by: 10}, tiers: [{up_to: inf}]}]}]",
            "plans[0] (A).meters[0].transform_quantity",
            "not allow transform_quantity with tiers",
        ),
        ("plans: [{name: A, meters: [{measure: apples, unit_amount: 1}]}]", "plans[0] (A).meters[0].measure", "must be one of"),
        (
            "plans: [{name: A, meters: [{measure: tokens, unit_amount_decimal: '0.0000000000001'}]}]",
            "plans[0] (A).meters[0].unit_amount_decimal",
            "12 decimal places",
        ),
        ("plans: [{name: A, credits: {burn: [{match: '*'}], topup: packs}}]", "plans[0] (A).credits.pack", "required"),
        ("plans: [{name: A, credits: {burn: [{cost_multiplier: '2'}], on_exhausted: block}}]", "plans[0] (A).credits.credit_value_usd", "required"),
        ("plans: [{name: A, cap: {measure: tokens, limit: '1.5'}}]", "plans[0] (A).cap.limit", "whole number"),
        ("plans: [{name: A}]\nassignment: {method: current_plan, map: {Pro: B}}", "assignment.map.Pro", "no plan named 'B'"),
        ("plans: [{name: A}, {name: A}]", "plans[1].name", "duplicate"),
        ("plans: [{name: A}]\nassignment: {method: rule}", "assignment.rules", "at least one rule"),
        ("currency: EURO\nplans: [{name: A}]", "currency", "3-letter"),
    ],
)
def test_errors_name_the_field(body, field, words):
    with pytest.raises(PlanError) as caught:
        loads_scenario(body)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_json_floats_are_read_exactly():
    scenario = loads_scenario('{"plans": [{"name": "A", "allocation": {"included": 10, "overage_per_1m": 0.1}}]}', fmt="json")
    assert scenario.plans[0].allocation.overage_per_1m == D("0.1")


def test_load_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("plans: [{name: A, base_fee: 'abc'}]\n")
    with pytest.raises(PlanError) as caught:
        load_scenario(path)
    assert caught.value.field == "broken.yaml: plans[0] (A).base_fee"


def test_python_floats_are_refused():
    from walleta.simulator.plans import scenario_from_dict

    with pytest.raises(PlanError, match="binary float"):
        scenario_from_dict({"plans": [{"name": "A", "base_fee": 9.99}]})
