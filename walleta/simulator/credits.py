"""Credit systems: burn per model/feature, included credits, rollover and expiry, top-ups.

Exact rules (credits are counted in integer micro-credits, 1e-6 credit):

- Burn. Each usage row (customer x month x model, or x feature, or the whole month for
  `burn_by: total`) takes the first burn rule whose `match` pattern fits its name (`*`
  wildcards). Its burn is `uncached input / 1000 x per_1k.input + cached input / 1000 x
  per_1k.cached_input + output / 1000 x per_1k.output + requests x per_request + AI cost (USD) x
  cost_multiplier / credit_value_usd`, computed exactly and rounded up to a whole micro-credit
  per row. Rows that no rule matches burn nothing and are reported.
- Grants. In every month a customer is active it receives `included` credits (times its seats
  when `included_per_seat`), usable in that month and the following `included_expiry_months - 1`
  months; `included_expiry_months: 1` means no rollover.
- Spending order. Included credits first, then purchased credits; within each, the credits that
  expire soonest first.
- Exhaustion. When a month's burn exceeds the balance, `on_exhausted` decides:
  `topup` buys whole packs (`pack`: ceil(shortfall / pack credits) packs) or whole credits at
  `price_per_credit` (ceil(shortfall) credits); what is left of the purchase stays as purchased
  credits that expire after `purchased_expiry_months` (counting the purchase month; never when
  unset). `overage` bills the shortfall at `overage_per_credit`. `block` stops serving: the
  month's usage is served in the proportion balance / burn (a hard cap).
- Expiry and breakage. Credits still unused at the end of their last month expire. Expired
  purchased credits are breakage: revenue already taken for credits never used; their value is
  reported at the price paid per credit.
- Money: a top-up is one line (packs x pack price, or credits x price per credit rounded half up
  to the minor unit); overage likewise.

`run_ledger` is the vectorised form over customers (one pass per month); `run_ledger_scalar`
is the per-customer reference with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import lcm

import numpy as np

from ._num import HALF_UP, UP, _max_abs, mul_div, ratio
from .plans import TOKEN_CLASSES, BurnRule, Credits, PlanError, matches

__all__ = [
    "MICRO",
    "LedgerResult",
    "rule_index",
    "burn_micro_array",
    "burn_micro_scalar",
    "run_ledger",
    "run_ledger_scalar",
    "credit_price_minor",
    "LEDGER_LIMIT",
    "micro_credits",
    "check_ledger_range",
]

MICRO = 1_000_000  # micro-credits per credit
# The ledger runs on int64 micro-credits and minor units; every credit volume and every amount it
# can produce stays below this bound (checked before it runs), so nothing can wrap or overflow.
LEDGER_LIMIT = 2**62
PICO_PER_USD = 10**12


def rule_index(names: list[str], rules: tuple[BurnRule, ...]) -> np.ndarray:
    """For each name, the index of the first matching burn rule, or -1."""
    found = []
    for name in names:
        found.append(next((i for i, r in enumerate(rules) if matches(r.match, name)), -1))
    return np.array(found, dtype=np.int64)


def _rule_terms(rule: BurnRule, credit_value_usd: Decimal | None) -> list[Fraction]:
    """Micro-credits per unit of: uncached input, cached input, output, request, pico-dollar."""
    per_token = [Fraction(rule.per_1k.get(c, Decimal(0))) * MICRO / 1000 for c in TOKEN_CLASSES]
    per_request = Fraction(rule.per_request) * MICRO
    per_pico = Fraction(0)
    if rule.cost_multiplier is not None and credit_value_usd:
        per_pico = Fraction(rule.cost_multiplier) * MICRO / (Fraction(credit_value_usd) * PICO_PER_USD)
    return [*per_token, per_request, per_pico]


def burn_micro_scalar(quantities: tuple[int, int, int, int, int], rule: BurnRule, credit_value_usd: Decimal | None) -> int:
    """Burn of one row (uncached input, cached input, output, requests, cost_pico), rounded up."""
    exact = sum((Fraction(q) * t for q, t in zip(quantities, _rule_terms(rule, credit_value_usd))), Fraction(0))
    return -((-exact.numerator) // exact.denominator)


def burn_micro_array(quantities: list[np.ndarray], rule: BurnRule, credit_value_usd: Decimal | None) -> np.ndarray:
    """Vectorised `burn_micro_scalar` over rows: quantities in the same order as the scalar."""
    terms = _rule_terms(rule, credit_value_usd)
    den = 1
    for t in terms:
        den = lcm(den, t.denominator)
    numerators = [t.numerator * (den // t.denominator) for t in terms]
    biggest = sum(int(q.max(initial=0)) * abs(n) for q, n in zip(quantities, numerators))
    dtype: type | str = np.int64 if biggest < 2**62 else object
    total = np.zeros(len(quantities[0]), dtype=dtype)
    for q, n in zip(quantities, numerators):
        if n:
            total = total + q.astype(dtype) * n
    return mul_div(total, 1, den, UP)


def credit_price_minor(credits: Credits, exponent: int) -> tuple[int, int]:
    """Price of one micro-credit in minor units as (num, den), for breakage valuation."""
    if credits.pack is not None:
        per_credit = Fraction(credits.pack.price) / credits.pack.credits
    elif credits.price_per_credit is not None:
        per_credit = Fraction(credits.price_per_credit)
    else:
        per_credit = Fraction(0)
    value = per_credit * 10**exponent / MICRO
    return value.numerator, value.denominator


@dataclass
class LedgerResult:
    """Per customer x month arrays (shape customers x months), integers.

    granted, burned (served burn), purchased, expired_included, expired_purchased and
    balance_end are micro-credits; revenue_minor and breakage_minor are minor units; shortfall
    is the unserved burn under `block` (served share = (burn - shortfall) / burn).
    """

    granted: np.ndarray
    burned: np.ndarray
    purchased: np.ndarray
    revenue_minor: np.ndarray
    expired_included: np.ndarray
    expired_purchased: np.ndarray
    breakage_minor: np.ndarray
    shortfall: np.ndarray
    balance_end: np.ndarray


def _take(buckets: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Spend `need` from bucket columns in order (soonest expiry first); returns what is left."""
    for k in range(buckets.shape[1]):
        taken = np.minimum(buckets[:, k], need)
        buckets[:, k] -= taken
        need = need - taken
    return need


def micro_credits(values: np.ndarray, what: str) -> np.ndarray:
    """Micro-credit amounts (int64 or Python ints) as int64; PlanError when beyond LEDGER_LIMIT."""
    values = np.asarray(values)
    if values.size and _max_abs(values) >= LEDGER_LIMIT:
        raise PlanError("credits", f"{what} per customer and month exceeds {LEDGER_LIMIT // MICRO:,} credits, too large for "
                        "the credit ledger: lower the burn rates or the included credits")
    return values.astype(np.int64)


def _max_row_total(grid: np.ndarray) -> int:
    """The largest per-customer sum over months of a non-negative int64 grid, exactly."""
    if grid.size == 0:
        return 0
    high, low = np.divmod(grid, 2**31)
    totals = high.sum(axis=1).astype(object) * 2**31 + low.sum(axis=1).astype(object)
    return int(max(totals))


def check_ledger_range(credits: Credits, burn: np.ndarray, grant: np.ndarray, exponent: int) -> None:
    """PlanError when the ledger could leave int64: the credits a customer can hold or buy over
    the simulated months, or what they cost in minor units, reach LEDGER_LIMIT."""
    months = burn.shape[1]
    pack_micro = credits.pack.credits * MICRO if credits.pack else 0
    volume = _max_row_total(burn) + _max_row_total(grant) + (pack_micro + MICRO) * months
    if volume >= LEDGER_LIMIT:
        raise PlanError("credits", f"the credits burned, granted or bought per customer exceed {LEDGER_LIMIT // MICRO:,} "
                        "over the simulated months: too large for the credit ledger; lower the burn rates or included credits")
    per_micro = Fraction(*credit_price_minor(credits, exponent))
    if credits.price_per_credit is not None:
        per_micro = max(per_micro, Fraction(credits.price_per_credit) * 10**exponent / MICRO)
    if credits.overage_per_credit is not None:
        per_micro = max(per_micro, Fraction(credits.overage_per_credit) * 10**exponent / MICRO)
    if credits.pack is not None:  # whole packs: one pack more than the volume at most
        per_micro = max(per_micro, Fraction(int(credits.pack.price.scaleb(exponent)), pack_micro))
    if (volume + pack_micro + MICRO) * per_micro >= LEDGER_LIMIT:
        raise PlanError("credits", "the credit charges per customer would exceed the simulator's exact range "
                        f"({LEDGER_LIMIT:,} minor units): lower the credit prices or the burn rates")


def run_ledger(credits: Credits, burn: np.ndarray, grant: np.ndarray, exponent: int) -> LedgerResult:
    """Run the credit ledger for all customers at once.

    burn, grant: int64 arrays (customers x months) of micro-credits (0 in inactive months).
    exponent: minor-unit digits of the plan currency. PlanError when the amounts are beyond
    the ledger's exact int64 range (see `check_ledger_range`).
    """
    check_ledger_range(credits, burn, grant, exponent)
    customers, months = burn.shape
    # An expiry beyond the simulated months acts exactly like one month past their end.
    expiry_inc = min(credits.included_expiry_months, months + 1)
    expiry_pur = None if credits.purchased_expiry_months is None else min(credits.purchased_expiry_months, months + 1)
    inc = np.zeros((customers, expiry_inc), dtype=np.int64)
    pur = np.zeros((customers, expiry_pur or 1), dtype=np.int64)  # never-expiring: one bucket
    out = {name: np.zeros((customers, months), dtype=np.int64) for name in LedgerResult.__dataclass_fields__}
    pack_micro = credits.pack.credits * MICRO if credits.pack else 0
    pack_price = int(credits.pack.price.scaleb(exponent)) if credits.pack else 0
    per_credit = ratio(Fraction(credits.price_per_credit or 0) * 10**exponent)
    overage = ratio(Fraction(credits.overage_per_credit or 0) * 10**exponent / MICRO)
    breakage_num, breakage_den = credit_price_minor(credits, exponent)
    for j in range(months):
        inc[:, -1] += grant[:, j]
        # Included credits first, then purchased; soonest expiry first within each.
        shortfall = _take(pur, _take(inc, burn[:, j].copy()))
        revenue = np.zeros(customers, dtype=np.int64)
        bought = np.zeros(customers, dtype=np.int64)
        if credits.on_exhausted == "topup":
            if credits.topup == "packs":
                packs = -(-shortfall // pack_micro)
                bought = packs * pack_micro
                revenue = packs * pack_price
            else:
                whole = -(-shortfall // MICRO)
                bought = whole * MICRO
                revenue = mul_div(whole, per_credit[0], per_credit[1], HALF_UP)
            pur[:, -1] += bought - shortfall
            shortfall = np.zeros(customers, dtype=np.int64)
        elif credits.on_exhausted == "overage":
            revenue = mul_div(shortfall, overage[0], overage[1], HALF_UP)
            shortfall = np.zeros(customers, dtype=np.int64)
        out["granted"][:, j] = grant[:, j]
        out["burned"][:, j] = burn[:, j] - shortfall
        out["purchased"][:, j] = bought
        out["revenue_minor"][:, j] = revenue
        out["shortfall"][:, j] = shortfall
        expired_pur = pur[:, 0].copy() if expiry_pur else np.zeros(customers, dtype=np.int64)
        out["expired_included"][:, j] = inc[:, 0]
        out["expired_purchased"][:, j] = expired_pur
        out["breakage_minor"][:, j] = mul_div(expired_pur, breakage_num, breakage_den, HALF_UP)
        inc[:, :-1] = inc[:, 1:]  # one month on: every bucket is a month closer to expiry
        inc[:, -1] = 0
        if expiry_pur:
            pur[:, :-1] = pur[:, 1:]
            pur[:, -1] = 0
        out["balance_end"][:, j] = inc.sum(axis=1) + pur.sum(axis=1)
    return LedgerResult(**out)


def run_ledger_scalar(credits: Credits, burn: list[int], grant: list[int], exponent: int) -> dict[str, list[int]]:
    """The ledger for one customer with plain Python lists (the reference for `run_ledger`)."""
    included: list[list[int]] = []  # [last usable month index, amount]
    purchased: list[list[int]] = []  # [last usable month index or None, amount]
    out: dict[str, list[int]] = {name: [] for name in LedgerResult.__dataclass_fields__}
    per_credit = Fraction(credits.price_per_credit or 0) * 10**exponent
    overage = Fraction(credits.overage_per_credit or 0) * 10**exponent / MICRO
    breakage = Fraction(*credit_price_minor(credits, exponent))
    horizon = 10**9
    for j, (need, granted) in enumerate(zip(burn, grant)):
        if granted:
            included.append([j + credits.included_expiry_months - 1, granted])
        wanted = need
        for pool in (included, purchased):
            for bucket in sorted(pool, key=lambda b: horizon if b[0] is None else b[0]):
                taken = min(bucket[1], need)
                bucket[1] -= taken
                need -= taken
        shortfall, revenue, bought = need, 0, 0
        if credits.on_exhausted == "topup":
            if credits.topup == "packs":
                assert credits.pack is not None
                packs = -(-shortfall // (credits.pack.credits * MICRO))
                bought = packs * credits.pack.credits * MICRO
                revenue = packs * int(credits.pack.price.scaleb(exponent))
            else:
                whole = -(-shortfall // MICRO)
                bought = whole * MICRO
                revenue = _half_up(whole * per_credit)
            if bought - shortfall:
                last = None if credits.purchased_expiry_months is None else j + credits.purchased_expiry_months - 1
                purchased.append([last, bought - shortfall])
            shortfall = 0
        elif credits.on_exhausted == "overage":
            revenue = _half_up(shortfall * overage)
            shortfall = 0
        expired_inc = sum(b[1] for b in included if b[0] == j)
        expired_pur = sum(b[1] for b in purchased if b[0] == j)
        included = [b for b in included if b[0] != j and b[1] > 0]
        purchased = [b for b in purchased if b[0] != j and b[1] > 0]
        for name, value in (
            ("granted", granted),
            ("burned", wanted - shortfall),
            ("purchased", bought),
            ("revenue_minor", revenue),
            ("expired_included", expired_inc),
            ("expired_purchased", expired_pur),
            ("breakage_minor", _half_up(expired_pur * breakage)),
            ("shortfall", shortfall),
            ("balance_end", sum(b[1] for b in included) + sum(b[1] for b in purchased)),
        ):
            out[name].append(int(value))
    return out


def _half_up(value: Fraction | int) -> int:
    value = Fraction(value)
    return (value.numerator * 2 + value.denominator) // (2 * value.denominator)
