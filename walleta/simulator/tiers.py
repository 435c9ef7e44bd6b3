"""Stripe price arithmetic: per-unit, package (`transform_quantity`), graduated and volume tiers.

Semantics (Stripe Prices API; amounts in minor units of the currency):

- A tier covers quantities up to and including its `up_to`; the next tier starts at `up_to + 1`;
  the last tier is `up_to: inf`. A quantity exactly at `up_to` belongs to that tier.
- Graduated: each unit is priced at the `unit_amount_decimal` of the tier it falls in, and the
  `flat_amount` of every tier the quantity reaches is added. The first tier is always reached,
  so its flat amount is charged even for a quantity of 0 (this is how a Stripe graduated price
  with a flat first tier bills a base fee).
- Volume: the whole quantity is priced at the unit amount of the one tier the total falls in,
  plus that tier's flat amount (a quantity of 0 falls in the first tier).
- Package: `transform_quantity` divides the quantity by `divide_by` and rounds `up` or `down`
  before it is multiplied by the unit amount (Stripe allows it only with `per_unit` prices).
- Rounding: the exact amount of a price for the period (a Decimal) is rounded once, to the
  nearest minor unit, halves up, as Stripe rounds a line item ("0.05 x 30 = 1.5, rounded up to 2").

The scalar functions are the reference; the `*_array` functions are the vectorised equivalents
used by the engine and give identical integers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from math import lcm

import numpy as np

from ._num import ratio
from .plans import Meter, Tier

__all__ = [
    "graduated_exact",
    "volume_exact",
    "tiered_amount",
    "package_quantity",
    "meter_amount",
    "tiered_amount_array",
    "package_quantity_array",
    "meter_amount_array",
    "round_minor",
]


def round_minor(amount: Decimal) -> int:
    """An exact amount in minor units -> integer minor units, halves rounded up (Stripe)."""
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def _lower_bounds(tiers: tuple[Tier, ...]) -> list[int]:
    """Each tier's exclusive lower bound: 0 for the first, the previous up_to after that."""
    return [0] + [int(t.up_to) for t in tiers[:-1]]  # type: ignore[arg-type]


def graduated_exact(quantity: int, tiers: tuple[Tier, ...]) -> Decimal:
    """The exact graduated amount (minor units, unrounded) for a non-negative quantity."""
    total = Decimal(0)
    for tier, lower in zip(tiers, _lower_bounds(tiers)):
        if quantity <= lower and lower > 0:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        total += max(upper - lower, 0) * tier.unit_amount_decimal + tier.flat_amount
    return total


def volume_exact(quantity: int, tiers: tuple[Tier, ...]) -> Decimal:
    """The exact volume amount (minor units, unrounded) for a non-negative quantity."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return quantity * tier.unit_amount_decimal + tier.flat_amount
    raise ValueError("tiers must end with up_to inf")


def tiered_amount(quantity: int, tiers: tuple[Tier, ...], mode: str) -> int:
    """Graduated or volume amount in integer minor units (rounded once, halves up)."""
    exact = graduated_exact(quantity, tiers) if mode == "graduated" else volume_exact(quantity, tiers)
    return round_minor(exact)


def package_quantity(quantity: int, divide_by: int, rounding: str) -> int:
    """Stripe transform_quantity: quantity / divide_by rounded up or down."""
    whole, rest = divmod(quantity, divide_by)
    return whole + (1 if rounding == "up" and rest else 0)


def meter_amount(quantity: int, meter: Meter) -> int:
    """What one metered price charges for a month's quantity, in integer minor units."""
    if meter.billing_scheme == "tiered":
        return tiered_amount(quantity, meter.tiers, meter.tiers_mode or "graduated")
    if meter.transform_quantity is not None:
        quantity = package_quantity(quantity, meter.transform_quantity.divide_by, meter.transform_quantity.round)
    return round_minor(quantity * (meter.unit_amount_decimal or Decimal(0)))


# ---------------------------------------------------------------------------------------------
# Vectorised
# ---------------------------------------------------------------------------------------------


def _scaled(tiers: tuple[Tier, ...]) -> tuple[int, list[int], list[int]]:
    """A common denominator and each tier's unit and flat amounts as integer numerators."""
    pairs = [ratio(t.unit_amount_decimal) for t in tiers] + [ratio(t.flat_amount) for t in tiers]
    den = 1
    for _, d in pairs:
        den = lcm(den, d)
    units = [n * (den // d) for n, d in pairs[: len(tiers)]]
    flats = [n * (den // d) for n, d in pairs[len(tiers) :]]
    return den, units, flats


def _work_dtype(quantity: np.ndarray, units: list[int], flats: list[int]) -> type | str:
    biggest = int(quantity.max(initial=0)) * max(units + [1]) + sum(flats)
    return np.int64 if biggest * (len(units) + 1) < 2**62 else object


def _round_half_up(numerator: np.ndarray, den: int) -> np.ndarray:
    # floor((n + floor(den / 2)) / den) rounds halves up for odd and even denominators alike.
    result = (numerator + den // 2) // den
    if result.dtype == object:
        return result.astype(np.int64) if result.size == 0 or max(result) < 2**63 else result
    return result


def tiered_amount_array(quantity: np.ndarray, tiers: tuple[Tier, ...], mode: str) -> np.ndarray:
    """Vectorised `tiered_amount` over a non-negative integer array."""
    quantity = np.asarray(quantity, dtype=np.int64)
    den, units, flats = _scaled(tiers)
    dtype = _work_dtype(quantity, units, flats)
    q = quantity.astype(dtype)
    total = np.zeros(len(q), dtype=dtype)
    lowers = _lower_bounds(tiers)
    if mode == "graduated":
        for tier, lower, unit, flat in zip(tiers, lowers, units, flats):
            upper = q if tier.up_to is None else np.minimum(q, tier.up_to)
            in_tier = np.maximum(upper - lower, 0)
            reached = (q > lower) | (lower == 0)
            total = total + in_tier * unit + np.where(reached, flat, 0).astype(dtype)
    else:
        uppers = np.array([np.iinfo(np.int64).max if t.up_to is None else t.up_to for t in tiers], dtype=np.int64)
        index = np.searchsorted(uppers, quantity, side="left")  # first tier with quantity <= up_to
        unit_arr = np.array(units, dtype=dtype)[index]
        flat_arr = np.array(flats, dtype=dtype)[index]
        total = q * unit_arr + flat_arr
    return _round_half_up(total, den)


def package_quantity_array(quantity: np.ndarray, divide_by: int, rounding: str) -> np.ndarray:
    """Vectorised `package_quantity`."""
    whole, rest = np.divmod(np.asarray(quantity, dtype=np.int64), divide_by)
    return whole + ((rest > 0) if rounding == "up" else 0)


def meter_amount_array(quantity: np.ndarray, meter: Meter) -> np.ndarray:
    """Vectorised `meter_amount`."""
    if meter.billing_scheme == "tiered":
        return tiered_amount_array(quantity, meter.tiers, meter.tiers_mode or "graduated")
    if meter.transform_quantity is not None:
        quantity = package_quantity_array(quantity, meter.transform_quantity.divide_by, meter.transform_quantity.round)
    single = (Tier(up_to=None, unit_amount_decimal=meter.unit_amount_decimal or Decimal(0)),)
    return tiered_amount_array(quantity, single, "volume")
