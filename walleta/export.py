"""Tables as CSV files people can open safely: exact money, no spreadsheet formula injection.

Every table the app shows can be downloaded. The file is built from the core's own frame, not
from the display copy: pico-dollar columns (`*_pico`) become exact decimal dollar columns
(`*_usd`, no float on the way), and any text cell a spreadsheet would run as a formula (starting
with = + - @, a tab or a carriage return) is prefixed with a single quote (OWASP's advice).

    >>> neutralise_cell("=HYPERLINK(\\"x\\")")
    "'=HYPERLINK(\\"x\\")"
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from .money import PICO_PER_USD

__all__ = ["FORMULA_PREFIXES", "neutralise_cell", "neutralise_formulas", "pico_columns_to_usd", "to_csv_bytes"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """A text cell a spreadsheet would evaluate gets a leading quote; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells cannot run as spreadsheet formulas.

    Only text columns are touched: a negative number stored as a number stays a number.
    Column names are neutralised too (a header is a cell).
    """
    out = frame.copy()
    for name in out.columns:
        if _is_text(out[name]):
            out[name] = pd.Series([neutralise_cell(v) for v in out[name].tolist()], index=out.index, dtype=object)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def _usd_text(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return format((Decimal(int(value)) / PICO_PER_USD).normalize(), "f")


def pico_columns_to_usd(frame: pd.DataFrame) -> pd.DataFrame:
    """`cost_pico` -> `cost_usd` as exact decimal text ('12.3456789'); missing stays missing."""
    out = frame.copy()
    renames = {}
    for name in out.columns:
        if isinstance(name, str) and name.endswith("_pico"):
            out[name] = pd.Series([_usd_text(v) for v in out[name].tolist()], index=out.index, dtype=object)
            renames[name] = name[: -len("_pico")] + "_usd"
    return out.rename(columns=renames)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV file offered for download: exact dollars, formulas neutralised, UTF-8."""
    # Neutralise first: the dollar text made from pico columns may start with '-' and must stay a number.
    safe = pico_columns_to_usd(neutralise_formulas(frame))
    return safe.to_csv(index=False).encode("utf-8")
