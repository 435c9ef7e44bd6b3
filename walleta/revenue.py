"""Revenue recognition: entries with a service period -> revenue per customer per month.

Rule: an entry's amount is spread over the days of its service period (`period_start` to
`period_end`, inclusive), and each month gets its share in whole minor units; the remainder of
the integer division goes to the months with the largest fractional shares (largest remainder),
so the monthly parts always add up to the entry exactly. An annual plan paid in January thus
shows one twelfth (by days) in each month it covers. Refunds and credit notes are negative
entries spread the same way. Amounts stay in their currency; conversion is a separate step.

Kinds: every entry has a `kind`. Revenue kinds (subscription, usage, one_time, credits,
credit_note, refund, and whatever a CSV import writes) are summed as revenue. Two kinds are
stored beside revenue but are NOT revenue, and `monthly_revenue` leaves them out unless asked:
`stripe_fee` (Stripe's processing fee, a positive cost in the settlement currency) and
`credit_purchase` (prepaid credits bought but not yet used: deferred, see docs/readme/5-billing.md).

Reports in USD (`revenue_usd`) convert each currency with the explicit FX table and list every
currency the table cannot convert; such amounts are never added to a USD total.

MRR (`mrr`) is computed from the Stripe subscription-item snapshot: active and past_due
subscriptions, licensed (not metered) recurring prices, normalised to one month, minus the
discounts in force, rounded half-even to the minor unit once per customer and currency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Iterable, Sequence

import pandas as pd

from .fx import FxTable

__all__ = [
    "spread_by_month",
    "monthly_revenue",
    "monthly_fees",
    "revenue_usd",
    "UsdRevenue",
    "allocate",
    "round_half_even",
    "mrr",
    "plan_names",
    "NON_REVENUE_KINDS",
    "FEE_KIND",
    "CREDIT_PURCHASE_KIND",
    "MRR_STATUSES",
]

FEE_KIND = "stripe_fee"
CREDIT_PURCHASE_KIND = "credit_purchase"
NON_REVENUE_KINDS: frozenset[str] = frozenset({FEE_KIND, CREDIT_PURCHASE_KIND})
MRR_STATUSES: frozenset[str] = frozenset({"active", "past_due"})


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def spread_by_month(amount_minor: int, start: date, end: date) -> dict[str, int]:
    """Split an amount over the months of [start, end] by days, exactly (largest remainder)."""
    if end < start:
        end = start
    days_per_month: dict[str, int] = {}
    current = start
    while current <= end:
        following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        last = min(end, following - timedelta(days=1))
        days_per_month[_month_key(current)] = (last - current).days + 1
        current = following
    total_days = sum(days_per_month.values())
    sign = -1 if amount_minor < 0 else 1
    magnitude = abs(int(amount_minor))
    shares = {m: magnitude * d // total_days for m, d in days_per_month.items()}
    remainders = sorted(days_per_month, key=lambda m: (-(magnitude * days_per_month[m] % total_days), m))
    for month in remainders[: magnitude - sum(shares.values())]:
        shares[month] += 1
    return {m: sign * v for m, v in shares.items()}


def monthly_revenue(
    entries: pd.DataFrame,
    fx: FxTable | None = None,
    *,
    exclude_kinds: Iterable[str] = NON_REVENUE_KINDS,
    only_kinds: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Revenue entries -> one row per (customer_id, month, currency, kind).

    Input columns: customer_id, period_start, period_end, amount_minor, currency, kind.
    Output columns: customer_id, month, currency, kind, amount_minor, and when `fx` is given,
    revenue_pico (USD pico-dollars; None where the currency has no rate).
    Kinds in `exclude_kinds` (default: Stripe fees and deferred credit purchases, which are not
    revenue) are left out; `only_kinds` keeps just the kinds named (e.g. {"stripe_fee"}).
    """
    if not entries.empty:
        keep = ~entries["kind"].isin(list(exclude_kinds))
        if only_kinds is not None:
            keep = entries["kind"].isin(list(only_kinds))
        entries = entries[keep]
    records = []
    for row in entries.itertuples(index=False):
        start = date.fromisoformat(str(row.period_start))
        end = date.fromisoformat(str(row.period_end or row.period_start))
        for month, amount in spread_by_month(int(row.amount_minor), start, end).items():
            records.append((row.customer_id, month, str(row.currency).upper(), row.kind, amount))
    frame = pd.DataFrame.from_records(records, columns=["customer_id", "month", "currency", "kind", "amount_minor"])
    frame = frame.groupby(["customer_id", "month", "currency", "kind"], as_index=False, sort=True)["amount_minor"].sum()
    if fx is not None:
        frame["revenue_pico"] = pd.array(
            [fx.to_usd_pico(a, c) if fx.has(c) else None for a, c in zip(frame["amount_minor"], frame["currency"])],
            dtype="object",
        )
    return frame


def monthly_fees(entries: pd.DataFrame, fx: FxTable | None = None) -> pd.DataFrame:
    """Stripe fees per (customer_id, month, currency): a cost line, positive amounts."""
    return monthly_revenue(entries, fx, only_kinds={FEE_KIND})


# -- USD reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsdRevenue:
    """Revenue converted to USD where the FX table allows, and what it could not convert.

    `frame`: one row per group (`by` columns) with `revenue_pico` (int, USD pico-dollars, only
    the converted currencies) and `unconverted_currencies` ("" or e.g. "CHF, JPY").
    `unconverted`: the amounts left out, per group and currency, in their own minor units.
    `currencies`: every currency left out, sorted. Never empty silently: check it.
    """

    frame: pd.DataFrame
    unconverted: pd.DataFrame
    currencies: tuple[str, ...]

    @property
    def total_pico(self) -> int:
        """Sum of the converted revenue (excludes the unconverted currencies)."""
        return sum(int(v) for v in self.frame["revenue_pico"])


def revenue_usd(
    entries: pd.DataFrame,
    fx: FxTable,
    *,
    by: Sequence[str] = ("customer_id", "month"),
    first_month: str | None = None,
    last_month: str | None = None,
    exclude_kinds: Iterable[str] = NON_REVENUE_KINDS,
) -> UsdRevenue:
    """Revenue per group in USD pico-dollars with the explicit FX table.

    Each (customer, month, currency, kind) amount is converted once (half-even to the
    pico-dollar) and converted amounts are added as Python ints. Amounts in a currency the
    table lacks are reported in `unconverted`, never added. `by` is any subset of
    customer_id, month, kind, currency (empty = one total row).
    """
    monthly = monthly_revenue(entries, exclude_kinds=exclude_kinds)
    lo, hi = first_month or "0000-00", last_month or "9999-99"
    monthly = monthly[(monthly["month"] >= lo) & (monthly["month"] <= hi)]
    keys = list(by)
    sums: dict[tuple, int] = {}
    missing: dict[tuple, set[str]] = {}
    left_out: dict[tuple, int] = {}
    for row in monthly.itertuples(index=False):
        group = tuple(getattr(row, k) for k in keys)
        sums.setdefault(group, 0)
        missing.setdefault(group, set())
        if fx.has(row.currency):
            sums[group] += fx.to_usd_pico(int(row.amount_minor), row.currency)
        else:
            missing[group].add(row.currency)
            left_out[(*group, row.currency)] = left_out.get((*group, row.currency), 0) + int(row.amount_minor)
    frame = pd.DataFrame.from_records(
        [(*g, sums[g], ", ".join(sorted(missing[g]))) for g in sorted(sums)],
        columns=[*keys, "revenue_pico", "unconverted_currencies"],
    )
    frame["revenue_pico"] = pd.Series([int(v) for v in frame["revenue_pico"]], dtype=object)
    unconverted = pd.DataFrame.from_records(
        [(*k, v) for k, v in sorted(left_out.items())], columns=[*keys, "currency", "amount_minor"]
    )
    currencies = tuple(sorted({c for found in missing.values() for c in found}))
    return UsdRevenue(frame=frame, unconverted=unconverted, currencies=currencies)


# -- exact integer helpers --------------------------------------------------------------------


def round_half_even(value: Fraction) -> int:
    """An exact fraction rounded half-even to an integer."""
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split an integer amount in proportion to positive integer weights (largest remainder).

    The parts add up to `amount` exactly; ties go to the earlier weight. Empty or all-zero
    weights -> ValueError.
    """
    total = sum(int(w) for w in weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("allocate needs non-negative weights with a positive sum")
    sign = -1 if amount < 0 else 1
    magnitude = abs(int(amount))
    parts = [magnitude * int(w) // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(magnitude * int(weights[i]) % total), i))
    for index in order[: magnitude - sum(parts)]:
        parts[index] += 1
    return [sign * p for p in parts]


# -- MRR and plan names -----------------------------------------------------------------------

_MONTHS_PER_INTERVAL = {
    "month": Fraction(1),
    "year": Fraction(12),
    "week": Fraction(12, 52),
    "day": Fraction(12, 365),
}


def _monthly_factor(interval: str, count: int) -> Fraction | None:
    """Multiplier from one billing interval to one month (year -> 1/12, week -> 52/12 ...)."""
    months = _MONTHS_PER_INTERVAL.get(interval)
    return None if months is None else 1 / (months * max(int(count or 1), 1))


def _discount_active(discount: dict, as_of: int) -> bool:
    end = discount.get("end")
    return discount.get("duration") != "once" and (end is None or int(end) > as_of)


def _apply_discounts(amount: Fraction, discounts: list[dict], factor: Fraction, as_of: int) -> Fraction:
    """Percent-off first, then amount-off (per interval, normalised by `factor`); never below 0."""
    for d in discounts:
        if _discount_active(d, as_of) and d.get("percent_off") not in (None, ""):
            amount *= 1 - Fraction(str(d["percent_off"])) / 100
    for d in discounts:
        if _discount_active(d, as_of) and d.get("amount_off") not in (None, ""):
            amount -= Fraction(int(d["amount_off"])) * factor
    return max(amount, Fraction(0))


def mrr(items: pd.DataFrame, as_of: int) -> pd.DataFrame:
    """Monthly recurring revenue per Stripe customer and currency, in minor units.

    `items`: rows of the `stripe_subscription_items` table. `as_of`: unix seconds (discounts
    that ended by then do not count). Counts subscriptions in MRR_STATUSES, licensed recurring
    items only (metered usage is usage revenue, not MRR). Item discounts apply to their item,
    subscription discounts to the subscription's licensed total. Output columns:
    stripe_customer_id, currency, mrr_minor (int, half-even once), subscriptions, items,
    excluded_items (licensed items without a unit price, e.g. tiered, listed not guessed).
    """
    columns = ["stripe_customer_id", "currency", "mrr_minor", "subscriptions", "items", "excluded_items"]
    if items.empty:
        return pd.DataFrame(columns=columns)
    rows = items[items["status"].isin(list(MRR_STATUSES)) & (items["usage_type"] == "licensed")]
    totals: dict[tuple[str, str], list] = {}
    for sub_id, group in rows.groupby("subscription_id", sort=True):
        first = group.iloc[0]
        key = (str(first["stripe_customer_id"]), str(first["currency"]).upper())
        acc = totals.setdefault(key, [Fraction(0), 0, 0, []])
        factor = _monthly_factor(str(first["billing_interval"]), int(first["interval_count"]))
        subtotal = Fraction(0)
        sub_discounts: list[dict] = []
        for item in group.itertuples(index=False):
            discounts = json.loads(item.discounts_json or "[]")
            item_factor = _monthly_factor(str(item.billing_interval), int(item.interval_count))
            if item.unit_amount_decimal in ("", None) or item_factor is None:
                acc[3].append(str(item.item_id))
                continue
            gross = Fraction(str(item.unit_amount_decimal)) * int(item.quantity) * item_factor
            own = [d for d in discounts if d.get("scope") == "item"]
            subtotal += _apply_discounts(gross, own, item_factor, as_of)
            sub_discounts = [d for d in discounts if d.get("scope") != "item"]
            acc[2] += 1
        acc[0] += _apply_discounts(subtotal, sub_discounts, factor or Fraction(1), as_of)
        acc[1] += 1
    records = [
        (cus, cur, round_half_even(v[0]), v[1], v[2], ", ".join(v[3])) for (cus, cur), v in sorted(totals.items())
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def plan_names(items: pd.DataFrame) -> dict[str, str]:
    """Stripe customer -> plan name, for customers with exactly one subscription in MRR_STATUSES
    (or trialing). The name joins the licensed items' plan names (all items if none licensed)."""
    if items.empty:
        return {}
    live = items[items["status"].isin([*MRR_STATUSES, "trialing"])]
    names: dict[str, str] = {}
    for customer, group in live.groupby("stripe_customer_id", sort=True):
        if group["subscription_id"].nunique() != 1:
            continue
        licensed = group[group["usage_type"] == "licensed"]
        chosen = licensed if not licensed.empty else group
        labels = [n for n in dict.fromkeys(chosen["plan_name"].tolist()) if n]
        if labels:
            names[str(customer)] = " + ".join(labels)
    return names
