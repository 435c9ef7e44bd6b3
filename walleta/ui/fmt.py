"""Display formatting: the one place money becomes text or a float for a chart or grid.

Core numbers stay exact (pico-dollars as int, fractions as Decimal). Here they become strings
for metrics and captions, or floats in copies of frames that only feed charts and grids.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

import pandas as pd

from ..money import PICO_PER_USD, format_usd

__all__ = ["usd", "usd_delta", "pct", "pct_points", "pct_delta", "count", "dollars", "fraction_floats", "display_copy"]


def usd(pico: int | None, places: int = 2) -> str:
    """Pico-dollars as '$1,234.56' (None -> 'n/a')."""
    return format_usd(pico, places)


def usd_delta(pico: int | None, places: int = 0) -> str | None:
    """A signed change for st.metric: '+$1,234' or '-$56' (None stays None)."""
    if pico is None:
        return None
    text = format_usd(pico, places)
    return text if text.startswith("-") else f"+{text}"


def pct(fraction: Decimal | float | None, places: int = 1) -> str:
    """A fraction as '61.2%'; None -> 'n/a'."""
    if fraction is None or (isinstance(fraction, float) and fraction != fraction):
        return "n/a"
    return f"{Decimal(str(fraction)) * 100:.{places}f}%"


def pct_points(value: Decimal | float | None, places: int = 1) -> str:
    """A percentage already in points: 67.8 -> '67.8%'; None -> 'n/a'."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{Decimal(str(value)):,.{places}f}%"


def pct_delta(fraction_points: Decimal | float | None, places: int = 1) -> str | None:
    """A change in percentage points: '+2.5 pts'."""
    if fraction_points is None:
        return None
    value = Decimal(str(fraction_points)) * 100
    return f"{value:+.{places}f} pts"


def count(value: int | None) -> str:
    """An integer with thousands separators."""
    return "n/a" if value is None else f"{int(value):,}"


_PICO = int(PICO_PER_USD)


def _to_float_dollars(value: Any) -> float | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return int(value) / _PICO  # int / int: the correctly rounded float, at any size


def dollars(values: Iterable[Any]) -> list[float | None]:
    """Pico-dollar values -> float dollars (the nearest float), for display only."""
    return [_to_float_dollars(v) for v in values]


def fraction_floats(values: Iterable[Any]) -> list[float | None]:
    """Decimal/float fractions -> floats (None for missing), for display only."""
    out: list[float | None] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(None)
        else:
            out.append(float(v))
    return out


def display_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for charts and grids: `*_pico` columns as float dollars, Decimal columns as floats.

    Column names are kept, so the callers' column configs keep working.
    """
    out = frame.copy()
    for name in out.columns:
        series = out[name]
        if isinstance(name, str) and name.endswith("_pico"):
            out[name] = pd.Series(dollars(series.tolist()), index=out.index, dtype="float64")
        elif series.dtype == object and len(series) and any(isinstance(v, Decimal) for v in series.iloc[:50].tolist()):
            out[name] = pd.Series(fraction_floats(series.tolist()), index=out.index, dtype="float64")
    return out
