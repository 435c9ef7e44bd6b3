"""Exact integer arrays for the analytics fast paths: money stays exact without giving up numpy.

`SAFE` (2^62) leaves room so that a difference, or a small multiple of two, of values below it
cannot overflow int64. `exact_ints` keeps int64 when every value is below it, else Python ints;
`exact_sums` sums into slots in int64 when no slot can reach it, else splits each value into
32-bit halves (exact for up to 2^31 rows a slot) and recombines them as Python ints.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["SAFE", "exact_ints", "exact_ints_filled", "exact_sums"]

SAFE = 2**62


def exact_ints(values: list[int] | np.ndarray) -> np.ndarray:
    """Integers as int64 when every value is below 2^62 in size, else as an object array of
    Python ints (an empty input gives an empty int64 array)."""
    array = values if isinstance(values, np.ndarray) else np.array(values, dtype=object)
    if not len(array):
        return np.zeros(0, dtype=np.int64)
    try:  # (wide unsigned arrays would wrap silently in astype: they take the Python-int path)
        as_int = array if array.dtype == np.int64 else None if array.dtype.kind == "u" and array.dtype.itemsize >= 8 else array.astype(np.int64)
    except (OverflowError, TypeError, ValueError):
        as_int = None
    if as_int is not None and -SAFE < int(as_int.min()) and int(as_int.max()) < SAFE:
        return as_int
    return np.array([int(v) for v in array.tolist()], dtype=object)


def exact_ints_filled(values: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
    """`exact_ints` of an integer column where None / NaN / NA count 0: a Series (an int64 one is
    returned as is), an array, or a sequence such as a column of fetched rows."""
    if isinstance(values, pd.Series):
        if values.dtype == np.int64:
            return values.to_numpy()
        extension = isinstance(values.dtype, pd.api.extensions.ExtensionDtype)
        values = values.to_numpy(dtype=object, na_value=0) if extension else values.to_numpy(dtype=object)
    try:
        return exact_ints(np.asarray(values, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):  # None or NaN among the values, or beyond int64
        return exact_ints([0 if v is None or pd.isna(v) else int(v) for v in values])  # type: ignore[call-overload]


def exact_sums(inverse: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """Exact sums of `values` (int64 or Python ints, e.g. from `exact_ints`) into `size` slots
    (`inverse`: each value's slot): int64 when no slot can pass 2^62 (largest value x most rows
    in a slot); else each value is split into 32-bit halves, both summed in int64 and recombined
    as Python ints. Python-int values are summed as Python ints."""
    if values.dtype != np.int64:
        out = np.zeros(size, dtype=object)
        np.add.at(out, inverse, values)
        return out
    if not len(values):
        return np.zeros(size, dtype=np.int64)
    largest = max(abs(int(values.max())), abs(int(values.min())))
    if largest * int(np.bincount(inverse, minlength=size).max()) < SAFE:
        out = np.zeros(size, dtype=np.int64)
        np.add.at(out, inverse, values)
        return out
    high, low = np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64)
    np.add.at(high, inverse, values >> 32)
    np.add.at(low, inverse, values & 0xFFFFFFFF)
    return exact_ints(high.astype(object) * 2**32 + low.astype(object))
