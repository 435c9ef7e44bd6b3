"""Revenue allocated to features by a per-customer basis, vectorised and exact (issue 6).

The rule (see `breakdowns`): each customer's revenue R (non-zero) is split across the features
with a positive basis b for that customer (AI cost or requests summed over the period), in
proportion to b: each part is sign(R) * (|R| * b // B), B = the customer's total basis, and the
remainder R - sum(parts) goes to the feature with the largest basis, ties to the first feature
name in sort order. This equals `allocate_exact` per customer with the features in name order.

How, without a Python loop per row: customers and features are factorised to integer codes and
summed with `np.add.at`. |R| * b can pass int64 even when R and b fit (revenue ~10^17 pico-dollars
times cost ~10^14), so the quotient is computed in float64 first and corrected exactly:
est = floor(|R| * b / B) in floating point is within e = |R| / 2^50 + 2 of the true quotient Q
(five roundings of relative error <= 2^-53 each, on a value <= |R|), so the true remainder
|R| * b - est * B lies within (e + 1) * B of zero; when that is below 2^62 the int64 computation
of it (which wraps modulo 2^64) is exact, and Q = est + remainder // B. When a bound does not hold
(revenue or basis near or beyond int64) every step runs on Python ints instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .exact import SAFE, exact_ints, exact_sums

__all__ = ["allocate_by_basis", "positions"]

def allocate_by_basis(
    customers: np.ndarray,
    features: np.ndarray,
    basis: np.ndarray,
    revenue_customers: Sequence[str],
    revenue: Sequence[int],
    *,
    unique_pairs: bool = False,
) -> tuple[dict[str, int], int]:
    """Allocated revenue per feature, and the revenue of customers without any positive basis.

    Inputs: `customers`, `features`, `basis` (int64 or Python-int object array), one value per
    row; rows sharing a (customer, feature) are summed first (pass `unique_pairs=True` when no pair
    repeats, e.g. one month of the rollup, to skip that step); pairs whose sum is <= 0 are left out.
    `revenue_customers` / `revenue`: each customer's revenue (ids unique; customers with 0 are
    left out). Output: {feature: Python int} in feature-name order, for every feature with a
    positive basis at a customer with revenue; and the sum of the other customers' revenue."""
    rev = [int(v) for v in revenue]
    ids = [c for c, v in zip(revenue_customers, rev) if v != 0]
    rev = [v for v in rev if v != 0]
    if not ids:
        return {}, 0
    customer_code, customer_names = _codes(np.asarray(customers, dtype=object))
    feature_code, feature_names = pd.factorize(np.asarray(features, dtype=object))
    basis = exact_ints(np.asarray(basis))
    if not unique_pairs and len(basis):
        customer_code, feature_code, basis = _sum_pairs(customer_code, feature_code, len(feature_names), basis)
    slot = positions(ids, customer_names)[customer_code]
    keep = (slot >= 0) & np.asarray(basis > 0, dtype=bool)
    slot, feature_code, basis = slot[keep], feature_code[keep], basis[keep]
    has_rows = np.bincount(slot, minlength=len(rev)) > 0
    left = sum(v for v, used in zip(rev, has_rows.tolist()) if not used)
    if not len(slot):
        return {}, left
    revenue_of = exact_ints(np.array(rev, dtype=object))
    parts = _parts(slot, basis, revenue_of)
    parts = _with_remainders(slot, basis, _name_rank(feature_names)[feature_code], parts, revenue_of)
    wide = parts.dtype == object or sum(map(abs, rev)) >= SAFE  # |parts| of a customer sum to |R|
    totals = np.zeros(len(feature_names), dtype=object if wide else np.int64)
    np.add.at(totals, feature_code, parts)
    used = np.bincount(feature_code, minlength=len(feature_names)) > 0
    order = sorted((str(feature_names[i]), i) for i in range(len(feature_names)) if used[i])
    return {name: int(totals[i]) for name, i in order}, left


def positions(keys: Sequence[object], targets: np.ndarray | Sequence[object]) -> np.ndarray:
    """Each target's position in `keys` (unique), -1 when absent. A dict lookup: about twice as
    fast as `pd.Index.get_indexer` on text, which also converts object targets to Arrow strings."""
    where = dict(zip(keys, range(len(keys))))
    found = where.get
    targets = targets.tolist() if isinstance(targets, np.ndarray) else targets
    return np.array([found(t, -1) for t in targets], dtype=np.int64) if len(targets) else np.zeros(0, dtype=np.int64)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the distinct values (like `pd.factorize`). Rows read in key order come
    grouped by customer, so runs of equal values are numbered directly (3x cheaper); when a value
    appears in two separate runs the rows were not grouped and `pd.factorize` is used."""
    if len(values) < 2:
        codes, names = pd.factorize(values)
        return codes, np.asarray(names, dtype=object)
    change = np.empty(len(values), dtype=bool)
    change[0] = True
    change[1:] = values[1:] != values[:-1]
    heads = values[change]
    if pd.Index(heads, dtype=object).is_unique:
        return np.cumsum(change) - 1, heads
    codes, names = pd.factorize(values)
    return codes, np.asarray(names, dtype=object)


def _sum_pairs(customer: np.ndarray, feature: np.ndarray, n_features: int, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum rows sharing a (customer, feature) pair: one row per pair."""
    key = customer.astype(np.int64) * max(n_features, 1) + feature.astype(np.int64)
    pairs, inverse = np.unique(key, return_inverse=True)
    if len(pairs) == len(key):
        return customer, feature, basis
    summed = exact_ints(exact_sums(inverse.ravel(), len(pairs), basis))
    return pairs // max(n_features, 1), pairs % max(n_features, 1), summed


def _parts(slot: np.ndarray, basis: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """sign(R) * (|R| * b // B) per row (R, B: the row's customer revenue and total basis), int64
    on the checked fast path (module docstring), else Python ints."""
    total = exact_sums(slot, len(revenue), basis)
    if basis.dtype == np.int64 and total.dtype == np.int64 and revenue.dtype == np.int64:
        largest_r = max(abs(int(revenue.max())), abs(int(revenue.min())))
        if ((largest_r >> 50) + 3) * int(total.max()) < SAFE:
            r = revenue[slot]
            r_abs, big_b = np.abs(r), total[slot]
            estimate = np.floor(r_abs.astype(np.float64) * basis.astype(np.float64) / big_b.astype(np.float64)).astype(np.int64)
            remainder = r_abs * basis - estimate * big_b  # exact: |true value| < 2^62, and int64 arrays wrap mod 2^64
            quotient = estimate + remainder // big_b
            return np.where(r < 0, -quotient, quotient)
    r = revenue.astype(object)[slot]
    quotient = (np.abs(r) * basis.astype(object)) // total.astype(object)[slot]
    return np.where(np.asarray(r < 0, dtype=bool), -quotient, quotient).astype(object)


def _name_rank(names: np.ndarray) -> np.ndarray:
    """Each name's position in sorted order."""
    order = sorted(range(len(names)), key=lambda i: str(names[i]))
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.array(order, dtype=np.int64)] = np.arange(len(names), dtype=np.int64)
    return rank


def _with_remainders(slot: np.ndarray, basis: np.ndarray, rank: np.ndarray, parts: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """Add each customer's remainder R - sum(parts) to its row with the largest basis (ties: the
    first feature name, i.e. the lowest `rank`). int64 `parts` come from `_parts`' fast path, so
    every |R| < 2^62 and a customer's parts (all of R's sign, summing to at most |R|) add up in
    int64."""
    size = len(revenue)
    largest = np.full(size, -1, dtype=np.int64 if basis.dtype == np.int64 else object)
    np.maximum.at(largest, slot, basis)
    candidate = np.asarray(basis == largest[slot], dtype=bool)
    first = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, slot, np.where(candidate, rank, np.iinfo(np.int64).max))
    chosen = candidate & (rank == first[slot])
    fast = parts.dtype == np.int64
    per_customer = np.zeros(size, dtype=np.int64 if fast else object)
    np.add.at(per_customer, slot, parts)
    fix = (revenue if fast else revenue.astype(object)) - per_customer
    parts = parts.copy()
    parts[chosen] += fix[slot[chosen]]
    return parts
