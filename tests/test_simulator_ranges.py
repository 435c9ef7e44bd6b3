"""Bootstrap intervals: exact totals, determinism, and cases whose distribution is known."""

from __future__ import annotations

from decimal import Decimal as D

import pandas as pd

from walleta.simulator.ranges import bootstrap


def frame(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "revenue_pico", "ai_cost_pico"])


def test_customers_with_identical_months_have_no_spread():
    cells = frame([("a", 100, 40), ("a", 100, 40), ("b", 7, 1), ("c", 5, 5), ("c", 5, 5), ("c", 5, 5)])
    result = bootstrap(cells, replicates=200).set_index("measure")
    assert result.loc["revenue_pico", ["estimate", "low", "high"]].tolist() == [222, 222, 222]
    assert result.loc["margin_pico", ["estimate", "low", "high"]].tolist() == [222 - 96] * 3
    assert result.loc["margin_pct", "estimate"] == D("0.5676")


def test_a_two_month_customer_spans_its_possible_totals():
    # Months 0 and 10: resampled totals are 0 (p=1/4), 10 (1/2) or 20 (1/4): the 90% interval is 0..20.
    cells = frame([("a", 0, 0), ("a", 10**15, 0)])
    result = bootstrap(cells, replicates=400, margin=None).set_index("measure")
    assert result.loc["revenue_pico", "estimate"] == 10**15
    assert result.loc["revenue_pico", "low"] == 0
    assert result.loc["revenue_pico", "high"] == 2 * 10**15


def test_seeded_and_exact_for_huge_values():
    big = 9 * 10**18  # near the int64 limit: totals must not overflow
    cells = frame([("a", big, 1), ("a", big - 5, 2), ("b", big, 3)])
    first = bootstrap(cells, replicates=50, seed=3)
    again = bootstrap(cells, replicates=50, seed=3)
    assert first.equals(again)
    revenue = first.set_index("measure").loc["revenue_pico"]
    assert revenue["estimate"] == 3 * big - 5
    assert 3 * big - 10 <= revenue["low"] <= revenue["high"] <= 3 * big


def test_works_on_what_if_deltas():
    cells = pd.DataFrame({"customer_id": ["a", "a", "b"], "delta_pico": [-5, -15, 2]})
    result = bootstrap(cells, ("delta_pico",), margin=None, replicates=100).set_index("measure")
    assert result.loc["delta_pico", "estimate"] == -18
    assert -28 <= result.loc["delta_pico", "low"] <= -18 <= result.loc["delta_pico", "high"] <= -8
