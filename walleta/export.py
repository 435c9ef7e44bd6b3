"""Tables as CSV files people can open safely: exact money, no spreadsheet formula injection.

Every table the app shows can be downloaded. The file is built from the core's own frame, not
from the display copy: pico-dollar columns (`*_pico`) become exact decimal dollar columns
(`*_usd`, no float on the way), and any text cell a spreadsheet would run as a formula (starting
with = + - @, a tab or a carriage return) is prefixed with a single quote (OWASP's advice).

    >>> neutralise_cell("=HYPERLINK(\\"x\\")")
    "'=HYPERLINK(\\"x\\")"

Rule (CSV injection): a text cell starting with `=`, `+`, `-`, `@`, a tab, a carriage return or
a line feed (after leading spaces) gets a leading single quote, which spreadsheets show as text.
Numbers stay numbers: numeric columns are untouched, and text that is just a number (`-12.5`,
`+3`) is left as it is.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from .money import PICO_PER_USD

__all__ = [
    "FORMULA_PREFIXES",
    "neutralise_cell",
    "neutralise_formulas",
    "pico_columns_to_usd",
    "safe_csv",
    "safe_frame",
    "to_csv_bytes",
    "write_safe_csv",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """`value` with a leading `'` if it is text a spreadsheet would run as a formula; else unchanged."""
    if not isinstance(value, str) or not value:
        return value
    stripped = value.lstrip(" ")
    if stripped.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(stripped):
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
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")  # CRLF: a lone CR in a cell gets quoted


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names are neutralised; numbers untouched."""
    return neutralise_formulas(frame)


def safe_csv(frame: pd.DataFrame, *, index: bool = False) -> str:
    """The frame as CSV text (RFC 4180: CRLF rows, so a cell holding CR or LF is quoted), header
    row first, with formula-looking cells neutralised."""
    return safe_frame(frame).to_csv(index=index, lineterminator="\r\n")


def write_safe_csv(frame: pd.DataFrame, target: str | Path | TextIO, *, index: bool = False) -> None:
    """Write `safe_csv(frame)` to a path or an open text stream."""
    text = safe_csv(frame, index=index)
    if isinstance(target, (str, Path)):
        Path(target).write_text(text, encoding="utf-8", newline="")
    else:
        target.write(text)
