"""Month-end forecast of AI cost and margin from the month so far.

Method (also returned in the `method` column, so every number carries its explanation):
1. Daily AI cost for each day of the month up to `as_of` (days without usage count as $0).
2. Run rate r = cost so far / days elapsed (d). Forecast = cost so far + r x remaining days (n).
3. Band: with s the standard deviation of the daily costs so far, the remaining cost varies by
   sqrt(n s^2 + n^2 s^2 / d): day-to-day noise over the remaining days, plus the uncertainty of
   the run rate itself. The band is forecast +/- z x that (z = 1.2816 for 80%, 1.6449 for 90%,
   1.96 for 95%, normal approximation), never below the cost already spent. With fewer than
   two days there is no band.
4. Revenue is the revenue recognised for the month (subscriptions are known in advance); margin
   forecast = revenue - cost forecast, its band the mirror of the cost band.
Arithmetic is exact integers and Decimals (no floats); results are rounded half-even to the
pico-dollar.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

from ..errors import InputError
from ..exact_merge import merge_filled
from ..fx import FxTable
from ..store import Store
from .period import Period, month_end
from .sources import read, revenue_totals

__all__ = ["month_end_forecast", "daily_cost", "Z_SCORES", "FORECAST_COLUMNS"]

Z_SCORES = {"0.80": Decimal("1.2816"), "0.90": Decimal("1.6449"), "0.95": Decimal("1.9600")}
FORECAST_COLUMNS = [
    "metric", "month", "as_of", "days_elapsed", "days_in_month", "so_far_pico", "forecast_pico", "low_pico",
    "high_pico", "daily_run_rate_pico", "confidence", "method",
]


def daily_cost(store: Store, period: Period) -> pd.DataFrame:
    """AI cost per day over `period`, every day present (0 without usage).

    Columns: day, ai_cost_pico (Python int), requests, unpriced_requests."""
    frame = read(store, 
        "SELECT day, CAST(SUM(cost_pico) AS BIGINT) AS cost, CAST(SUM(requests) AS BIGINT) AS requests, "
        "CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced_requests FROM rollup_feature_model_day "
        "WHERE day >= ? AND day <= ? GROUP BY day",
        [period.first_day, period.last_day],
    )
    days = pd.DataFrame({"day": [d.isoformat() for d in pd.date_range(period.start, period.end, freq="D").date]})
    out = merge_filled(days, frame, "day", "left", {"cost": 0, "requests": 0, "unpriced_requests": 0})
    out["ai_cost_pico"] = pd.Series([0 if v is None else int(v) for v in out["cost"].tolist()], dtype=object)
    out["requests"] = out["requests"].fillna(0).astype("int64")
    out["unpriced_requests"] = out["unpriced_requests"].fillna(0).astype("int64")
    return out[["day", "ai_cost_pico", "requests", "unpriced_requests"]]


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def month_end_forecast(
    store: Store,
    fx: FxTable | None,
    *,
    month: str | None = None,
    as_of: str | None = None,
    confidence: str = "0.80",
) -> pd.DataFrame:
    """Forecast the month's AI cost, revenue and margin from its days up to `as_of`.

    `month` defaults to the month of the latest usage day and `as_of` to the latest usage day in
    that month (or the month's last day if the month is over). Rows: ai_cost, revenue, margin;
    columns FORECAST_COLUMNS (money in pico-dollars)."""
    if confidence not in Z_SCORES:
        raise InputError(f"confidence must be one of {', '.join(Z_SCORES)}")
    if month is None:
        latest = store.scalar("SELECT MAX(day) FROM rollup_feature_model_day")
        if latest is None:
            return pd.DataFrame(columns=FORECAST_COLUMNS)
        month = str(latest)[:7]
    last_day = month_end(month)
    if as_of is None:
        latest = store.scalar("SELECT MAX(day) FROM rollup_feature_model_day WHERE day >= ? AND day <= ?", [f"{month}-01", last_day.isoformat()])
        as_of = str(latest) if latest else f"{month}-01"
    if as_of[:7] != month:
        raise InputError(f"as_of {as_of} is not in {month}")
    daily = daily_cost(store, Period.days(f"{month}-01", as_of))
    costs = [int(v) for v in daily["ai_cost_pico"]]
    elapsed, total_days = len(costs), last_day.day
    remaining = total_days - elapsed
    so_far = sum(costs)
    mean = Decimal(so_far) / elapsed
    z = Z_SCORES[confidence]
    forecast = so_far + _round(mean * remaining)
    if elapsed >= 2 and remaining > 0:
        variance = sum((Decimal(c) - mean) ** 2 for c in costs) / (elapsed - 1)
        spread = (variance * remaining + variance * remaining * remaining / elapsed).sqrt()
        band = _round(z * spread)
        low, high = max(so_far, forecast - band), forecast + band
        band_text = (f"{confidence[2:]}% band = forecast +/- {z} x sqrt(n*s^2 + n^2*s^2/d) with s = {_usd_text(_round(variance.sqrt()))} "
                     "(standard deviation of daily cost so far), never below the cost already spent")
    elif remaining == 0:
        low = high = forecast
        band_text = "the month is complete: the forecast is the actual cost"
    else:
        low = high = None  # type: ignore[assignment]
        band_text = "no band: fewer than two days of data"
    revenue = _month_revenue(store, fx, month)
    method = (f"run rate: cost so far {_usd_text(so_far)} over d = {elapsed} days, plus the average daily cost "
              f"{_usd_text(_round(mean))} x n = {remaining} remaining days; {band_text}. "
              "Revenue is the revenue recognised for the month; margin = revenue - cost.")
    base = {"month": month, "as_of": as_of, "days_elapsed": elapsed, "days_in_month": total_days, "confidence": confidence, "method": method}
    rows = [
        {**base, "metric": "ai_cost", "so_far_pico": so_far, "forecast_pico": forecast, "low_pico": low, "high_pico": high,
         "daily_run_rate_pico": _round(mean)},
        {**base, "metric": "revenue", "so_far_pico": revenue, "forecast_pico": revenue, "low_pico": revenue, "high_pico": revenue,
         "daily_run_rate_pico": None},
        {**base, "metric": "margin", "so_far_pico": revenue - so_far, "forecast_pico": revenue - forecast,
         "low_pico": None if high is None else revenue - high, "high_pico": None if low is None else revenue - low,
         "daily_run_rate_pico": None},
    ]
    frame = pd.DataFrame(rows)
    for column in ("so_far_pico", "forecast_pico", "low_pico", "high_pico", "daily_run_rate_pico"):
        frame[column] = pd.Series([None if v is None or (not isinstance(v, int) and pd.isna(v)) else int(v) for v in frame[column]], dtype=object)
    return frame[FORECAST_COLUMNS]


def _month_revenue(store: Store, fx: FxTable | None, month: str) -> int:
    totals = revenue_totals(store, fx, month, month, ["month"])
    return sum(int(v) for v in totals["revenue_pico"])


def _usd_text(pico: int) -> str:
    from ..money import format_usd

    return format_usd(pico)
