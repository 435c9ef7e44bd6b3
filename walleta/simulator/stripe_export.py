"""A plan as Stripe Price parameters, and as a human-readable summary.

`stripe_prices(plan, currency)` returns the parameters of the Stripe Prices that bill the plan,
ready for `stripe.StripeClient(...).v1.prices.create(params=...)` once each metered price's
`recurring.meter` placeholder (`METER_ID:<measure>`) is replaced by the id of a Billing Meter
that receives that measure:

- base fee: a licensed monthly price (`unit_amount`);
- seats: a licensed graduated price on the seat quantity (first `included` seats at 0);
- allocation: a metered graduated price: `up_to: included` at 0, then the overage per unit
  as `unit_amount_decimal` (minor units per token, at most 12 decimals);
- meters: exactly their tiers (`billing_scheme: tiered`, `tiers_mode`, `tiers` with `up_to`,
  `unit_amount_decimal`, `flat_amount`/`flat_amount_decimal`) or per-unit with
  `transform_quantity` (package pricing);
- pay-as-you-go list prices: one metered per-unit price per token class; cost-plus markup: a
  metered per-unit price on AI cost reported in micro-dollars (USD plans);
- credits: top-up packs as one-time prices; included credits, minimums and caps have no Stripe
  Price equivalent and are listed in `notes`.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..money import minor_unit_exponent
from .plans import Meter, Plan, Scenario, Tier

__all__ = ["stripe_prices", "scenario_prices", "plan_summary", "scenario_summary"]

_MAX_PLACES = 12


def _decimal_text(value: Fraction | Decimal, where: str, notes: list[str]) -> str | None:
    """Minor units as Stripe's decimal string (<= 12 places), or None with a note."""
    fraction = Fraction(value)
    scaled = fraction * 10**_MAX_PLACES
    if scaled.denominator != 1:
        notes.append(f"{where}: {float(fraction):.15g} minor units per unit needs more than 12 decimal places; Stripe cannot store it exactly")
        return None
    text = format((Decimal(scaled.numerator) / Decimal(10**_MAX_PLACES)).normalize(), "f")
    return text


def _tier(tier: Tier, where: str, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"up_to": "inf" if tier.up_to is None else int(tier.up_to)}
    if tier.unit_amount_decimal == tier.unit_amount_decimal.to_integral_value():
        out["unit_amount"] = int(tier.unit_amount_decimal)
    else:
        out["unit_amount_decimal"] = _decimal_text(tier.unit_amount_decimal, where, notes)
    if tier.flat_amount:
        if tier.flat_amount == tier.flat_amount.to_integral_value():
            out["flat_amount"] = int(tier.flat_amount)
        else:
            out["flat_amount_decimal"] = _decimal_text(tier.flat_amount, where, notes)
    return out


def _base(plan: Plan, currency: str, nickname: str, usage_type: str | None, measure: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"currency": currency.lower(), "nickname": f"{plan.name}: {nickname}", "product_data": {"name": plan.name}}
    if usage_type == "metered":
        params["recurring"] = {"interval": "month", "usage_type": "metered", "meter": f"METER_ID:{measure}"}
    elif usage_type == "licensed":
        params["recurring"] = {"interval": "month", "usage_type": "licensed"}
    return params


def _meter_price(plan: Plan, meter: Meter, currency: str, notes: list[str]) -> dict[str, Any]:
    usage = "licensed" if meter.measure == "seats" else "metered"
    params = _base(plan, currency, meter.name, usage, meter.measure)
    where = f"{plan.name}.meters.{meter.name}"
    if meter.billing_scheme == "tiered":
        params.update({"billing_scheme": "tiered", "tiers_mode": meter.tiers_mode, "tiers": [_tier(t, where, notes) for t in meter.tiers]})
        return params
    unit = meter.unit_amount_decimal or Decimal(0)
    params["billing_scheme"] = "per_unit"
    if unit == unit.to_integral_value():
        params["unit_amount"] = int(unit)
    else:
        params["unit_amount_decimal"] = _decimal_text(unit, where, notes)
    if meter.transform_quantity is not None:
        params["transform_quantity"] = {"divide_by": meter.transform_quantity.divide_by, "round": meter.transform_quantity.round}
    return params


def stripe_prices(plan: Plan, currency: str = "USD") -> tuple[list[dict[str, Any]], list[str]]:
    """Stripe Price create-parameters for a plan, and notes on what Stripe cannot express."""
    exponent = minor_unit_exponent(currency)
    notes: list[str] = []
    prices: list[dict[str, Any]] = []
    if plan.base_fee:
        params = _base(plan, currency, "base fee", "licensed")
        params.update({"billing_scheme": "per_unit", "unit_amount": int(plan.base_fee.scaleb(exponent))})
        prices.append(params)
    if plan.seats is not None:
        params = _base(plan, currency, "seats", "licensed")
        seat = int(plan.seats.price.scaleb(exponent))
        tiers = ([{"up_to": plan.seats.included, "unit_amount": 0}] if plan.seats.included else []) + [{"up_to": "inf", "unit_amount": seat}]
        params.update({"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers": tiers})
        prices.append(params)
    if plan.allocation is not None:
        a = plan.allocation
        per_unit = Fraction(a.overage_per_1m) * 10**exponent / 10**6
        params = _base(plan, currency, f"{a.measure} (allocation + overage)", "metered", a.measure)
        tiers: list[dict[str, Any]] = []
        if a.included:
            tiers.append({"up_to": a.included, "unit_amount": 0})
        tiers.append({"up_to": "inf", "unit_amount_decimal": _decimal_text(per_unit, f"{plan.name}.allocation", notes)})
        params.update({"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers": tiers})
        prices.append(params)
        if a.per_seat:
            notes.append(f"{plan.name}: the allocation is per seat; a Stripe tier bound is fixed, so set up_to per customer (included x seats) or use a billing credit")
    for meter in plan.meters:
        prices.append(_meter_price(plan, meter, currency, notes))
    if plan.payg is not None:
        for cls, price in plan.payg.per_1m.items():
            params = _base(plan, currency, f"{cls} tokens", "metered", f"{cls}_tokens")
            params.update({"billing_scheme": "per_unit", "unit_amount_decimal": _decimal_text(Fraction(price) * 10**exponent / 10**6, f"{plan.name}.payg.per_1m.{cls}", notes)})
            prices.append(params)
        if plan.payg.markup_pct is not None:
            if currency.upper() == "USD":
                per_micro = (1 + Fraction(plan.payg.markup_pct) / 100) * 10**exponent / 10**6
                params = _base(plan, currency, f"AI cost + {plan.payg.markup_pct}%", "metered", "ai_cost_micro_usd")
                params.update({"billing_scheme": "per_unit", "unit_amount_decimal": _decimal_text(per_micro, f"{plan.name}.payg.markup_pct", notes)})
                prices.append(params)
                notes.append(f"{plan.name}: report each customer's AI cost in micro-dollars to the ai_cost_micro_usd meter")
            else:
                notes.append(f"{plan.name}: cost-plus pricing in {currency} needs the AI cost converted before it is reported; no price exported")
    if plan.credits is not None:
        c = plan.credits
        if c.pack is not None:
            params = {"currency": currency.lower(), "nickname": f"{plan.name}: {c.pack.credits:,} credits", "product_data": {"name": f"{plan.name} credits"}, "unit_amount": int(c.pack.price.scaleb(exponent))}
            prices.append(params)
        elif c.price_per_credit is not None:
            params = {"currency": currency.lower(), "nickname": f"{plan.name}: credit", "product_data": {"name": f"{plan.name} credits"}}
            params["unit_amount_decimal"] = _decimal_text(Fraction(c.price_per_credit) * 10**exponent, f"{plan.name}.credits.price_per_credit", notes)
            prices.append(params)
        if c.on_exhausted == "overage" and c.overage_per_credit is not None:
            params = _base(plan, currency, "credit overage", "metered", "credits_over")
            params.update({"billing_scheme": "per_unit", "unit_amount_decimal": _decimal_text(Fraction(c.overage_per_credit) * 10**exponent, f"{plan.name}.credits.overage_per_credit", notes)})
            prices.append(params)
        notes.append(f"{plan.name}: included credits, burn rates and expiry are kept by your app (or Stripe billing credits), not by a Price")
    if plan.minimum is not None:
        notes.append(f"{plan.name}: the minimum commitment has no Price field; bill the true-up as an invoice item")
    if plan.cap is not None:
        notes.append(f"{plan.name}: the hard cap is enforced by your app (Walleta usage limits), not by Stripe")
    return prices, notes


def scenario_prices(scenario: Scenario) -> dict[str, Any]:
    """Every plan's Stripe prices and notes: {"plans": [{"plan", "prices", "notes"}]}."""
    out = []
    for plan in scenario.plans:
        prices, notes = stripe_prices(plan, scenario.currency)
        out.append({"plan": plan.name, "prices": prices, "notes": notes})
    return {"scenario": scenario.name, "currency": scenario.currency.lower(), "plans": out}


def _money(amount: Decimal | Fraction, currency: str, places: int = 2) -> str:
    value = Decimal(amount.numerator) / Decimal(amount.denominator) if isinstance(amount, Fraction) else Decimal(amount)
    text = f"{value:,.{places}f}" if value == value.quantize(Decimal(1).scaleb(-places)) else f"{value.normalize():,f}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def _unit_text(minor_per_unit: Decimal, measure: str, currency: str) -> str:
    """A per-unit amount in minor units as text: per 1M for token measures, per unit otherwise."""
    if not minor_per_unit:
        return "free"
    if measure.endswith("tokens"):
        return f"{_money(Fraction(minor_per_unit) * 10**6 / 100, currency)} per 1M {measure.replace('_', ' ')}"
    return f"{_money(Fraction(minor_per_unit) / 100, currency)} per {measure.rstrip('s') if measure != 'seats' else 'seat'}"


def _tiers_text(meter: Meter, currency: str) -> list[str]:
    lines = []
    lower = 0
    for tier in meter.tiers:
        if lower == 0:
            span = f"0-{tier.up_to:,}" if tier.up_to is not None else "all"
        else:
            span = f"{lower + 1:,}-{tier.up_to:,}" if tier.up_to is not None else f"{lower + 1:,}+"
        flat = f" + flat {_money(Fraction(tier.flat_amount) / 100, currency)}" if tier.flat_amount else ""
        lines.append(f"      {span}: {_unit_text(tier.unit_amount_decimal, meter.measure, currency)}{flat}")
        lower = tier.up_to or lower
    return lines


def plan_summary(plan: Plan, currency: str = "USD") -> str:
    """A plain-language description of a plan, one component per line."""
    lines = [f"{plan.name}" + (f": {plan.description}" if plan.description else "")]
    if plan.base_fee:
        lines.append(f"  base fee {_money(plan.base_fee, currency)} per month")
    if plan.seats is not None:
        lines.append(f"  {_money(plan.seats.price, currency)} per seat per month" + (f" beyond {plan.seats.included} included seats" if plan.seats.included else ""))
    if plan.allocation is not None:
        a = plan.allocation
        lines.append(f"  {a.included:,} {a.measure} included per month{' per seat' if a.per_seat else ''}, then {_money(a.overage_per_1m, currency)} per 1M")
    for meter in plan.meters:
        if meter.billing_scheme == "tiered":
            lines.append(f"  {meter.name}: {meter.tiers_mode} tiers on {meter.measure}")
            lines.extend(_tiers_text(meter, currency))
        else:
            package = f" per {meter.transform_quantity.divide_by:,} (rounded {meter.transform_quantity.round})" if meter.transform_quantity else " per unit"
            if meter.transform_quantity:
                lines.append(f"  {meter.name}: {_money(Fraction(meter.unit_amount_decimal or 0) / 100, currency)}{package} of {meter.measure}")
            else:
                lines.append(f"  {meter.name}: {_unit_text(meter.unit_amount_decimal or Decimal(0), meter.measure, currency)}")
    if plan.payg is not None:
        if plan.payg.markup_pct is not None:
            lines.append(f"  pay as you go: AI cost + {plan.payg.markup_pct}%")
        for cls, price in plan.payg.per_1m.items():
            lines.append(f"  pay as you go: {_money(price, currency)} per 1M {cls} tokens")
    if plan.credits is not None:
        c = plan.credits
        rollover = "no rollover" if c.included_expiry_months == 1 else f"usable for {c.included_expiry_months} months"
        lines.append(f"  credits: {c.included:,} included per month{' per seat' if c.included_per_seat else ''} ({rollover}); burn by {c.burn_by}")
        for rule in c.burn:
            parts = [f"{v} per 1k {k}" for k, v in rule.per_1k.items()]
            if rule.per_request:
                parts.append(f"{rule.per_request} per request")
            if rule.cost_multiplier is not None:
                parts.append(f"AI cost x {rule.cost_multiplier}")
            lines.append(f"      {rule.match}: {', '.join(parts) or 'free'}")
        if c.on_exhausted == "topup" and c.pack is not None:
            expiry = "never expire" if c.purchased_expiry_months is None else f"expire after {c.purchased_expiry_months} months"
            lines.append(f"      top-up packs of {c.pack.credits:,} credits for {_money(c.pack.price, currency)} (purchased credits {expiry})")
        elif c.on_exhausted == "topup":
            lines.append(f"      top-ups at {_money(c.price_per_credit or Decimal(0), currency)} per credit")
        elif c.on_exhausted == "overage":
            lines.append(f"      overage at {_money(c.overage_per_credit or Decimal(0), currency)} per credit")
        else:
            lines.append("      usage stops when the credits run out")
    if plan.minimum is not None:
        period = "month" if plan.minimum.period_months == 1 else f"{plan.minimum.period_months} months"
        lines.append(f"  minimum commitment {_money(plan.minimum.amount, currency)} per {period} (true-up)")
    if plan.cap is not None:
        what = f"${plan.cap.limit:,.2f} of AI cost" if plan.cap.measure == "ai_cost_usd" else f"{int(plan.cap.limit):,} {plan.cap.measure.replace('_', ' ')}"
        lines.append(f"  hard cap: {what}{' per seat' if plan.cap.per_seat else ''} per month; usage beyond it is not served")
    if len(lines) == 1:
        lines.append("  free")
    return "\n".join(lines)


def scenario_summary(scenario: Scenario) -> str:
    """The whole scenario in plain language: assignment and each plan."""
    a = scenario.assignment
    how = {
        "current_plan": "by current plan" + (f" ({', '.join(f'{k} -> {v}' for k, v in a.map.items())})" if a.map else ""),
        "rule": "by rules, first match wins",
        "cheapest": "each customer takes the plan cheapest for it",
        "single": f"everyone on {a.default}",
    }[a.method]
    head = f"{scenario.name} ({scenario.currency}); assignment: {how}"
    if a.method == "rule":
        for rule in a.rules:
            conditions = []
            if rule.current_plan:
                conditions.append(f"current plan in {', '.join(rule.current_plan)}")
            if rule.measure:
                conditions.append(f"average monthly {rule.measure} in [{rule.min or 0}, {rule.max if rule.max is not None else 'inf'})")
            if rule.seats_min is not None or rule.seats_max is not None:
                conditions.append(f"seats in [{rule.seats_min or 0}, {rule.seats_max if rule.seats_max is not None else 'inf'})")
            head += f"\n  -> {rule.plan} when {' and '.join(conditions) or 'always'}"
        if a.default:
            head += f"\n  -> {a.default} otherwise"
    return "\n".join([head, *[plan_summary(p, scenario.currency) for p in scenario.plans]])
