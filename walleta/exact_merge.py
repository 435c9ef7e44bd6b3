"""Merges that keep integer columns exact: no NaN, so no float64 on the way.

`pandas.merge(..., how="left"|"outer")` turns an int64 column into float64 as soon as one row has
no match, and float64 holds integers exactly only up to 2^53 (USD 9,007 in pico-dollars): a later
`int(v)` gives a wrong integer. `merge_filled` merges the keys (and the columns not named in
`fill`) with pandas, then takes each `fill` column from its own frame by row number, putting the
fill value where a row has no match. int64 stays int64, object columns of Python ints stay
object (exact at any size), Int64 stays Int64; the row order is pandas' own.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["merge_filled"]

_LEFT_ROW, _RIGHT_ROW = "__exact_merge_left_row", "__exact_merge_right_row"


def merge_filled(
    left: pd.DataFrame,
    right: pd.DataFrame,
    on: str | Sequence[str],
    how: Literal["left", "right", "outer", "inner"],
    fill: Mapping[str, object],
) -> pd.DataFrame:
    """`left.merge(right, on=on, how=how)` where each column named in `fill` (on either side, not
    a key) comes out in its own dtype, holding `fill[column]` on the rows that side has no match
    for. Other columns come out as pandas gives them. Columns: left's, then right's non-keys (the
    two frames may share no non-key column)."""
    keys = [on] if isinstance(on, str) else list(on)
    shared = (set(left.columns) & set(right.columns)) - set(keys)
    if shared:
        raise ValueError(f"merge_filled: both frames have column(s) {sorted(shared)}")
    taken_left = [c for c in fill if c in left.columns and c not in keys]
    taken_right = [c for c in fill if c in right.columns and c not in keys]
    slim_left = left.drop(columns=taken_left).assign(**{_LEFT_ROW: np.arange(len(left), dtype=np.int64)})
    slim_right = right.drop(columns=taken_right).assign(**{_RIGHT_ROW: np.arange(len(right), dtype=np.int64)})
    out = slim_left.merge(slim_right, on=keys, how=how)
    for frame, columns, row_column in ((left, taken_left, _LEFT_ROW), (right, taken_right, _RIGHT_ROW)):
        rows = _row_numbers(out.pop(row_column))
        for column in columns:
            out[column] = pd.Series(frame[column].array.take(rows, allow_fill=True, fill_value=fill[column]), index=out.index)
    return out[[*left.columns, *(c for c in right.columns if c not in keys)]]


def _row_numbers(column: pd.Series) -> np.ndarray:
    """Row numbers from a merged position column, -1 where NaN (row numbers are far below 2^53,
    so the float64 pandas may have made of them is exact)."""
    return column.fillna(-1).to_numpy(dtype=np.int64)
