"""Presentation helpers: the one place analytics numbers become USD decimals or percentages.

Analytics frames carry money as integer pico-dollars (`*_pico`, Python ints where a sum may
pass int64). `with_usd` adds (or swaps in) `*_usd` columns as exact `Decimal`s rounded once,
half-even, for display and export; `pct` turns an exact ratio of integers into a percentage.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..money import PICO_PER_USD

__all__ = ["usd", "pct", "pct_of_positive", "ratio", "with_usd", "USD_PLACES", "UNIT_COST_PLACES", "div_round"]

USD_PLACES = 2
# Per-request and per-token costs are fractions of a cent: keep six places.
UNIT_COST_PLACES = 6
_UNIT_COST_HINTS = ("per_request", "per_1k", "per_customer", "daily", "run_rate")


def usd(pico: Any, places: int = USD_PLACES) -> Decimal | None:
    """Integer pico-dollars -> Decimal dollars rounded half-even to `places`; None stays None."""
    if pico is None or (not isinstance(pico, int) and pd.isna(pico)):
        return None
    return (Decimal(int(pico)) / PICO_PER_USD).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator as an exact-enough Decimal (28 digits); None when denominator is 0."""
    if denominator == 0:
        return None
    return Decimal(int(numerator)) / Decimal(int(denominator))


def pct(numerator: int, denominator: int, places: int = 2) -> Decimal | None:
    """100 * numerator / denominator rounded half-even to `places`; None when denominator is 0.

    The defined result is the Decimal one: the ratio to 28 digits, times 100, quantized. For
    two places and |numerator| < 10^21 that equals exact integer rounding (the 28-digit ratio
    can only cross a rounding midpoint when |numerator| >= 10^22), which is computed directly:
    the same value, sign and exponent, without the Decimal division."""
    n, d = int(numerator), int(denominator)
    if d == 0:
        return None
    if places != 2 or not -_PCT_EXACT < n < _PCT_EXACT:
        value = ratio(n, d)
        return (value * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)  # type: ignore[operator]
    quotient, remainder = divmod(abs(n) * 10_000, abs(d))
    twice = 2 * remainder
    if twice > abs(d) or (twice == abs(d) and quotient & 1):
        quotient += 1
    result = Decimal(quotient).scaleb(-2)
    return result.copy_negate() if (n < 0) != (d < 0) else result


_PCT_EXACT = 10**21
_PCT_INT64 = 2**63 // 10_000  # |numerator| below this: 10,000 x numerator fits int64


def pct_of_positive(numerators: list[int], denominators: list[int]) -> list[Decimal | None]:
    """`pct(n, d)` for each pair whose denominator is > 0, None where it is not (how every margin
    % is shown: undefined without positive revenue). Same values, signs and exponents as `pct`;
    for many rows the integer rounding runs in int64 numpy when no product can overflow, and each
    distinct result is built as a Decimal once."""
    count = len(numerators)
    if count < 64:
        return [pct(n, d) if d > 0 else None for n, d in zip(numerators, denominators)]
    try:
        n = np.array(numerators, dtype=np.int64)
        d = np.array(denominators, dtype=np.int64)
    except OverflowError:
        return [pct(a, b) if b > 0 else None for a, b in zip(numerators, denominators)]
    positive = d > 0
    safe = positive & (np.abs(n) < _PCT_INT64)
    magnitude = np.abs(n) * 10_000
    divisor = np.where(safe, d, 1)
    quotient, remainder = np.divmod(np.where(safe, magnitude, 0), divisor)
    twice = 2 * remainder
    quotient += (twice > divisor) | ((twice == divisor) & (quotient & 1).astype(bool))
    negative = n < 0
    # Each distinct (quotient, sign) is built as a Decimal once, then picked per row.
    q_codes, q_values = pd.factorize(quotient)
    codes, keys = pd.factorize(q_codes.astype(np.int64) * 2 + negative)
    made: list[Decimal | None] = []
    for key in keys.tolist():
        value = Decimal(int(q_values[key >> 1])).scaleb(-2)
        made.append(value.copy_negate() if key & 1 else value)
    out = np.array([*made, None], dtype=object)[np.where(safe, codes, len(made))].tolist()
    for i in np.flatnonzero(positive & ~safe).tolist():
        out[i] = pct(numerators[i], denominators[i])
    return out


def div_round(numerator: int, denominator: int) -> int | None:
    """numerator / denominator (denominator > 0) rounded half-even to an integer, e.g. cost per
    request in pico-dollars; None when the denominator is 0."""
    if denominator == 0:
        return None
    quotient, remainder = divmod(int(numerator), int(denominator))
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def with_usd(frame: pd.DataFrame, *, drop_pico: bool = False, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Add `<name>_usd` (Decimal) next to every `<name>_pico` column (or the ones named).

    Unit costs (`*per_request*`, daily run rates) keep six decimal places, totals two. With
    `drop_pico` the pico columns are removed (the export form: money named with its unit).
    """
    out = frame.copy()
    chosen = list(columns) if columns is not None else [c for c in frame.columns if c.endswith("_pico")]
    for name in chosen:
        base = name[: -len("_pico")]
        places = UNIT_COST_PLACES if any(h in base for h in _UNIT_COST_HINTS) else USD_PLACES
        values = [usd(v, places) for v in frame[name].tolist()]
        position = out.columns.get_loc(name) + 1
        out.insert(position, f"{base}_usd", pd.Series(values, index=frame.index, dtype=object))
        if drop_pico:
            out = out.drop(columns=[name])
    return out
