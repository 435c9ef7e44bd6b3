"""Merges that keep integer columns exact: no NaN, so no float64 on the way.

`pandas.merge(..., how="left"|"outer")` turns an int64 column into float64 as soon as one row has
no match, and float64 holds integers exactly only up to 2^53 (USD 9,007 in pico-dollars): a later
`int(v)` gives a wrong integer. `merge_filled` merges the keys (and the columns not named in
`fill`) with pandas, then takes each `fill` column from its own frame by row number, putting the
fill value where a row has no match. int64 stays int64, object columns of Python ints stay
object (exact at any size), Int64 stays Int64, object text stays object; rows and their order
are pandas' own. A left merge on text keys that are unique on the right (a calendar of months or
days, one row per key) finds the right rows with one hash lookup instead of a merge.
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
    at_right = _left_lookup(left, right, keys) if how == "left" else None
    if at_right is not None:  # every left row once, in order: left's columns as they are
        merged = left.reset_index(drop=True)
        for key in keys:  # as pandas does, a key that is str on one side and object on the other comes out object
            if left[key].dtype != right[key].dtype:
                merged[key] = pd.Series(merged[key].to_numpy(dtype=object), dtype=object, copy=False)
        rows = {_LEFT_ROW: np.arange(len(left), dtype=np.int64), _RIGHT_ROW: at_right}
    else:
        merged = _slim(left, keys, fill, _LEFT_ROW).merge(_slim(right, keys, fill, _RIGHT_ROW), on=keys, how=how)
        rows = {_LEFT_ROW: _row_numbers(merged[_LEFT_ROW]), _RIGHT_ROW: _row_numbers(merged[_RIGHT_ROW])}
    columns: dict[str, object] = {}
    for frame, row_column, looked_up in ((left, _LEFT_ROW, False), (right, _RIGHT_ROW, at_right is not None)):
        for column in frame.columns:
            if column in columns:
                continue
            if column not in keys and (column in fill or looked_up):
                columns[column] = _series(frame[column].array.take(rows[row_column], allow_fill=True, fill_value=fill.get(column)))
            else:
                columns[column] = merged[column]
    return pd.DataFrame(columns, copy=False)


def _series(values: pd.api.extensions.ExtensionArray) -> pd.Series:
    """`values` as a Series of their own dtype (pandas 3 would make an object array of str an
    Arrow-backed string column), on a RangeIndex."""
    return pd.Series(values, dtype=values.dtype, copy=False)


def _left_lookup(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> np.ndarray | None:
    """For a left merge on text keys that are unique in `right`: the right row of each left row
    (-1: none), found with one hash lookup instead of a merge (pandas keeps the left order then,
    so the rows are the same). None when a key column is not text or right's keys repeat."""
    frames = (left, right)
    if any(not (pd.api.types.is_object_dtype(f[k].dtype) or pd.api.types.is_string_dtype(f[k].dtype)) for f in frames for k in keys):
        return None
    if len(keys) == 1:
        index = pd.Index(right[keys[0]].to_numpy(dtype=object), dtype=object)
        wanted: pd.Index = pd.Index(left[keys[0]].to_numpy(dtype=object), dtype=object)
    else:
        index = pd.MultiIndex.from_arrays([right[k].to_numpy(dtype=object) for k in keys])
        wanted = pd.MultiIndex.from_arrays([left[k].to_numpy(dtype=object) for k in keys])
    if not index.is_unique:
        return None
    return index.get_indexer(wanted).astype(np.int64, copy=False)


def _slim(frame: pd.DataFrame, keys: list[str], fill: Mapping[str, object], row_column: str) -> pd.DataFrame:
    """`frame` without its `fill` columns (keys stay), plus its row numbers in `row_column`."""
    kept = {c: _series(frame[c].array) for c in frame.columns if c in keys or c not in fill}
    return pd.DataFrame({**kept, row_column: np.arange(len(frame), dtype=np.int64)}, copy=False)


def _row_numbers(column: pd.Series) -> np.ndarray:
    """Row numbers from a merged position column, -1 where NaN (row numbers are far below 2^53,
    so the float64 pandas may have made of them is exact)."""
    return column.fillna(-1).to_numpy(dtype=np.int64)
