"""Stripe price arithmetic, checked on hand-computed amounts (minor units, i.e. cents).

Tiers used by Stripe's own tiered-pricing page: 1-5 at $7, 6-10 at $6.50, 11+ at $6 per unit.
Volume: 5 units -> $35, 6 units -> 6 x $6.50 = $39. Graduated: 6 units -> 5 x $7 + $6.50 = $41.50.
"""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walleta.simulator.plans import Meter, Tier, TransformQuantity
from walleta.simulator.tiers import (
    graduated_exact,
    meter_amount,
    meter_amount_array,
    package_quantity,
    tiered_amount,
    tiered_amount_array,
    volume_exact,
)

FONTS = (Tier(5, D(700)), Tier(10, D(650)), Tier(None, D(600)))


@pytest.mark.parametrize(
    "quantity, graduated, volume",
    [
        (0, 0, 0),
        (1, 700, 700),
        (5, 3500, 3500),  # exactly at up_to: still the first tier
        (6, 3500 + 650, 6 * 650),  # one past up_to: the next tier
        (10, 3500 + 5 * 650, 10 * 650),  # exactly at the second up_to
        (11, 3500 + 3250 + 600, 11 * 600),
        (20, 3500 + 3250 + 10 * 600, 20 * 600),
        (25, 3500 + 3250 + 15 * 600, 25 * 600),  # Stripe's table: 25 -> $150 volume
    ],
)
def test_graduated_and_volume_at_boundaries(quantity, graduated, volume):
    assert tiered_amount(quantity, FONTS, "graduated") == graduated
    assert tiered_amount(quantity, FONTS, "volume") == volume
    arr = np.array([quantity])
    assert tiered_amount_array(arr, FONTS, "graduated")[0] == graduated
    assert tiered_amount_array(arr, FONTS, "volume")[0] == volume


FLATS = (Tier(100, D(0), D(2000)), Tier(1000, D(10), D(500)), Tier(None, D(5), D(100)))


@pytest.mark.parametrize(
    "quantity, graduated, volume",
    [
        (0, 2000, 2000),  # the first tier's flat amount is charged even at zero (both modes)
        (100, 2000, 2000),  # at up_to: only the first tier reached
        (101, 2000 + 500 + 10, 101 * 10 + 500),  # entering tier 2 adds its flat amount
        (1000, 2000 + 500 + 900 * 10, 1000 * 10 + 500),
        (1001, 2000 + 500 + 9000 + 100 + 5, 1001 * 5 + 100),
    ],
)
def test_flat_amounts(quantity, graduated, volume):
    assert tiered_amount(quantity, FLATS, "graduated") == graduated
    assert tiered_amount(quantity, FLATS, "volume") == volume
    assert tiered_amount_array(np.array([quantity]), FLATS, "graduated")[0] == graduated
    assert tiered_amount_array(np.array([quantity]), FLATS, "volume")[0] == volume


@pytest.mark.parametrize(
    "quantity, expected",
    [(30, 2), (10, 1), (9, 0), (29, 1), (31, 2)],  # 0.05 x 30 = 1.5 -> 2 (Stripe's decimal-amounts example)
)
def test_decimal_unit_amount_rounds_half_up_once(quantity, expected):
    meter = Meter(name="mb", measure="tokens", unit_amount_decimal=D("0.05"))
    assert meter_amount(quantity, meter) == expected
    assert meter_amount_array(np.array([quantity]), meter)[0] == expected


def test_graduated_rounds_the_total_not_each_tier():
    # 1 x 0.4 + 1 x 0.3 = 0.7 -> 1 cent; rounding each tier first would give 0 + 0 = 0.
    tiers = (Tier(1, D("0.4")), Tier(None, D("0.3")))
    assert tiered_amount(2, tiers, "graduated") == 1
    assert graduated_exact(2, tiers) == D("0.7")


@pytest.mark.parametrize(
    "quantity, rounding, packages",
    [(0, "up", 0), (1, "up", 1), (1000, "up", 1), (1001, "up", 2), (1999, "down", 1), (2000, "down", 2), (999, "down", 0)],
)
def test_package_pricing(quantity, rounding, packages):
    assert package_quantity(quantity, 1000, rounding) == packages
    meter = Meter(name="pkg", measure="tokens", unit_amount_decimal=D(250), transform_quantity=TransformQuantity(1000, rounding))
    assert meter_amount(quantity, meter) == packages * 250
    assert meter_amount_array(np.array([quantity]), meter)[0] == packages * 250


def test_huge_quantities_stay_exact():
    tiers = (Tier(10**6, D("0.000000000001")), Tier(None, D("123456.789")))
    quantity = 10**15
    exact = graduated_exact(quantity, tiers)
    assert tiered_amount(quantity, tiers, "graduated") == int(exact.to_integral_value(rounding="ROUND_HALF_UP"))
    assert tiered_amount_array(np.array([quantity]), tiers, "graduated")[0] == tiered_amount(quantity, tiers, "graduated")


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw, monotone: str | None = None, flats: str = "any"):
    """Tiers with increasing up_to; unit amounts non-decreasing / non-increasing when asked."""
    count = draw(st.integers(1, 5))
    bounds = sorted(draw(st.sets(st.integers(1, 10_000), min_size=count - 1, max_size=count - 1)))
    units = [draw(amounts) for _ in range(count)]
    if monotone == "up":
        units.sort()
    elif monotone == "down":
        units.sort(reverse=True)
    flat_values = [draw(amounts) if flats == "any" else D(0) for _ in range(count)]
    if flats == "last":
        flat_values[-1] = draw(amounts)
    ups = [*bounds, None]
    return tuple(Tier(u, a, f) for u, a, f in zip(ups, units, flat_values))


@settings(max_examples=150, deadline=None)
@given(tiers=tier_lists(), quantities=st.lists(st.integers(0, 50_000), min_size=1, max_size=20))
def test_vectorised_equals_scalar(tiers, quantities):
    arr = np.array(quantities, dtype=np.int64)
    for mode in ("graduated", "volume"):
        assert tiered_amount_array(arr, tiers, mode).tolist() == [tiered_amount(q, tiers, mode) for q in quantities]


@settings(max_examples=150, deadline=None)
@given(tiers=tier_lists(monotone="up", flats="last"), quantity=st.integers(0, 50_000))
def test_graduated_never_exceeds_volume_for_convex_tiers(tiers, quantity):
    """Condition: unit amounts non-decreasing from tier to tier, and no flat amount except on the
    last tier. Then every unit is priced at most at the rate of the tier the total falls in (the
    rate volume applies to all units), and graduated adds the flat amount only when volume does.
    Rounding once, halves up, is monotone, so the rounded amounts keep the order."""
    assert graduated_exact(quantity, tiers) <= volume_exact(quantity, tiers)
    assert tiered_amount(quantity, tiers, "graduated") <= tiered_amount(quantity, tiers, "volume")


@settings(max_examples=150, deadline=None)
@given(tiers=tier_lists(monotone="down", flats="none"), quantity=st.integers(0, 50_000))
def test_volume_never_exceeds_graduated_for_volume_discounts(tiers, quantity):
    """The mirror case: non-increasing unit amounts and no flat amounts (a volume discount)."""
    assert tiered_amount(quantity, tiers, "volume") <= tiered_amount(quantity, tiers, "graduated")


def test_graduated_can_exceed_volume_when_the_condition_fails():
    """A flat amount on an early tier breaks the property: the condition above is needed."""
    tiers = (Tier(10, D(1), D(1000)), Tier(None, D(1)))
    assert tiered_amount(20, tiers, "graduated") > tiered_amount(20, tiers, "volume")


@settings(max_examples=100, deadline=None)
@given(tiers=tier_lists(), quantity=st.integers(0, 50_000))
def test_amounts_never_negative_and_graduated_monotone(tiers, quantity):
    assert tiered_amount(quantity, tiers, "volume") >= 0
    assert tiered_amount(quantity, tiers, "graduated") <= tiered_amount(quantity + 1, tiers, "graduated")
