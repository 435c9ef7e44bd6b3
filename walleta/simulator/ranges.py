"""Intervals for results that rest on uncertain usage: a bootstrap over each customer's months.

Method (percentile bootstrap, resampling within customers):

1. Take the per customer-month results (simulated revenue, AI cost, or a what-if's cost delta).
2. For each of B replicates (default 1,000, fixed seed), every customer keeps its number of
   active months, and those months are drawn with replacement from its own months.
3. The book totals (and margin, margin %) are recomputed for each replicate.
4. The interval is the central `level` (default 90%) of the B replicate values: from the
   value at rank floor(B x (1 - level) / 2) to the one at rank ceil(B x (1 + level) / 2) - 1
   of the sorted replicates. The estimate is the actual total.

What it covers: how much the result depends on which months happened to occur for each
customer (a heavy month more or less). What it does not cover: customers joining or leaving,
usage reacting to the new prices, or future price changes beyond the what-ifs you apply.
Carry-over mechanics (credit rollover, multi-month minimums) are taken as simulated for each
month, not re-run on the resampled sequence. Totals are exact integers (pico-dollars); the
random draws are the only floating-point numbers involved.
"""

from __future__ import annotations

from decimal import Decimal
from math import ceil, floor

import numpy as np
import pandas as pd

from ._num import exact_sum

__all__ = ["bootstrap", "METHOD"]

METHOD = (
    "percentile bootstrap: each customer's months resampled with replacement (same number of months), "
    "book totals recomputed per replicate; interval = central share of the replicates"
)
_SPLIT = 2**31


def _packed(frame: pd.DataFrame, column: str, order: np.ndarray, starts: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Customer x month-slot matrices (high and low 31-bit parts) of an integer column."""
    values = frame[column].to_numpy()[order]
    values = np.asarray([int(v) for v in values], dtype=object) if values.dtype == object else values.astype(np.int64)
    if values.dtype == object:
        high = np.array([v // _SPLIT for v in values], dtype=np.int64)
        low = np.array([v % _SPLIT for v in values], dtype=np.int64)
    else:
        high, low = np.divmod(values, _SPLIT)
    slot = np.arange(len(order)) - np.repeat(starts, counts)
    row = np.repeat(np.arange(len(counts)), counts)
    hi = np.zeros((len(counts), width), dtype=np.int64)
    lo = np.zeros((len(counts), width), dtype=np.int64)
    hi[row, slot] = high
    lo[row, slot] = low
    return hi, lo


def bootstrap(
    cells: pd.DataFrame,
    columns: tuple[str, ...] = ("revenue_pico", "ai_cost_pico"),
    *,
    margin: tuple[str, str] | None = ("revenue_pico", "ai_cost_pico"),
    replicates: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> pd.DataFrame:
    """Intervals for the book totals of integer `columns` of a per customer-month frame.

    With `margin` = (revenue column, cost column), also margin (= revenue - cost) and margin %.
    Returns one row per measure: measure, estimate, low, high, replicates, level.
    """
    if cells.empty:
        return pd.DataFrame(columns=["measure", "estimate", "low", "high", "replicates", "level"])
    codes, _ = pd.factorize(cells["customer_id"], sort=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    width = int(counts.max())
    matrices = {c: _packed(cells, c, order, starts, counts, width) for c in columns}
    rng = np.random.default_rng(seed)
    valid = np.arange(width)[None, :] < counts[:, None]
    rows = np.arange(len(counts))[:, None]
    samples: dict[str, list[int]] = {c: [] for c in columns}
    for _ in range(replicates):
        picks = np.floor(rng.random((len(counts), width)) * counts[:, None]).astype(np.int64)
        for column, (hi, lo) in matrices.items():
            high = int(np.where(valid, hi[rows, picks], 0).sum())
            low = int(np.where(valid, lo[rows, picks], 0).sum())
            samples[column].append(high * _SPLIT + low)
    estimates = {c: exact_sum(np.asarray([int(v) for v in cells[c]], dtype=object)) for c in columns}
    result = [_row(c, estimates[c], samples[c], replicates, level) for c in columns]
    if margin is not None:
        revenue, cost = margin
        margins = [r - k for r, k in zip(samples[revenue], samples[cost])]
        result.append(_row("margin_pico", estimates[revenue] - estimates[cost], margins, replicates, level))
        pct = [(Decimal(m) / r).quantize(Decimal("0.0001")) for m, r in zip(margins, samples[revenue]) if r]
        actual = (Decimal(estimates[revenue] - estimates[cost]) / estimates[revenue]).quantize(Decimal("0.0001")) if estimates[revenue] else None
        if pct:
            result.append(_row("margin_pct", actual, pct, len(pct), level))
    return pd.DataFrame(result)


def _row(measure: str, estimate: object, values: list, replicates: int, level: float) -> dict[str, object]:
    ordered = sorted(values)
    low_rank = floor(len(ordered) * (1 - level) / 2)
    high_rank = max(ceil(len(ordered) * (1 + level) / 2) - 1, low_rank)
    return {"measure": measure, "estimate": estimate, "low": ordered[low_rank], "high": ordered[high_rank], "replicates": replicates, "level": level}
