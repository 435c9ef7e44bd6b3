"""Anomalies: a day, or a customer, far above its own baseline.

Days (`daily_anomalies`): each day's AI cost (overall, or per feature or model) is compared with
the `baseline_days` days before it (days without usage count as $0). With m the median and MAD
the median absolute deviation of that baseline, the robust score is
(cost - m) / (1.4826 x MAD). A day is an anomaly when all of these hold: score >= `threshold`
(3.5, or MAD = 0), cost >= `min_ratio` x m (1.5x), and cost - m >= `min_excess_pico` ($1).
A series with no baseline cost is flagged once its cost reaches `min_excess_pico` ("new").

Customers (`customer_anomalies`): each customer's average daily cost over the last
`window_days` (7) is compared with its average daily cost over the `baseline_days` (28) before
(zero days included). A customer is flagged when the ratio is >= `min_ratio` (3x) and the extra
cost over the window is >= `min_excess_pico` ($5); customers with no baseline cost are flagged
as "new spend" when the window cost reaches that amount. The largest day in the window is given
for drill-down.
Both read rollups only: rollup_feature_model_day; for customers, rollup_customer_month to find
the customers that can be flagged (a flagged customer spent >= `min_excess_pico` in the window,
so one of the months the window touches holds a share of it), then rollup_customer_day for just
those customers, by key seeks (see `_candidate_sums`; every customer is summed when the shortcut
does not apply).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

from ..errors import InputError
from ..money import PICO_PER_USD, format_usd
from ..schema import UNATTRIBUTED
from ..store import Store
from .period import Period
from .customer_seeks import MAX_PARAMS, customer_day_rows, days_of
from .sources import NO_PLAN, read

__all__ = ["daily_anomalies", "customer_anomalies", "MAD_SCALE"]

MAD_SCALE = Decimal("1.4826")
_TWO = Decimal("0.01")


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_TWO, rounding=ROUND_HALF_EVEN)


def _median(values: list[int]) -> Decimal:
    ordered = sorted(values)
    n = len(ordered)
    middle = n // 2
    return Decimal(ordered[middle]) if n % 2 else (Decimal(ordered[middle - 1]) + Decimal(ordered[middle])) / 2


def daily_anomalies(
    store: Store,
    period: Period,
    *,
    by: str | None = None,
    baseline_days: int = 28,
    threshold: Decimal = Decimal("3.5"),
    min_ratio: Decimal = Decimal("1.5"),
    min_excess_pico: int = PICO_PER_USD,
    only_anomalies: bool = True,
) -> pd.DataFrame:
    """Days in `period` whose cost is far above the preceding `baseline_days`.

    Columns: day, [by], ai_cost_pico, baseline_median_pico, baseline_mad_pico, robust_score,
    ratio, excess_pico, is_anomaly, explanation. With only_anomalies=False every day is listed.
    """
    if by not in (None, "feature", "model"):
        raise InputError("daily anomalies are by day overall, by feature or by model")
    if baseline_days < 3:
        raise InputError("baseline_days must be at least 3")
    start = period.start - timedelta(days=baseline_days)
    keys = f"day, {by}" if by else "day"
    frame = read(store, 
        f"SELECT {keys}, CAST(SUM(cost_pico) AS BIGINT) AS cost FROM rollup_feature_model_day "
        f"WHERE day >= ? AND day <= ? GROUP BY {keys}",
        [start.isoformat(), period.last_day],
    )
    all_days = [(start + timedelta(days=i)).isoformat() for i in range((period.end - start).days + 1)]
    series = [(None, frame)] if by is None else list(frame.groupby(by, sort=True)) if not frame.empty else []
    rows = []
    for name, part in series:
        costs = dict(zip(part["day"], (int(v) for v in part["cost"])))
        values = [costs.get(d, 0) for d in all_days]
        for index in range(baseline_days, len(all_days)):
            row = _score_day(values[index - baseline_days:index], values[index], threshold, min_ratio, min_excess_pico)
            if only_anomalies and not row["is_anomaly"]:
                continue
            rows.append({"day": all_days[index], **({by: name} if by else {}), **row})
    columns = ["day", *([by] if by else []), "ai_cost_pico", "baseline_median_pico", "baseline_mad_pico", "robust_score",
               "ratio", "excess_pico", "is_anomaly", "explanation"]
    out = pd.DataFrame(rows, columns=columns)
    for column in ("ai_cost_pico", "baseline_median_pico", "baseline_mad_pico", "excess_pico"):
        out[column] = out[column].astype(object)
    return out


def _score_day(baseline: list[int], cost: int, threshold: Decimal, min_ratio: Decimal, min_excess: int) -> dict[str, object]:
    median = _median(baseline)
    mad = _median([abs(Decimal(v) - median) for v in baseline])  # type: ignore[misc]
    excess = Decimal(cost) - median
    score = None if mad == 0 else excess / (MAD_SCALE * mad)
    ratio = None if median == 0 else Decimal(cost) / median
    if median == 0:
        flagged = cost >= min_excess
        reason = f"{format_usd(cost)} with no cost in the baseline (new spend)" if flagged else ""
    else:
        strong = score is None or score >= threshold
        flagged = bool(strong and excess > 0 and Decimal(cost) >= min_ratio * median and excess >= min_excess)
        reason = (f"{format_usd(cost)} is {_q(ratio)}x the baseline median {format_usd(int(median))}"
                  + (f" (robust score {_q(score)})" if score is not None else " (the baseline never varied)")) if flagged else ""
    return {
        "ai_cost_pico": cost,
        "baseline_median_pico": int(median.to_integral_value(rounding=ROUND_HALF_EVEN)),
        "baseline_mad_pico": int(mad.to_integral_value(rounding=ROUND_HALF_EVEN)),  # type: ignore[union-attr]
        "robust_score": _q(score),
        "ratio": _q(ratio),
        "excess_pico": int(excess.to_integral_value(rounding=ROUND_HALF_EVEN)),
        "is_anomaly": flagged,
        "explanation": reason,
    }


CUSTOMER_COLUMNS = [
    "customer_id", "name", "plan", "window", "recent_cost_pico", "recent_daily_pico", "baseline_daily_pico", "ratio",
    "excess_pico", "largest_day", "largest_day_cost_pico", "explanation",
]


def customer_anomalies(
    store: Store,
    *,
    as_of: str | None = None,
    window_days: int = 7,
    baseline_days: int = 28,
    min_ratio: Decimal = Decimal("3"),
    min_excess_pico: int = 5 * PICO_PER_USD,
) -> pd.DataFrame:
    """Customers whose recent daily cost is far above their own baseline (see module docstring).

    `as_of` (last day of the window) defaults to the latest usage day. Columns CUSTOMER_COLUMNS,
    sorted by excess cost, highest first."""
    if as_of is None:
        as_of = store.scalar("SELECT MAX(day) FROM rollup_customer_day")
        if as_of is None:
            return pd.DataFrame(columns=CUSTOMER_COLUMNS)
    end = date.fromisoformat(str(as_of))
    window_start = end - timedelta(days=window_days - 1)
    baseline_start = window_start - timedelta(days=baseline_days)
    found = _candidate_sums(store, window_start, end, baseline_start, min_excess_pico)
    if found is None:
        sums = read(store,
            "SELECT customer_id, CAST(SUM(CASE WHEN day >= ? THEN cost_pico ELSE 0 END) AS BIGINT) AS recent, "
            "CAST(SUM(CASE WHEN day < ? THEN cost_pico ELSE 0 END) AS BIGINT) AS base FROM rollup_customer_day "
            "WHERE day >= ? AND day <= ? AND customer_id <> ? GROUP BY customer_id",
            [window_start.isoformat(), window_start.isoformat(), baseline_start.isoformat(), end.isoformat(), UNATTRIBUTED],
        )
        largest = None
    else:
        sums, largest = found
    if sums.empty:
        return pd.DataFrame(columns=CUSTOMER_COLUMNS)
    recent_all = sums["recent"].to_numpy().astype(object)
    base_all = sums["base"].to_numpy().astype(object)
    num, den = min_ratio.as_integer_ratio()
    # Exact integer tests: ratio >= min_ratio, excess >= min_excess (excess = recent - base * w / b).
    high = recent_all * baseline_days * den >= base_all * window_days * num
    enough = recent_all * baseline_days - base_all * window_days >= min_excess_pico * baseline_days
    new = (base_all == 0) & (recent_all >= min_excess_pico)
    chosen = sums[((base_all != 0) & high & enough) | new]
    if largest is None:
        largest = _largest_days(store, chosen["customer_id"].tolist(), window_start, end)
    rows = []
    for customer, recent_cost, base in zip(chosen["customer_id"], chosen["recent"], chosen["base"]):
        recent_cost, base = int(recent_cost), int(base)
        recent_daily = Decimal(recent_cost) / window_days
        base_daily = Decimal(base) / baseline_days
        excess = recent_cost - base_daily * window_days
        if base == 0:
            ratio, why = None, f"{format_usd(recent_cost)} in {window_days} days with no cost in the {baseline_days} days before (new spend)"
        else:
            ratio = recent_daily / base_daily
            why = (f"{format_usd(int(recent_daily))}/day over the last {window_days} days is {_q(ratio)}x "
                   f"its {format_usd(int(base_daily))}/day of the {baseline_days} days before")
        day, day_cost = largest.get(customer, ("", 0))
        rows.append({
            "customer_id": customer,
            "window": f"{window_start.isoformat()}..{end.isoformat()}",
            "recent_cost_pico": recent_cost,
            "recent_daily_pico": int(recent_daily.to_integral_value(rounding=ROUND_HALF_EVEN)),
            "baseline_daily_pico": int(base_daily.to_integral_value(rounding=ROUND_HALF_EVEN)),
            "ratio": _q(ratio),
            "excess_pico": int(excess.to_integral_value(rounding=ROUND_HALF_EVEN)),
            "largest_day": day,
            "largest_day_cost_pico": day_cost,
            "explanation": why,
        })
    out = pd.DataFrame(rows, columns=[c for c in CUSTOMER_COLUMNS if c not in ("name", "plan")])
    out["customer_id"] = pd.Series(out["customer_id"].to_numpy(dtype=object), index=out.index, dtype=object)
    attributes = _names_and_plans(store, out["customer_id"].tolist())
    out["name"] = pd.Series([attributes.get(c, ("", ""))[0] for c in out["customer_id"]], index=out.index, dtype=object)
    out["plan"] = pd.Series([attributes.get(c, ("", ""))[1] for c in out["customer_id"]], index=out.index, dtype=object)
    out["_excess"] = out["excess_pico"].map(int) if not out.empty else []
    out = out.sort_values(["_excess", "customer_id"], ascending=[False, True]) if not out.empty else out
    for column in ("recent_cost_pico", "recent_daily_pico", "baseline_daily_pico", "excess_pico", "largest_day_cost_pico"):
        out[column] = out[column].astype(object)
    return out[CUSTOMER_COLUMNS].reset_index(drop=True)


def _names_and_plans(store: Store, customers: list[str]) -> dict[str, tuple[str, str]]:
    """Name ('' when unknown) and plan ('(no plan)' when empty) of the customers named that are
    in the customers table (as `customer_attributes`, read for these customers only)."""
    found: dict[str, tuple[str, str]] = {}
    for offset in range(0, len(customers), MAX_PARAMS):
        chunk = customers[offset:offset + MAX_PARAMS]
        _, rows = store.fetch(
            f"SELECT customer_id, name, plan FROM customers WHERE customer_id IN ({', '.join('?' for _ in chunk)})", chunk)
        for customer, name, plan in rows:
            found[customer] = (name or "", plan or NO_PLAN)
    return found


_MAX_CANDIDATES = 2000  # beyond this many, one grouped scan is cheaper than seeks


def _candidate_sums(
    store: Store, window_start: date, end: date, baseline_start: date, min_excess_pico: int
) -> tuple[pd.DataFrame, dict[str, tuple[str, int]]] | None:
    """Recent and baseline cost of the customers that can be flagged, and their largest window
    day; None when the shortcut does not apply (then every customer is summed).

    A flagged customer has a window cost >= min_excess (its baseline cost is >= 0), so one of the
    n months the window touches holds >= min_excess / n of it in `rollup_customer_month` (costs
    are never negative): only customers with such a month row are read, by seeks of their days
    in `rollup_customer_day`. Columns of the frame: customer_id, recent, base (customers with no
    day row in the range are absent, as in the grouped query)."""
    if min_excess_pico <= 0:
        return None
    first_month, last_month = window_start.isoformat()[:7], end.isoformat()[:7]
    touched = 1 if first_month == last_month else len({d[:7] for d in days_of(window_start, end)})
    threshold = -(-int(min_excess_pico) // touched)
    _, rows = store.fetch(
        "SELECT customer_id FROM rollup_customer_month WHERE month >= ? AND month <= ? AND customer_id <> ? AND cost_pico >= ?",
        [first_month, last_month, UNATTRIBUTED, threshold],
    )
    candidates = sorted({r[0] for r in rows})
    days = days_of(baseline_start, end)
    if len(candidates) > _MAX_CANDIDATES or len(days) > MAX_PARAMS // 2:
        return None
    window_first = window_start.isoformat()
    recent: dict[str, int] = {}
    base: dict[str, int] = {}
    largest: dict[str, tuple[str, int]] = {}
    for customer, day, cost in customer_day_rows(store, "customer_id, day, cost_pico", candidates, days):
        cost = int(cost or 0)
        recent.setdefault(customer, 0)
        base.setdefault(customer, 0)
        if day >= window_first:
            recent[customer] += cost
            best = largest.get(customer)
            if best is None or cost > best[1] or (cost == best[1] and day < best[0]):
                largest[customer] = (day, cost)
        else:
            base[customer] += cost
    names = sorted(recent)
    frame = pd.DataFrame({
        "customer_id": pd.Series(names, dtype=object),
        "recent": pd.Series([recent[c] for c in names], dtype=object),
        "base": pd.Series([base[c] for c in names], dtype=object),
    })
    return frame, largest


def _largest_days(store: Store, customers: list[str], start: date, end: date) -> dict[str, tuple[str, int]]:
    """Each customer's costliest day in [start, end] (read by the rollup's primary key)."""
    found: dict[str, tuple[str, int]] = {}
    for offset in range(0, len(customers), 500):
        chunk = customers[offset:offset + 500]
        rows = read(store, 
            f"SELECT customer_id, day, cost_pico FROM rollup_customer_day WHERE customer_id IN ({', '.join('?' for _ in chunk)}) "
            "AND day >= ? AND day <= ?",
            [*chunk, start.isoformat(), end.isoformat()],
        )
        for customer, day, cost in zip(rows["customer_id"], rows["day"], rows["cost_pico"]):
            best = found.get(customer)
            if best is None or int(cost) > best[1] or (int(cost) == best[1] and day < best[0]):
                found[customer] = (day, int(cost))
    return found
