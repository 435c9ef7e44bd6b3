"""CSV export that spreadsheets cannot execute: neutralise formula-looking cells.

A cell whose text starts with `=`, `+`, `-`, `@` (or a tab, carriage return or line feed, which
some spreadsheets skip before reading a formula) is run as a formula when the CSV is opened in
Excel, LibreOffice or Google Sheets (CSV injection). Customer, feature and model names come from
users' data, so every CSV Walleta writes for people goes through here:

    from walleta.export import safe_csv, write_safe_csv
    st.download_button("Download CSV", safe_csv(frame), "customers.csv", "text/csv")
    write_safe_csv(frame, "results.csv")            # or sys.stdout

Rule: such a text cell gets a leading single quote (`'=SUM(A1)`), which spreadsheets show as
text. Numbers stay numbers: numeric columns are untouched, and text that is just a number
(`-12.5`, `+3`) is left as it is, so negative amounts keep working in formulas.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

__all__ = ["FORMULA_PREFIXES", "neutralise_cell", "safe_frame", "safe_csv", "write_safe_csv"]

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


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells and column names are neutralised; numbers untouched."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            out[column] = series.map(neutralise_cell, na_action="ignore")
    out.columns = [neutralise_cell(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


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
