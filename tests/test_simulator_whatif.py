"""Cost what-ifs on hand-priced aggregates, using the bundled catalog (data/prices.csv).

Prices used (USD per 1M tokens): gpt-4.1 2 / 0.5 cached / 8 out, Batch 1 / 4; gpt-5.4-mini 0.75 /
0.075 / 4.5; gpt-5.6-sol 5 / 0.5 / 30 from 2026-07-09, promotional 4 / 0.4 / 20 from 2026-08-21.
"""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd
import pytest

from walleta.catalog import load_catalog
from walleta.simulator.engine import UsageData, simulate
from walleta.simulator.plans import Assignment, Payg, Plan, PlanError, Scenario
from walleta.simulator.whatif import apply_what_ifs, parse_what_ifs

USD = 10**12
M = 10**6


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def data() -> UsageData:
    by_model = pd.DataFrame(
        [
            # gpt-4.1: 0.8M x $2 + 0.2M x $0.5 + 0.1M x $8 = $2.50 (billed at list)
            {"customer_id": "a", "month": "2026-01", "model": "gpt-4.1", "requests": 10, "input_tokens": 1 * M, "cached_input_tokens": 200_000, "output_tokens": 100_000, "cost_pico": 2_500_000_000_000},
            # gpt-5.6-sol in September at the promotional price: 1M x $4 + 0.1M x $20 = $6
            {"customer_id": "b", "month": "2026-09", "model": "gpt-5.6-sol", "requests": 10, "input_tokens": 1 * M, "cached_input_tokens": 0, "output_tokens": 100_000, "cost_pico": 6 * USD},
        ]
    )
    by_feature = pd.DataFrame(
        [
            {"customer_id": "a", "month": "2026-01", "feature": "chat", "requests": 10, "input_tokens": 1 * M, "cached_input_tokens": 200_000, "output_tokens": 100_000, "cost_pico": 2_500_000_000_000},
            {"customer_id": "b", "month": "2026-09", "feature": "doc", "requests": 5, "input_tokens": 2 * M, "cached_input_tokens": 1 * M, "output_tokens": 200_000, "cost_pico": 3 * USD},
            {"customer_id": "b", "month": "2026-09", "feature": "nightly", "requests": 5, "input_tokens": 1 * M, "cached_input_tokens": 0, "output_tokens": 100_000, "cost_pico": 3 * USD},
        ]
    )
    cells = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "month": ["2026-01", "2026-09"],
            "input_tokens": [1 * M, 1 * M],
            "cached_input_tokens": [200_000, 0],
            "output_tokens": [100_000, 100_000],
            "requests": [10, 10],
            "cost_pico": [2_500_000_000_000, 6 * USD],
            "baseline_revenue_pico": pd.array([10 * USD, 20 * USD], dtype="Int64"),
        }
    )
    return UsageData(cells=cells, by_model=by_model, by_feature=by_feature)


def delta(result, label: str, customer: str) -> int:
    rows = result.effects[(result.effects["what_if"] == label) & (result.effects["customer_id"] == customer)]
    return int(rows["delta_pico"].sum())


def test_explicit_price_change_scales_the_actual_cost(catalog):
    what = parse_what_ifs([{"price_change": {"model": "gpt-4.1", "input_per_1m": "1.00", "output_per_1m": "4.00"}}])
    result = apply_what_ifs(data(), what, catalog)
    # new list cost 0.8M x $1 + 0.2M x $0.5 + 0.1M x $4 = $1.30; actual $2.50 x 1.30 / 2.50 = $1.30
    assert delta(result, what[0].label, "a") == -1_200_000_000_000
    row = result.cells.set_index("customer_id").loc["a"]
    assert row["cost_after_pico"] == 1_300_000_000_000
    assert row["margin_after_pico"] == 10 * USD - 1_300_000_000_000


def test_introductory_price_ending(catalog):
    what = parse_what_ifs([{"price_change": {"model": "gpt-5.6-sol", "as_of": "2026-07-09"}}])
    result = apply_what_ifs(data(), what, catalog)
    # list at the earlier price: 1M x $5 + 0.1M x $30 = $8 against $6: +$2
    assert delta(result, what[0].label, "b") == 2 * USD


def test_higher_cache_hit_rate(catalog):
    what = parse_what_ifs([{"cache_hit_rate": {"rate": "0.5", "models": ["gpt-4.1"]}}])
    result = apply_what_ifs(data(), what, catalog)
    # cached 200k -> 500k: 0.5M x $2 + 0.5M x $0.5 + 0.1M x $8 = $2.05
    assert delta(result, what[0].label, "a") == -450_000_000_000
    assert delta(result, what[0].label, "b") == 0  # other model
    assert int(result.data.cells.set_index("customer_id").loc["a", "cached_input_tokens"]) == 500_000


def test_route_a_feature_to_another_model(catalog):
    what = parse_what_ifs([{"route": {"feature": "doc", "to_model": "gpt-5.4-mini"}}])
    result = apply_what_ifs(data(), what, catalog)
    # 1M x $0.75 + 1M x $0.075 + 0.2M x $4.5 = $1.725 against $3
    assert delta(result, what[0].label, "b") == 1_725_000_000_000 - 3 * USD


def test_batch_for_a_feature_uses_the_model_it_ran_on(catalog):
    what = parse_what_ifs([{"batch": {"feature": "nightly"}}])
    dominant = pd.DataFrame({"feature": ["nightly"], "month": ["2026-09"], "model": ["gpt-4.1"]})
    result = apply_what_ifs(data(), what, catalog, dominant=dominant)
    # gpt-4.1 Batch: 1M x $1 + 0.1M x $4 = $1.40 against $3
    assert delta(result, what[0].label, "b") == 1_400_000_000_000 - 3 * USD


def test_effects_add_up_and_feed_a_simulation(catalog):
    what = parse_what_ifs(
        {"what_if": [{"price_change": {"model": "gpt-4.1", "input_per_1m": "1.00", "output_per_1m": "4.00"}}, {"route": {"feature": "doc", "to_model": "gpt-5.4-mini"}}]}
    )
    result = apply_what_ifs(data(), what, catalog)
    combined = result.summary.set_index("what_if").loc["all what-ifs together"]
    assert combined["cost_delta_pico"] == -1_200_000_000_000 + (1_725_000_000_000 - 3 * USD)
    assert combined["cost_before_pico"] == 8_500_000_000_000
    # margin against today's revenue ($30): before (30 - 8.5) / 30, after (30 - 8.5 + 1.2 + 1.275) / 30
    assert combined["margin_before_pct"] == D("0.7167")
    assert combined["margin_after_pct"] == D("0.7992")
    markup = Scenario(name="m", plans=(Plan(name="P", payg=Payg(markup_pct=D("100"))),), assignment=Assignment(method="single", default="P"))
    simulated = simulate(markup, result.data).cells.set_index("customer_id")
    assert simulated.loc["a", "ai_cost_pico"] == 1_300_000_000_000
    assert simulated.loc["a", "revenue_minor"] == 260  # cost plus 100% of the new cost
    assert simulated.loc["a", "baseline_cost_pico"] == 2_500_000_000_000  # change is against today's cost


@pytest.mark.parametrize(
    "spec, words",
    [
        ([{"price_change": {"model": "gpt-4.1"}}], "either as_of or prices"),
        ([{"price_change": {"model": "gpt-4.1", "as_of": "2026-01-01", "input_per_1m": "1"}}], "either as_of or prices"),
        ([{"teleport": {"feature": "x"}}], "unknown what-if"),
        ([{"cache_hit_rate": {"rate": "1.5"}}], "between 0 and 1"),
        ([{"price_change": {"model": "gpt-4.1", "input_per_1m": 1.5}}], "written exactly"),
    ],
)
def test_bad_what_ifs(spec, words):
    with pytest.raises(PlanError, match=words):
        parse_what_ifs(spec)


def test_unknown_models_are_refused(catalog):
    with pytest.raises(PlanError, match="not in the price catalog"):
        apply_what_ifs(data(), parse_what_ifs([{"route": {"feature": "doc", "to_model": "gpt-99"}}]), catalog)
