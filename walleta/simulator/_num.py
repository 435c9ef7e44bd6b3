"""Exact integer arithmetic on numpy arrays for the simulator's money path.

Prices in plans are `Decimal`s; quantities and amounts are integers. Every product is taken as
an exact rational `value * num / den` and rounded once, to an integer, with an explicit rule.
Arrays stay int64 while the products provably fit; otherwise the work falls back to Python
integers (object arrays), so results are exact at any size. No float touches a money value.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np

__all__ = [
    "ratio",
    "mul_div",
    "exact_sum",
    "exact_sums_by",
    "scale_by",
    "HALF_UP",
    "HALF_EVEN",
    "UP",
    "DOWN",
]

HALF_UP, HALF_EVEN, UP, DOWN = "half_up", "half_even", "up", "down"
# Products below this bound are safe in int64 even after a few are added together.
_SAFE = 2**62


def ratio(value: Decimal | int | Fraction) -> tuple[int, int]:
    """An exact (numerator, denominator) pair for a Decimal, int or Fraction (denominator > 0)."""
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    if isinstance(value, int):
        return value, 1
    num, den = Decimal(value).as_integer_ratio()
    return int(num), int(den)


def _max_abs(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    if values.dtype == object:
        return max(abs(int(v)) for v in values)
    return max(abs(int(values.max())), abs(int(values.min())))


def _round_div(numerator: np.ndarray, den: int, rounding: str) -> np.ndarray:
    """numerator / den rounded to an integer by `rounding` (works on int64 and object arrays)."""
    if numerator.dtype == object:  # numpy has no divmod loop for Python ints
        quotient, remainder = numerator // den, numerator % den
    else:
        quotient, remainder = np.divmod(numerator, den)  # floor division: remainder in [0, den)
    if rounding == DOWN:
        return quotient
    if rounding == UP:
        return quotient + (remainder > 0)
    twice = remainder * 2
    if rounding == HALF_UP:
        return quotient + (twice >= den)
    if rounding == HALF_EVEN:
        return quotient + ((twice > den) | ((twice == den) & (quotient % 2 == 1)))
    raise ValueError(f"unknown rounding {rounding!r}")


def mul_div(values: np.ndarray, num: int, den: int, rounding: str = HALF_UP) -> np.ndarray:
    """values * num / den rounded to integers; int64 when the result fits, else Python ints.

    Half-up rounds halves towards +infinity (the amounts it is used on are never negative).
    """
    values = np.asarray(values)
    if den <= 0:
        raise ValueError("denominator must be positive")
    if _max_abs(values) * abs(num) < _SAFE and den < _SAFE and values.dtype != object:
        product = values.astype(np.int64) * num
        return product if den == 1 else _round_div(product, den, rounding)
    exact = values.astype(object) * num
    result = _round_div(exact, den, rounding)
    return _narrow(result)


def _narrow(values: np.ndarray) -> np.ndarray:
    """Back to int64 when every value fits, so later steps stay vectorised."""
    if values.dtype != object:
        return values
    if values.size == 0 or _max_abs(values) < 2**63:
        return values.astype(np.int64)
    return values


def exact_sum(values: np.ndarray) -> int:
    """The exact integer sum of an int64 (or object) array, without int64 overflow."""
    values = np.asarray(values)
    if values.size == 0:
        return 0
    if values.dtype == object:
        return int(sum(int(v) for v in values))
    high, low = np.divmod(values.astype(np.int64), 2**31)
    return int(high.sum()) * 2**31 + int(low.sum())


def exact_sums_by(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Exact integer sums of `values` per group code (0..count-1), without overflow.

    Returns int64 when every sum fits, else Python ints (object array).
    """
    values = np.asarray(values)
    if values.dtype == object:
        totals = [0] * count
        for g, v in zip(groups.tolist(), values.tolist()):
            totals[g] += int(v)
        return _narrow(np.array(totals, dtype=object))
    high, low = np.divmod(values.astype(np.int64), 2**31)
    high_sums = np.zeros(count, dtype=np.int64)
    low_sums = np.zeros(count, dtype=np.int64)
    np.add.at(high_sums, groups, high)
    np.add.at(low_sums, groups, low)
    if count == 0 or (high_sums.max() < 2**31 and high_sums.min() >= -(2**31)):
        return high_sums * 2**31 + low_sums  # |high| < 2**31 and 0 <= low < 2**62: fits int64
    return _narrow(np.array([int(h) * 2**31 + int(lo) for h, lo in zip(high_sums.tolist(), low_sums.tolist())], dtype=object))


def scale_by(values: np.ndarray, num: np.ndarray, den: np.ndarray, rounding: str) -> np.ndarray:
    """Element-wise values * num / den rounded to integers (den > 0), exact at any size."""
    values, num, den = np.asarray(values), np.asarray(num), np.asarray(den)
    if values.size == 0:
        return values.astype(np.int64)
    if values.dtype != object and num.dtype != object and _max_abs(values) * _max_abs(num) < _SAFE:
        return _round_div(values.astype(np.int64) * num.astype(np.int64), den.astype(np.int64), rounding)
    exact = values.astype(object) * num.astype(object)
    return _narrow(_round_div(exact, den.astype(object), rounding))
