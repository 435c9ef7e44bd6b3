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
        ("plans: [{name: A}]\nassignment: {method: rule, rules: true, default: A}", "assignment.rules", "must be a list"),
        ("plans: [{name: A}]\nassignment: {method: cheapest, candidates: A}", "assignment.candidates", "must be a list"),
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


# -- hostile files: a clear PlanError naming the field, never a traceback or a hang -----------------


def test_a_file_that_is_not_utf8_is_refused_clearly(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"nam\xff\xfe: \x00\x01binary")
    with pytest.raises(PlanError) as caught:
        load_scenario(path)
    assert caught.value.field == "binary.yaml"
    assert "not UTF-8 text (invalid byte at position 3)" in str(caught.value)


@pytest.mark.parametrize(
    "body, field, words",
    [
        # exponent bombs are refused from their exponent, before any conversion (no hang, no InvalidOperation)
        ("plans: [{name: A, allocation: {included: '1e999999999', overage_per_1m: '2'}}]", "plans[0] (A).allocation.included",
         "too large: at most 10^15, got 1E+999999999"),
        ("plans: [{name: A, base_fee: '1e999999999'}]", "plans[0] (A).base_fee", "too large: at most 10^12, got 1E+999999999"),
        ("plans: [{name: A, base_fee: 1e-999999999}]", "plans[0] (A).base_fee", "too many decimal places (at most 18)"),
        # a 5,000-digit YAML integer (beyond Python's int-from-text limit)
        ("plans: [{name: A, allocation: {included: " + "9" * 5_000 + ", overage_per_1m: '1'}}]", "plans[0] (A).allocation.included",
         "too large: at most 10^15"),
        # amounts beyond the documented bounds (the simulator would overflow int64)
        ("plans: [{name: A, base_fee: '10000000000000000000000000000000'}]", "plans[0] (A).base_fee", "too large: at most 10^12"),
        ("plans: [{name: A, base_fee: '1000000000000.01'}]", "plans[0] (A).base_fee", "too large: at most 10^12"),
        ("plans: [{name: A, seats: {price: '1', default_seats: 1000000000000001}}]", "plans[0] (A).seats.default_seats",
         "too large: at most 10^15"),
        ("plans: [{name: A, payg: {per_1m: {output: '2e12'}}}]", "plans[0] (A).payg.per_1m.output", "too large: at most 10^12"),
        ("plans: [{name: A, meters: [{measure: tokens, unit_amount: 10000000000000}]}]", "plans[0] (A).meters[0].unit_amount",
         "too large: at most 10^12"),
        ("plans: [{name: A, cap: {measure: tokens, limit: '1e16'}}]", "plans[0] (A).cap.limit", "too large: at most 10^15"),
        ("plans: [{name: A, base_fee: '0." + "0" * 45 + "1'}]", "plans[0] (A).base_fee", "more than 40 characters"),
        ("plans: [{name: A, allocation: {included: '-1e999999999', overage_per_1m: '1'}}]", "plans[0] (A).allocation.included",
         "must be >= 0"),
    ],
)
def test_numbers_out_of_range_name_the_field(body, field, words):
    with pytest.raises(PlanError) as caught:
        loads_scenario(body)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_numbers_at_the_bounds_load_exactly():
    scenario = loads_scenario(
        "plans: [{name: A, base_fee: '1000000000000.00', allocation: {included: 1000000000000000, overage_per_1m: '0.000000000000000001'}}]"
    )
    plan = scenario.plans[0]
    assert plan.base_fee == D("1000000000000.00") and plan.allocation.included == 10**15
    assert plan.allocation.overage_per_1m == D("1e-18")
    assert loads_scenario(dumps_scenario(scenario)) == scenario


def test_huge_json_integer_names_the_field():
    text = '{"plans": [{"name": "A", "allocation": {"included": ' + "9" * 5_000 + ', "overage_per_1m": "1"}}]}'
    with pytest.raises(PlanError) as caught:
        loads_scenario(text, fmt="json")
    assert caught.value.field == "plans[0] (A).allocation.included"


@pytest.mark.parametrize("fmt, text", [
    ("yaml", "name: deep\nplans: " + "[" * 20_000 + "]" * 20_000 + "\n"),
    ("json", '{"name": "deep", "plans": ' + "[" * 20_000 + "]" * 20_000 + "}"),
])
def test_deep_nesting_is_refused_clearly(fmt, text):
    with pytest.raises(PlanError) as caught:
        loads_scenario(text, fmt=fmt)
    assert str(caught.value) == f"not a plan file: its {fmt.upper()} is nested too deeply"


def test_cli_simulate_shows_the_message_not_a_traceback(tmp_path):
    import subprocess
    import sys

    plan = tmp_path / "bomb.yaml"
    plan.write_text("name: Bomb\nplans:\n  - name: Pro\n    base_fee: '1e999999999'\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "walleta", "--db", f"sqlite:///{tmp_path / 'w.db'}", "simulate", str(plan)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "bomb.yaml: plans[0] (Pro).base_fee: too large: at most 10^12" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_uploaded_bytes_are_decoded_with_a_clear_error():
    from walleta.simulator.plans import decode_plan_bytes

    assert decode_plan_bytes(b"\xef\xbb\xbfname: A\n") == "name: A\n"  # a byte-order mark is dropped
    with pytest.raises(PlanError) as caught:
        decode_plan_bytes(b"\x89PNG\r\n\x1a\n")
    assert str(caught.value) == "not UTF-8 text (invalid byte at position 0): save the plan file as UTF-8 YAML or JSON"
